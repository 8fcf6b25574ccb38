"""Lost parties on one machine: a party's process stopped (SIGSTOP, a hang)
or killed by its pid from outside the runtime, as an operator or the kernel
would, not through `[[faults]]`. Each is found lost within the scenario's
deadlines: a dropout where the protocol survives its role (federated
contributors), else the end of the run with a message naming it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytestmark = pytest.mark.ray

# short deadlines, so that a loss is found in seconds (a contributor's reply
# to collect_updates is its local training: seconds on two busy cores)
DEADLINES = "[run]\ncontrol_timeout_s = 5\ndelivery_timeout_s = {delivery}\n"

FEDERATED = f"""extends = "federated"
{DEADLINES.format(delivery=15)}
[[stages]]
name = "train"
protocol = "federated"
params = {{ mode = "secagg", rounds = 2, threshold = 2, local_steps = 2 }}
"""

TEE = f'extends = "tee-inference"\n{DEADLINES.format(delivery=5)}'


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _ray_processes() -> set[int]:
    """Ray's processes on this machine: its GCS, raylet and workers."""
    found = set()
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                words = cmdline.read().split(b"\0")
        except (FileNotFoundError, NotADirectoryError, ProcessLookupError):
            continue
        if any(w.startswith(b"ray::") or w.endswith((b"/raylet", b"/gcs_server")) for w in words):
            found.add(int(entry))
    return found


class Run:
    """`airlock run` in a child process, read line by line as it goes."""

    def __init__(self, tmp_path: Path, scenario: str) -> None:
        self.ray_before = _ray_processes()
        path = tmp_path / "scenario.toml"
        path.write_text(scenario)
        self.run_dir = tmp_path / "run"
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", "run", str(path), "--out", str(self.run_dir)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "COLUMNS": "200"},
        )

    def wait_for_line(self, text: str, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if text in line:
                return
        raise AssertionError(f"no line with {text!r}:\n" + "".join(self.lines))

    def pid_of(self, party: str) -> int:
        """From the manifest, written as soon as the parties are placed."""
        manifest = json.loads((self.run_dir / "manifest.json").read_text())
        return int(manifest["parties"][party]["placement"]["pid"])

    def finish(self, timeout: float = 300) -> tuple[int, str]:
        """The exit status and output; no Ray process of the run is left."""
        out, _ = self.process.communicate(timeout=timeout)
        deadline = time.monotonic() + 15
        while _ray_processes() - self.ray_before and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _ray_processes() - self.ray_before, "Ray processes of the run were left"
        return self.process.returncode, "".join(self.lines) + out

    def manifest(self) -> dict:
        return json.loads((self.run_dir / "manifest.json").read_text())


def _contributor_lost_in_training(tmp_path: Path, sig: signal.Signals) -> tuple[str, dict, int]:
    run = Run(tmp_path, FEDERATED)
    run.wait_for_line("start_round (round 2)")
    pid = run.pid_of("hospital_2")
    os.kill(pid, sig)
    signalled = time.monotonic()
    run.wait_for_line("lost hospital_2")
    print(f"hospital_2 {sig.name} to found lost: {time.monotonic() - signalled:.1f} s")
    code, output = run.finish()
    assert code == 0, output
    assert "Traceback" not in output
    manifest = run.manifest()
    assert manifest["outcome"] == "completed"
    assert manifest["dropouts"] == ["hospital_2"]
    assert not _pid_alive(pid)  # a stopped process does not outlive the run
    rounds = [a for a in manifest["actions"] if a["action"] == "aggregate"]
    assert [r["result"]["survivors"] for r in rounds][-1] == ["hospital_1", "hospital_3"]
    audit = json.loads((run.run_dir / "audit.json").read_text())
    assert audit["claims"][0]["ok"], audit["claims"][0]  # every log verifies
    notes = [n["detail"] for n in audit["claims"][0]["notes"] if n["party"] == "hospital_2"]
    assert notes and manifest["lost"]["hospital_2"] in notes[0]
    return output, manifest, pid


def test_a_stopped_contributor_is_a_dropout_and_training_completes(tmp_path: Path) -> None:
    output, manifest, _ = _contributor_lost_in_training(tmp_path, signal.SIGSTOP)
    assert manifest["lost"]["hospital_2"] == "no answer to node within 5 s"
    assert "lost hospital_2 (no answer to node within 5 s): a dropout" in output


def test_a_contributor_killed_by_pid_is_a_dropout_and_training_completes(tmp_path: Path) -> None:
    output, manifest, _ = _contributor_lost_in_training(tmp_path, signal.SIGKILL)
    assert manifest["lost"]["hospital_2"] == "its process died (during node)"
    assert "a dropout, federated goes on without it" in output


def test_a_stopped_deployer_ends_the_run_within_its_deadline(tmp_path: Path) -> None:
    run = Run(tmp_path, TEE)
    run.wait_for_line("identities issued")
    pid = run.pid_of("deployer")
    os.kill(pid, signal.SIGSTOP)
    stopped = time.monotonic()
    code, output = run.finish()
    took = time.monotonic() - stopped
    assert code == 1, output
    assert "Traceback" not in output
    manifest = run.manifest()
    assert manifest["outcome"] == "failed"
    assert "lost deployer (no answer to" in manifest["failure"], manifest["failure"]
    assert manifest["lost"] == {"deployer": manifest["lost"]["deployer"]}
    assert not _pid_alive(pid)
    # found within a delivery and a control deadline (5 s each); the rest is
    # sealing, salvage and the audit
    assert took < 60, took
    print(f"deployer stopped to end of run: {took:.1f} s (deadlines 5 s + 5 s)")
    audit = json.loads((run.run_dir / "audit.json").read_text())
    findings = [(f["party"], f["detail"]) for f in audit["claims"][0]["findings"]]
    assert findings == [("deployer", "signed head is missing (log never sealed)")]


def test_a_party_frozen_in_its_own_action_is_lost_within_the_control_deadline(
    tmp_path: Path,
) -> None:
    """The aggregator stopped while it collects the round's updates (its own
    action, under an action deadline of 10 minutes): pinged beside its work,
    it is found lost within the control deadline (5 s). Before, only the
    action's deadline (or Ray's own keepalive) found it."""
    long_action = "control_timeout_s = 5\naction_timeout_s = 600\n"
    run = Run(tmp_path, FEDERATED.replace("control_timeout_s = 5\n", long_action))
    run.wait_for_line("share_keys (round 2)")
    pid = run.pid_of("model_creator")
    os.kill(pid, signal.SIGSTOP)
    stopped = time.monotonic()
    code, output = run.finish()
    took = time.monotonic() - stopped
    assert code == 1, output
    assert "Traceback" not in output
    manifest = run.manifest()
    assert manifest["lost"]["model_creator"] == "no sign of life for 5 s during act"
    assert not _pid_alive(pid)
    assert took < 90, took  # found in 5 s; the rest is sealing, salvage and the audit
    print(f"aggregator stopped to end of run: {took:.1f} s (control deadline 5 s)")

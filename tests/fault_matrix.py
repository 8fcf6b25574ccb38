"""The fault matrix: for every built-in scenario, every role it has and every
action its protocols run, a party of that role killed by its pid (SIGKILL,
from outside Ray) just before, and during, that action. The cases are
generated from the scenarios and the protocols' plans, and each run is
checked for what a lost party must never cost (`check_case`)."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from orchestrator.scenario import builtin_names, load_scenario
from protocols import get_protocol
from tests.helpers import ROOT

# short deadlines: a case ends in seconds after its kill
DEADLINES = "[run]\ncontrol_timeout_s = 10\ndelivery_timeout_s = 30\n"
DURING_S = 0.05  # into the action: most actions are still running then
CASE_TIMEOUT_S = 900


@dataclass(frozen=True)
class Case:
    scenario: str
    role: str
    party: str  # the first party of the role
    protocol: str
    action: str
    when: str  # "before" or "during"
    survivable: bool  # the action's protocol survives losing the role

    @property
    def id(self) -> str:
        return f"{self.scenario}:{self.when}-{self.protocol}.{self.action}:kill-{self.party}"

    def toml(self) -> str:
        after = f"after_s = {DURING_S}\n" if self.when == "during" else ""
        return (
            f'extends = "{self.scenario}"\n{DEADLINES}\n[[faults]]\nkill = "{self.party}"\n'
            f'{self.when} = "{self.action}"\n{after}signal = "SIGKILL"\n'
        )


def cases(scenarios: list[str] | None = None) -> list[Case]:
    found = []
    for name in scenarios or builtin_names():
        scenario, _ = load_scenario(name)
        settings = scenario.stage_settings()
        actions: list[tuple[str, str]] = []
        for stage in scenario.stages:
            for _, action, _ in get_protocol(stage.protocol).plan(
                settings[stage.protocol], stage.part
            ):
                if (stage.protocol, action) not in actions:
                    actions.append((stage.protocol, action))
        first_of_role: dict[str, str] = {}
        for party in scenario.parties:
            first_of_role.setdefault(str(scenario.role_of(party)), party)
        for role, party in first_of_role.items():
            for protocol, action in actions:
                survivable = scenario.role_of(party) in get_protocol(protocol).survives_loss_of
                for when in ("before", "during"):
                    found.append(Case(name, role, party, protocol, action, when, survivable))
    return found


def sample(all_cases: list[Case], size: int) -> list[Case]:
    """A fixed sample, by each case's digest (no hand-picked list)."""
    return sorted(all_cases, key=lambda c: hashlib.sha256(c.id.encode()).digest())[:size]


@dataclass
class Outcome:
    code: int
    output: str
    seconds: float
    run_dir: Path


def run_case(case: Case, tmp_path: Path) -> Outcome:
    path = tmp_path / "case.toml"
    path.write_text(case.toml())
    run_dir = tmp_path / "run"
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "run", str(path), "--out", str(run_dir)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=CASE_TIMEOUT_S,
        env={**os.environ, "COLUMNS": "200"},
    )
    return Outcome(done.returncode, done.stdout + done.stderr, time.monotonic() - began, run_dir)


def check_case(case: Case, outcome: Outcome) -> None:
    output = outcome.output
    assert "Traceback" not in output, output
    manifest = json.loads((outcome.run_dir / "manifest.json").read_text())
    killed = f"fault injected: sent SIGKILL to {case.party}" in output
    if not killed:  # the action was over before the kill was due: a plain run
        assert outcome.code == 0, output
    elif outcome.code == 0:  # the protocol went on without the party
        assert case.survivable, output
        assert case.party in manifest["dropouts"], manifest["dropouts"]
    else:  # the run ended, naming the party
        assert outcome.code == 1, output
        assert case.party in (manifest["failure"] or ""), manifest["failure"]
    audit = json.loads((outcome.run_dir / "audit.json").read_text())
    integrity = audit["claims"][0]
    # every collected log verifies: at most the killed party's head is missing
    assert {f["party"] for f in integrity["findings"]} <= {case.party}, integrity["findings"]
    assert all("never sealed" in f["detail"] for f in integrity["findings"]), integrity
    _check_no_partial_secret(manifest, outcome.run_dir, killed and outcome.code != 0)
    _check_nothing_left(manifest)


def _check_no_partial_secret(manifest: dict, run_dir: Path, failed: bool) -> None:
    """MPC: a failed run has no output. Secure aggregation: no contributor's
    self-mask share and mask-key share were both revealed in one round."""
    if failed:
        generated = [a for a in manifest["actions"] if a["action"] == "generate"]
        assert not generated, generated
    for name, party in manifest["parties"].items():
        if party["role"] != "model_creator":
            continue
        log = run_dir / "parties" / name / "log.jsonl"
        if not log.exists():
            continue
        revealed: dict[tuple[str, str], set[str]] = {}
        for line in log.read_text().splitlines():
            entry = json.loads(line)
            if entry.get("step") != "unmask_shares" or entry.get("outcome") != "admitted":
                continue
            blob = run_dir / "parties" / name / "blobs" / entry["payload_sha256"]
            shares = json.loads(blob.read_bytes())
            for kind in ("b", "s"):
                for peer in shares.get(kind, {}):
                    revealed.setdefault((entry["session"], peer), set()).add(kind)
        both = [key for key, kinds in revealed.items() if kinds == {"b", "s"}]
        assert not both, f"both shares of {both} revealed"


def _check_nothing_left(manifest: dict) -> None:
    """No party process, listening port or work directory of the run."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        pids = [p["placement"]["pid"] for p in manifest["parties"].values()]
        alive = [pid for pid in pids if Path(f"/proc/{pid}").exists()]
        ports = _listening_ports() & {
            int(p["address"].rsplit(":", 1)[1]) for p in manifest["parties"].values()
        }
        left = glob.glob(f"/tmp/airlock-{manifest['run_id']}-*")
        if not (alive or ports or left):
            return
        time.sleep(0.5)
    raise AssertionError(f"left behind: processes {alive}, ports {ports}, directories {left}")


def _listening_ports() -> set[int]:
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                if fields[3] == "0A":  # LISTEN
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports

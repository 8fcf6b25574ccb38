"""One OS user per party (`[run] isolation = "user"`, parties/isolation.py):
a party's process cannot read another party's memory, keys, store or log.
Switching users needs root, as CI and the developers' machines run."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.launcher import party_configs
from orchestrator.scenario import parse_scenario
from parties.errors import AirlockError
from parties.isolation import IsolatedHost, unreachable_by_others
from protocols import get_protocol
from tests.helpers import run_text

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")


@pytest.fixture(autouse=True)
def reachable_python() -> Iterator[None]:
    """Folders above this Python that other users cannot pass (pyenv's
    under /root, 0700 here) made passable (o+x) for the test, and put back."""
    blocked = [Path(folder) for folder in unreachable_by_others()]
    modes = {folder: folder.stat().st_mode for folder in blocked}
    try:
        for folder, mode in modes.items():
            folder.chmod(mode | stat.S_IXOTH)
        assert not unreachable_by_others()
        yield
    finally:
        for folder, mode in modes.items():
            folder.chmod(stat.S_IMODE(mode))


def test_a_python_other_users_cannot_reach_is_refused_with_what_to_do() -> None:
    top = Path(sys.executable).resolve().parents[-2]  # e.g. /root
    mode = top.stat().st_mode
    top.chmod(stat.S_IMODE(mode) & ~stat.S_IXOTH & ~stat.S_IROTH)
    try:
        configs = party_configs(parse_scenario(ISOLATED, "isolated"), "isolation")
        with pytest.raises(AirlockError, match=f"other users cannot reach .*{top}.*chmod o\\+x"):
            IsolatedHost(configs["alice"], get_protocol)
    finally:
        top.chmod(stat.S_IMODE(mode))


ISOLATED = 'extends = "walkthrough"\n[run]\nisolation = "user"\n'

# what a party's code could try against another party on the same machine
PROBE = """
import json, os, sys
workdir, pid = sys.argv[1], int(sys.argv[2])
tries = {
    "list its folder": lambda: os.listdir(workdir),
    "read its log": lambda: open(os.path.join(workdir, "party", "log.jsonl"), "rb").read(),
    "read its memory": lambda: open(f"/proc/{pid}/mem", "rb").read(1),
    "read its environment": lambda: open(f"/proc/{pid}/environ", "rb").read(),
}
outcome = {}
for name, attempt in tries.items():
    try:
        attempt()
        outcome[name] = "read"
    except PermissionError:
        outcome[name] = "refused"
    except OSError as error:
        outcome[name] = type(error).__name__
print(json.dumps(outcome))
"""


def probe_as(uid: int, workdir: str, pid: int) -> dict[str, str]:
    """What a process of user `uid` can read of the party at `workdir`, `pid`."""

    def become() -> None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)

    done = subprocess.run(
        [sys.executable, "-c", PROBE, workdir, str(pid)],
        preexec_fn=become,
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_a_party_cannot_read_another_partys_memory_store_or_log() -> None:
    configs = party_configs(parse_scenario(ISOLATED, "isolated"), "isolation")
    alice = IsolatedHost(configs["alice"], get_protocol)
    deployer = IsolatedHost(configs["deployer"], get_protocol)
    try:
        where = {name: host.node() for name, host in (("alice", alice), ("deployer", deployer))}
        uids = {name: node["uid"] for name, node in where.items()}
        assert uids == {"alice": alice.uid, "deployer": deployer.uid}
        assert len(set(uids.values())) == 2 and 0 not in uids.values()
        assert (Path(where["deployer"]["workdir"]) / "log.jsonl").exists()
        target = (str(Path(where["deployer"]["workdir"]).parent), where["deployer"]["pid"])
        # alice's user, as alice's code would be, is refused everything of the deployer's
        assert set(probe_as(alice.uid, *target).values()) == {"refused"}
        # the deployer's own user reads its folder and log: the files are there
        own = probe_as(deployer.uid, *target)
        assert own["list its folder"] == own["read its log"] == "read"
    finally:
        alice.stop()
        deployer.stop()


@pytest.mark.slow  # every party a fresh interpreter: a minute on 2 cores
def test_a_run_with_a_user_per_party_completes_and_audits(tmp_path: Path) -> None:
    result = run_text(ISOLATED, tmp_path / "run")
    assert result.failure is None and result.audit.ok
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    uids = [party["placement"]["uid"] for party in manifest["parties"].values()]
    assert len(set(uids)) == len(uids) and 0 not in uids

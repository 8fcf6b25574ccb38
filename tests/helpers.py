"""Shared test helpers and fixtures (registered by the root conftest.py):
parties running in this process (real gRPC with mutual TLS on 127.0.0.1, no
Ray), and runs of the walkthrough scenario."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orchestrator.audit import ClaimsReport
from orchestrator.launcher import RunResult, run_scenario
from orchestrator.scenario import load_scenario, parse_scenario
from parties.directory import Directory, PartyEntry
from parties.errors import Refused
from parties.identity import RunAuthority, issue_credentials
from parties.labels import Form
from parties.log import GENESIS, LOG_FILE, entry_hash
from parties.policy import Guarantee
from parties.protocol import party_holdings
from parties.roles import Role
from parties.runtime import PartyRuntime
from protocols import get_protocol

ROOT = Path(__file__).resolve().parent.parent
ROLES = {
    "hospital_1": Role.DATA_CONTRIBUTOR,
    "model_creator": Role.MODEL_CREATOR,
    "deployer": Role.DEPLOYER,
    "alice": Role.END_USER,
    "guidelines_db": Role.EXTERNAL_DATABASE,
}
PROMPT_GUARANTEE = Guarantee("prompts sealed", "prompt:*", frozenset({"deployer"}), Form.CIPHERTEXT)


@dataclass
class Parties:
    """A small run of in-process parties that have joined one directory."""

    run_id: str
    authority: RunAuthority
    runtimes: dict[str, PartyRuntime]
    directory: Directory
    entries: list[PartyEntry]

    def __getitem__(self, name: str) -> PartyRuntime:
        return self.runtimes[name]


def start_parties(
    tmp: Path,
    max_payload: int = 256 << 20,
    prompts: tuple[str, ...] = ("hello",),
    roles: dict[str, Role] = ROLES,
    protocol: str = "walkthrough",
    holdings: dict[str, dict] | None = None,
    settings: dict[str, Any] | None = None,
    provision: bool = False,
    adversaries: dict[str, str] | None = None,
) -> Parties:
    """Parties of `roles` speaking `protocol`, each with its own gRPC server;
    `holdings` (party -> values) replaces the default holdings, `settings`
    are the stage params every party is configured with, `provision` runs
    the protocol's trusted setup with what the parties made for it (as the
    launcher does), `adversaries` (party -> name) what each adversarial
    party plays."""
    run_id = "testrun"
    authority = RunAuthority(run_id)
    runtimes, entries = {}, []
    for name, role in roles.items():
        held = {"prompts": list(prompts)} if role == Role.END_USER else {}
        held = (holdings or {}).get(name, held)
        runtime = PartyRuntime(
            name=name,
            role=role,
            run_id=run_id,
            workdir=tmp / name,
            holdings=party_holdings(role, held, name, {protocol: get_protocol(protocol)}),
            protocols={protocol: get_protocol(protocol)},
            guarantees=[PROMPT_GUARANTEE],
            max_payload=max_payload,
            settings={protocol: settings or {}},
            adversary=(adversaries or {}).get(name),
        )
        runtimes[name] = runtime
    made = {name: runtime.provision_requests() for name, runtime in runtimes.items()}
    setup = get_protocol(protocol).provision
    given: dict[str, Any] = {}
    if provision and setup is not None:
        requests = {name: m[protocol] for name, m in made.items() if protocol in m}
        given = dict(setup(roles, settings or {}, requests).parties)
    for name, runtime in runtimes.items():
        credentials = issue_credentials(authority, name, runtime.certificate_requests())
        provisions = {protocol: given[name]} if name in given else {}
        address = runtime.start(credentials, "127.0.0.1", provisions=provisions)
        entries.append(PartyEntry(name, runtime.role, address, credentials.signing_cert_pem))
    directory = Directory(entries, authority.certificate_pem)
    for runtime in runtimes.values():
        runtime.join(directory)
    return Parties(run_id, authority, runtimes, directory, entries)


@contextlib.contextmanager
def running_parties(tmp: Path, **kwargs: Any) -> Iterator[Parties]:
    """`start_parties(tmp, **kwargs)`, stopped on the way out."""
    started = start_parties(tmp, **kwargs)
    try:
        yield started
    finally:
        for runtime in started.runtimes.values():
            runtime.stop()


@pytest.fixture
def parties(tmp_path: Path) -> Iterator[Parties]:
    with running_parties(tmp_path) as started:
        yield started


DEFAULT_ADVERSARIES = {"deployer": "forward_prompt", "alice": "plaintext_prompt"}


def with_adversary(text: str, party: str, adversary: str) -> str:
    """Scenario TOML with `party` playing `adversary`."""
    return text.replace(f"[parties.{party}]\n", f'[parties.{party}]\nadversary = "{adversary}"\n')


def default_text(adversaries: dict[str, str]) -> str:
    """The walkthrough scenario's TOML with `adversaries` (party -> name) instead of its own."""
    _, text = load_scenario("walkthrough")
    text = re.sub(r"^adversary = .*\n", "", text, flags=re.MULTILINE)
    for party, adversary in adversaries.items():
        text = with_adversary(text, party, adversary)
    return text


def run_text(text: str, out: Path) -> RunResult:
    """Run scenario TOML with every party in this process."""
    return run_scenario(parse_scenario(text, "test"), text, out=out, in_process=True)


def run_default(out: Path, adversaries: dict[str, str] = DEFAULT_ADVERSARIES) -> RunResult:
    """The walkthrough scenario, every party in this process."""
    return run_text(default_text(adversaries), out)


def result_of(result: RunResult, party: str, action: str) -> dict[str, Any]:
    """The result of `party`'s last `action` in a run."""
    return [a for a in result.actions if a["party"] == party and a["action"] == action][-1][
        "result"
    ]


def failing(report: ClaimsReport) -> dict[str, list[str]]:
    """Failed claims of an audit or verification, by name, with their findings."""
    return {c.name: [str(f) for f in c.findings] for c in report.claims if not c.ok}


@pytest.fixture(scope="session")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One in-process run of the walkthrough scenario, shared read-only."""
    out = tmp_path_factory.mktemp("walkthrough") / "run"
    result = run_default(out)
    assert result.failure is None, result.failure
    return out


@pytest.fixture
def run_copy(default_run: Path, tmp_path: Path) -> Path:
    """A private copy of the walkthrough run, to tamper with."""
    target = tmp_path / "run"
    shutil.copytree(default_run, target)
    return target


def refusal(runtime: PartyRuntime, receiver: str, *args: Any, **kwargs: Any) -> Refused:
    """The refusal a delivery meets (`PartyRuntime.deliver`'s arguments); a
    delivery that is not refused fails the test."""
    with pytest.raises(Refused) as caught:
        runtime.deliver(receiver, *args, **kwargs)
    return caught.value


def rewrite_entry(run: Path, party: str, index: int, **changes: object) -> None:
    """Edit one entry and re-chain the log after it (the head then fails, as
    it must; what matters here is what else the audit does with the entry)."""
    path = run / "parties" / party / LOG_FILE
    entries = [json.loads(line) for line in path.read_bytes().splitlines()]
    entries[index].update(changes)
    previous = GENESIS
    for entry in entries:
        entry["prev"] = previous
        entry["hash"] = entry_hash(entry)
        previous = entry["hash"]
    path.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in entries))


def airlock(
    *args: str, env: dict[str, str] | None = None, timeout: int = 240
) -> subprocess.CompletedProcess[str]:
    """Run the `airlock` command (as `python -m orchestrator`) in the project root."""
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        cwd=ROOT,
    )


# -- Ray clusters made by a test, on this machine -------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def session_pids(sid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getsid(int(entry)) == sid:
                    pids.append(int(entry))
            except (ProcessLookupError, PermissionError):
                pass
    return pids


def wait_for_nodes(
    address: str, env: dict[str, str], nodes: int, prefix: Sequence[str] = ()
) -> None:
    """Until the Ray cluster at `address` has `nodes` live nodes, probed by a
    driver started with `prefix` (e.g. `ip netns exec NS`)."""
    probe = (
        f"import orchestrator, ray; ray.init(address={address!r}, log_to_driver=False); "
        "print(len([n for n in ray.nodes() if n['Alive']]))"
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        done = subprocess.run(
            [*prefix, sys.executable, "-c", probe],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=60,
        )
        if done.returncode == 0 and done.stdout.strip().splitlines()[-1:] == [str(nodes)]:
            return
        time.sleep(2)
    raise TimeoutError(f"Ray cluster at {address} did not reach {nodes} nodes")


RAY_CURRENT_CLUSTER = Path(os.environ.get("RAY_TMPDIR", "/tmp")) / "ray" / "ray_current_cluster"


def _ray_address_file() -> bytes | None:
    try:
        return RAY_CURRENT_CLUSTER.read_bytes()
    except FileNotFoundError:
        return None


@pytest.fixture
def ray_address_file_kept() -> Iterator[None]:
    """For a fixture that runs `ray start --head`, which writes its address
    to /tmp/ray/ray_current_cluster for later plain `ray.init()` calls to
    join: once its nodes are stopped (this fixture's teardown runs after the
    one that asks for it), put back what was there before (or nothing), and
    check it, so that no user's `ray.init()` waits on a dead cluster."""
    before = _ray_address_file()
    try:
        yield
    finally:
        if before is None:
            RAY_CURRENT_CLUSTER.unlink(missing_ok=True)
        else:
            RAY_CURRENT_CLUSTER.parent.mkdir(parents=True, exist_ok=True)
            RAY_CURRENT_CLUSTER.write_bytes(before)
        assert _ray_address_file() == before, "the test left ray_current_cluster changed"


def stop_session(node: subprocess.Popen[Any]) -> None:
    """SIGTERM, then SIGKILL, to every process of the node's own session."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in session_pids(node.pid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        try:
            node.wait(timeout=15)
        except subprocess.TimeoutExpired:
            continue
        deadline = time.monotonic() + 10
        while session_pids(node.pid) and time.monotonic() < deadline:
            time.sleep(0.5)
        if not session_pids(node.pid):
            return

"""The default scenario on a Ray cluster of three nodes with real network
addresses: each node in a Linux network namespace of its own, made here
with `ip netns`, veth pairs and a bridge, on addresses from 198.18.0.0/24
(the benchmarking range, RFC 2544) that this test assigns to its own
namespaces. The namespaces have no route anywhere else.

Run alone: `pytest -m netns`. Needs root (CAP_NET_ADMIN); skipped otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import ROOT, stop_session, wait_for_nodes

pytestmark = [pytest.mark.netns, pytest.mark.timeout(1200)]

PREFIX = f"alk{os.getpid() % 10000}"  # names this test's links and namespaces
BRIDGE = f"{PREFIX}br"
PORT = 6379
# node -> (its address, the sites it hosts); the head is node 0
NODES = [
    ("198.18.0.1", ("verification", "serving", "clients")),
    ("198.18.0.2", ("training",)),
    ("198.18.0.3", ("database_a", "database_b", "compute")),
]
HEAD = f"{NODES[0][0]}:{PORT}"
ENV = {
    **os.environ,
    "RAY_AUTH_MODE": "token",
    "RAY_USAGE_STATS_ENABLED": "0",
    # orchestrator/__init__.py turns this off (it keeps an embedded Ray on
    # loopback), which would refuse every node but the head
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1",
    "COLUMNS": "200",
}


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def _namespace(index: int) -> str:
    return f"{PREFIX}ns{index}"


def _in(index: int) -> list[str]:
    return ["ip", "netns", "exec", _namespace(index)]


def _can_make_namespaces() -> str | None:
    """Why namespaces cannot be made here, or None."""
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "making network namespaces needs root"
    probe = f"{PREFIX}probe"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


@dataclass
class Cluster:
    nodes: list[subprocess.Popen[bytes]]
    logs: Path

    def cut(self, index: int) -> None:
        """Take the node's link down: its packets go nowhere from now on."""
        _ip("link", "set", f"{PREFIX}v{index}", "down")


def _start_node(index: int, logs: Path) -> subprocess.Popen[bytes]:
    address, sites = NODES[index]
    resources = json.dumps({f"airlock_site_{site}": 1000 for site in sites})
    role = (
        ["--head", f"--port={PORT}", "--include-dashboard=false"]
        if index == 0
        else [f"--address={HEAD}"]
    )
    return subprocess.Popen(
        [
            *_in(index),
            sys.executable,
            "-m",
            "ray.scripts.scripts",
            "start",
            *role,
            f"--node-ip-address={address}",
            f"--resources={resources}",
            "--num-cpus=1",
            "--block",
        ],
        stdout=open(logs / f"node{index}.log", "w"),
        stderr=subprocess.STDOUT,
        env=ENV,
        cwd=ROOT,
        start_new_session=True,
    )


@pytest.fixture
def cluster(tmp_path: Path, ray_address_file_kept: None) -> Iterator[Cluster]:
    reason = _can_make_namespaces()
    if reason is not None:
        pytest.skip(f"no network namespaces here: {reason}")
    nodes: list[subprocess.Popen[bytes]] = []
    try:
        _ip("link", "add", BRIDGE, "type", "bridge")
        _ip("link", "set", BRIDGE, "up")
        for index, (address, _) in enumerate(NODES):
            namespace, outer, inner = _namespace(index), f"{PREFIX}v{index}", f"{PREFIX}p{index}"
            _ip("netns", "add", namespace)
            _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
            _ip("link", "set", inner, "netns", namespace)
            _ip("link", "set", outer, "master", BRIDGE, "up")
            _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", inner)
            _ip("-n", namespace, "link", "set", inner, "up")
            _ip("-n", namespace, "link", "set", "lo", "up")
        for index in range(len(NODES)):
            nodes.append(_start_node(index, tmp_path))
            wait_for_nodes(HEAD, ENV, nodes=index + 1, prefix=_in(0))
        yield Cluster(nodes, tmp_path)
    finally:
        for node in reversed(nodes):
            stop_session(node)
        for index in range(len(NODES)):
            # anything still inside (a Ray worker outside its node's session)
            inside = subprocess.run(
                ["ip", "netns", "pids", _namespace(index)], capture_output=True, text=True
            )
            for pid in inside.stdout.split():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            # deleting one end of a veth pair deletes both
            subprocess.run(["ip", "link", "del", f"{PREFIX}v{index}"], capture_output=True)
            subprocess.run(["ip", "netns", "del", _namespace(index)], capture_output=True)
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)
        left = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        assert PREFIX not in left, "links of the test were left behind"
        namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
        assert PREFIX not in namespaces.stdout, "namespaces of the test were left behind"


def _airlock_run(run_dir: Path, *args: str) -> subprocess.Popen[str]:
    """`airlock run` as a driver in the head's namespace."""
    return subprocess.Popen(
        [*_in(0), sys.executable, "-m", "orchestrator", "run", *args, "--out", str(run_dir)],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _node_of(manifest: dict, party: str) -> str:
    return str(manifest["parties"][party]["placement"]["node_ip"])


def test_the_default_scenario_across_three_namespaced_nodes(
    cluster: Cluster, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    began = time.monotonic()
    driver = _airlock_run(run_dir, "healthcare", "--address", HEAD)
    output, _ = driver.communicate(timeout=900)
    took = time.monotonic() - began
    assert driver.returncode == 0, output
    manifest = json.loads((run_dir / "manifest.json").read_text())
    sites = {site: address for address, hosted in NODES for site in hosted}
    for name, party in manifest["parties"].items():
        # each on the node its site was given, listening on that node's address
        assert _node_of(manifest, name) == sites[party["site"]], name
        assert party["address"].startswith(sites[party["site"]] + ":"), party["address"]
    crossings: set[tuple[str, str]] = set()
    for name in manifest["parties"]:
        logs = subprocess.run(
            [sys.executable, "-m", "orchestrator", "logs", str(run_dir), "--party", name]
            + ["--format", "json"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        )
        for line in logs.stdout.splitlines():
            entry = json.loads(line)
            if entry["direction"] == "in" and entry["outcome"] == "admitted":
                crossings.add((_node_of(manifest, entry["peer"]), _node_of(manifest, name)))
    between = {pair for pair in crossings if pair[0] != pair[1]}
    # every node sent envelopes to another node, and received from another
    addresses = {address for address, _ in NODES}
    assert {sender for sender, _ in between} == addresses, crossings
    assert {receiver for _, receiver in between} == addresses, crossings
    print(f"healthcare on three namespaced nodes: {took:.1f} s")


def test_a_node_cut_off_mid_run_ends_it_within_the_deadline(
    cluster: Cluster, tmp_path: Path
) -> None:
    scenario = tmp_path / "cut.toml"
    deadline = 10
    scenario.write_text(f'extends = "healthcare"\n[run]\ncontrol_timeout_s = {deadline}\n')
    run_dir = tmp_path / "run"
    driver = _airlock_run(run_dir, str(scenario), "--address", HEAD)
    assert driver.stdout is not None
    lines = []
    for line in driver.stdout:
        lines.append(line)
        if "stage 2/7: training" in line:
            break
    cut = time.monotonic()
    cluster.cut(2)
    rest, _ = driver.communicate(timeout=600)
    took = time.monotonic() - cut
    output = "".join(lines) + rest
    assert driver.returncode == 1, output
    assert "Traceback" not in output
    manifest = json.loads((run_dir / "manifest.json").read_text())
    gone = sorted(n for n in manifest["parties"] if _node_of(manifest, n) == NODES[2][0])
    assert gone == ["compute_a", "compute_b", "dealer", "guidelines_a", "guidelines_b"]
    assert manifest["outcome"] == "failed"
    assert "stage 2/7 (training): lost " in manifest["failure"], manifest["failure"]
    assert all(name in manifest["failure"] for name in gone), manifest["failure"]
    audit = json.loads((run_dir / "audit.json").read_text())
    # every log that was collected verifies; the cut node's could not be
    problems = {(f["party"], f["detail"]) for f in audit["claims"][0]["findings"]}
    assert problems == {(name, "log was not collected") for name in gone}, problems
    print(f"cut to end of run: {took:.1f} s (control deadline {deadline} s)")

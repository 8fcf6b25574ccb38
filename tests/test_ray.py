"""Parties as Ray actors: the embedded local Ray, and a two-node cluster made
on this machine (loopback only) with parties placed on both nodes."""

from __future__ import annotations

import json
import signal
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import (
    RAY_CURRENT_CLUSTER,
    ROOT,
    airlock,
    free_port,
    stop_session,
    wait_for_nodes,
)

pytestmark = pytest.mark.ray


def placements(run_dir: Path) -> dict[str, dict]:
    manifest = json.loads((run_dir / "manifest.json").read_text())
    return {name: party for name, party in manifest["parties"].items()}


def test_airlock_run_on_embedded_ray_then_audit_and_logs(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    done = airlock("run", "walkthrough", "--out", str(run_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Run directory: {run_dir}" in done.stdout.replace("\n", "")
    parties = placements(run_dir)
    assert len(parties) == 6
    assert len({p["placement"]["pid"] for p in parties.values()}) == 6  # one process per party
    assert {p["placement"]["node_ip"] for p in parties.values()} == {"127.0.0.1"}
    assert all(p["address"].startswith("127.0.0.1:") for p in parties.values())

    audit = airlock("audit", str(run_dir))
    assert audit.returncode == 0, audit.stdout
    assert "Blocked at the boundary" in audit.stdout and "GUARANTEE_VIOLATED" in audit.stdout

    logs = airlock("logs", str(run_dir), "--party", "deployer", "--format", "json")
    entries = [json.loads(line) for line in logs.stdout.splitlines()]
    assert {e["outcome"] for e in entries} >= {"admitted", "refused", "replied"}
    logs = airlock("logs", str(run_dir), "--party", "alice", "--format", "json")
    assert "withheld" in {json.loads(line)["outcome"] for line in logs.stdout.splitlines()}


def test_a_party_cannot_drive_another_partys_actor() -> None:
    """Before: actors were named `airlock-<run>-<party>`, so any party's code
    could `ray.get_actor` another and call `export_log` (its received shares,
    its queries). Now no actor has a name, and a call without the party's
    orchestrator's signature is refused (its key never passes through Ray)."""
    import ray

    from orchestrator.hosts import RayHosts
    from orchestrator.launcher import party_configs
    from orchestrator.scenario import load_scenario
    from parties.actor import ControlCall, ControlRefused

    scenario, text = load_scenario("walkthrough")
    configs = party_configs(scenario, "raykeys", text)
    hosts = RayHosts(configs, {n: s.site for n, s in scenario.parties.items()}, None)
    try:
        named = ray.util.list_named_actors(all_namespaces=True)
        assert not [a for a in named if "airlock" in str(a)]
        with pytest.raises(ray.exceptions.RayTaskError) as caught:
            forged = ControlCall(10**9, os.urandom(64))
            ray.get(hosts.actors["deployer"].call.remote(forged, "export_log"))
        assert isinstance(caught.value.cause, ControlRefused)
        assert hosts.call({"deployer": ("node", ())}, 30)["deployer"]["pid"] > 0
    finally:
        hosts.close()


def test_a_killed_party_ends_the_run_cleanly(tmp_path: Path) -> None:
    scenario = (ROOT / "orchestrator" / "scenarios" / "walkthrough.toml").read_text()
    scenario += '\n[[faults]]\nkill = "deployer"\nbefore = "send_prompt"\n'
    path = tmp_path / "crash.toml"
    path.write_text(scenario)
    run_dir = tmp_path / "run"
    done = airlock("run", str(path), "--out", str(run_dir))
    assert done.returncode == 1
    output = done.stdout + done.stderr
    assert "Traceback" not in output
    assert "run failed" in output and "deployer" in output
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["outcome"] == "failed"
    report = json.loads(airlock("audit", str(run_dir), "--format", "json").stdout)
    integrity = report["claims"][0]
    # the killed party's log was salvaged from its node: every entry verifies,
    # only the signed head is missing; every other log verifies in full
    assert "salvaged the unsealed log of deployer" in output
    assert [(f["party"], f["detail"]) for f in integrity["findings"]] == [
        ("deployer", "signed head is missing (log never sealed)")
    ]
    assert all(claim["ok"] for claim in report["claims"][1:])


@pytest.fixture
def two_node_cluster(tmp_path: Path, ray_address_file_kept: None) -> Iterator[str]:
    """A head tagged for the training site and a worker for the serving site,
    both on 127.0.0.1. Teardown stops exactly the processes started here."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--block"]
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}
    wrapper = [sys.executable, str(ROOT / "deploy" / "loopback_ray.py"), "start"]
    nodes = []
    try:
        nodes.append(
            subprocess.Popen(
                [
                    *wrapper,
                    "--head",
                    f"--port={port}",
                    "--include-dashboard=false",
                    '--resources={"airlock_site_training": 1000}',
                    *common,
                ],
                stdout=open(tmp_path / "head.log", "w"),
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        )
        wait_for_nodes(address, env, nodes=1)
        nodes.append(
            subprocess.Popen(
                [
                    *wrapper,
                    f"--address={address}",
                    '--resources={"airlock_site_serving": 1000}',
                    *common,
                ],
                stdout=open(tmp_path / "worker.log", "w"),
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        )
        wait_for_nodes(address, env, nodes=2)
        yield address
    finally:
        for node in reversed(nodes):
            stop_session(node)


def test_default_scenario_across_a_two_node_cluster(two_node_cluster: str, tmp_path: Path) -> None:
    """The serving site advertises another name for its node ("localhost"):
    the others reach it by that name, and mutual TLS, which names parties,
    not hosts, is unaffected."""
    # the head's `ray start` names itself for later plain ray.init() calls;
    # ray_address_file_kept puts back what was there once the nodes stop
    assert RAY_CURRENT_CLUSTER.read_text() == two_node_cluster
    scenario = tmp_path / "advertised.toml"
    scenario.write_text('extends = "walkthrough"\n[sites.serving]\nadvertise = "localhost"\n')
    run_dir = tmp_path / "run"
    done = airlock("run", str(scenario), "--address", two_node_cluster, "--out", str(run_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    parties = placements(run_dir)
    for party in parties.values():
        host = "localhost" if party["site"] == "serving" else "127.0.0.1"
        assert party["address"].startswith(f"{host}:"), party
    node_of_site: dict[str, set[str]] = {}
    for party in parties.values():
        node_of_site.setdefault(party["site"], set()).add(party["placement"]["node_id"])
    assert set(node_of_site) == {"training", "serving"}
    assert all(len(nodes) == 1 for nodes in node_of_site.values())  # each site on one node
    assert node_of_site["training"] != node_of_site["serving"]  # and the two sites on two nodes
    assert {p["placement"]["node_ip"] for p in parties.values()} == {"127.0.0.1"}
    assert airlock("audit", str(run_dir)).returncode == 0


def test_attest_scenario_on_ray_then_verify_and_bom(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    done = airlock("run", "attest", "--out", str(run_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    verify = airlock("verify", str(run_dir))
    assert verify.returncode == 0, verify.stdout
    assert "every claim holds" in verify.stdout
    assert airlock("bom", str(run_dir)).returncode == 0
    assert (run_dir / "bom.cdx.json").exists()


def test_ctrl_c_seals_collects_and_leaves_an_auditable_run(tmp_path: Path) -> None:
    """A real SIGINT to `airlock run` in the middle of its stages: it says so,
    seals and collects every log, and leaves a run directory the audit reads,
    the stages it never reached marked so."""
    run_dir = tmp_path / "run"
    child = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "run", "walkthrough", "--out", str(run_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert child.stdout is not None
    seen = []
    for line in child.stdout:
        seen.append(line)
        if "stage 1/" in line:
            child.send_signal(signal.SIGINT)
            break
    out, err = child.communicate(timeout=180)
    output = "".join(seen) + out + err
    assert child.returncode == 130, output
    assert "Traceback" not in output
    assert "interrupted" in err
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["outcome"] == "interrupted"
    assert manifest["stages_not_reached"], manifest
    assert (run_dir / "scenario.toml").exists()
    audited = airlock("audit", str(run_dir), "--format", "json")
    assert "Traceback" not in audited.stderr
    report = json.loads(audited.stdout)
    integrity = report["claims"][0]
    assert integrity["ok"], integrity  # every log sealed and collected
    notes = [n["detail"] for c in report["claims"] for n in c["notes"] + c["findings"]]
    assert any("not reached" in n for n in notes), notes

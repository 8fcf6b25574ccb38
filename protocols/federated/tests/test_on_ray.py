"""`airlock run` of a federated scenario with each party in its own Ray
actor process, then `airlock audit` on the run directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from protocols.federated.scenario import federated_scenario
from tests.helpers import airlock

pytestmark = pytest.mark.ray


def test_secagg_dp_on_ray_with_a_dropout_then_audit(tmp_path: Path) -> None:
    params = {"mode": "secagg+dp", "rounds": 2, "local_steps": 3}
    params["exposure_samples"] = 50
    text = federated_scenario(3, params, notes=30)
    text += '\n[[faults]]\nkill = "hospital_2"\nbefore = "collect_updates"\nround = 2\n'
    path = tmp_path / "fed.toml"
    path.write_text(text)
    run_dir = tmp_path / "run"
    done = airlock("run", str(path), "--out", str(run_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "fault injected: killed hospital_2 before collect_updates" in done.stdout
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["outcome"] == "completed" and manifest["dropouts"] == ["hospital_2"]
    pids = {p["placement"]["pid"] for p in manifest["parties"].values()}
    assert len(pids) == 4  # one process per party
    report = (run_dir / "report.md").read_text()
    assert "| 2 | hospital_1, hospital_3 | hospital_2:" in report
    audit = airlock("audit", str(run_dir), "--format", "json")
    assert audit.returncode == 0, audit.stdout
    visibility = json.loads(audit.stdout)["visibility"]["model_creator"]
    assert {form for asset, form in visibility.items() if asset.startswith("update:")} == {"masked"}

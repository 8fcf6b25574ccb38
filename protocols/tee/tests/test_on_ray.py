"""`airlock run tee-inference` with each party in its own Ray actor process,
then `airlock audit`: the deployer holds only ciphertext."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.scenario import load_scenario
from tests.helpers import airlock

pytestmark = pytest.mark.ray


def test_tee_inference_on_ray_then_audit(tmp_path: Path) -> None:
    _, text = load_scenario("tee-inference")
    path = tmp_path / "tee.toml"
    path.write_text(text.replace("pretrain_steps = 150", "pretrain_steps = 10"))
    run_dir = tmp_path / "run"
    done = airlock("run", str(path), "--out", str(run_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = json.loads((run_dir / "manifest.json").read_text())
    (asked,) = [a["result"] for a in manifest["actions"] if a["action"] == "ask"]
    assert len(asked["answers"]) == 2 and asked["refused"] == []
    assert len({p["placement"]["pid"] for p in manifest["parties"].values()}) == 5
    audit = airlock("audit", str(run_dir), "--format", "json")
    assert audit.returncode == 0, audit.stdout
    seen = json.loads(audit.stdout)["visibility"]["deployer"]
    assert {f for a, f in seen.items() if a.startswith(("prompt:", "output:"))} == {"ciphertext"}

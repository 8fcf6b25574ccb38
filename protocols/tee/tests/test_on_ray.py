"""`airlock run tee-inference` with each party in its own Ray actor process,
then `airlock audit`: the deployer holds only ciphertext, and no party's
bytes hold a prompt, an answer or the weights it may not see."""

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
    path.write_text(text)
    run_dir = tmp_path / "run"
    done = airlock("run", str(path), "--out", str(run_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = json.loads((run_dir / "manifest.json").read_text())
    (asked,) = [a["result"] for a in manifest["actions"] if a["action"] == "ask"]
    assert len(asked["answers"]) == 2 and asked["refused"] == []
    assert len({p["placement"]["pid"] for p in manifest["parties"].values()}) == 5
    audit = airlock("audit", str(run_dir), "--format", "json")
    assert audit.returncode == 0, audit.stdout
    audited = json.loads(audit.stdout)
    seen = audited["visibility"]["deployer"]
    assert {f for a, f in seen.items() if a.startswith(("prompt:", "output:"))} == {"ciphertext"}
    assert seen["weights:model_creator"] == "ciphertext"  # key release: sealed to the enclave
    # the device key crossed to the enclave's actor over Ray; the audit
    # searched every party's bytes for every prompt and every answer
    assert len(asked["vendor_roots"]) == 1
    scans = {c["claim"]: c for c in audited["claims"]}
    for asset, party in (
        ("prompt:alice", "alice"),
        ("output:alice", "alice"),
        ("weights:model_creator", "model_creator"),
    ):
        scan = scans[f"content scan: {asset} (fingerprints from {party})"]
        assert scan["ok"] and scan["checked"] > 0

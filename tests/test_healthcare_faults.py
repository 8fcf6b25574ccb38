"""A party that dies in any stage of the healthcare pipeline ends the run
cleanly: `airlock run` exits 1 with a message naming the party and the
stage, no traceback, and every log written so far verifies (the killed
party's is salvaged from its node, whole but for its signed head).

Each stage kills a party that stage cannot do without, just before one of
its actions: a run of the healthcare scenario (`extends`) with the smallest
settings that still run each stage, up to the kill. A minute or two each on
2 cores: `pytest -m slow`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import airlock

pytestmark = pytest.mark.slow

# the healthcare stages with the least work each still does; the faults
# replace the base's (hospital_3 dropping out of training round 2)
SMALL = """
extends = "healthcare"

[parties.guidelines_a]
synthetic_documents = 40

[parties.guidelines_b]
synthetic_documents = 40

[parties.alice]
prompts = ["how should asthma be treated in children?"]

[[stages]]
name = "datasets"
protocol = "attestation"
part = "datasets"
params = { model = "trained", training_protocol = "federated", deploy_to = ["deployer"] }

[[stages]]
name = "training"
protocol = "federated"

[stages.params]
mode = "secagg+dp"
contributors = "attested"
rounds = 1
threshold = 2
local_steps = 1
batch = 8
exposure_samples = 10

[[stages]]
name = "commitment"
protocol = "attestation"
part = "commitment"

[[stages]]
name = "retrieval"
protocol = "pir"
params = { scheme = "xor", clusters = 4, top_k = 1, answer = false }

[[stages]]
name = "enclave"
protocol = "tee"
params = { model = "trained", prompts = "retrieved", require_commitment = true, max_new_tokens = 1 }

[[stages]]
name = "mpc"
protocol = "mpc"

[stages.params]
model = "trained"
prompts = "sensitive_prompts"
compute = ["compute_a", "compute_b"]
max_new_tokens = 1

[[stages]]
name = "ledger"
protocol = "attestation"
part = "ledger_audit"
"""

STAGES = ["datasets", "training", "commitment", "retrieval", "enclave", "mpc", "ledger"]

# stage -> (the party killed, the action it is killed just before, the round)
KILLS = {
    # a hospital that attests nothing: the creator cannot know which datasets to accept
    "datasets": ("hospital_1", "attest_dataset", None),
    # the aggregator itself, between the key exchange and the updates of round 1
    "training": ("model_creator", "collect_updates", 1),
    # the creator logs its commitment in a ledger that is gone
    "commitment": ("ledger", "commit_model", None),
    # alice's XOR PIR needs both replicas
    "retrieval": ("guidelines_b", "retrieve", None),
    # the deployer launches an enclave that is gone
    "enclave": ("enclave", "launch_enclave", None),
    # alice shares her prompt with two compute parties, one of them gone
    "mpc": ("compute_b", "generate", None),
    # every submitter asks a ledger that is gone for its head
    "ledger": ("ledger", "audit_ledger", None),
}


@pytest.mark.timeout(900)
@pytest.mark.parametrize("stage", STAGES)
def test_a_party_killed_in_a_stage_ends_the_run_cleanly(stage: str, tmp_path: Path) -> None:
    party, action, round_ = KILLS[stage]
    fault = f'\n[[faults]]\nkill = "{party}"\nbefore = "{action}"\n'
    if round_ is not None:
        fault += f"round = {round_}\n"
    path = tmp_path / f"kill-{stage}.toml"
    path.write_text(SMALL + fault)
    run_dir = tmp_path / "run"
    done = airlock("run", str(path), "--out", str(run_dir), timeout=600)
    output = done.stdout + done.stderr
    (tmp_path / "output.txt").write_text(output)  # kept by pytest, for a look after
    assert done.returncode == 1, output
    assert "Traceback" not in output and "internal error" not in output, output
    assert f"fault injected: killed {party} before {action}" in output, output
    assert "run failed:" in output, output
    number = STAGES.index(stage) + 1
    assert f"stage {number}/{len(STAGES)}: {stage}" in output
    # no later stage started
    assert f"stage {number + 1}/{len(STAGES)}" not in output, output
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["outcome"] == "failed"
    # the failure, as printed after `run failed:`, names the party and the stage
    assert party in manifest["failure"] and stage in manifest["failure"], manifest["failure"]

    # the killed party's log was salvaged from its node: every entry
    # verifies, only the signed head is missing; every other log verifies in
    # full, and every audited claim holds
    assert f"salvaged the unsealed log of {party}" in output, output
    audit = json.loads(airlock("audit", str(run_dir), "--format", "json").stdout)
    integrity, *others = audit["claims"]
    assert [(f["party"], f["detail"]) for f in integrity["findings"]] == [
        (party, "signed head is missing (log never sealed)")
    ], integrity
    assert [c for c in others if not c["ok"]] == []
    # and every statement, proof and commitment logged so far checks; what
    # the run never got to (no model statement yet, say) is noted as not
    # reached, not failed
    verify = json.loads(airlock("verify", str(run_dir), "--format", "json").stdout)
    assert verify["claims"][0] == integrity
    assert [c["name"] for c in verify["claims"][1:] if not c["ok"]] == []

"""The committed model is the trained model: each contributor countersigns
the final model it was sent (evidence/countersignatures.py), logs it in the
ledger and gives it to the creator, whose model statement and provenance
carry it; `airlock verify` checks that the committed root is the one at
least the threshold of the surviving contributors countersigned.

In-process runs of the first three healthcare stages (datasets, a short
federated training, the commitment)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from securesystemslib.signer import CryptoSigner

from evidence.countersignatures import (
    COUNTERSIGNATURE_PREDICATE,
    Countersignature,
    JoinedRound,
    open_countersignature,
)
from orchestrator.audit.run import load_run
from orchestrator.launcher import RunResult
from orchestrator.verify import verify_run
from parties.errors import ClaimFailed
from protocols.artifacts import COUNTERSIGNATURES
from protocols.attestation.provenance import shipped_base_sha256
from protocols.attestation.verify import COUNTERSIGNED_CLAIM
from protocols.federated.tests.federation import (
    CREATOR,
    ROUND,
    act,
    contributor_names,
    federation,
    play,
    prepare,
)
from tests.helpers import failing, result_of, run_text

HOSPITAL = """
[parties.{name}]
role = "data_contributor"
site = "training"
exclude = ["nytimes.com"]
synthetic_notes = 5
"""
SCENARIO = (
    'name = "countersigned"\n'
    + "".join(HOSPITAL.format(name=f"hospital_{i}") for i in (1, 2, 3))
    + """
[parties.model_creator]
role = "model_creator"
site = "training"
model = "airlock-clinical"
requires_exclusion = ["nytimes.com"]
{adversary}

[parties.ledger]
role = "ledger"
site = "verification"

[[stages]]
name = "datasets"
protocol = "attestation"
part = "datasets"
params = {{ model = "trained", training_protocol = "federated" }}

[[stages]]
name = "training"
protocol = "federated"
[stages.params]
mode = "secagg"
contributors = "attested"
rounds = 1
threshold = 2
local_steps = 1
batch = 4
exposure_samples = 10

[[stages]]
name = "commitment"
protocol = "attestation"
part = "commitment"
"""
)


def run(out: Path, adversary: str | None = None) -> RunResult:
    text = SCENARIO.format(adversary=f'adversary = "{adversary}"' if adversary else "")
    result = run_text(text, out)
    assert result.failure is None, result.failure
    assert result.audit.ok, failing(result.audit)
    return result


def model_statement(run_dir: Path) -> dict[str, Any]:
    """The model statement the ledger logged, as signed."""
    record = load_run(run_dir)
    for _, payload in record.received("ledger", None, "submit"):
        envelope = json.loads(payload)["statement"]
        statement: dict[str, Any] = json.loads(base64.b64decode(envelope["payload"]))
        if statement["predicateType"] == "urn:airlock:predicate:model-commitment:v1":
            return statement
    raise AssertionError("no model statement logged")


def test_contributors_countersign_the_model_and_verify_holds(tmp_path: Path) -> None:
    result = run(tmp_path / "run")
    published = result_of(result, "model_creator", "publish_model")
    hospitals = ["hospital_1", "hospital_2", "hospital_3"]
    assert published["countersigned_by"] == hospitals
    assert published["countersignatures_refused"] == {}
    for hospital in hospitals:
        logged = result_of(result, hospital, "log_countersignature")
        assert logged["countersignature_logged"] and logged["rounds"] == [1]
        assert logged["model_root"] == published["model_root"]
    assert result_of(result, "model_creator", "commit_model")["countersigned_by"] == hospitals
    statement = model_statement(result.run_dir)
    assert statement["subject"][0]["digest"]["sha256"] == published["model_root"]
    assert len(statement["predicate"]["countersignatures"]) == 3
    verified = verify_run(result.run_dir)
    assert verified.ok, failing(verified)
    (claim,) = [c for c in verified.claims if c.name == COUNTERSIGNED_CLAIM]
    assert claim.checked == 1


def test_a_creator_committing_another_model_than_it_trained_fails_verify(
    tmp_path: Path,
) -> None:
    """The creator commits the shipped checkpoint plus a tweak, naming every
    dataset and the training run: the commitment, the signed model files and
    the provenance agree with each other, and the audit holds. Before
    countersignatures `airlock verify` held too; now no contributor
    countersigned the committed root."""
    result = run(tmp_path / "run", "swapped_training")
    published = result_of(result, "model_creator", "publish_model")
    committed = result_of(result, "model_creator", "commit_model")
    assert committed["swapped"] and committed["countersigned_by"] == []
    assert committed["datasets"] == [f"train:hospital_{i}" for i in (1, 2, 3)]
    root = model_statement(result.run_dir)["subject"][0]["digest"]["sha256"]
    assert root != published["model_root"]
    failed = failing(verify_run(result.run_dir))
    assert set(failed) == {COUNTERSIGNED_CLAIM}, failed
    assert any("countersigned by 0 of the surviving" in f for f in failed[COUNTERSIGNED_CLAIM])


def test_a_contributor_countersigns_one_final_model_of_the_rounds_it_joined(
    tmp_path: Path,
) -> None:
    with federation(tmp_path, 3, mode="secagg", rounds=1, threshold=2) as started:
        prepare(started)
        play(started, ROUND)
        published = act(started, CREATOR, "publish_model")
        assert published["countersigned_by"] == contributor_names(started)
        for name in contributor_names(started):
            envelope = started[name].store.get(COUNTERSIGNATURES).envelopes[name]
            key = started[name].context("federated").public_key(name)
            signed = open_countersignature(envelope, name, key)
            assert (signed.trainer, signed.root) == (CREATOR, published["model_root"])
            assert signed.run_id == started.run_id and signed.updates_sent == 1
            ((number, context, first),) = [
                (r.number, r.context, r.model_sha256) for r in signed.rounds
            ]
            assert number == 1 and context.startswith(f"{CREATOR}/1/")
            assert first == shipped_base_sha256()  # round 1 trains the shipped checkpoint
            kept = started[CREATOR].store.get(COUNTERSIGNATURES).envelopes[name]
            assert kept == envelope
        # a second final model (another one, or the same) is not countersigned
        again = act(started, CREATOR, "publish_model")
        assert again["countersigned_by"] == []


def test_a_countersignature_opens_only_as_its_contributor_s_under_its_key() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    signed = Countersignature(
        "hospital_1", "model_creator", "run", "ab" * 32, (JoinedRound(1, "c", "cd" * 32),), 1
    )
    envelope = signed.sign(CryptoSigner(key))
    assert open_countersignature(envelope, "hospital_1", key.public_key()) == signed
    with pytest.raises(ClaimFailed, match="names 'hospital_1' as its contributor"):
        open_countersignature(envelope, "hospital_2", key.public_key())
    other = ed25519.Ed25519PrivateKey.generate().public_key()
    with pytest.raises(ClaimFailed, match="signature does not verify"):
        open_countersignature(envelope, "hospital_1", other)
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["predicateType"] == COUNTERSIGNATURE_PREDICATE
    assert statement["subject"][0]["name"] == "weights:model_creator"

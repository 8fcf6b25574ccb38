"""The training run's SLSA v1 provenance (protocols/attestation/provenance.py):
what the model creator signs is SLSA v1 as in-toto-attestation's schema has
it, and `airlock verify`'s check refuses each way it can be wrong (the base
model included: it must be the shipped checkpoint, by digest)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from parties.errors import ClaimFailed
from protocols.artifacts import TrainingRun
from protocols.attestation.model import DatasetReference
from protocols.attestation.provenance import (
    BASE_MODEL,
    SUBJECT,
    carried_countersignatures,
    check_provenance,
    leaf_sha256,
    shipped_base_sha256,
    training_provenance,
)

RUN = TrainingRun(
    protocol="federated",
    mode="secagg+dp",
    rounds=2,
    survivors=("hospital_1",),
    epsilon=5.9,
    delta=1e-5,
    settings={"mode": "secagg+dp", "rounds": 2},
    base_model_sha256=shipped_base_sha256(),
    started="2026-12-05T10:00:00Z",
    finished="2026-12-05T10:01:00Z",
)
DATASETS = [DatasetReference("train:hospital_1", "bb" * 32)]
LEAF = "cc" * 32  # SHA-256 of the dataset attestation the ledger logged
# a contributor's countersignature of the final model, as a DSSE envelope
COUNTERSIGNED = {
    "payload": "e30=",
    "payloadType": "application/vnd.in-toto+json",
    "signatures": [{"keyid": "ff" * 32, "sig": "AA=="}],
}
WEIGHTS = b"the published weights"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    (tmp_path / SUBJECT).parent.mkdir()
    (tmp_path / SUBJECT).write_bytes(WEIGHTS)
    return tmp_path


def predicate() -> dict[str, Any]:
    return training_provenance(
        "model_creator",
        RUN,
        DATASETS,
        {"train:hospital_1": LEAF},
        {"hospital_1": COUNTERSIGNED},
    )


def check(run_dir: Path, changed: dict[str, Any], **overrides: Any) -> list[str]:
    arguments: dict[str, Any] = {
        "subject": SUBJECT,
        "sha256": hashlib.sha256(WEIGHTS).hexdigest(),
        "predicate": changed,
        "creator": "model_creator",
        "run_dir": run_dir,
        "logged_datasets": {LEAF: "train:hospital_1"},
        "base_sha256": shipped_base_sha256(),
    }
    return check_provenance(**{**arguments, **overrides})


def test_an_honest_provenance_resolves_to_its_logged_datasets(run_dir: Path) -> None:
    made = predicate()
    dependencies = made["buildDefinition"]["resolvedDependencies"]
    assert dependencies[0] == {"name": BASE_MODEL, "digest": {"sha256": shipped_base_sha256()}}
    assert made["runDetails"]["metadata"]["startedOn"] == "2026-12-05T10:00:00Z"
    assert check(run_dir, made) == ["train:hospital_1"]
    assert carried_countersignatures(made) == {"hospital_1": leaf_sha256(COUNTERSIGNED)}


def _set(path: tuple[str, ...], value: Any) -> Any:
    def change(p: dict[str, Any]) -> None:
        for key in path[:-1]:
            p = p[key]
        p[path[-1]] = value

    return change


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_set(("buildDefinition", "buildType"), "https://example/other"), "build type"),
        (_set(("runDetails", "builder", "id"), "urn:airlock:party:deployer"), "built by"),
        (_set(("buildDefinition", "steps"), []), "not SLSA v1 provenance"),
        (_set(("runDetails", "metadata", "startedOn"), "yesterday"), "not SLSA v1 provenance"),
        (
            lambda p: p["buildDefinition"]["resolvedDependencies"][1].update(
                digest={"sha256": "dd" * 32}
            ),
            "train:hospital_1 is not resolved to a logged dataset attestation",
        ),
        # a base model other than the shipped checkpoint, or none
        (
            lambda p: p["buildDefinition"]["resolvedDependencies"][0].update(
                digest={"sha256": "aa" * 32}
            ),
            "its base model .* is not the shipped checkpoint",
        ),
        (
            lambda p: p["buildDefinition"]["resolvedDependencies"].pop(0),
            r"its base model \(models/checkpoint/model.safetensors: none\) is not the shipped",
        ),
    ],
)
def test_a_provenance_not_as_built_is_refused(run_dir: Path, change: Any, expected: str) -> None:
    changed = predicate()
    change(changed)
    with pytest.raises(ClaimFailed, match=expected):
        check(run_dir, changed)


def test_a_provenance_for_other_weights_is_refused(run_dir: Path) -> None:
    with pytest.raises(ClaimFailed, match="is not the file its subject names"):
        check(run_dir, predicate(), sha256="ee" * 32)
    with pytest.raises(ClaimFailed, match="is not a published weights file"):
        check(run_dir, predicate(), subject="model/other.safetensors")
    (run_dir / SUBJECT).unlink()
    with pytest.raises(ClaimFailed, match="is not a published weights file"):
        check(run_dir, predicate())


def test_a_countersignature_not_its_digest_s_is_refused() -> None:
    changed = predicate()
    changed["runDetails"]["byproducts"][0]["digest"] = {"sha256": "dd" * 32}
    with pytest.raises(ClaimFailed, match="the countersignature of hospital_1 is not its digest"):
        carried_countersignatures(changed)

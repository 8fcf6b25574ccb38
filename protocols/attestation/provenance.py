"""The federated training run as SLSA v1 provenance: an in-toto statement
(predicate type https://slsa.dev/provenance/v1) in DSSE, signed by the model
creator with its party key and logged in the ledger beside the model
statement, so that SLSA tooling can read how the model was built.

- subject: the published weights file `model/model.safetensors` by SHA-256
  (the file `model_signing` verifies: protocols/attestation/signed_model.py);
- builder: the model creator (`urn:airlock:party:<name>`), which ran the
  aggregation;
- buildType: federated training (docs/federated.md);
- externalParameters: the training stage's settings, as the scenario gave them;
- internalParameters: what the training itself settled: the contributors
  that survived every round and the (ε, δ) spent;
- resolvedDependencies: the base checkpoint the training started from, and
  each dataset attestation the model statement names, by the SHA-256 of the
  DSSE envelope the ledger logged (its leaf), its Merkle root annotated;
- byproducts: each contributor's countersignature of the final model it was
  sent (evidence/countersignatures.py), by the SHA-256 of its DSSE envelope
  (its leaf in the ledger, where the contributor logged it), the envelope
  itself annotated.

The predicate is checked against the SLSA v1 schema as `in-toto-attestation`
ships it (its protobuf `Provenance`): unknown or mistyped fields are refused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2

from evidence.errors import ClaimFailed
from models.checkpoint import CHECKPOINT, WEIGHTS_FILE
from protocols.artifacts import TrainingRun
from protocols.attestation.ledger import entry_bytes
from protocols.attestation.model import DatasetReference
from protocols.attestation.signed_model import MODEL_DIR, WEIGHTS

BUILD_TYPE = "urn:airlock:build-type:federated-training:v1"
# the subject: the published weights file, by its path in the run directory
SUBJECT = f"{MODEL_DIR}/{WEIGHTS}"
BASE_MODEL = "models/checkpoint/model.safetensors"
CLAIM = "training provenance"


def builder_id(creator: str) -> str:
    return f"urn:airlock:party:{creator}"


def dataset_uri(name: str) -> str:
    return f"urn:airlock:dataset-attestation:{name}"


def countersignature_uri(contributor: str) -> str:
    return f"urn:airlock:model-countersignature:{contributor}"


def leaf_sha256(envelope: Any) -> str:
    """The SHA-256 of a statement's ledger leaf (its canonical DSSE envelope)."""
    return hashlib.sha256(entry_bytes(envelope)).hexdigest()


def shipped_base_sha256() -> str:
    """The SHA-256 of the shipped checkpoint's weights file: the one base
    model a federated training may start from."""
    return hashlib.sha256((CHECKPOINT / WEIGHTS_FILE).read_bytes()).hexdigest()


def training_provenance(
    creator: str,
    run: TrainingRun,
    datasets: Sequence[DatasetReference],
    attestations: Mapping[str, str],
    countersignatures: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The SLSA v1 predicate of one training run; `attestations`: the
    SHA-256 of each dataset's logged attestation, by dataset name;
    `countersignatures`: each contributor's DSSE envelope, by contributor."""
    dependencies = [
        {"name": BASE_MODEL, "digest": {"sha256": run.base_model_sha256}},
        *(
            {
                "name": d.name,
                "uri": dataset_uri(d.name),
                "digest": {"sha256": attestations[d.name]},
                "annotations": {"merkle_root_sha256": d.sha256},
            }
            for d in datasets
        ),
    ]
    predicate = {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {"protocol": run.protocol, **run.settings},
            "internalParameters": {
                "survivors": list(run.survivors),
                "rounds": run.rounds,
                "epsilon": run.epsilon,
                "delta": run.delta,
            },
            "resolvedDependencies": dependencies,
        },
        "runDetails": {
            "builder": {"id": builder_id(creator)},
            "metadata": {
                "startedOn": run.started,
                "finishedOn": run.finished,
            },
            "byproducts": [
                {
                    "name": f"countersignature:{name}",
                    "uri": countersignature_uri(name),
                    "digest": {"sha256": leaf_sha256(envelope)},
                    "mediaType": "application/vnd.dsse.envelope.v1+json",
                    "annotations": {"dsse_envelope": envelope},
                }
                for name, envelope in sorted((countersignatures or {}).items())
            ],
        },
    }
    check_schema(predicate)
    return predicate


def check_schema(predicate: Any) -> provenance_pb2.Provenance:
    """The predicate as SLSA v1 defines it, or ClaimFailed."""
    try:
        return json_format.ParseDict(predicate, provenance_pb2.Provenance())
    except (json_format.ParseError, TypeError, AttributeError) as exc:
        raise ClaimFailed(CLAIM, f"not SLSA v1 provenance: {exc}") from None


def check_provenance(
    subject: str,
    sha256: str,
    predicate: Any,
    creator: str,
    run_dir: Path,
    logged_datasets: Mapping[str, str],
    base_sha256: str,
) -> list[str]:
    """What `airlock verify` checks of a logged provenance statement of
    `creator` (subject, digest, predicate): SLSA v1 as the schema has it, of
    this build type and builder, for the published weights file, started
    from the base model `base_sha256` (the shipped checkpoint's digest) and
    every other dependency a logged dataset attestation (`logged_datasets`:
    dataset name by the SHA-256 of its ledger leaf). Returns the names of
    the datasets it resolves. Raises ClaimFailed."""
    provenance = check_schema(predicate)
    definition = provenance.build_definition
    if definition.build_type != BUILD_TYPE:
        raise ClaimFailed(CLAIM, f"build type {definition.build_type!r}, not {BUILD_TYPE!r}")
    if provenance.run_details.builder.id != builder_id(creator):
        raise ClaimFailed(CLAIM, f"built by {provenance.run_details.builder.id!r}, not {creator}")
    published = run_dir / SUBJECT
    if subject != SUBJECT or not published.is_file():
        raise ClaimFailed(CLAIM, f"its subject {subject!r} is not a published weights file")
    if hashlib.sha256(published.read_bytes()).hexdigest() != sha256:
        raise ClaimFailed(CLAIM, f"{SUBJECT} is not the file its subject names")
    datasets, bases = [], []
    for dependency in definition.resolved_dependencies:
        if dependency.name == BASE_MODEL:
            bases.append(dependency.digest.get("sha256", ""))
            continue
        leaf = dependency.digest.get("sha256", "")
        if logged_datasets.get(leaf) != dependency.name:
            raise ClaimFailed(
                CLAIM, f"{dependency.name} is not resolved to a logged dataset attestation"
            )
        datasets.append(dependency.name)
    if bases != [base_sha256]:
        named = ", ".join(f"{b[:16]}..." for b in bases) or "none"
        raise ClaimFailed(
            CLAIM,
            f"its base model ({BASE_MODEL}: {named}) is not the shipped checkpoint "
            f"{base_sha256[:16]}...",
        )
    return datasets


def carried_countersignatures(predicate: Any) -> dict[str, str]:
    """The countersignatures a provenance predicate carries: the SHA-256 of
    each envelope's ledger leaf, by contributor. Each byproduct's digest must
    be its envelope's. Raises ClaimFailed."""
    carried = {}
    for byproduct in check_schema(predicate).run_details.byproducts:
        if not byproduct.uri.startswith(countersignature_uri("")):
            continue
        contributor = byproduct.uri.removeprefix(countersignature_uri(""))
        envelope = json_format.MessageToDict(byproduct.annotations).get("dsse_envelope")
        digest = byproduct.digest.get("sha256", "")
        if envelope is None or leaf_sha256(envelope) != digest:
            raise ClaimFailed(CLAIM, f"the countersignature of {contributor} is not its digest's")
        carried[contributor] = digest
    return carried

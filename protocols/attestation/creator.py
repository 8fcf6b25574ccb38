"""The model creator: accepts only logged, verified dataset statements (and
exclusion proofs), then commits to its weights, bound to those datasets and
to the deployers it endorses, logs the commitment and shows it to deployers
and end users. A model it trained (federated) is committed with the
countersignatures its contributors gave it of the final model they were
sent, in the model statement and in the training provenance."""

from __future__ import annotations

import enum
import hashlib
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from evidence.countersignatures import open_countersignature
from evidence.statements import PartySigner, json_or_none, sign_statement
from evidence.weights import Tensor, float32_tensors, weights_root
from parties.envelope import Envelope
from parties.errors import ClaimFailed, ConfigError
from parties.labels import Form, Label
from parties.protocol import PartyContext, holdings_as, state_of
from parties.roles import ModelCreator, Role
from protocols.artifacts import (
    ACCEPTED_DATASETS,
    COUNTERSIGNATURES,
    TRAINING_RUN,
    AcceptedDataset,
    AcceptedDatasets,
    model_to_serve,
)
from protocols.attestation.dataset import Commitment, ExclusionProof, verify_exclusion
from protocols.attestation.ledger import entry_bytes, open_logged
from protocols.attestation.model import DatasetReference, Server, model_predicate
from protocols.attestation.placeholder import placeholder_weights
from protocols.attestation.provenance import SUBJECT, training_provenance
from protocols.attestation.rules import DATASET_PREDICATE, MODEL_PREDICATE, SLSA_PROVENANCE, Step
from protocols.attestation.shared import Checking, Settings, Summary, ledger_of, submit
from protocols.attestation.signed_model import SignedModel, sign_model


class CreatorHoldings(ModelCreator):
    """It trains only on datasets proved to exclude each prefix in
    `requires_exclusion` (e.g. a source domain)."""

    requires_exclusion: tuple[str, ...] = ()


class CreatorPhase(enum.Enum):
    COLLECTING = 1  # dataset attestations are coming in
    COMMITTED = 2  # the model statement is out: a later dataset would not be in it


@dataclass
class CreatorState(Checking):
    phase: CreatorPhase = CreatorPhase.COLLECTING
    datasets: dict[str, DatasetReference] = field(default_factory=dict)  # by contributor
    # SHA-256 of each accepted dataset's logged attestation (its ledger leaf), by dataset
    attestations: dict[str, str] = field(default_factory=dict)
    # attestations arrive concurrently: each adds its dataset and rewrites the kept list
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


def check_dataset_attestation(
    shown: Any,
    contributor: str,
    contributor_key: ed25519.Ed25519PublicKey,
    ledger_key: ed25519.Ed25519PublicKey,
    required_exclusions: Iterable[str],
) -> Commitment:
    """What a model creator (and `airlock verify`) checks before training on a
    dataset: the statement is the contributor's, about its own dataset, logged
    by the ledger, and proves every required exclusion. Raises ClaimFailed."""
    claim = f"dataset attestation of {contributor}"
    statement = open_logged(shown, contributor_key, ledger_key, DATASET_PREDICATE, claim)
    commitment = Commitment.from_statement(statement, claim)
    if commitment.dataset != f"train:{contributor}":
        raise ClaimFailed(claim, f"{contributor} attests to another party's dataset")
    proved = set()
    for data in shown.get("exclusions", []):
        proof = ExclusionProof.from_json(data, claim)
        verify_exclusion(commitment, proof)
        proved.add(proof.prefix)
    for prefix in required_exclusions:
        if prefix not in proved:
            raise ClaimFailed(claim, f"no proof that the data excludes {prefix!r}")
    return commitment


def on_dataset_attestation(ctx: PartyContext, envelope: Envelope) -> None:
    state = state_of(ctx, CreatorState)
    state.expect(CreatorPhase.COLLECTING, doing="a dataset attestation")
    contributor = envelope.header.sender
    try:
        commitment = check_dataset_attestation(
            json_or_none(envelope.payload),
            contributor,
            ctx.public_key(contributor),
            ctx.public_key(ledger_of(ctx)),
            holdings_as(ctx, CreatorHoldings).requires_exclusion,
        )
    except ClaimFailed as error:
        state.reject(error)
        return
    with state._lock:
        state.datasets[contributor] = DatasetReference(commitment.dataset, commitment.root.hex())
        leaf = entry_bytes(json.loads(envelope.payload)["statement"])
        state.attestations[commitment.dataset] = hashlib.sha256(leaf).hexdigest()
        accepted = [
            AcceptedDataset(contributor=name, name=d.name, sha256=d.sha256)
            for name, d in sorted(state.datasets.items())
        ]
        ctx.store.put(ACCEPTED_DATASETS, AcceptedDatasets(datasets=tuple(accepted)))


def committed_weights(
    ctx: PartyContext, settings: Settings
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The weights to commit to and how they were trained: the placeholder
    named by the creator's holdings, or the model it trained in an earlier
    stage with that stage's account of the training."""
    training = {"protocol": settings.training_protocol, **settings.training}
    if settings.model == "placeholder":
        return placeholder_weights(holdings_as(ctx, CreatorHoldings).model), training
    tensors = float32_tensors(model_to_serve(ctx, "trained").state_dict())
    run = ctx.store.get(TRAINING_RUN)
    return tensors, {**training, **run.statement_fields()}


def countersignatures(ctx: PartyContext, root: str) -> dict[str, dict[str, Any]]:
    """The countersignatures the contributors gave this creator of the final
    model (the federated stage kept them) that name the weights with `root`,
    by contributor."""
    if not ctx.store.has(COUNTERSIGNATURES):
        return {}
    kept = ctx.store.get(COUNTERSIGNATURES).envelopes
    named = {}
    for name, envelope in sorted(kept.items()):
        try:
            signed = open_countersignature(envelope, name, ctx.public_key(name))
        except ClaimFailed:
            continue
        if (signed.trainer, signed.root) == (ctx.name, root):
            named[name] = envelope
    return named


def provenance(
    ctx: PartyContext,
    state: CreatorState,
    signed: SignedModel,
    datasets: Sequence[DatasetReference],
    countersigned: Mapping[str, dict[str, Any]],
) -> dict[str, Any]:
    """The training run's SLSA provenance, signed: for the published weights file."""
    predicate = training_provenance(
        ctx.name, ctx.store.get(TRAINING_RUN), datasets, state.attestations, countersigned
    )
    weights = hashlib.sha256(signed.files[SUBJECT]).hexdigest()
    return sign_statement(SUBJECT, weights, SLSA_PROVENANCE, predicate, PartySigner.of(ctx))


def commit_model(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    return commit(ctx, params, ())


def commit(
    ctx: PartyContext, params: Mapping[str, Any], unattested: Sequence[DatasetReference]
) -> Summary:
    """Commit to the weights, bound to the accepted datasets (and to
    `unattested` ones, which only a dishonest creator names), log the
    statement and show it to every deployer and end user."""
    state = state_of(ctx, CreatorState)
    state.expect(CreatorPhase.COLLECTING, doing="committing to the model")
    state.phase = CreatorPhase.COMMITTED
    model = holdings_as(ctx, CreatorHoldings).model
    settings = Settings.model_validate(params)
    tensors, training = committed_weights(ctx, settings)
    datasets = [state.datasets[name] for name in sorted(state.datasets)] + list(unattested)
    deployers = ctx.peers(Role.DEPLOYER)
    deploy_to = deployers if settings.deploy_to is None else settings.deploy_to
    strangers = sorted(set(deploy_to) - set(deployers))
    if strangers:
        raise ConfigError(f"params.deploy_to: {strangers} are not deployers of this run")
    servers = [Server.of(name, ctx.public_key(name)) for name in deploy_to]
    root = weights_root(tensors).hex()
    countersigned = countersignatures(ctx, root) if settings.model == "trained" else None
    predicate = model_predicate(model, tensors, datasets, training, servers, countersigned)
    card = {key: predicate[key] for key in ("model", "parameter_count", "datasets", "training")}
    signed = sign_model(tensors, card)
    predicate["signed_model"] = signed.predicate()
    statement = sign_statement(
        f"weights:{ctx.name}", root, MODEL_PREDICATE, predicate, PartySigner.of(ctx)
    )
    label = [Label(f"weights:{ctx.name}", Form.DIGEST)]
    try:
        logged = submit(ctx, statement, label)
        if countersigned is not None:
            submit(ctx, provenance(ctx, state, signed, datasets, countersigned), label)
    except ClaimFailed as error:
        return {"rejected": state.reject(error)}
    for path, data in signed.files.items():  # the signed files, once the statement is logged
        ctx.publish(path, data)
    shown = json.dumps({"statement": statement, "logged": logged}).encode()
    for receiver in ctx.peers(Role.DEPLOYER) + ctx.peers(Role.END_USER):
        ctx.deliver(receiver, Step.MODEL_ATTESTATION, label, shown)
    return {
        "model": model,
        "datasets": [d.name for d in datasets],
        "servers": [server.name for server in servers],
        "rejected_datasets": len(state.rejected),
        **({} if countersigned is None else {"countersigned_by": sorted(countersigned)}),
    }

"""The data contributor: commits to its dataset, logs the signed statement
with the ledger, and shows it (with exclusion proofs) to the model creator.
Once it has countersigned the final model of a training it joined (the
federated protocol), it logs that countersignature too, before the creator
commits."""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from securesystemslib.signer import Signer

from evidence.countersignatures import open_countersignature
from evidence.statements import PartySigner, sign_statement
from parties.errors import ClaimFailed
from parties.labels import Form, Label
from parties.protocol import PartyContext, holdings_as, state_of
from parties.roles import Role
from protocols.artifacts import COUNTERSIGNATURES
from protocols.attestation.dataset import Dataset
from protocols.attestation.rules import DATASET_PREDICATE, Step
from protocols.attestation.shared import Checking, Summary, submit
from protocols.patients import PatientData


class ContributorHoldings(PatientData):
    """Records with the given `fields`, sorted by `sort_key` when committed,
    with its generated notes and canaries (protocols/patients.py: the data
    federated training learns from); `exclude` lists key prefixes (e.g.
    source domains) the contributor will prove absent from its data."""

    fields: tuple[str, ...] = ("source", "text")
    sort_key: str = "source"
    exclude: tuple[str, ...] = ()


class ContributorPhase(enum.Enum):
    UNATTESTED = 1
    ATTESTED = 2  # the statement went to the ledger (logged or refused)


@dataclass
class ContributorState(Checking):
    phase: ContributorPhase = ContributorPhase.UNATTESTED
    countersignature_logged: bool = False


def dataset_of(ctx: PartyContext) -> tuple[Dataset, ContributorHoldings]:
    holdings = holdings_as(ctx, ContributorHoldings)
    records = holdings.dataset(ctx.name)
    dataset = Dataset(f"train:{ctx.name}", records, holdings.fields, holdings.sort_key)
    return dataset, holdings


def attest_dataset(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    dataset, holdings = dataset_of(ctx)
    return attest(ctx, dataset, holdings.exclude, PartySigner.of(ctx))


def attest(
    ctx: PartyContext, dataset: Dataset, exclude: tuple[str, ...], signer: Signer
) -> Summary:
    """Sign and log the dataset's statement, then show it, the ledger's
    answer and a proof for each excluded prefix to every model creator."""
    state = state_of(ctx, ContributorState)
    state.expect(ContributorPhase.UNATTESTED, doing="attesting the dataset")
    state.phase = ContributorPhase.ATTESTED
    label = [Label(f"train:{ctx.name}", Form.DIGEST)]
    statement = sign_statement(
        dataset.name, dataset.root.hex(), DATASET_PREDICATE, dataset.predicate(), signer
    )
    try:
        logged = submit(ctx, statement, label)
    except ClaimFailed as error:
        return {"records": len(dataset.records), "rejected": state.reject(error)}
    exclusions, unprovable = [], []
    for prefix in exclude:
        try:
            exclusions.append(dataset.prove_exclusion(prefix).to_json())
        except ClaimFailed as error:  # the data does contain it: no proof exists
            unprovable.append(state.reject(error))
    shown = json.dumps(
        {"statement": statement, "logged": logged, "exclusions": exclusions}
    ).encode()
    for creator in ctx.peers(Role.MODEL_CREATOR):
        ctx.deliver(creator, Step.DATASET_ATTESTATION, label, shown)
    return {
        "records": len(dataset.records),
        "logged_at": logged["index"],
        "exclusions_proved": [proof["prefix"] for proof in exclusions],
        "exclusions_unprovable": unprovable,
    }


def log_countersignature(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    """Log, once, this contributor's countersignature of the final model it
    was sent (kept by the federated stage), so that whoever verifies the run
    finds it whatever the model creator does with the copy it was given."""
    state = state_of(ctx, ContributorState)
    if not ctx.store.has(COUNTERSIGNATURES) or state.countersignature_logged:
        return {"countersignature_logged": False}
    state.countersignature_logged = True
    envelope = ctx.store.get(COUNTERSIGNATURES).envelopes[ctx.name]
    signed = open_countersignature(envelope, ctx.name, ctx.public_key(ctx.name))
    try:
        logged = submit(ctx, envelope, [Label(signed.subject, Form.DIGEST)])
    except ClaimFailed as error:
        return {"countersignature_logged": False, "rejected": state.reject(error)}
    return {
        "countersignature_logged": True,
        "logged_at": logged["index"],
        "model_root": signed.root,
        "rounds": [r.number for r in signed.rounds],
    }

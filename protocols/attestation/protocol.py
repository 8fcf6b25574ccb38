"""The attestation protocol, assembled."""

from collections.abc import Mapping
from typing import Any

from evidence.claims import OfflineChecks
from parties.protocol import Artifacts, Protocol
from parties.roles import Role
from parties.store import Kept
from protocols.artifacts import ACCEPTED_DATASETS, COMMITTED_MODEL, TRAINED_MODEL, TRAINING_RUN
from protocols.attestation import bom, contributor, creator, ledger_server, serving, verify
from protocols.attestation.adversaries import ADVERSARIES
from protocols.attestation.messages import MESSAGES
from protocols.attestation.rules import NAME, READERS, RULES, Step
from protocols.attestation.shared import Settings, audit_ledger


def artifacts(params: Mapping[str, Any], part: str | None) -> Artifacts:
    """The dataset part leaves the accepted datasets with the creator, the
    commitment part the accepted commitment with deployers and end users; a
    commitment to the trained model needs the model and its training run."""
    made: tuple[tuple[Role, Kept[Any]], ...] = ()
    if part in (None, "datasets"):
        made += ((Role.MODEL_CREATOR, ACCEPTED_DATASETS),)
    if part in (None, "commitment"):
        made += ((Role.END_USER, COMMITTED_MODEL), (Role.DEPLOYER, COMMITTED_MODEL))
    trained = Settings.model_validate(params).model == "trained"
    needed = (
        ((Role.MODEL_CREATOR, TRAINED_MODEL), (Role.MODEL_CREATOR, TRAINING_RUN))
        if trained and part in (None, "commitment")
        else ()
    )
    return Artifacts(needs=needed, makes=made)


PROTOCOL = Protocol(
    name=NAME,
    rules=RULES,
    messages=MESSAGES,
    handlers={
        (Role.LEDGER, Step.SUBMIT): ledger_server.on_submit,
        (Role.LEDGER, Step.HEAD_REQUEST): ledger_server.on_head_request,
        (Role.MODEL_CREATOR, Step.DATASET_ATTESTATION): creator.on_dataset_attestation,
        (Role.DEPLOYER, Step.MODEL_ATTESTATION): serving.on_model_attestation,
        (Role.END_USER, Step.MODEL_ATTESTATION): serving.on_model_attestation,
        (Role.DEPLOYER, Step.INFERENCE_REQUEST): serving.on_inference_request,
    },
    actions={
        (Role.DATA_CONTRIBUTOR, "attest_dataset"): contributor.attest_dataset,
        (Role.DATA_CONTRIBUTOR, "log_countersignature"): contributor.log_countersignature,
        (Role.MODEL_CREATOR, "commit_model"): creator.commit_model,
        (Role.END_USER, "query"): serving.query,
        **{(role, "audit_ledger"): audit_ledger for role in READERS},
    },
    stage=(
        (Role.DATA_CONTRIBUTOR, "attest_dataset"),
        (Role.DATA_CONTRIBUTOR, "log_countersignature"),
        (Role.MODEL_CREATOR, "commit_model"),
        (Role.END_USER, "query"),
        (Role.DATA_CONTRIBUTOR, "audit_ledger"),
        (Role.MODEL_CREATOR, "audit_ledger"),
        (Role.DEPLOYER, "audit_ledger"),
    ),
    parts={
        "datasets": ((Role.DATA_CONTRIBUTOR, "attest_dataset"),),
        # contributors log their countersignatures of a trained model first
        "commitment": (
            (Role.DATA_CONTRIBUTOR, "log_countersignature"),
            (Role.MODEL_CREATOR, "commit_model"),
        ),
        "serving": ((Role.END_USER, "query"),),
        "ledger_audit": tuple((role, "audit_ledger") for role in READERS),
    },
    artifacts=artifacts,
    params=Settings,
    adversaries=ADVERSARIES,
    states={
        Role.DATA_CONTRIBUTOR: contributor.ContributorState,
        Role.MODEL_CREATOR: creator.CreatorState,
        Role.DEPLOYER: serving.DeployerState,
        Role.END_USER: serving.UserState,
        Role.LEDGER: ledger_server.LedgerState,
    },
    holdings={
        Role.DATA_CONTRIBUTOR: contributor.ContributorHoldings,
        Role.MODEL_CREATOR: creator.CreatorHoldings,
    },
    verify=OfflineChecks(claims=verify.verify_claims, bom=bom.build_bom),
)

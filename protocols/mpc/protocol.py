"""The mpc protocol, assembled."""

from collections.abc import Mapping
from typing import Any

from parties.protocol import Artifacts, Protocol
from parties.roles import Role
from parties.store import Kept
from protocols.artifacts import COMMITTED_MODEL, TRAINED_MODEL
from protocols.attestation.serving_log import ServingLogState, on_submit
from protocols.mpc import compute, roles
from protocols.mpc.adversaries import ADVERSARIES
from protocols.mpc.messages import MESSAGES
from protocols.mpc.roles import Settings
from protocols.mpc.rules import COMPUTE_ROLES, CREATOR, DEALER, LEDGER, NAME, RULES, USER, Step


def artifacts(params: Mapping[str, Any], part: str | None) -> Artifacts:
    """The trained model, if served; the accepted commitment, if receipts
    are checked against it."""
    settings = Settings.model_validate(params)
    needs: tuple[tuple[Role, Kept[Any]], ...] = ()
    if settings.model == "trained":
        needs += ((CREATOR, TRAINED_MODEL),)
    if settings.log_receipts:
        needs += ((USER, COMMITTED_MODEL),)
    return Artifacts(needs=needs)


PROTOCOL = Protocol(
    name=NAME,
    rules=RULES,
    messages=MESSAGES,
    handlers={
        **{(role, Step.WEIGHT_SHARES): compute.on_weight_shares for role in COMPUTE_ROLES},
        **{(role, Step.PROMPT_SHARES): compute.on_prompt_shares for role in COMPUTE_ROLES},
        **{(role, Step.MPC_MESSAGE): compute.on_mpc_message for role in COMPUTE_ROLES},
        (DEALER, Step.SEED_REQUEST): compute.on_seed_request,
        (DEALER, Step.TUPLE_REQUEST): compute.on_tuple_request,
        (DEALER, Step.TUPLE_CHECK): compute.on_tuple_check,
        (LEDGER, Step.SUBMIT): on_submit,
    },
    actions={
        (CREATOR, "share_weights"): roles.share_weights,
        (USER, "generate"): roles.generate,
    },
    stage=((CREATOR, "share_weights"), (USER, "generate")),
    adversaries=ADVERSARIES,
    states={
        **{role: compute.ComputeState for role in COMPUTE_ROLES},
        DEALER: compute.DealerState,
        LEDGER: ServingLogState,
    },
    params=Settings,
    artifacts=artifacts,
    holdings={USER: roles.UserHoldings},
)

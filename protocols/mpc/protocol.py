"""The mpc protocol, assembled."""

from collections.abc import Mapping
from typing import Any

from parties.protocol import Artifacts, Protocol
from protocols.artifacts import TRAINED_MODEL
from protocols.mpc import compute, roles
from protocols.mpc.adversaries import ADVERSARIES
from protocols.mpc.roles import Settings
from protocols.mpc.rules import COMPUTE_ROLES, CREATOR, DEALER, NAME, RULES, USER, Step


def artifacts(params: Mapping[str, Any], part: str | None) -> Artifacts:
    trained = Settings.model_validate(params).model == "trained"
    return Artifacts(needs=((CREATOR, TRAINED_MODEL),) if trained else ())


PROTOCOL = Protocol(
    name=NAME,
    rules=RULES,
    handlers={
        **{(role, Step.WEIGHT_SHARES): compute.on_weight_shares for role in COMPUTE_ROLES},
        **{(role, Step.PROMPT_SHARES): compute.on_prompt_shares for role in COMPUTE_ROLES},
        **{(role, Step.MPC_MESSAGE): compute.on_mpc_message for role in COMPUTE_ROLES},
        (DEALER, Step.TUPLE_REQUEST): compute.on_tuple_request,
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
    },
    params=Settings,
    artifacts=artifacts,
    holdings={USER: roles.UserHoldings},
)

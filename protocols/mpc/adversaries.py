"""The misbehaviour the mpc protocol knows, apart from the honest roles.

leak_share  a compute party (the deployer) sends its weight shares to the
            end user, past its own boundary: no rule permits it, and the
            end user's boundary refuses it. An action run after the stage.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from parties.labels import Form, Label
from parties.protocol import Adversary, PartyContext, attempt, sole_peer, state_of
from parties.roles import Role
from protocols.mpc.communicator import pack_tensors
from protocols.mpc.compute import ComputeState
from protocols.mpc.rules import USER, Step


class Name(enum.StrEnum):
    LEAK_SHARE = "leak_share"


def leak_share(ctx: PartyContext, params: Mapping[str, Any]) -> dict[str, Any]:
    user = sole_peer(ctx, USER)
    label = [Label("weights:model_creator", Form.SHARE)]
    first = dict(list(state_of(ctx, ComputeState).weight_shares.items())[:1])
    return attempt(ctx, user, Step.MPC_MESSAGE, label, pack_tensors({}, first))


ADVERSARIES: dict[str, Adversary] = {
    Name.LEAK_SHARE: Adversary(
        Role.DEPLOYER, actions={Name.LEAK_SHARE: leak_share}, after_stage=Name.LEAK_SHARE
    ),
}

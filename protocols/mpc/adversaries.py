"""The misbehaviour the mpc protocol knows, apart from the honest roles.

leak_share    a compute party (the deployer) sends its weight shares to the
              end user, past its own boundary: no rule permits it, and the
              end user's boundary refuses it. An action run after the stage.
steer_tuples  the last compute rank asks the dealer for a B2A pair over the
              words of its first Beaver triple of each prompt, the request
              whose correction once held rank 0's masks (dealer.py). Bound to
              its request, the correction is unrelated to rank 0's tuple;
              the dealer refuses rank 0's check of the tuples it drew by, so
              rank 0 sends no share of that answer.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from typing import Any

import torch

from parties.envelope import Envelope
from parties.labels import Form, Label
from parties.protocol import Adversary, PartyContext, Reply, attempt, sole_peer, state_of
from parties.roles import Role
from protocols.mpc import compute, dealer
from protocols.mpc.communicator import pack_tensors
from protocols.mpc.compute import ComputeState
from protocols.mpc.rules import USER, Step


class Name(enum.StrEnum):
    LEAK_SHARE = "leak_share"
    STEER_TUPLES = "steer_tuples"


def leak_share(ctx: PartyContext, params: Mapping[str, Any]) -> dict[str, Any]:
    user = sole_peer(ctx, USER)
    label = [Label("weights:model_creator", Form.SHARE)]
    first = dict(list(state_of(ctx, ComputeState).weight_shares.items())[:1])
    return attempt(ctx, user, Step.MPC_MESSAGE, label, pack_tensors({}, first))


def _steering(honest: dealer.Request, asked: list[int]) -> dealer.Request:
    """The last rank's requests to the dealer, each prompt's first one asked
    as a B2A pair over its words (well formed: the dealer deals it)."""

    def request(message: dict[str, Any]) -> list[torch.Tensor]:
        if message["kind"] != "additive" or asked:
            return honest(message)
        asked.append(message["id"])
        words = math.prod(message["size0"]) + math.prod(message["size1"])
        forged = {"id": message["id"], "count": message["count"], "kind": "B2A"}
        honest({**forged, "size0": [words], "size1": []})  # what it hoped held rank 0's words
        shape = dealer.derived_shape(message)  # the triple's, so that its own shares line up
        return [torch.zeros(shape, dtype=torch.long)] * message["count"]

    return request


def steer_tuples(ctx: PartyContext, envelope: Envelope) -> Reply:
    state = state_of(ctx, ComputeState)
    with state.lock:
        compute.connect(ctx, state)
    asked: list[int] = []  # one forged request a prompt share
    honest = dealer.PROVIDER.request
    if honest is not None:
        dealer.PROVIDER.request = _steering(honest, asked)
    try:
        return compute.on_prompt_shares(ctx, envelope)
    finally:
        dealer.PROVIDER.request = honest


ADVERSARIES: dict[str, Adversary] = {
    Name.LEAK_SHARE: Adversary(
        Role.DEPLOYER, actions={Name.LEAK_SHARE: leak_share}, after_stage=Name.LEAK_SHARE
    ),
    Name.STEER_TUPLES: Adversary(Role.COMPUTE, handlers={Step.PROMPT_SHARES: steer_tuples}),
}

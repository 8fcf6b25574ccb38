"""A contributor's answer to the update request: the checked request, the
local training step (clipped and noised under DP), the fingerprints that
would show a leak of the raw update, and the update sent in the clear or
masked. The faulty contributors in adversaries.py reuse these pieces."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from models.transformer import Transformer, flat_parameters, train
from parties.envelope import Envelope
from parties.errors import AirlockError
from parties.labels import Form, Label
from parties.payload import pack, unpack
from parties.protocol import PartyContext, Reply
from parties.seed import run_seed
from protocols.federated import dp
from protocols.federated.contributor import (
    ContributorPhase,
    ContributorRound,
    ContributorState,
    contributor,
    own_settings,
)
from protocols.federated.messages import Settings, array_bytes, party_names
from protocols.federated.rules import Step
from protocols.federated.secagg import SCALE, SecAggError, encode


@dataclass(frozen=True)
class UpdateRequest:
    """An update request, checked against the round it is for."""

    me: ContributorState
    current: ContributorRound
    settings: Settings
    survivors: list[str]
    meta: Mapping[str, Any]


def update_request(ctx: PartyContext, envelope: Envelope) -> UpdateRequest:
    me = contributor(ctx)
    s = own_settings(ctx)
    # in plain mode there are no keys to share: the update follows the round start
    phase = ContributorPhase.SHARED if s.secure else ContributorPhase.JOINED
    current = me.at(phase, "the update request")
    meta, _ = unpack(envelope.payload)
    survivors = sorted(party_names(meta["survivors"]))
    if ctx.name not in survivors:
        raise AirlockError("this contributor is not in the round")
    if s.secure and (not set(survivors) <= set(current.peers) or len(survivors) < s.threshold):
        raise SecAggError("the survivors are not a large enough subset of the participants")
    return UpdateRequest(me, current, s, survivors, meta)


def local_update(ctx: PartyContext, request: UpdateRequest) -> np.ndarray:
    """This round's update (float64, real units): under DP, clipped onto the
    fixed-point grid with this contributor's discrete Gaussian noise added."""
    current, s = request.current, request.settings
    torch.set_num_threads(1)  # contributors train side by side on few cores
    model = Transformer.from_bytes(current.base.to_bytes())
    before = flat_parameters(model)
    train(
        model,
        request.me.examples,
        steps=s.local_steps,
        batch=s.batch,
        learning_rate=s.learning_rate,
        seed=(s.seed + run_seed()) * 1000 + current.number,
    )
    update = (flat_parameters(model) - before).numpy().astype(np.float64)
    if not s.private:
        return np.clip(update, -s.max_abs, s.max_abs)
    current.noise_variance = dp.share_variance(s.noise_multiplier, s.clip, s.threshold)
    grid = dp.clip_to_grid(update, s.clip) + dp.discrete_gaussian(
        current.noise_variance, update.size
    )
    # beyond max_abs only under noise, past 100 standard deviations at the defaults
    bound = int(s.max_abs * SCALE)
    return np.clip(grid, -bound, bound) / SCALE


def keep_fingerprints(
    ctx: PartyContext, request: UpdateRequest, update: np.ndarray, encoded: np.ndarray
) -> np.ndarray:
    """Report 32-byte windows of the raw update, as floats and as fixed
    point, around its largest value (what a leak of the unmasked update
    would contain); return the update as a plain one carries it."""
    single = update.astype(np.float32)
    start = max(0, int(np.argmax(np.abs(single))) - 3)
    windows = [
        single[start : start + 8].tobytes().hex(),
        encoded[start : start + 8].tobytes().hex(),
    ]
    request.me.fingerprints.setdefault(f"update:{ctx.name}", []).extend(windows)
    return single


def plain_update(single: np.ndarray) -> bytes:
    return pack({}, array_bytes("update", single))


def send_update(
    ctx: PartyContext, request: UpdateRequest, update: np.ndarray, encoded: np.ndarray
) -> Reply:
    """`update` (fixed point: `encoded`) in the clear in plain mode, masked otherwise."""
    me, current, s, survivors = request.me, request.current, request.settings, request.survivors
    single = keep_fingerprints(ctx, request, update, encoded)
    me.updates_sent += 1
    if not s.secure:
        me.phase = ContributorPhase.UPDATE_SENT
        labels = (Label(f"update:{ctx.name}", Form.PLAINTEXT),)
        return Reply(Step.PLAIN_UPDATE, labels, plain_update(single))
    secrets = current.secure()
    for sender in survivors:
        if sender != ctx.name:
            current.shares[sender] = secrets.open_share(
                current.peers[sender], request.meta["ciphertexts"][sender]
            )
    current.masked_with, current.sent = frozenset(survivors), encoded
    masked = secrets.mask(encoded, [current.peers[v] for v in survivors])
    me.phase = ContributorPhase.UPDATE_SENT
    noise = {"noise_variance": current.noise_variance, "clip": s.clip} if s.private else {}
    return Reply(
        Step.MASKED_UPDATE,
        (Label(f"update:{ctx.name}", Form.MASKED),),
        pack(noise, array_bytes("masked", masked)),
    )


def on_update_request(ctx: PartyContext, envelope: Envelope) -> Reply:
    request = update_request(ctx, envelope)
    update = local_update(ctx, request)
    return send_update(ctx, request, update, encode(update, request.settings.max_abs))

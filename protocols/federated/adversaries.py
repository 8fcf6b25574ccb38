"""Aggregators that attack the contributors. Each plays one round of its
own (after the honest stage in a scenario, or alone in a test) and reports
what it got; the contributors' checks in roles.py are what stop it.

- `split_view` lies about dropouts (the attack on Bonawitz et al. without
  the consistency check): it tells some survivors that u dropped, so that
  they reveal shares of u's mask key, and the others that u survived, so
  that they reveal shares of u's self-mask seed; with t of each it strips
  u's masks and holds u's own update.
- `plain_mode_request` and `weaker_dp_request` state settings other than
  the scenario's: plaintext updates, or a quarter of the noise and four
  times the clip.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric import x25519

from parties.errors import AirlockError
from parties.payload import pack
from parties.protocol import PartyContext
from protocols.federated.roles import (
    Aborted,
    Settings,
    Summary,
    aggregate,
    aggregator,
    check_consistency,
    collect_updates,
    control,
    open_round,
    session,
    settings,
    share_keys,
)
from protocols.federated.secagg import (
    AdvertisedKeys,
    combine_shares,
    pair_seed,
    prg,
    sign_of,
)


def split_view_round(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    s = settings(params)
    state = aggregator(ctx)
    number = len(state.history) + 1
    stated = {**params, "round": number}
    try:
        open_round(ctx, s, number)  # without the honest start_round's own threshold check
        share_keys(ctx, stated)
        collect_updates(ctx, stated)
    except Aborted as error:
        state.round = None
        return {"attack": "split_view", "aborted": str(error), "recovered_sha256": None}
    current = state.current()
    survivors = sorted(current.updates)
    target, others = survivors[-1], survivors[:-1]
    told_dropped = others[: (len(others) + 1) // 2]
    views = {n: [v for v in survivors if v != target] for n in told_dropped}
    views |= {n: survivors for n in survivors if n not in views}
    signatures: dict[str, str] = {}
    refused_to_sign: dict[str, str] = {}
    for name, view in views.items():
        try:
            request = pack({"survivors": view})
            step = "consistency_request"
            reply = ctx.deliver(name, step, [control(ctx)], request, session(number))
            assert reply is not None
            signatures[name] = json.loads(reply.payload)["signature"]
        except AirlockError as error:
            refused_to_sign[name] = str(error)
    b_shares: dict[int, bytes] = {}
    s_shares: dict[int, bytes] = {}
    revealed: dict[str, list[str]] = {}
    refused_to_unmask: dict[str, str] = {}
    for name, view in views.items():
        dropped = sorted(set(current.sharing) - set(view))
        # every signature it holds, whichever set it covers
        meta = {"survivors": view, "dropped": dropped, "signatures": signatures}
        try:
            reply = ctx.deliver(name, "unmask_request", [control(ctx)], pack(meta), session(number))
            assert reply is not None
            answer = json.loads(reply.payload)
        except AirlockError as error:
            refused_to_unmask[name] = str(error)
            continue
        for kind, into in (("b", b_shares), ("s", s_shares)):
            if target in answer[kind]:
                index, share = answer[kind][target]
                into[int(index)] = bytes.fromhex(share)
                revealed.setdefault(name, []).append(kind)
    recovered = None
    if len(b_shares) >= s.threshold and len(s_shares) >= s.threshold:
        peers = {v: k for v, k in current.keys.items() if v != target and k is not None}
        own = _strip_masks(
            current.updates[target],
            current.context.encode(),
            target,
            combine_shares(b_shares, s.threshold),
            combine_shares(s_shares, s.threshold),
            [peers[v] for v in current.sharing if v != target],
        )
        recovered = hashlib.sha256(own.tobytes()).hexdigest()
    state.round = None
    return {
        "attack": "split_view",
        "target": target,
        "told_dropped": told_dropped,
        "refused_to_sign": refused_to_sign,
        "refused_to_unmask": refused_to_unmask,
        "revealed": revealed,
        "recovered_sha256": recovered,
    }


def _strip_masks(
    masked: np.ndarray,
    context: bytes,
    target: str,
    self_seed: bytes,
    mask_key: bytes,
    peers: list[AdvertisedKeys],
) -> np.ndarray:
    """u's fixed-point update from its masked one, its self-mask seed and its mask key."""
    key = x25519.X25519PrivateKey.from_private_bytes(mask_key)
    own = masked - prg(self_seed, masked.size)
    for peer in peers:
        pairwise = prg(pair_seed(key, peer.s_public, context), masked.size)
        own = own - pairwise if sign_of(target, peer.party) > 0 else own + pairwise
    return own


def _downgraded_round(
    ctx: PartyContext, params: Mapping[str, Any], change: Callable[[Settings], dict[str, Any]]
) -> Summary:
    """A whole round under settings other than the scenario's."""
    s = settings(params)
    state = aggregator(ctx)
    number = len(state.history) + 1
    stated = s.model_copy(update=change(s))
    outcome = "completed"
    try:
        open_round(ctx, stated, number)
        for action in (share_keys, collect_updates, check_consistency, aggregate):
            action(ctx, {**stated.model_dump(), "round": number})
    except Aborted as error:
        outcome = str(error)
    current = state.round
    state.round = None
    return {
        "attack": "downgrade",
        "stated": change(s),
        "outcome": outcome,
        "dropped": {} if current is None else current.dropped,
    }


def plain_mode_round(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    return _downgraded_round(ctx, params, lambda s: {"mode": "plain"})


def weaker_dp_round(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    return _downgraded_round(
        ctx, params, lambda s: {"noise_multiplier": s.noise_multiplier / 4, "clip": s.clip * 4}
    )


ACTIONS = {
    "split_view_round": split_view_round,
    "plain_mode_round": plain_mode_round,
    "weaker_dp_round": weaker_dp_round,
}
# adversary name (in a scenario) -> the aggregator action it runs
PLAYED_BY = {
    "split_view": "split_view_round",
    "plain_mode_request": "plain_mode_round",
    "weaker_dp_request": "weaker_dp_round",
}

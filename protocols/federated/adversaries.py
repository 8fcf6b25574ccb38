"""The misbehaviours the federated protocol knows, each an override of the
honest code for the adversarial party alone.

Aggregators that attack the contributors each play one round of their own
(after the honest stage in a scenario, or alone in a test) and report what
they got; the contributors' checks in contributor.py are what stop them.

- `split_view` lies about dropouts (the attack on Bonawitz et al. without
  the consistency check): it tells some survivors that u dropped, so that
  they reveal shares of u's mask key, and the others that u survived, so
  that they reveal shares of u's self-mask seed; with t of each it strips
  u's masks and holds u's own update.
- `plain_mode_request` and `weaker_dp_request` state settings other than
  the scenario's: plaintext updates, or a quarter of the noise and four
  times the clip.
- `rerun_round` runs round 1 again from the model it started from, under
  its number and then under the next: each contributor refuses a round it
  joined, one past its own number of rounds, and a model it trained on.

Contributors that answer the update request badly; the aggregator's
boundary, its checks and the audit are what catch them.

- `unmasked_update` sends its plain update where a masked one is due,
  labelled honestly (the boundary refuses it); `mislabeled_update` labels
  it masked (admitted; the audit's content scan finds it).
- `nan_update`, `misshapen_update` and `out_of_range_update` send an update
  with NaNs, one value short, or every value far beyond `max_abs`.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric import x25519

from parties.envelope import Envelope
from parties.errors import AirlockError
from parties.labels import Form, Label
from parties.payload import pack
from parties.protocol import Action, Adversary, Handler, PartyContext, Reply
from protocols.federated.aggregator import (
    AggregatorPhase,
    aggregate,
    aggregator,
    check_consistency,
    collect_updates,
    initial_model,
    open_round,
    share_keys,
)
from protocols.federated.messages import (
    Aborted,
    Settings,
    Summary,
    control,
    session,
    settings,
)
from protocols.federated.rules import AGGREGATOR, CONTRIBUTOR, Step
from protocols.federated.secagg import (
    AdvertisedKeys,
    combine_shares,
    encode,
    fixed_point,
    pair_seed,
    prg,
    sign_of,
)
from protocols.federated.update import (
    keep_fingerprints,
    local_update,
    plain_update,
    send_update,
    update_request,
)


class AdversaryName(enum.StrEnum):
    SPLIT_VIEW = "split_view"
    PLAIN_MODE_REQUEST = "plain_mode_request"
    WEAKER_DP_REQUEST = "weaker_dp_request"
    RERUN_ROUND = "rerun_round"
    UNMASKED_UPDATE = "unmasked_update"
    MISLABELED_UPDATE = "mislabeled_update"
    NAN_UPDATE = "nan_update"
    MISSHAPEN_UPDATE = "misshapen_update"
    OUT_OF_RANGE_UPDATE = "out_of_range_update"


# -- aggregators -------------------------------------------------------------------------


def _ask(ctx: PartyContext, name: str, step: Step, meta: Mapping[str, Any], number: int) -> Any:
    """One contributor's answer to `step`, parsed."""
    reply = ctx.deliver(name, step, [control(ctx)], pack(meta), session(number))
    if reply is None:
        raise AirlockError(f"{name} gave no answer to {step}")
    return json.loads(reply.payload)


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
        state.end_round()
        return {"attack": "split_view", "aborted": str(error), "recovered_sha256": None}
    current = state.at(AggregatorPhase.UPDATES_COLLECTED, "the split view")
    survivors = sorted(current.updates)
    target, others = survivors[-1], survivors[:-1]
    told_dropped = others[: (len(others) + 1) // 2]
    views = {n: [v for v in survivors if v != target] for n in told_dropped}
    views |= {n: survivors for n in survivors if n not in views}
    signatures: dict[str, str] = {}
    refused_to_sign: dict[str, str] = {}
    for name, view in views.items():
        try:
            answer = _ask(ctx, name, Step.CONSISTENCY_REQUEST, {"survivors": view}, number)
            signatures[name] = answer["signature"]
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
            answer = _ask(ctx, name, Step.UNMASK_REQUEST, meta, number)
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
    state.end_round()
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


def _whole_round(ctx: PartyContext, stated: Settings, number: int) -> Summary:
    """Round `number`, as `stated`, from start to aggregate: how it ended."""
    state = aggregator(ctx)
    outcome = "completed"
    try:
        open_round(ctx, stated, number)
        for action in (share_keys, collect_updates, check_consistency, aggregate):
            action(ctx, {**stated.model_dump(), "round": number})
    except Aborted as error:
        outcome = str(error)
    current = state.round
    state.end_round()
    return {"outcome": outcome, "dropped": {} if current is None else current.dropped}


def _downgraded_round(
    ctx: PartyContext, params: Mapping[str, Any], change: Callable[[Settings], dict[str, Any]]
) -> Summary:
    """A whole round under settings other than the scenario's."""
    s = settings(params)
    number = len(aggregator(ctx).history) + 1
    played = _whole_round(ctx, s.model_copy(update=change(s)), number)
    return {"attack": "downgrade", "stated": change(s), **played}


def rerun_round(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    """Round 1 again, from the model round 1 started from: under its own
    number, then under the next one. Each contributor would re-send an
    update from that model under fresh masks; over subsets of survivors the
    differences of the sums give one contributor's update."""
    s = settings(params)
    state = aggregator(ctx)
    training = state.trained("rerunning a round")
    trained, training.model = training.model, initial_model(ctx)
    try:
        numbers = (1, len(state.history) + 1)
        rounds = {str(number): _whole_round(ctx, s, number) for number in numbers}
    finally:
        training.model = trained
    return {"attack": "rerun", "rounds": rounds}


def plain_mode_round(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    return _downgraded_round(ctx, params, lambda s: {"mode": "plain"})


def weaker_dp_round(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    return _downgraded_round(
        ctx, params, lambda s: {"noise_multiplier": s.noise_multiplier / 4, "clip": s.clip * 4}
    )


def _plays_round(name: str, action: Action) -> Adversary:
    """An aggregator that runs `action` (named `name`) once after the stage."""
    return Adversary(AGGREGATOR, actions={name: action}, after_stage=name)


# -- contributors ------------------------------------------------------------------------


def _faulty(change: Callable[[np.ndarray, float], np.ndarray]) -> Handler:
    """Send `change(update, max_abs)`, encoded as it is, with no range check."""

    def answer(ctx: PartyContext, envelope: Envelope) -> Reply:
        request = update_request(ctx, envelope)
        update = change(local_update(ctx, request), request.settings.max_abs)
        return send_update(ctx, request, update, fixed_point(update))

    return answer


def _unmasked(form: Form) -> Handler:
    """Send the plain update where a masked one is due, labelled `form`; in
    plain mode, where a plain update is due, act honestly."""

    def answer(ctx: PartyContext, envelope: Envelope) -> Reply:
        request = update_request(ctx, envelope)
        update = local_update(ctx, request)
        encoded = encode(update, request.settings.max_abs)
        if not request.settings.secure:
            return send_update(ctx, request, update, encoded)
        single = keep_fingerprints(ctx, request, update, encoded)
        labels = (Label(f"update:{ctx.name}", form),)
        return Reply(Step.MASKED_UPDATE, labels, plain_update(single))

    return answer


def _answers_update(handler: Handler) -> Adversary:
    return Adversary(CONTRIBUTOR, handlers={Step.UPDATE_REQUEST: handler})


ADVERSARIES: dict[str, Adversary] = {
    AdversaryName.SPLIT_VIEW: _plays_round("split_view_round", split_view_round),
    AdversaryName.PLAIN_MODE_REQUEST: _plays_round("plain_mode_round", plain_mode_round),
    AdversaryName.WEAKER_DP_REQUEST: _plays_round("weaker_dp_round", weaker_dp_round),
    AdversaryName.RERUN_ROUND: _plays_round("rerun_round", rerun_round),
    AdversaryName.UNMASKED_UPDATE: _answers_update(_unmasked(Form.PLAINTEXT)),
    AdversaryName.MISLABELED_UPDATE: _answers_update(_unmasked(Form.MASKED)),
    AdversaryName.NAN_UPDATE: _answers_update(
        _faulty(lambda update, _: np.where(np.arange(update.size) % 7 == 0, np.nan, update))
    ),
    AdversaryName.MISSHAPEN_UPDATE: _answers_update(_faulty(lambda update, _: update[:-1])),
    AdversaryName.OUT_OF_RANGE_UPDATE: _answers_update(
        _faulty(lambda update, bound: np.full_like(update, 4 * bound))
    ),
}

"""The model creator as aggregator.

It loads the model to fine-tune (`initial_model`: the shipped checkpoint),
then runs FedAvg rounds. A round is five actions, each a request to every
contributor still in the round, answered on the same call:

    start_round        round_start -> round_keys                  (U1: advertised keys)
    share_keys         key_directory -> encrypted_shares          (U2: shared their seeds)
    collect_updates    update_request -> masked_update            (U3: sent a valid update)
                                      or plain_update
    check_consistency  consistency_request -> consistency_signature  (U4: signed U3)
    aggregate          unmask_request -> unmask_shares            (U5: helped unmask)

In `plain` mode the key and consistency steps are skipped and updates
arrive in the clear. A contributor that fails, times out or sends a bad
update drops out of the round; the round goes on while at least
`threshold` remain, and aborts the run with a message otherwise. After the
last round the model goes back to the contributors, and each answers with
its countersignature of it (evidence/countersignatures.py), which the
creator keeps for its model statement.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch

from evidence.countersignatures import open_countersignature
from evidence.statements import json_or_none, rfc3339_now
from evidence.weights import float32_weights_root
from models.checkpoint import served_model
from models.corpus import public_corpus
from models.transformer import Transformer, flat_parameters, set_flat_parameters
from parties.envelope import Envelope
from parties.errors import AirlockError, ClaimFailed, OutOfStep
from parties.labels import Form, Label
from parties.payload import pack
from parties.protocol import PartyContext, RoleState, state_of
from protocols.artifacts import (
    ACCEPTED_DATASETS,
    COUNTERSIGNATURES,
    TRAINED_MODEL,
    TRAINING_RUN,
    Countersignatures,
    TrainingRun,
)
from protocols.federated import dp
from protocols.federated.leakage import per_char_bits
from protocols.federated.messages import (
    Aborted,
    Settings,
    Summary,
    ask_all,
    check_contributors,
    control,
    read_update,
    session,
    settings,
)
from protocols.federated.rules import CONTRIBUTOR, NAME, Step
from protocols.federated.secagg import (
    AdvertisedKeys,
    SecAggError,
    combine_shares,
    consistent_signers,
    decode_sum,
    unmask,
)


class AggregatorPhase(enum.Enum):
    UNLOADED = enum.auto()  # before load_model
    BETWEEN_ROUNDS = enum.auto()
    KEYS_ADVERTISED = enum.auto()  # U1 known
    KEYS_SHARED = enum.auto()  # U2 known
    UPDATES_COLLECTED = enum.auto()  # U3 known
    SIGNED = enum.auto()  # U4 known (plain mode skips the signing)


@dataclass
class AggregatorRound:
    """The aggregator's view of one round: who is still in it after each step."""

    number: int
    context: str
    started: float
    keys: dict[str, AdvertisedKeys | None] = field(default_factory=dict)  # U1 (None: plain)
    ciphertexts: dict[str, dict[str, str]] = field(default_factory=dict)  # sender -> peer -> hex
    sharing: list[str] = field(default_factory=list)  # U2
    updates: dict[str, np.ndarray] = field(default_factory=dict)  # U3
    noise_variances: dict[str, int] = field(default_factory=dict)  # what U3 says it added
    signatures: dict[str, str] = field(default_factory=dict)  # U4: valid signatures over U3
    dropped: dict[str, str] = field(default_factory=dict)  # who left, and why
    rejected: dict[str, str] = field(default_factory=dict)  # whose update was refused, and why

    def need(self, alive: Iterable[str], what: str, s: Settings) -> None:
        count = len(list(alive))
        needed = s.threshold if s.secure else 1
        if count < needed:
            raise Aborted(
                f"round {self.number} aborted {what}: {count} contributor(s) remain, "
                f"{needed} needed (threshold {s.threshold}); dropped: "
                + "; ".join(f"{n}: {why}" for n, why in sorted(self.dropped.items()))
            )


@dataclass
class Training:
    """The shared model and its privacy budget, from load_model on; what it
    started from and when (the training's provenance)."""

    model: Transformer
    accountant: dp.Accountant
    base_sha256: str  # SHA-256 of the weights file it started from
    started: str  # RFC 3339


@dataclass
class AggregatorState(RoleState):
    phase: AggregatorPhase = AggregatorPhase.UNLOADED
    training: Training | None = None
    history: list[Summary] = field(default_factory=list)
    epsilon: float = 0.0
    round: AggregatorRound | None = None  # in a round's phases

    def trained(self, doing: str) -> Training:
        if self.training is None:
            raise OutOfStep(f"{doing} needs the model loaded first")
        return self.training

    def at(self, phase: AggregatorPhase, doing: str) -> AggregatorRound:
        """The round in progress, which must be at `phase`."""
        self.expect(phase, doing=doing)
        return cast(AggregatorRound, self.round)  # every round phase has one

    def end_round(self) -> None:
        self.round = None
        self.phase = AggregatorPhase.BETWEEN_ROUNDS


def aggregator(ctx: PartyContext) -> AggregatorState:
    return state_of(ctx, AggregatorState)


def utility(model: Transformer) -> float:
    """Bits per character on held-out public text: lower is better."""
    bits, characters = per_char_bits(model, public_corpus(200, seed="validation").splitlines())
    return float(bits.sum() / characters.sum())


def initial_model(ctx: PartyContext) -> Transformer:
    """The model the rounds fine-tune: the shipped checkpoint (the one place
    the aggregator loads a model)."""
    return served_model()


def load_model(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    s = settings(params)
    state = aggregator(ctx)
    state.expect(AggregatorPhase.UNLOADED, doing="loading the model")
    model = initial_model(ctx)
    base = hashlib.sha256(model.to_bytes()).hexdigest()
    state.training = Training(model, dp.Accountant(s.delta), base, rfc3339_now())
    state.phase = AggregatorPhase.BETWEEN_ROUNDS
    return {
        "parameters": int(flat_parameters(model).numel()),
        "utility_bits_per_char": round(utility(model), 4),
    }


def roster(ctx: PartyContext, s: Settings) -> list[str]:
    """The contributors the rounds invite: all of the run's, or (`contributors
    = "attested"`) those whose dataset attestation this creator accepted in
    an earlier stage (its store's accepted datasets)."""
    everyone = ctx.peers(CONTRIBUTOR)
    if s.contributors == "all":
        return everyone
    accepted = ctx.store.get(ACCEPTED_DATASETS).contributors
    return [name for name in everyone if name in accepted]


def start_round(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    s = settings(params)
    check_contributors(s, len(roster(ctx, s)))
    return open_round(ctx, s, int(params.get("round", len(aggregator(ctx).history) + 1)))


def open_round(ctx: PartyContext, s: Settings, number: int) -> Summary:
    """Send the global model and the round's settings, as `s` states them."""
    state = aggregator(ctx)
    state.expect(AggregatorPhase.BETWEEN_ROUNDS, doing="starting a round")
    model = state.trained("starting a round").model
    contributors = roster(ctx, s)
    context = f"{ctx.name}/{number}/{os.urandom(8).hex()}"
    current = AggregatorRound(number, context, time.monotonic())
    state.round, state.phase = current, AggregatorPhase.KEYS_ADVERTISED
    meta = {"round": number, "context": current.context, "settings": s.model_dump()}
    body = model.to_bytes()
    labels = [control(ctx), Label(f"weights:{ctx.name}", Form.PLAINTEXT)]
    replies, failed = ask_all(
        ctx, contributors, Step.ROUND_START, labels, lambda _: pack(meta, body), session(number)
    )
    current.dropped.update(failed)
    for name, reply in replies.items():
        if not s.secure:
            current.keys[name] = None
            continue
        try:
            current.keys[name] = AdvertisedKeys.from_json(
                json.loads(reply.payload), current.context.encode(), ctx.public_key(name), name
            )
        except (SecAggError, ValueError) as error:
            current.dropped[name] = str(error)
    current.need(current.keys, "after key advertisement", s)
    return {"round": number, "contributors": len(contributors), "advertised": len(current.keys)}


def share_keys(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    s = settings(params)
    state = aggregator(ctx)
    current = state.at(AggregatorPhase.KEYS_ADVERTISED, "sharing keys")
    state.phase = AggregatorPhase.KEYS_SHARED
    if not s.secure:
        current.sharing = list(current.keys)
        return {"round": current.number, "skipped": "plain mode has no keys"}
    keys = {n: k for n, k in current.keys.items() if k is not None}
    meta = {"threshold": s.threshold, "participants": {n: k.to_json() for n, k in keys.items()}}
    labels = [control(ctx), *(Label(f"keys:{n}", Form.PUBLIC) for n in sorted(keys))]
    replies, failed = ask_all(
        ctx, keys, Step.KEY_DIRECTORY, labels, lambda _: pack(meta), session(current.number)
    )
    current.dropped.update(failed)
    for name, reply in replies.items():
        try:
            shares = json.loads(reply.payload)
            if not isinstance(shares, dict) or set(shares) != set(keys) - {name}:
                raise ValueError("shares not addressed to exactly the other participants")
            current.ciphertexts[name] = {str(k): str(v) for k, v in shares.items()}
        except ValueError as error:
            current.dropped[name] = f"bad encrypted shares: {error}"
    current.sharing = sorted(current.ciphertexts)
    current.need(current.sharing, "after key sharing", s)
    return {"round": current.number, "shared": len(current.sharing)}


def collect_updates(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    s = settings(params)
    state = aggregator(ctx)
    current = state.at(AggregatorPhase.KEYS_SHARED, "collecting updates")
    state.phase = AggregatorPhase.UPDATES_COLLECTED
    sharing = current.sharing

    def payload_for(name: str) -> bytes:
        addressed = current.ciphertexts if s.secure else {}
        ciphertexts = {v: addressed[v][name] for v in addressed if v != name}
        return pack({"survivors": sharing, "ciphertexts": ciphertexts})

    labels = [control(ctx), *(Label(f"mask_seeds:{v}", Form.CIPHERTEXT) for v in sharing)]
    replies, failed = ask_all(
        ctx, sharing, Step.UPDATE_REQUEST, labels, payload_for, session(current.number)
    )
    current.dropped.update(failed)
    size = int(flat_parameters(state.trained("collecting updates").model).numel())
    for name, reply in replies.items():
        try:
            current.updates[name], current.noise_variances[name] = read_update(reply, s, size)
        except AirlockError as error:
            current.rejected[name] = str(error)
            current.dropped[name] = f"update rejected: {error}"
            _tell_rejected(ctx, name, str(error), current.number)
    current.need(current.updates, "after collecting updates", s)
    return {"round": current.number, "updates": len(current.updates), "rejected": current.rejected}


def _tell_rejected(ctx: PartyContext, name: str, reason: str, number: int) -> None:
    try:
        ctx.deliver(
            name, Step.UPDATE_REJECTED, [control(ctx)], pack({"reason": reason}), session(number)
        )
    except AirlockError:
        pass  # best effort: the contributor may be gone; the aggregator's log has the reason


def check_consistency(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    """Bonawitz et al. round 3: each survivor signs the survivor set U3; the
    valid signatures (U4) go with the unmasking request, and each
    contributor reveals shares only if at least t of them cover its own U3."""
    s = settings(params)
    state = aggregator(ctx)
    current = state.at(AggregatorPhase.UPDATES_COLLECTED, "the consistency check")
    state.phase = AggregatorPhase.SIGNED
    if not s.secure:
        return {"round": current.number, "skipped": "plain mode unmasks nothing"}
    survivors = sorted(current.updates)
    replies, failed = ask_all(
        ctx,
        survivors,
        Step.CONSISTENCY_REQUEST,
        [control(ctx)],
        lambda _: pack({"survivors": survivors}),
        session(current.number),
    )
    current.dropped.update(failed)
    signatures = {}
    for name, reply in replies.items():
        try:
            signatures[name] = str(json.loads(reply.payload)["signature"])
        except (ValueError, KeyError, TypeError):
            current.dropped[name] = "no consistency signature"
    valid = consistent_signers(signatures, survivors, current.context.encode(), ctx.public_key)
    for name in sorted(set(signatures) - valid):
        current.dropped[name] = "its signature over the survivors does not verify"
    current.signatures = {n: signatures[n] for n in sorted(valid)}
    current.need(valid, "after the consistency check", s)
    return {"round": current.number, "signed": len(valid)}


def aggregate(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    s = settings(params)
    state = aggregator(ctx)
    current = state.at(AggregatorPhase.SIGNED, "aggregating")
    training = state.trained("aggregating")
    model = training.model
    updates = current.updates
    discarded = None
    try:
        if s.secure:
            total = _unmask(ctx, s, current)
        else:
            total = np.sum([u.astype(np.float64) for u in updates.values()], axis=0)
        mean = torch.tensor(total / len(updates), dtype=torch.float32)
        set_flat_parameters(model, flat_parameters(model) + s.server_learning_rate * mean)
    except SecAggError as error:  # the sum betrays a bad input, not whose: drop the round
        discarded = f"{error}; the model is left unchanged"
    seconds = time.monotonic() - current.started  # the protocol's time, not evaluation's
    multiplier = epsilon = None
    if s.private:
        multiplier = dp.round_multiplier(current.noise_variances, s.clip)
        epsilon = state.epsilon = training.accountant.add_round(multiplier)
    record = {
        "round": current.number,
        "mode": s.mode,
        "survivors": sorted(updates),
        "dropped": dict(sorted(current.dropped.items())),
        "rejected": dict(current.rejected),
        "discarded": discarded,
        "noise_multiplier": None if multiplier is None else round(multiplier, 4),
        "epsilon": None if epsilon is None else round(epsilon, 3),
        "delta": s.delta if epsilon is not None else None,
        "seconds": round(seconds, 3),
        "utility_bits_per_char": round(utility(model), 4),
    }
    state.history.append(record)
    state.end_round()
    return record


def _unmask(ctx: PartyContext, s: Settings, current: AggregatorRound) -> np.ndarray:
    keys = {n: k for n, k in current.keys.items() if k is not None}
    survivors = sorted(current.updates)
    dropped = sorted(set(current.sharing) - set(survivors))
    meta = {"survivors": survivors, "dropped": dropped, "signatures": current.signatures}
    replies, failed = ask_all(
        ctx,
        current.signatures,
        Step.UNMASK_REQUEST,
        [control(ctx)],
        lambda _: pack(meta),
        session(current.number),
    )
    b_shares: dict[str, dict[int, bytes]] = {v: {} for v in survivors}
    s_shares: dict[str, dict[int, bytes]] = {v: {} for v in dropped}
    helpers = []
    for name, reply in replies.items():
        try:
            answer = json.loads(reply.payload)
            for wanted, into in (("b", b_shares), ("s", s_shares)):
                given = answer[wanted]
                if set(given) != set(into):
                    raise ValueError(f"{wanted} shares for the wrong parties")
                for v, (index, share) in given.items():
                    into[v][int(index)] = bytes.fromhex(share)
            helpers.append(name)
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            failed[name] = f"bad unmasking shares: {error}"
    if len(helpers) < s.threshold:
        current.dropped.update(failed)
        current.need(helpers, "while unmasking", s)
    masked_sum = np.zeros_like(next(iter(current.updates.values())))
    for masked in current.updates.values():
        masked_sum += masked
    try:
        total = unmask(
            masked_sum,
            current.context.encode(),
            {v: keys[v] for v in survivors},
            {v: keys[v] for v in dropped},
            {v: combine_shares(b_shares[v], s.threshold) for v in survivors},
            {v: combine_shares(s_shares[v], s.threshold) for v in dropped},
        )
    except SecAggError as error:
        raise Aborted(f"round {current.number} aborted while unmasking: {error}") from None
    return decode_sum(total, len(survivors), s.max_abs).astype(np.float64)


def publish_model(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    """The trained model to the contributors (who countersign it and measure
    what it leaks), and into this creator's store with how it was trained
    and their countersignatures, for the stages that commit to it and serve
    it."""
    s = settings(params)
    state = aggregator(ctx)
    training = state.trained("publishing the model")
    model = training.model
    labels = [control(ctx), Label(f"weights:{ctx.name}", Form.PLAINTEXT)]
    body = model.to_bytes()
    survivors = state.history[-1]["survivors"] if state.history else []
    ctx.store.put(TRAINED_MODEL, body)
    run = TrainingRun(
        protocol=NAME,
        mode=s.mode,
        rounds=len(state.history),
        survivors=tuple(survivors),
        epsilon=round(state.epsilon, 3) if s.private else None,
        delta=s.delta if s.private else None,
        settings=s.model_dump(),
        base_model_sha256=training.base_sha256,
        started=training.started,
        finished=rfc3339_now(),
    )
    ctx.store.put(TRAINING_RUN, run)
    replies, failed = ask_all(
        ctx,
        roster(ctx, s),
        Step.FINAL_MODEL,
        labels,
        lambda _: pack({}, body),
        "final",
        answered=False,  # a contributor that joined no round countersigns nothing
    )
    root = float32_weights_root(Transformer.from_bytes(body).state_dict()).hex()
    countersigned, refused = countersignatures(ctx, replies, root)
    ctx.store.put(COUNTERSIGNATURES, Countersignatures(envelopes=countersigned))
    return {
        "mode": s.mode,
        "rounds": state.history,
        "epsilon": round(state.epsilon, 3) if s.private else None,
        "delta": s.delta if s.private else None,
        "utility_bits_per_char": round(utility(model), 4),
        "not_delivered": failed,
        "model_root": root,
        "countersigned_by": sorted(countersigned),
        "countersignatures_refused": refused,
    }


def countersignatures(
    ctx: PartyContext, replies: Mapping[str, Envelope], root: str
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The contributors' countersignatures of the final model that hold
    (signed by the contributor, of this creator's model with this `root`, in
    this run), and why each other one was refused."""
    kept, refused = {}, {}
    for name, reply in replies.items():
        envelope = json_or_none(reply.payload)
        try:
            signed = open_countersignature(envelope, name, ctx.public_key(name))
            if (signed.trainer, signed.root, signed.run_id) != (
                ctx.name,
                root,
                reply.header.run_id,
            ):
                raise ClaimFailed("model countersignature", "not of the final model of this run")
        except ClaimFailed as error:
            refused[name] = str(error)
            continue
        kept[name] = envelope
    return kept, refused

"""What each role does in the federated protocol.

The model creator (aggregator) pretrains the shared model on the public
corpus, then runs FedAvg rounds. A round is five aggregator actions, each a
request to every contributor still in the round, answered on the same call:

    start_round        round_start -> round_keys                  (U1: advertised keys)
    share_keys         key_directory -> encrypted_shares          (U2: shared their seeds)
    collect_updates    update_request -> masked_update            (U3: sent a valid update)
                                      or plain_update
    check_consistency  consistency_request -> consistency_signature  (U4: signed U3)
    aggregate          unmask_request -> unmask_shares            (U5: helped unmask)

In `plain` mode the key and consistency steps are skipped and updates
arrive in the clear; in `secagg` they arrive masked (see secagg.py);
`secagg+dp` also clips each update and has each contributor add its share
of discrete Gaussian noise (dp.py). Every party takes its settings from the
scenario (`ctx.settings`); a contributor refuses a round whose settings, as
the aggregator states them, differ from its own. A contributor that fails,
times out or sends a bad update drops out of the round; the round goes on
while at least `threshold` remain, and aborts the run with a message
otherwise. After the last round the model goes back to the contributors,
who measure what it leaks of their own data (leakage.py). Adversarial
aggregators are in adversaries.py.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from safetensors import SafetensorError
from safetensors.numpy import load as load_arrays
from safetensors.numpy import save as save_arrays

from models.charlm import (
    CharTransformer,
    flat_parameters,
    sequence_losses,
    set_flat_parameters,
    train_steps,
)
from models.corpus import pretrained_model, public_corpus
from parties.envelope import Envelope
from parties.errors import AirlockError
from parties.labels import Form, Label
from parties.payload import pack, unpack
from parties.protocol import FINGERPRINTS, PartyContext, Reply
from parties.roles import DataContributor
from protocols.federated import data, dp, leakage
from protocols.federated.rules import CONTRIBUTOR
from protocols.federated.secagg import (
    SCALE,
    AdvertisedKeys,
    KeyShare,
    RoundSecrets,
    SecAggError,
    check_threshold,
    combine_shares,
    consistent_signers,
    decode_sum,
    encode,
    fixed_point,
    max_contributors,
    public_bytes,
    survivors_message,
    unmask,
)

Summary = dict[str, Any]


class Settings(BaseModel):
    """The stage's params (see docs/federated.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["plain", "secagg", "secagg+dp"] = "secagg+dp"
    rounds: int = Field(default=4, ge=1, le=100)
    threshold: int = Field(default=2, ge=1)
    local_steps: int = Field(default=30, ge=1)
    batch: int = Field(default=32, ge=1)
    learning_rate: float = Field(default=3e-3, gt=0)
    server_learning_rate: float = Field(default=1.0, gt=0)
    max_abs: float = Field(default=8.0, gt=0, le=1024)
    clip: float = Field(default=0.05, gt=0)
    noise_multiplier: float = Field(default=1.0, ge=0)
    delta: float = Field(default=1e-5, gt=0, lt=1)
    pretrain_steps: int = Field(default=200, ge=0)
    exposure_samples: int = Field(default=1000, ge=10)
    seed: int = 0

    @model_validator(mode="after")
    def _secure_needs_two(self) -> Settings:
        if self.secure and self.threshold < 2:
            raise ValueError("secure aggregation needs a threshold of at least 2")
        return self

    @property
    def secure(self) -> bool:
        return self.mode != "plain"

    @property
    def private(self) -> bool:
        return self.mode == "secagg+dp"


class Aborted(AirlockError):
    """Too few contributors remain to finish a round."""


def settings(params: Mapping[str, Any]) -> Settings:
    return Settings.model_validate({k: v for k, v in params.items() if k != "round"})


def check_contributors(s: Settings, contributors: int) -> None:
    """The run's contributors fit the settings: t-of-n sharing needs
    n/2 < t <= n (secagg.check_threshold), and the fixed-point sum must not overflow."""
    if not s.secure:
        return
    check_threshold(s.threshold, contributors)
    if contributors > max_contributors(s.max_abs):
        raise SecAggError(f"{contributors} contributors overflow the fixed-point sum")


# -- payloads ------------------------------------------------------------------------


def array_bytes(name: str, array: np.ndarray) -> bytes:
    return save_arrays({name: array})


def read_array(body: bytes, name: str, dtype: type, size: int) -> np.ndarray:
    """The one array a body must hold, with the right name, dtype and size."""
    try:
        arrays = load_arrays(body)
    except (SafetensorError, ValueError, OSError):
        raise AirlockError("the update is not a safetensors array") from None
    if set(arrays) != {name}:
        raise AirlockError(f"the update must hold exactly one array named {name!r}")
    array = arrays[name]
    if array.dtype != dtype or array.shape != (size,):
        raise AirlockError(
            f"the update is {array.dtype}{list(array.shape)}, expected {np.dtype(dtype)}[{size}]"
        )
    return array


# -- helpers -------------------------------------------------------------------------


def control(ctx: PartyContext) -> Label:
    return Label(f"federated:{ctx.name}", Form.PUBLIC)


def session(number: int) -> str:
    return f"round-{number}"


def _send_all(
    ctx: PartyContext,
    names: Iterable[str],
    step: str,
    labels: list[Label],
    payload_for: Callable[[str], bytes],
    session_id: str,
) -> dict[str, Envelope | None | str]:
    """Send `step` to each party at once: its reply (or None), or why it failed."""
    names = list(names)

    def send(name: str) -> Envelope | None | str:
        try:
            return ctx.deliver(name, step, labels, payload_for(name), session_id)
        except AirlockError as error:
            return str(error)

    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        return dict(zip(names, pool.map(send, names), strict=True))


def ask_all(
    ctx: PartyContext,
    names: Iterable[str],
    step: str,
    labels: list[Label],
    payload_for: Callable[[str], bytes],
    session_id: str,
) -> tuple[dict[str, Envelope], dict[str, str]]:
    """Ask each party at once; return the replies and, per party without one, why."""
    outcomes = _send_all(ctx, names, step, labels, payload_for, session_id)
    replies = {n: o for n, o in outcomes.items() if isinstance(o, Envelope)}
    failed = {n: o or "no answer" for n, o in outcomes.items() if not isinstance(o, Envelope)}
    return replies, failed


def utility(model: CharTransformer) -> float:
    """Bits per character on held-out public text: lower is better."""
    lines = public_corpus(200, seed="validation").splitlines()
    losses = sequence_losses(model, lines)
    return float(losses.sum() / sum(len(line) - 1 for line in lines))


def _names(value: object) -> frozenset[str]:
    """A list of party names from a request, or AirlockError."""
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise AirlockError("expected a list of party names")
    return frozenset(value)


# -- model creator (aggregator) --------------------------------------------------------


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
class Aggregator:
    model: CharTransformer
    accountant: dp.Accountant
    history: list[Summary] = field(default_factory=list)
    epsilon: float = 0.0
    round: AggregatorRound | None = None

    def current(self) -> AggregatorRound:
        if self.round is None:
            raise AirlockError("no round in progress")
        return self.round


def aggregator(ctx: PartyContext) -> Aggregator:
    state = ctx.state.get("aggregator")
    if not isinstance(state, Aggregator):
        raise AirlockError("the model creator has not pretrained the model")
    return state


def pretrain(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    s = settings(params)
    model = pretrained_model(s.pretrain_steps, s.seed)
    ctx.state["aggregator"] = Aggregator(model, dp.Accountant(s.delta))
    return {
        "parameters": int(flat_parameters(model).numel()),
        "utility_bits_per_char": round(utility(model), 4),
    }


def start_round(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    s = settings(params)
    check_contributors(s, len(ctx.peers(CONTRIBUTOR)))
    return open_round(ctx, s, int(params.get("round", len(aggregator(ctx).history) + 1)))


def open_round(ctx: PartyContext, s: Settings, number: int) -> Summary:
    """Send the global model and the round's settings, as `s` states them."""
    state = aggregator(ctx)
    contributors = ctx.peers(CONTRIBUTOR)
    context = f"{ctx.name}/{number}/{os.urandom(8).hex()}"
    current = AggregatorRound(number, context, time.monotonic())
    state.round = current
    meta = {"round": number, "context": current.context, "settings": s.model_dump()}
    body = state.model.to_bytes()
    labels = [control(ctx), Label(f"weights:{ctx.name}", Form.PLAINTEXT)]
    replies, failed = ask_all(
        ctx, contributors, "round_start", labels, lambda _: pack(meta, body), session(number)
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
    current = aggregator(ctx).current()
    if not s.secure:
        current.sharing = list(current.keys)
        return {"round": current.number, "skipped": "plain mode has no keys"}
    keys = {n: k for n, k in current.keys.items() if k is not None}
    meta = {"threshold": s.threshold, "participants": {n: k.to_json() for n, k in keys.items()}}
    labels = [control(ctx), *(Label(f"keys:{n}", Form.PUBLIC) for n in sorted(keys))]
    replies, failed = ask_all(
        ctx, keys, "key_directory", labels, lambda _: pack(meta), session(current.number)
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


def _parameter_count(ctx: PartyContext) -> int:
    return int(flat_parameters(aggregator(ctx).model).numel())


def _check_update(reply: Envelope, s: Settings, size: int) -> tuple[np.ndarray, int]:
    """The update in a reply and the noise variance its sender says it added
    (0 without DP), or AirlockError saying why it is refused."""
    meta, body = unpack(reply.payload)
    if s.secure:
        if reply.header.step != "masked_update":
            raise AirlockError("secure aggregation takes masked updates only")
        masked = read_array(body, "masked", np.uint32, size)
        if not s.private:
            return masked, 0
        variance = meta.get("noise_variance")
        if type(variance) is not int or variance < 0 or meta.get("clip") != s.clip:
            raise AirlockError(f"the update does not state its noise variance and clip {s.clip}")
        return masked, variance
    update = read_array(body, "update", np.float32, size)
    if not np.all(np.isfinite(update)):
        raise AirlockError("the update holds NaN or infinite values")
    if np.max(np.abs(update), initial=0.0) > s.max_abs:
        raise AirlockError(f"the update holds values beyond +-{s.max_abs}")
    return update, 0


def collect_updates(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    s = settings(params)
    current = aggregator(ctx).current()
    sharing = current.sharing

    def payload_for(name: str) -> bytes:
        addressed = current.ciphertexts if s.secure else {}
        ciphertexts = {v: addressed[v][name] for v in addressed if v != name}
        return pack({"survivors": sharing, "ciphertexts": ciphertexts})

    labels = [control(ctx), *(Label(f"mask_seeds:{v}", Form.CIPHERTEXT) for v in sharing)]
    replies, failed = ask_all(
        ctx, sharing, "update_request", labels, payload_for, session(current.number)
    )
    current.dropped.update(failed)
    size = _parameter_count(ctx)
    for name, reply in replies.items():
        try:
            current.updates[name], current.noise_variances[name] = _check_update(reply, s, size)
        except AirlockError as error:
            current.rejected[name] = str(error)
            current.dropped[name] = f"update rejected: {error}"
            _tell_rejected(ctx, name, str(error), current.number)
    current.need(current.updates, "after collecting updates", s)
    return {"round": current.number, "updates": len(current.updates), "rejected": current.rejected}


def _tell_rejected(ctx: PartyContext, name: str, reason: str, number: int) -> None:
    try:
        ctx.deliver(
            name, "update_rejected", [control(ctx)], pack({"reason": reason}), session(number)
        )
    except AirlockError:
        pass  # best effort: the contributor may be gone; the aggregator's log has the reason


def check_consistency(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    """Bonawitz et al. round 3: each survivor signs the survivor set U3; the
    valid signatures (U4) go with the unmasking request, and each
    contributor reveals shares only if at least t of them cover its own U3."""
    s = settings(params)
    current = aggregator(ctx).current()
    if not s.secure:
        return {"round": current.number, "skipped": "plain mode unmasks nothing"}
    survivors = sorted(current.updates)
    replies, failed = ask_all(
        ctx,
        survivors,
        "consistency_request",
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
    current = state.current()
    updates = current.updates
    discarded = None
    try:
        if s.secure:
            total = _unmask(ctx, s, current)
        else:
            total = np.sum([u.astype(np.float64) for u in updates.values()], axis=0)
        mean = torch.tensor(total / len(updates), dtype=torch.float32)
        model = state.model
        set_flat_parameters(model, flat_parameters(model) + s.server_learning_rate * mean)
    except SecAggError as error:  # the sum betrays a bad input, not whose: drop the round
        discarded = f"{error}; the model is left unchanged"
    seconds = time.monotonic() - current.started  # the protocol's time, not evaluation's
    multiplier = epsilon = None
    if s.private:
        multiplier = dp.round_multiplier(current.noise_variances, s.clip)
        epsilon = state.epsilon = state.accountant.add_round(multiplier)
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
        "utility_bits_per_char": round(utility(state.model), 4),
    }
    state.history.append(record)
    state.round = None
    return record


def _unmask(ctx: PartyContext, s: Settings, current: AggregatorRound) -> np.ndarray:
    keys = {n: k for n, k in current.keys.items() if k is not None}
    survivors = sorted(current.updates)
    dropped = sorted(set(current.sharing) - set(survivors))
    meta = {"survivors": survivors, "dropped": dropped, "signatures": current.signatures}
    replies, failed = ask_all(
        ctx,
        current.signatures,
        "unmask_request",
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
    state = aggregator(ctx)
    labels = [control(ctx), Label(f"weights:{ctx.name}", Form.PLAINTEXT)]
    body = state.model.to_bytes()
    outcomes = _send_all(
        ctx, ctx.peers(CONTRIBUTOR), "final_model", labels, lambda _: pack({}, body), "final"
    )
    failed = {n: o for n, o in outcomes.items() if isinstance(o, str)}
    s = settings(params)
    return {
        "mode": s.mode,
        "rounds": state.history,
        "epsilon": round(state.epsilon, 3) if s.private else None,
        "delta": s.delta if s.private else None,
        "utility_bits_per_char": round(utility(state.model), 4),
        "not_delivered": failed,
    }


# -- data contributor -------------------------------------------------------------------


@dataclass
class ContributorRound:
    """A contributor's view of one round."""

    number: int
    context: str
    base: CharTransformer
    secrets: RoundSecrets | None  # None in plain mode
    peers: dict[str, AdvertisedKeys] = field(default_factory=dict)  # U1, signatures verified
    shares: dict[str, KeyShare] = field(default_factory=dict)  # per peer, what it sent here
    masked_with: frozenset[str] = frozenset()  # U2, as given with the update request
    sent: np.ndarray | None = None  # the fixed-point update it masked
    noise_variance: int = 0  # per coordinate, in grid units^2
    signed: frozenset[str] | None = None  # U3: the one survivor set it signed
    answered_unmask: bool = False


@dataclass
class Contributor:
    notes: list[str]
    text: str
    fingerprints: dict[str, list[str]]
    round: ContributorRound | None = None
    rejections: list[str] = field(default_factory=list)
    final: CharTransformer | None = None


def _holdings(ctx: PartyContext) -> DataContributor:
    holdings = ctx.holdings
    assert isinstance(holdings, DataContributor)
    return holdings


def _contributor(ctx: PartyContext) -> Contributor:
    state = ctx.state.get("contributor")
    if not isinstance(state, Contributor):
        raise AirlockError("no training data prepared")
    return state


def _round(ctx: PartyContext) -> ContributorRound:
    current = _contributor(ctx).round
    if current is None:
        raise AirlockError("no round in progress")
    return current


def _own_settings(ctx: PartyContext) -> Settings:
    """This contributor's settings, from the scenario as it was configured,
    never from the aggregator."""
    return settings(ctx.settings)


def _canaries(ctx: PartyContext) -> list[tuple[str, str]]:
    return [data.canary_secret(ctx.name, i) for i in range(_holdings(ctx).canaries)]


def prepare_data(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    """Build this contributor's private training text (records, synthetic
    notes, canaries). The canaries are reported to the evaluation harness
    (the run's manifest), which scans every log for them. Refuses settings
    that do not fit the run's contributors before anything is shared."""
    check_contributors(_own_settings(ctx), len(ctx.peers(CONTRIBUTOR)))
    holdings = _holdings(ctx)
    notes = [r["text"].lower() for r in holdings.records if "text" in r]
    notes += data.patient_notes(ctx.name, holdings.synthetic_notes)
    canaries = [data.canary(name, secret) for name, secret in _canaries(ctx)]
    text = data.training_text(notes, canaries, holdings.canary_repeats, ctx.name)
    fingerprints = {f"train:{ctx.name}": [c.encode().hex() for c in canaries]}
    ctx.state["contributor"] = Contributor(notes, text, fingerprints)
    return {"records": len(notes), "canaries": len(canaries), "characters": len(text)}


def on_round_start(ctx: PartyContext, envelope: Envelope) -> Reply:
    """Join a round only on this contributor's own settings: a round the
    aggregator states with other settings (a plaintext mode, less noise, a
    bigger clip, another threshold) is refused, naming the difference."""
    own = _own_settings(ctx)
    meta, body = unpack(envelope.payload)
    try:
        stated = Settings.model_validate(meta["settings"])
    except (KeyError, ValueError):
        raise AirlockError("the round's settings are missing or invalid") from None
    differ = [name for name in Settings.model_fields if getattr(stated, name) != getattr(own, name)]
    if differ:
        raise AirlockError(
            "the aggregator states "
            + ", ".join(f"{n}={getattr(stated, n)!r}" for n in differ)
            + " but this contributor is configured with "
            + ", ".join(f"{n}={getattr(own, n)!r}" for n in differ)
        )
    check_contributors(own, len(ctx.peers(CONTRIBUTOR)))
    me = _contributor(ctx)
    context = str(meta["context"])
    secrets = RoundSecrets(ctx.name, context.encode()) if own.secure else None
    me.round = ContributorRound(
        int(meta["round"]), context, CharTransformer.from_bytes(body), secrets
    )
    keys = secrets.advertise(ctx.sign).to_json() if secrets is not None else {}
    return Reply("round_keys", (Label(f"keys:{ctx.name}", Form.PUBLIC),), json.dumps(keys).encode())


def on_key_directory(ctx: PartyContext, envelope: Envelope) -> Reply:
    current = _round(ctx)
    own = _own_settings(ctx)
    if current.secrets is None:
        raise AirlockError("this round has no secure aggregation")
    meta, _ = unpack(envelope.payload)
    if meta.get("threshold") != own.threshold:
        raise SecAggError(
            f"the aggregator states threshold {meta.get('threshold')!r}, "
            f"this contributor is configured with {own.threshold}"
        )
    participants = meta["participants"]
    strangers = sorted(set(participants) - set(ctx.peers(CONTRIBUTOR)))
    if strangers:  # e.g. the aggregator itself, to be sent shares
        raise SecAggError(f"the key directory lists parties that are not contributors: {strangers}")
    context = current.context.encode()
    peers = {
        name: AdvertisedKeys.from_json(keys, context, ctx.public_key(name), name)
        for name, keys in participants.items()
    }
    mine = peers.get(ctx.name)
    if mine is None or mine.s_public != public_bytes(current.secrets.s):
        raise SecAggError("the key directory does not hold this contributor's keys")
    if len(peers) < own.threshold:
        raise SecAggError(f"{len(peers)} participants cannot meet threshold {own.threshold}")
    current.peers = peers
    encrypted = current.secrets.encrypted_shares(list(peers.values()), own.threshold)
    current.shares = {ctx.name: current.secrets.open_share(mine, encrypted.pop(ctx.name))}
    labels = (Label(f"mask_seeds:{ctx.name}", Form.CIPHERTEXT),)
    return Reply("encrypted_shares", labels, json.dumps(encrypted).encode())


def _local_update(ctx: PartyContext, current: ContributorRound, s: Settings) -> np.ndarray:
    """This round's update (float64, real units): under DP, clipped onto the
    fixed-point grid with this contributor's discrete Gaussian noise added."""
    torch.set_num_threads(1)  # contributors train side by side on few cores
    model = CharTransformer.from_bytes(current.base.to_bytes())
    before = flat_parameters(model)
    train_steps(
        model,
        _contributor(ctx).text,
        steps=s.local_steps,
        batch=s.batch,
        learning_rate=s.learning_rate,
        seed=s.seed * 1000 + current.number,
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


def _fingerprints(update: np.ndarray, encoded: np.ndarray) -> list[str]:
    """32-byte windows of the raw update, as floats and as fixed point, around
    its largest value: what a leak of the unmasked update would contain."""
    start = max(0, int(np.argmax(np.abs(update))) - 3)
    return [update[start : start + 8].tobytes().hex(), encoded[start : start + 8].tobytes().hex()]


# Faulty contributors a scenario can switch on, each sending a bad update.
FAULTY_UPDATES: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "nan_update": lambda update, _: np.where(np.arange(update.size) % 7 == 0, np.nan, update),
    "misshapen_update": lambda update, _: update[:-1],
    "out_of_range_update": lambda update, bound: np.full_like(update, 4 * bound),
}


def on_update_request(ctx: PartyContext, envelope: Envelope) -> Reply:
    me = _contributor(ctx)
    current = _round(ctx)
    s = _own_settings(ctx)
    meta, _ = unpack(envelope.payload)
    survivors = sorted(_names(meta["survivors"]))
    if ctx.name not in survivors:
        raise AirlockError("this contributor is not in the round")
    if s.secure and (not set(survivors) <= set(current.peers) or len(survivors) < s.threshold):
        raise SecAggError("the survivors are not a large enough subset of the participants")
    update = _local_update(ctx, current, s)
    if ctx.adversary in FAULTY_UPDATES:
        update = FAULTY_UPDATES[ctx.adversary](update, s.max_abs)
        encoded = fixed_point(update)
    else:
        encoded = encode(update, s.max_abs)
    single = update.astype(np.float32)  # what a plain update carries
    me.fingerprints.setdefault(f"update:{ctx.name}", []).extend(_fingerprints(single, encoded))
    plain = pack({}, array_bytes("update", single))
    if not s.secure:
        return Reply("plain_update", (Label(f"update:{ctx.name}", Form.PLAINTEXT),), plain)
    if ctx.adversary in ("unmasked_update", "mislabeled_update"):
        # the plain update where a masked one is due: labelled honestly (the
        # boundary refuses it) or as masked (admitted; the content scan finds it)
        form = Form.PLAINTEXT if ctx.adversary == "unmasked_update" else Form.MASKED
        return Reply("masked_update", (Label(f"update:{ctx.name}", form),), plain)
    assert current.secrets is not None
    for sender in survivors:
        if sender != ctx.name:
            current.shares[sender] = current.secrets.open_share(
                current.peers[sender], meta["ciphertexts"][sender]
            )
    current.masked_with, current.sent = frozenset(survivors), encoded
    masked = current.secrets.mask(encoded, [current.peers[v] for v in survivors])
    noise = {"noise_variance": current.noise_variance, "clip": s.clip} if s.private else {}
    return Reply(
        "masked_update",
        (Label(f"update:{ctx.name}", Form.MASKED),),
        pack(noise, array_bytes("masked", masked)),
    )


def on_consistency_request(ctx: PartyContext, envelope: Envelope) -> Reply:
    """Sign the survivor set U3 with this party's identity key, once a
    round, if it holds this contributor and is a large enough subset of the
    participants it masked its update with."""
    current = _round(ctx)
    s = _own_settings(ctx)
    if not current.masked_with:
        raise SecAggError("this contributor has sent no masked update this round")
    if current.signed is not None:
        raise SecAggError("a survivor set was already signed this round")
    meta, _ = unpack(envelope.payload)
    survivors = _names(meta["survivors"])
    if ctx.name not in survivors or not survivors <= current.masked_with:
        raise SecAggError(
            "the survivors must hold this contributor and only its round's participants"
        )
    if len(survivors) < s.threshold:
        raise SecAggError(f"{len(survivors)} survivors cannot meet threshold {s.threshold}")
    current.signed = survivors
    signature = ctx.sign(survivors_message(current.context.encode(), survivors))
    body = json.dumps({"signature": signature.hex()}).encode()
    return Reply("consistency_signature", (control(ctx),), body)


def on_unmask_request(ctx: PartyContext, envelope: Envelope) -> Reply:
    """Reveal, per peer, the share of its self-mask seed (it survived) or of
    its mask key (it dropped), never both, once a round, and only for the
    survivor set this contributor signed once at least t of its members
    signed that same set."""
    current = _round(ctx)
    s = _own_settings(ctx)
    if current.answered_unmask:
        raise SecAggError("unmasking shares were already given this round")
    if current.signed is None:
        raise SecAggError(
            "no survivor set was signed this round: unmasking follows the consistency check"
        )
    meta, _ = unpack(envelope.payload)
    survivors, dropped = _names(meta["survivors"]), _names(meta["dropped"])
    if survivors != current.signed:
        raise SecAggError("the survivors differ from the set this contributor signed")
    if dropped != current.masked_with - survivors:
        raise SecAggError("survivors and dropped do not partition the round's participants")
    signatures = meta.get("signatures")
    if not isinstance(signatures, dict):
        raise SecAggError("the unmasking request carries no consistency signatures")
    signers = consistent_signers(signatures, survivors, current.context.encode(), ctx.public_key)
    if len(signers) < s.threshold:
        raise SecAggError(
            f"{len(signers)} survivor(s) signed this survivor set, {s.threshold} needed: "
            "the aggregator may have told contributors different survivor sets; no share revealed"
        )
    current.answered_unmask = True
    shares = current.shares
    answer = {
        "b": {v: [shares[v].index, shares[v].b.hex()] for v in sorted(survivors)},
        "s": {v: [shares[v].index, shares[v].s.hex()] for v in sorted(dropped)},
    }
    labels = tuple(Label(f"mask_seeds:{v}", Form.SHARE) for v in sorted(current.masked_with))
    return Reply("unmask_shares", labels, json.dumps(answer).encode())


def on_update_rejected(ctx: PartyContext, envelope: Envelope) -> None:
    meta, _ = unpack(envelope.payload)
    _contributor(ctx).rejections.append(str(meta.get("reason", "")))


def on_final_model(ctx: PartyContext, envelope: Envelope) -> None:
    _, body = unpack(envelope.payload)
    _contributor(ctx).final = CharTransformer.from_bytes(body)


def evaluate_leakage(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    """Attack the final model as an outsider would, on this contributor's own
    data: exposure of its canaries (and of control canaries it never
    inserted), and membership inference on its notes against fresh ones."""
    s = settings(params)
    me = _contributor(ctx)
    if me.final is None:
        return {"evaluated": False, "why": "no final model received"}
    holdings = _holdings(ctx)
    inserted = [
        leakage.exposure(me.final, name, secret, s.exposure_samples, seed=i)
        for i, (name, secret) in enumerate(_canaries(ctx))
    ]
    control_bits = [
        leakage.exposure(me.final, *data.canary_secret(ctx.name, 1000 + i), s.exposure_samples, i)
        for i in range(max(1, holdings.canaries))
    ]
    mia = leakage.membership_inference(
        me.final, me.notes, data.patient_notes(ctx.name, len(me.notes), "holdout")
    )
    return {
        "evaluated": True,
        "exposure_bits": [round(e, 2) for e in inserted],
        "control_exposure_bits": [round(e, 2) for e in control_bits],
        "exposure_max_bits": round(leakage.max_exposure(s.exposure_samples), 2),
        "mia_auc": round(mia.auc, 3),
        "mia_tpr_at_1pct_fpr": round(mia.tpr_at_1pct_fpr, 3),
        "mia_members": mia.members,
        "rejections": me.rejections,
        FINGERPRINTS: me.fingerprints,
    }

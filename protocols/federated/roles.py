"""What each role does in the federated protocol.

The model creator (aggregator) pretrains the shared model on the public
corpus, then runs FedAvg rounds. A round is four aggregator actions, each a
request to every contributor still in the round, answered on the same call:

    start_round      round_start -> round_keys          (U1: advertised keys)
    share_keys       key_directory -> encrypted_shares  (U2: shared their seeds)
    collect_updates  update_request -> masked_update    (U3: sent a valid update)
                                    or plain_update
    aggregate        unmask_request -> unmask_shares    (U4: helped unmask)

In `plain` mode the key steps are skipped and updates arrive in the clear;
in `secagg` they arrive masked (see secagg.py); `secagg+dp` also clips each
update and has each contributor add its share of Gaussian noise (dp.py).
A contributor that fails, times out or sends a bad update drops out of the
round; the round goes on while at least `threshold` remain, and aborts the
run with a message otherwise. After the last round the model goes back to
the contributors, who measure what it leaks of their own data (leakage.py).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
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
from parties.protocol import FINGERPRINTS, PartyContext, Protocol, Reply
from parties.roles import DataContributor
from protocols.federated import data, dp, leakage
from protocols.federated.report import report
from protocols.federated.rules import AGGREGATOR, CONTRIBUTOR, NAME, RULES
from protocols.federated.secagg import (
    AdvertisedKeys,
    RoundSecrets,
    SecAggError,
    combine_shares,
    decode_sum,
    encode,
    fixed_point,
    max_contributors,
    public_bytes,
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

    @property
    def secure(self) -> bool:
        return self.mode != "plain"


class Aborted(AirlockError):
    """Too few contributors remain to finish a round."""


def settings(params: Mapping[str, Any]) -> Settings:
    return Settings.model_validate({k: v for k, v in params.items() if k != "round"})


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


def _control(ctx: PartyContext) -> Label:
    return Label(f"federated:{ctx.name}", Form.PUBLIC)


def _session(number: int) -> str:
    return f"round-{number}"


def _send_all(
    ctx: PartyContext,
    names: Iterable[str],
    step: str,
    labels: list[Label],
    payload_for: Callable[[str], bytes],
    session: str,
) -> dict[str, Envelope | None | str]:
    """Send `step` to each party at once: its reply (or None), or why it failed."""
    names = list(names)

    def send(name: str) -> Envelope | None | str:
        try:
            return ctx.deliver(name, step, labels, payload_for(name), session)
        except AirlockError as error:
            return str(error)

    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        return dict(zip(names, pool.map(send, names), strict=True))


def _ask_all(
    ctx: PartyContext,
    names: Iterable[str],
    step: str,
    labels: list[Label],
    payload_for: Callable[[str], bytes],
    session: str,
) -> tuple[dict[str, Envelope], dict[str, str]]:
    """Ask each party at once; return the replies and, per party without one, why."""
    outcomes = _send_all(ctx, names, step, labels, payload_for, session)
    replies = {n: o for n, o in outcomes.items() if isinstance(o, Envelope)}
    failed = {n: o or "no answer" for n, o in outcomes.items() if not isinstance(o, Envelope)}
    return replies, failed


def utility(model: CharTransformer) -> float:
    """Bits per character on held-out public text: lower is better."""
    lines = public_corpus(200, seed="validation").splitlines()
    losses = sequence_losses(model, lines)
    return float(losses.sum() / sum(len(line) - 1 for line in lines))


# -- model creator (aggregator) --------------------------------------------------------


def pretrain(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    s = settings(params)
    model = pretrained_model(s.pretrain_steps, s.seed)
    ctx.state.update(
        model=model, accountant=dp.Accountant(s.delta), history=[], epsilon=0.0, round=None
    )
    return {
        "parameters": int(flat_parameters(model).numel()),
        "utility_bits_per_char": round(utility(model), 4),
    }


def _round(ctx: PartyContext) -> dict[str, Any]:
    current = ctx.state.get("round")
    if current is None:
        raise AirlockError("no round in progress")
    return current


def _need(current: dict[str, Any], alive: Iterable[str], what: str, s: Settings) -> None:
    count = len(list(alive))
    needed = s.threshold if s.secure else 1
    if count < needed:
        raise Aborted(
            f"round {current['number']} aborted {what}: {count} contributor(s) remain, "
            f"{needed} needed (threshold {s.threshold}); dropped: "
            + "; ".join(f"{n}: {why}" for n, why in sorted(current["dropped"].items()))
        )


def start_round(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    s = settings(params)
    contributors = ctx.peers(CONTRIBUTOR)
    if s.secure and s.threshold < 2:
        raise AirlockError("secure aggregation needs a threshold of at least 2")
    if s.secure and len(contributors) > max_contributors(s.max_abs):
        raise AirlockError(f"{len(contributors)} contributors overflow the fixed-point sum")
    number = int(params.get("round", len(ctx.state["history"]) + 1))
    current: dict[str, Any] = {
        "number": number,
        "context": f"{ctx.name}/{number}/{os.urandom(8).hex()}",
        "started": time.monotonic(),
        "dropped": {},
        "rejected": {},
    }
    ctx.state["round"] = current
    meta = {"round": number, "context": current["context"], "settings": s.model_dump()}
    body = ctx.state["model"].to_bytes()
    labels = [_control(ctx), Label(f"weights:{ctx.name}", Form.PLAINTEXT)]
    replies, failed = _ask_all(
        ctx, contributors, "round_start", labels, lambda _: pack(meta, body), _session(number)
    )
    current["dropped"].update(failed)
    keys: dict[str, AdvertisedKeys | None] = {}
    for name, reply in replies.items():
        if not s.secure:
            keys[name] = None
            continue
        try:
            keys[name] = AdvertisedKeys.from_json(
                json.loads(reply.payload), current["context"].encode(), ctx.public_key(name), name
            )
        except (SecAggError, ValueError) as error:
            current["dropped"][name] = str(error)
    current["keys"] = keys
    _need(current, keys, "after key advertisement", s)
    return {"round": number, "contributors": len(contributors), "advertised": len(keys)}


def share_keys(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    s = settings(params)
    current = _round(ctx)
    if not s.secure:
        current["sharing"] = list(current["keys"])
        return {"round": current["number"], "skipped": "plain mode has no keys"}
    keys: dict[str, AdvertisedKeys] = current["keys"]
    meta = {
        "threshold": s.threshold,
        "participants": {n: k.to_json() for n, k in keys.items()},
    }
    labels = [_control(ctx), *(Label(f"keys:{n}", Form.PUBLIC) for n in sorted(keys))]
    replies, failed = _ask_all(
        ctx, keys, "key_directory", labels, lambda _: pack(meta), _session(current["number"])
    )
    current["dropped"].update(failed)
    ciphertexts = {}
    for name, reply in replies.items():
        try:
            shares = json.loads(reply.payload)
            if not isinstance(shares, dict) or set(shares) != set(keys) - {name}:
                raise ValueError("shares not addressed to exactly the other participants")
            ciphertexts[name] = {str(k): str(v) for k, v in shares.items()}
        except ValueError as error:
            current["dropped"][name] = f"bad encrypted shares: {error}"
    current["ciphertexts"] = ciphertexts
    current["sharing"] = sorted(ciphertexts)
    _need(current, ciphertexts, "after key sharing", s)
    return {"round": current["number"], "shared": len(ciphertexts)}


def _parameter_count(ctx: PartyContext) -> int:
    return int(flat_parameters(ctx.state["model"]).numel())


def _check_update(reply: Envelope, s: Settings, size: int) -> np.ndarray:
    """The update in a reply, or AirlockError saying why it is refused."""
    _, body = unpack(reply.payload)
    if s.secure:
        if reply.header.step != "masked_update":
            raise AirlockError("secure aggregation takes masked updates only")
        return read_array(body, "masked", np.uint32, size)
    update = read_array(body, "update", np.float32, size)
    if not np.all(np.isfinite(update)):
        raise AirlockError("the update holds NaN or infinite values")
    if np.max(np.abs(update), initial=0.0) > s.max_abs:
        raise AirlockError(f"the update holds values beyond +-{s.max_abs}")
    return update


def collect_updates(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    s = settings(params)
    current = _round(ctx)
    sharing: list[str] = current["sharing"]
    ciphertexts = current.get("ciphertexts", {})

    def payload_for(name: str) -> bytes:
        return pack(
            {
                "survivors": sharing,
                "ciphertexts": {v: ciphertexts[v][name] for v in sharing if v != name}
                if s.secure
                else {},
            }
        )

    labels = [_control(ctx), *(Label(f"mask_seeds:{v}", Form.CIPHERTEXT) for v in sharing)]
    replies, failed = _ask_all(
        ctx, sharing, "update_request", labels, payload_for, _session(current["number"])
    )
    current["dropped"].update(failed)
    size = _parameter_count(ctx)
    updates = {}
    for name, reply in replies.items():
        try:
            updates[name] = _check_update(reply, s, size)
        except AirlockError as error:
            current["rejected"][name] = str(error)
            current["dropped"][name] = f"update rejected: {error}"
            _tell_rejected(ctx, name, str(error), current["number"])
    current["updates"] = updates
    _need(current, updates, "after collecting updates", s)
    return {
        "round": current["number"],
        "updates": len(updates),
        "rejected": dict(current["rejected"]),
    }


def _tell_rejected(ctx: PartyContext, name: str, reason: str, number: int) -> None:
    try:
        ctx.deliver(
            name, "update_rejected", [_control(ctx)], pack({"reason": reason}), _session(number)
        )
    except AirlockError:
        pass  # best effort: the contributor may be gone; the aggregator's log has the reason


def aggregate(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    s = settings(params)
    current = _round(ctx)
    updates: dict[str, np.ndarray] = current["updates"]
    model: CharTransformer = ctx.state["model"]
    discarded = None
    try:
        if s.secure:
            total = _unmask(ctx, s, current, updates)
        else:
            total = np.sum([u.astype(np.float64) for u in updates.values()], axis=0)
        mean = torch.tensor(total / len(updates), dtype=torch.float32)
        set_flat_parameters(model, flat_parameters(model) + s.server_learning_rate * mean)
    except SecAggError as error:  # the sum betrays a bad input, not whose: drop the round
        discarded = f"{error}; the model is left unchanged"
    seconds = time.monotonic() - current["started"]  # the protocol's time, not evaluation's
    epsilon = None
    if s.mode == "secagg+dp":
        # the survivors' noise shares give noise multiplier z * sqrt(|U3| / t) >= z
        effective = s.noise_multiplier * (len(updates) / s.threshold) ** 0.5
        epsilon = ctx.state["accountant"].add_round(effective) if effective > 0 else float("inf")
        ctx.state["epsilon"] = epsilon
    record = {
        "round": current["number"],
        "mode": s.mode,
        "survivors": sorted(updates),
        "dropped": dict(sorted(current["dropped"].items())),
        "rejected": dict(current["rejected"]),
        "discarded": discarded,
        "epsilon": None if epsilon is None else round(epsilon, 3),
        "delta": s.delta if epsilon is not None else None,
        "seconds": round(seconds, 3),
        "utility_bits_per_char": round(utility(model), 4),
    }
    ctx.state["history"].append(record)
    ctx.state["round"] = None
    return record


def _unmask(
    ctx: PartyContext, s: Settings, current: dict[str, Any], updates: dict[str, np.ndarray]
) -> np.ndarray:
    keys: dict[str, AdvertisedKeys] = current["keys"]
    survivors = sorted(updates)
    dropped = sorted(set(current["sharing"]) - set(survivors))
    meta = {"survivors": survivors, "dropped": dropped}
    replies, failed = _ask_all(
        ctx,
        survivors,
        "unmask_request",
        [_control(ctx)],
        lambda _: pack(meta),
        _session(current["number"]),
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
        current["dropped"].update(failed)
        _need(current, helpers, "while unmasking", s)
    masked_sum = np.zeros_like(next(iter(updates.values())))
    for masked in updates.values():
        masked_sum += masked
    try:
        total = unmask(
            masked_sum,
            current["context"].encode(),
            {v: keys[v] for v in survivors},
            {v: keys[v] for v in dropped},
            {v: combine_shares(b_shares[v], s.threshold) for v in survivors},
            {v: combine_shares(s_shares[v], s.threshold) for v in dropped},
        )
    except SecAggError as error:
        raise Aborted(f"round {current['number']} aborted while unmasking: {error}") from None
    return decode_sum(total, len(survivors), s.max_abs).astype(np.float64)


def publish_model(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    model: CharTransformer = ctx.state["model"]
    labels = [_control(ctx), Label(f"weights:{ctx.name}", Form.PLAINTEXT)]
    body = model.to_bytes()
    outcomes = _send_all(
        ctx, ctx.peers(CONTRIBUTOR), "final_model", labels, lambda _: pack({}, body), "final"
    )
    failed = {n: o for n, o in outcomes.items() if isinstance(o, str)}
    s = settings(params)
    return {
        "mode": s.mode,
        "rounds": ctx.state["history"],
        "epsilon": round(ctx.state["epsilon"], 3) if s.mode == "secagg+dp" else None,
        "delta": s.delta if s.mode == "secagg+dp" else None,
        "utility_bits_per_char": round(utility(model), 4),
        "not_delivered": failed,
    }


# -- data contributor -------------------------------------------------------------------


def _holdings(ctx: PartyContext) -> DataContributor:
    holdings = ctx.holdings
    assert isinstance(holdings, DataContributor)
    return holdings


def _canaries(ctx: PartyContext) -> list[tuple[str, str]]:
    return [data.canary_secret(ctx.name, i) for i in range(_holdings(ctx).canaries)]


def prepare_data(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    """Build this contributor's private training text (records, synthetic
    notes, canaries). The canaries are reported to the evaluation harness
    (the run's manifest), which scans every log for them."""
    holdings = _holdings(ctx)
    notes = [r["text"].lower() for r in holdings.records if "text" in r]
    notes += data.patient_notes(ctx.name, holdings.synthetic_notes)
    canaries = [data.canary(name, secret) for name, secret in _canaries(ctx)]
    text = data.training_text(notes, canaries, holdings.canary_repeats, ctx.name)
    fingerprints = {f"train:{ctx.name}": [c.encode().hex() for c in canaries]}
    ctx.state.update(notes=notes, text=text, fingerprints=fingerprints)
    return {"records": len(notes), "canaries": len(canaries), "characters": len(text)}


def on_round_start(ctx: PartyContext, envelope: Envelope) -> Reply:
    meta, body = unpack(envelope.payload)
    s = Settings.model_validate(meta["settings"])
    if "text" not in ctx.state:
        raise AirlockError("no training data prepared")
    current: dict[str, Any] = {
        "number": int(meta["round"]),
        "context": str(meta["context"]),
        "settings": s,
        "base": CharTransformer.from_bytes(body),
        "answered_unmask": False,
    }
    ctx.state["round"] = current
    keys: dict[str, Any] = {}
    if s.secure:
        secrets = RoundSecrets(ctx.name, current["context"].encode())
        current["secrets"] = secrets
        keys = secrets.advertise(ctx.sign).to_json()
    return Reply("round_keys", (Label(f"keys:{ctx.name}", Form.PUBLIC),), json.dumps(keys).encode())


def _contributor_round(ctx: PartyContext, envelope: Envelope) -> dict[str, Any]:
    current = ctx.state.get("round")
    if current is None:
        raise AirlockError("no round in progress")
    return current


def on_key_directory(ctx: PartyContext, envelope: Envelope) -> Reply:
    current = _contributor_round(ctx, envelope)
    s: Settings = current["settings"]
    meta, _ = unpack(envelope.payload)
    threshold = int(meta["threshold"])
    context = current["context"].encode()
    peers = {
        name: AdvertisedKeys.from_json(keys, context, ctx.public_key(name), name)
        for name, keys in meta["participants"].items()
    }
    secrets: RoundSecrets = current["secrets"]
    mine = peers.get(ctx.name)
    if mine is None or mine.s_public != public_bytes(secrets.s):
        raise SecAggError("the key directory does not hold this contributor's keys")
    if threshold != s.threshold or not 2 <= threshold <= len(peers):
        raise SecAggError(f"threshold {threshold} does not fit {len(peers)} participants")
    current["peers"] = peers
    encrypted = secrets.encrypted_shares(list(peers.values()), threshold)
    own = secrets.open_share(mine, encrypted.pop(ctx.name))
    current["shares"] = {ctx.name: own}
    labels = (Label(f"mask_seeds:{ctx.name}", Form.CIPHERTEXT),)
    return Reply("encrypted_shares", labels, json.dumps(encrypted).encode())


def _local_update(ctx: PartyContext, current: dict[str, Any]) -> np.ndarray:
    s: Settings = current["settings"]
    torch.set_num_threads(1)  # contributors train side by side on few cores
    model = CharTransformer.from_bytes(current["base"].to_bytes())
    before = flat_parameters(model)
    train_steps(
        model,
        ctx.state["text"],
        steps=s.local_steps,
        batch=s.batch,
        learning_rate=s.learning_rate,
        seed=s.seed * 1000 + current["number"],
    )
    update = (flat_parameters(model) - before).numpy()
    if s.mode == "secagg+dp":
        update, _ = dp.clip(update, s.clip)
        update = update + dp.noise_share(update.size, s.noise_multiplier, s.clip, s.threshold)
    # beyond max_abs only under noise, and then past 11 standard deviations at the defaults
    return np.clip(update, -s.max_abs, s.max_abs).astype(np.float32)


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
    current = _contributor_round(ctx, envelope)
    s: Settings = current["settings"]
    meta, _ = unpack(envelope.payload)
    survivors = [str(n) for n in meta["survivors"]]
    if ctx.name not in survivors:
        raise AirlockError("this contributor is not in the round")
    update = _local_update(ctx, current)
    if ctx.adversary in FAULTY_UPDATES:
        update = FAULTY_UPDATES[ctx.adversary](update, s.max_abs)
        encoded = fixed_point(update)
    else:
        encoded = encode(update, s.max_abs)
    ctx.state["fingerprints"].setdefault(f"update:{ctx.name}", []).extend(
        _fingerprints(update, encoded)
    )
    plain = pack({}, array_bytes("update", update))
    if not s.secure:
        return Reply("plain_update", (Label(f"update:{ctx.name}", Form.PLAINTEXT),), plain)
    if ctx.adversary in ("unmasked_update", "mislabeled_update"):
        # the plain update where a masked one is due: labelled honestly (the
        # boundary refuses it) or as masked (admitted; the content scan finds it)
        form = Form.PLAINTEXT if ctx.adversary == "unmasked_update" else Form.MASKED
        return Reply("masked_update", (Label(f"update:{ctx.name}", form),), plain)
    peers: dict[str, AdvertisedKeys] = current["peers"]
    if not set(survivors) <= set(peers) or len(survivors) < s.threshold:
        raise SecAggError("the survivors are not a large enough subset of the participants")
    for sender in survivors:
        if sender != ctx.name:
            current["shares"][sender] = current["secrets"].open_share(
                peers[sender], meta["ciphertexts"][sender]
            )
    current["survivors"] = survivors
    masked = current["secrets"].mask(encoded, [peers[v] for v in survivors])
    return Reply(
        "masked_update",
        (Label(f"update:{ctx.name}", Form.MASKED),),
        pack({}, array_bytes("masked", masked)),
    )


def on_unmask_request(ctx: PartyContext, envelope: Envelope) -> Reply:
    """Reveal, per peer, the share of its self-mask seed (it survived) or of
    its mask key (it dropped), never both, and only once a round."""
    current = _contributor_round(ctx, envelope)
    s: Settings = current["settings"]
    meta, _ = unpack(envelope.payload)
    survivors, dropped = set(meta["survivors"]), set(meta["dropped"])
    sharing = set(current.get("survivors", ()))
    if current["answered_unmask"]:
        raise SecAggError("unmasking shares were already given this round")
    if survivors & dropped or survivors | dropped != sharing:
        raise SecAggError("survivors and dropped do not partition the round's participants")
    if len(survivors) < s.threshold or ctx.name not in survivors:
        raise SecAggError("too few survivors to unmask")
    current["answered_unmask"] = True
    shares = current["shares"]
    answer = {
        "b": {v: [shares[v]["index"], shares[v]["b"].hex()] for v in sorted(survivors)},
        "s": {v: [shares[v]["index"], shares[v]["s"].hex()] for v in sorted(dropped)},
    }
    labels = tuple(Label(f"mask_seeds:{v}", Form.SHARE) for v in sorted(sharing))
    return Reply("unmask_shares", labels, json.dumps(answer).encode())


def on_update_rejected(ctx: PartyContext, envelope: Envelope) -> None:
    meta, _ = unpack(envelope.payload)
    ctx.state.setdefault("rejections", []).append(str(meta.get("reason", "")))


def on_final_model(ctx: PartyContext, envelope: Envelope) -> None:
    _, body = unpack(envelope.payload)
    ctx.state["final"] = CharTransformer.from_bytes(body)


def evaluate_leakage(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    """Attack the final model as an outsider would, on this contributor's own
    data: exposure of its canaries (and of control canaries it never
    inserted), and membership inference on its notes against fresh ones."""
    s = settings(params)
    model: CharTransformer | None = ctx.state.get("final")
    if model is None:
        return {"evaluated": False, "why": "no final model received"}
    holdings = _holdings(ctx)
    inserted = [
        leakage.exposure(model, name, secret, s.exposure_samples, seed=i)
        for i, (name, secret) in enumerate(_canaries(ctx))
    ]
    control = [
        leakage.exposure(model, *data.canary_secret(ctx.name, 1000 + i), s.exposure_samples, i)
        for i in range(max(1, holdings.canaries))
    ]
    notes = ctx.state["notes"]
    mia = leakage.membership_inference(
        model, notes, data.patient_notes(ctx.name, len(notes), "holdout")
    )
    return {
        "evaluated": True,
        "exposure_bits": [round(e, 2) for e in inserted],
        "control_exposure_bits": [round(e, 2) for e in control],
        "exposure_max_bits": round(leakage.max_exposure(s.exposure_samples), 2),
        "mia_auc": round(mia.auc, 3),
        "mia_tpr_at_1pct_fpr": round(mia.tpr_at_1pct_fpr, 3),
        "mia_members": mia.members,
        "rejections": ctx.state.get("rejections", []),
        FINGERPRINTS: ctx.state["fingerprints"],
    }


PROTOCOL = Protocol(
    name=NAME,
    rules=RULES,
    handlers={
        (CONTRIBUTOR, "round_start"): on_round_start,
        (CONTRIBUTOR, "key_directory"): on_key_directory,
        (CONTRIBUTOR, "update_request"): on_update_request,
        (CONTRIBUTOR, "unmask_request"): on_unmask_request,
        (CONTRIBUTOR, "update_rejected"): on_update_rejected,
        (CONTRIBUTOR, "final_model"): on_final_model,
    },
    actions={
        (CONTRIBUTOR, "prepare_data"): prepare_data,
        (AGGREGATOR, "pretrain"): pretrain,
        (AGGREGATOR, "start_round"): start_round,
        (AGGREGATOR, "share_keys"): share_keys,
        (AGGREGATOR, "collect_updates"): collect_updates,
        (AGGREGATOR, "aggregate"): aggregate,
        (AGGREGATOR, "publish_model"): publish_model,
        (CONTRIBUTOR, "evaluate_leakage"): evaluate_leakage,
    },
    stage=((CONTRIBUTOR, "prepare_data"), (AGGREGATOR, "pretrain")),
    round_stage=(
        (AGGREGATOR, "start_round"),
        (AGGREGATOR, "share_keys"),
        (AGGREGATOR, "collect_updates"),
        (AGGREGATOR, "aggregate"),
    ),
    final_stage=((AGGREGATOR, "publish_model"), (CONTRIBUTOR, "evaluate_leakage")),
    survives_loss_of=frozenset({CONTRIBUTOR}),
    params=Settings,
    report=report,
    adversaries={
        name: (CONTRIBUTOR, None)
        for name in ("unmasked_update", "mislabeled_update", *FAULTY_UPDATES)
    },
)

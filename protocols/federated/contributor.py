"""A data contributor in the federated protocol.

It builds its private training records, then answers the aggregator's
requests of each round (aggregator.py): its round keys, its encrypted
shares, its update (clipped and noised under DP, masked under secure
aggregation), its signature over the survivor set, and the shares that
remove the masks. It takes its settings from the scenario (`ctx.settings`)
and refuses a round whose settings, as the aggregator states them, differ
from its own. When the final model comes it countersigns it: the weights
root it computes from what it received, the rounds it joined, the run
(evidence/countersignatures.py), given back to the aggregator and kept to
log in the ledger later. Then it measures what the model leaks of its own
data (leakage.py). Misbehaving contributors are in adversaries.py.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from evidence.countersignatures import Countersignature, JoinedRound
from evidence.statements import PartySigner
from evidence.weights import float32_weights_root
from models.checkpoint import shipped_tokenizer
from models.transformer import Transformer
from parties.envelope import Envelope
from parties.errors import AirlockError, ConfigError, OutOfStep
from parties.labels import Form, Label
from parties.payload import unpack
from parties.protocol import FINGERPRINTS, PartyContext, Reply, RoleState, state_of
from parties.seed import run_seed
from protocols import patients
from protocols.artifacts import COUNTERSIGNATURES, Countersignatures
from protocols.federated import dp, leakage
from protocols.federated.messages import (
    Settings,
    Summary,
    check_contributors,
    control,
    party_names,
    settings,
)
from protocols.federated.rules import CONTRIBUTOR, Step
from protocols.federated.secagg import (
    AdvertisedKeys,
    KeyShare,
    RoundSecrets,
    SecAggError,
    consistent_signers,
    public_bytes,
    survivors_message,
)
from protocols.patients import PatientData


class ContributorHoldings(PatientData):
    """It trains on its records, synthetic notes and canaries (protocols/patients.py)."""


class ContributorPhase(enum.Enum):
    UNPREPARED = enum.auto()  # no training records yet
    READY = enum.auto()  # training records encoded, in no round yet
    JOINED = enum.auto()  # round keys advertised
    SHARED = enum.auto()  # encrypted shares sent
    UPDATE_SENT = enum.auto()
    SIGNED = enum.auto()  # the survivor set signed, once a round
    UNMASKED = enum.auto()  # unmasking shares given, once a round


@dataclass
class ContributorRound:
    """A contributor's view of one round."""

    number: int
    context: str
    base: Transformer
    secrets: RoundSecrets | None  # None in plain mode
    peers: dict[str, AdvertisedKeys] = field(default_factory=dict)  # U1, signatures verified
    shares: dict[str, KeyShare] = field(default_factory=dict)  # per peer, what it sent here
    masked_with: frozenset[str] = frozenset()  # U2, as given with the update request
    sent: np.ndarray | None = None  # the fixed-point update it masked
    noise_variance: int = 0  # per coordinate, in grid units^2
    signed: frozenset[str] = frozenset()  # U3: the one survivor set it signed

    def secure(self) -> RoundSecrets:
        if self.secrets is None:
            raise AirlockError("this round has no secure aggregation")
        return self.secrets


@dataclass
class ContributorState(RoleState):
    phase: ContributorPhase = ContributorPhase.UNPREPARED
    notes: list[str] = field(default_factory=list)
    examples: list[list[int]] = field(default_factory=list)  # one per record line, encoded
    fingerprints: dict[str, list[str]] = field(default_factory=dict)
    round: ContributorRound | None = None  # from the first round start on
    last_round: int = 0  # the number of the last round it joined: each is new
    joined: list[JoinedRound] = field(default_factory=list)  # what it countersigns
    trained_from: set[bytes] = field(default_factory=set)  # SHA-256 of each round's model
    updates_sent: int = 0  # what its own privacy accountant composes
    rejections: list[str] = field(default_factory=list)
    final: Transformer | None = None

    def prepared(self, doing: str) -> None:
        if self.phase is ContributorPhase.UNPREPARED:
            raise OutOfStep(f"{doing} needs the training data prepared first")

    def at(self, phase: ContributorPhase, doing: str) -> ContributorRound:
        """The round in progress, which must be at `phase`."""
        self.expect(phase, doing=doing)
        return cast(ContributorRound, self.round)  # every round phase has one


def contributor(ctx: PartyContext) -> ContributorState:
    return state_of(ctx, ContributorState)


def _holdings(ctx: PartyContext) -> ContributorHoldings:
    if not isinstance(ctx.holdings, ContributorHoldings):
        raise ConfigError(f"{ctx.name} holds no training data for the federated protocol")
    return ctx.holdings


def own_settings(ctx: PartyContext) -> Settings:
    """This contributor's settings, from the scenario as it was configured,
    never from the aggregator."""
    return settings(ctx.settings)


def _canaries(ctx: PartyContext) -> list[tuple[str, str]]:
    return _holdings(ctx).canary_secrets(ctx.name)


def prepare_data(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    """Build this contributor's private training records (records, synthetic
    notes, canaries), each encoded with the shipped tokenizer: a record it
    cannot encode faithfully is refused (BadPrompt names the character). The
    canaries are reported to the evaluation harness (the run's manifest),
    which scans every log for them. Refuses settings that do not fit the
    run's contributors before anything is shared."""
    check_contributors(own_settings(ctx), len(ctx.peers(CONTRIBUTOR)))
    me = contributor(ctx)
    me.expect(ContributorPhase.UNPREPARED, doing="preparing the training data")
    holdings = _holdings(ctx)
    notes = holdings.notes(ctx.name)
    canaries = [patients.canary(name, secret) for name, secret in _canaries(ctx)]
    records = patients.training_records(notes, canaries, holdings.canary_repeats)
    tokenizer = shipped_tokenizer()
    me.notes, me.examples = notes, [tokenizer.encode(record) for record in records]
    me.fingerprints = {f"train:{ctx.name}": [c.encode().hex() for c in canaries]}
    me.phase = ContributorPhase.READY
    tokens = sum(len(example) for example in me.examples)
    return {"records": len(notes), "canaries": len(canaries), "tokens": tokens}


def on_round_start(ctx: PartyContext, envelope: Envelope) -> Reply:
    """Join a round only on this contributor's own settings: a round the
    aggregator states with other settings (a plaintext mode, less noise, a
    bigger clip, another threshold) is refused, naming the difference."""
    own = own_settings(ctx)
    meta, body = unpack(envelope.payload)
    stated = Settings.model_validate(meta["settings"])  # valid: the message's (RoundStart)
    differ = [name for name in Settings.model_fields if getattr(stated, name) != getattr(own, name)]
    if differ:
        raise AirlockError(
            "the aggregator states "
            + ", ".join(f"{n}={getattr(stated, n)!r}" for n in differ)
            + " but this contributor is configured with "
            + ", ".join(f"{n}={getattr(own, n)!r}" for n in differ)
        )
    check_contributors(own, len(ctx.peers(CONTRIBUTOR)))
    me = contributor(ctx)
    me.prepared("joining a round")  # a new round may start whatever became of the last one
    number, context = int(meta["round"]), str(meta["context"])
    check_new_round(me, own, number, context, envelope.header.sender, body)
    secrets = RoundSecrets(ctx.name, context.encode()) if own.secure else None
    me.round = ContributorRound(number, context, Transformer.from_bytes(body), secrets)
    me.last_round = number
    me.trained_from.add(hashlib.sha256(body).digest())
    me.joined.append(JoinedRound(number, context, hashlib.sha256(body).hexdigest()))
    me.phase = ContributorPhase.JOINED
    keys = secrets.advertise(ctx.sign).to_json() if secrets is not None else {}
    labels = (Label(f"keys:{ctx.name}", Form.PUBLIC),)
    return Reply(Step.ROUND_KEYS, labels, json.dumps(keys).encode())


def check_new_round(
    me: ContributorState, own: Settings, number: int, context: str, aggregator: str, model: bytes
) -> None:
    """Refuse a round this contributor has joined already, one past its own
    number of rounds, one whose context does not bind its number, or one
    from a model it trained on before. A rerun round re-sends an update
    from the same model under fresh masks: the differences of sums over
    other subsets of survivors would give that update to the aggregator,
    and under DP each rerun spends budget only the contributor can count."""
    if not me.last_round < number <= own.rounds:
        raise AirlockError(
            f"round {number} is not a new round of this contributor's {own.rounds}: "
            f"the last it joined was round {me.last_round}"
        )
    if not context.startswith(f"{aggregator}/{number}/"):
        raise AirlockError(f"the round's context {context!r} does not bind round {number}")
    if hashlib.sha256(model).digest() in me.trained_from:
        raise AirlockError("this contributor sent an update from this model in an earlier round")


def on_key_directory(ctx: PartyContext, envelope: Envelope) -> Reply:
    me = contributor(ctx)
    current = me.at(ContributorPhase.JOINED, "the key directory")
    own = own_settings(ctx)
    secrets = current.secure()
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
    if mine is None or mine.s_public != public_bytes(secrets.s):
        raise SecAggError("the key directory does not hold this contributor's keys")
    if len(peers) < own.threshold:
        raise SecAggError(f"{len(peers)} participants cannot meet threshold {own.threshold}")
    current.peers = peers
    encrypted = secrets.encrypted_shares(list(peers.values()), own.threshold)
    current.shares = {ctx.name: secrets.open_share(mine, encrypted.pop(ctx.name))}
    me.phase = ContributorPhase.SHARED
    labels = (Label(f"mask_seeds:{ctx.name}", Form.CIPHERTEXT),)
    return Reply(Step.ENCRYPTED_SHARES, labels, json.dumps(encrypted).encode())


def on_consistency_request(ctx: PartyContext, envelope: Envelope) -> Reply:
    """Sign the survivor set U3 with this party's identity key, once a
    round, if it holds this contributor and is a large enough subset of the
    participants it masked its update with."""
    me = contributor(ctx)
    current = me.at(ContributorPhase.UPDATE_SENT, "the consistency request")
    current.secure()
    s = own_settings(ctx)
    meta, _ = unpack(envelope.payload)
    survivors = party_names(meta["survivors"])
    if ctx.name not in survivors or not survivors <= current.masked_with:
        raise SecAggError(
            "the survivors must hold this contributor and only its round's participants"
        )
    if len(survivors) < s.threshold:
        raise SecAggError(f"{len(survivors)} survivors cannot meet threshold {s.threshold}")
    current.signed, me.phase = survivors, ContributorPhase.SIGNED
    signature = ctx.sign(survivors_message(current.context.encode(), survivors))
    body = json.dumps({"signature": signature.hex()}).encode()
    return Reply(Step.CONSISTENCY_SIGNATURE, (control(ctx),), body)


def on_unmask_request(ctx: PartyContext, envelope: Envelope) -> Reply:
    """Reveal, per peer, the share of its self-mask seed (it survived) or of
    its mask key (it dropped), never both, once a round, and only for the
    survivor set this contributor signed once at least t of its members
    signed that same set."""
    me = contributor(ctx)
    current = me.at(ContributorPhase.SIGNED, "the unmask request")
    s = own_settings(ctx)
    meta, _ = unpack(envelope.payload)
    survivors, dropped = party_names(meta["survivors"]), party_names(meta["dropped"])
    if survivors != current.signed:
        raise SecAggError("the survivors differ from the set this contributor signed")
    if dropped != current.masked_with - survivors:
        raise SecAggError("survivors and dropped do not partition the round's participants")
    signers = consistent_signers(
        meta["signatures"], survivors, current.context.encode(), ctx.public_key
    )
    if len(signers) < s.threshold:
        raise SecAggError(
            f"{len(signers)} survivor(s) signed this survivor set, {s.threshold} needed: "
            "the aggregator may have told contributors different survivor sets; no share revealed"
        )
    me.phase = ContributorPhase.UNMASKED
    shares = current.shares
    answer = {
        "b": {v: [shares[v].index, shares[v].b.hex()] for v in sorted(survivors)},
        "s": {v: [shares[v].index, shares[v].s.hex()] for v in sorted(dropped)},
    }
    labels = tuple(Label(f"mask_seeds:{v}", Form.SHARE) for v in sorted(current.masked_with))
    return Reply(Step.UNMASK_SHARES, labels, json.dumps(answer).encode())


def on_update_rejected(ctx: PartyContext, envelope: Envelope) -> None:
    me = contributor(ctx)
    me.prepared("an update rejection")
    meta, _ = unpack(envelope.payload)
    me.rejections.append(str(meta.get("reason", "")))


def on_final_model(ctx: PartyContext, envelope: Envelope) -> Reply | None:
    """Keep the final model and countersign it, once: the weights root this
    contributor computes from the bytes it received, the rounds it joined
    and the run, signed with its party key. The countersignature goes back
    to the aggregator (its model statement carries it) and stays in this
    contributor's store, to be logged in the ledger (attestation's
    commitment part). A contributor that joined no round countersigns
    nothing."""
    me = contributor(ctx)
    me.prepared("the final model")
    if me.final is not None:
        raise OutOfStep("this contributor was sent a final model already, and countersigned it")
    _, body = unpack(envelope.payload)
    me.final = Transformer.from_bytes(body)
    if not me.joined:
        return None
    trainer = envelope.header.sender
    signed = Countersignature(
        contributor=ctx.name,
        trainer=trainer,
        run_id=envelope.header.run_id,
        root=float32_weights_root(me.final.state_dict()).hex(),
        rounds=tuple(me.joined),
        updates_sent=me.updates_sent,
    ).sign(PartySigner.of(ctx))
    ctx.store.put(COUNTERSIGNATURES, Countersignatures(envelopes={ctx.name: signed}))
    labels = (Label(f"weights:{trainer}", Form.DIGEST),)
    return Reply(Step.MODEL_COUNTERSIGNATURE, labels, json.dumps(signed).encode())


def _own_epsilon(s: Settings, updates: int) -> float | None:
    """Epsilon by this contributor's own accountant, over the noised updates
    it sent: the others' noise it counts on is at least the scenario's
    multiplier (dp.share_variance). None without DP."""
    if not s.private:
        return None
    accountant, epsilon = dp.Accountant(s.delta), 0.0
    for _ in range(updates):
        epsilon = accountant.add_round(s.noise_multiplier)
    return round(epsilon, 3)


def evaluate_leakage(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    """Attack the final model as an outsider would, on this contributor's own
    data: exposure of its canaries (and of control canaries it never
    inserted), and membership inference on its notes against fresh ones."""
    s = settings(params)
    me = contributor(ctx)
    me.prepared("evaluating leakage")
    sent = {"updates_sent": me.updates_sent, "own_epsilon": _own_epsilon(s, me.updates_sent)}
    if me.final is None:
        return {"evaluated": False, "why": "no final model received", **sent}
    holdings = _holdings(ctx)
    inserted = [
        leakage.exposure(
            me.final, name, secret, s.exposure_samples, seed=run_seed() * 1_000_003 + i
        )
        for i, (name, secret) in enumerate(_canaries(ctx))
    ]
    control_bits = [
        leakage.exposure(
            me.final,
            *patients.canary_secret(ctx.name, 1000 + i),
            s.exposure_samples,
            run_seed() * 1_000_003 + i,
        )
        for i in range(max(1, holdings.canaries))
    ]
    mia = leakage.membership_inference(
        me.final, me.notes, patients.patient_notes(ctx.name, len(me.notes), "holdout")
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
        **sent,
        FINGERPRINTS: me.fingerprints,
    }

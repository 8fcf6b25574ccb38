"""What a protocol is, for the runtime: rules that say which steps may cross
between which roles with which labels, and the logic of each role.

A protocol folder under `protocols/` builds one `Protocol`. Its rules are
enforced by every receiving boundary; its handlers and actions run inside
the parties.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from typing import Protocol as TypingProtocol

from cryptography.hazmat.primitives.asymmetric import ed25519
from pydantic import BaseModel

from parties.envelope import Envelope
from parties.errors import AirlockError, Refused
from parties.labels import Form, Label, asset_matches
from parties.roles import Holdings, Role


@dataclass(frozen=True)
class LabelRule:
    """One permitted label. `asset` is a glob in which `{sender}` and
    `{receiver}` stand for the party names, e.g. "train:{sender}"."""

    asset: str
    forms: frozenset[Form]

    def permits(self, label: Label, sender: str, receiver: str) -> bool:
        pattern = self.asset.format(sender=sender, receiver=receiver)
        return label.form in self.forms and asset_matches(pattern, label.asset)


def label_rule(asset: str, *forms: Form) -> LabelRule:
    return LabelRule(asset, frozenset(forms))


@dataclass(frozen=True)
class Rule:
    """Step `step` may go from a `sender` role to a `receiver` role if every
    label of the envelope is permitted by one of `labels`. A step with
    `reply_to` may only arrive as the answer to one of those steps (on the
    same call), never unsolicited; a step without it never as an answer.
    `max_payload` (bytes), if set, bounds the step's payload below the run's
    limit: a control message has no business being megabytes long."""

    step: str
    sender: Role
    receiver: Role
    labels: tuple[LabelRule, ...]
    reply_to: tuple[str, ...] = ()
    max_payload: int | None = None

    def permits(self, labels: Iterable[Label], sender: str, receiver: str) -> bool:
        return all(any(r.permits(label, sender, receiver) for r in self.labels) for label in labels)


@dataclass(frozen=True)
class Reply:
    """What a handler sends back on the same call; it is signed, logged and
    admitted by the caller's boundary like any envelope."""

    step: str
    labels: tuple[Label, ...]
    payload: bytes


class PartyContext(TypingProtocol):
    """What role logic may use inside a party."""

    name: str
    protocol: str
    role: Role
    holdings: Holdings
    adversary: str | None
    state: dict[str, Any]
    settings: Mapping[str, Any]
    provision: Any

    def peers(self, role: Role) -> list[str]: ...

    def role_of(self, party: str) -> Role: ...

    def public_key(self, party: str) -> ed25519.Ed25519PublicKey: ...

    def sign(self, message: bytes) -> bytes: ...

    def deliver(
        self, receiver: str, step: str, labels: Iterable[Label], payload: bytes, session: str = ""
    ) -> Envelope | None: ...

    def deliver_unchecked(
        self, receiver: str, step: str, labels: Iterable[Label], payload: bytes, session: str = ""
    ) -> Envelope | None: ...


def sole_peer(ctx: PartyContext, role: Role) -> str:
    """The one party of `role` in the run; a clear error if there is not exactly one."""
    peers = ctx.peers(role)
    if len(peers) != 1:
        raise AirlockError(f"the {ctx.protocol} protocol needs one {role}, found {len(peers)}")
    return peers[0]


def attempt(
    ctx: PartyContext,
    receiver: str,
    step: str,
    labels: Iterable[Label],
    payload: bytes,
    *,
    bypass_own_boundary: bool = True,
) -> dict[str, Any]:
    """An adversarial delivery: a refusal is the expected outcome, not an
    error. By default the adversary controls its party and sends past its
    own boundary, so the receiver's boundary is what stops it (and the bytes
    did reach the receiver); with `bypass_own_boundary=False` it plays a
    misconfigured honest party, whose own boundary withholds it."""
    send = ctx.deliver_unchecked if bypass_own_boundary else ctx.deliver
    try:
        send(receiver, step, labels, payload)
    except Refused as refusal:
        return {"attempted": step, "receiver": receiver, "refused": refusal.reason_name}
    return {"attempted": step, "receiver": receiver, "refused": None}


Handler = Callable[[PartyContext, Envelope], Reply | None]
Action = Callable[[PartyContext, Mapping[str, Any]], dict[str, Any]]
Step = tuple[Role, str]

# An action's result may hold {FINGERPRINTS: {asset: [hex, ...]}}: bytes that
# reveal the asset (a canary, a window of a raw update), reported to the
# evaluation harness; the audit searches every received blob for them.
FINGERPRINTS = "fingerprints"
Report = Callable[[list[dict[str, Any]]], list[str]]
# party -> role, and the stage's params -> party -> what that party alone receives
Provision = Callable[[Mapping[str, Role], Mapping[str, Any]], Mapping[str, Any]]


@dataclass(frozen=True)
class Protocol:
    """A protocol's rules, the handlers of receiving roles and the actions of
    initiating roles. A stage runs, in order, the (role, action) pairs of
    `stage`, then `round_stage` once per round (the stage's `rounds` param),
    then `final_stage`. An adversary is played by a role: either an action
    run after the stage's, or (action None) a change of the role's handlers,
    which read `ctx.adversary`.

    `params`, if set, is the pydantic model a stage's params must fit.
    Parties of a role in `survives_loss_of` may die without ending the run:
    the protocol copes (e.g. contributors dropping out of a round). `report`
    turns the stage's action results into lines of the run's report.
    `provision`, if set, runs in the orchestrator once per run before the
    parties start and hands each party its own setup material (trusted
    setup, e.g. a simulated hardware vendor's endorsement); it reaches the
    party as `ctx.provision` over the control plane, never over the wire."""

    name: str
    rules: tuple[Rule, ...]
    handlers: Mapping[Step, Handler] = field(default_factory=dict)
    actions: Mapping[Step, Action] = field(default_factory=dict)
    stage: tuple[Step, ...] = ()
    round_stage: tuple[Step, ...] = ()
    final_stage: tuple[Step, ...] = ()
    adversaries: Mapping[str, tuple[Role, str | None]] = field(default_factory=dict)
    survives_loss_of: frozenset[Role] = frozenset()
    params: type[BaseModel] | None = None
    report: Report | None = None
    provision: Provision | None = None

    @property
    def steps(self) -> frozenset[str]:
        return frozenset(rule.step for rule in self.rules)

    @property
    def action_names(self) -> frozenset[str]:
        return frozenset(a for _, a in self.stage + self.round_stage + self.final_stage)

    def plan(self, params: Mapping[str, Any]) -> list[tuple[Role, str, int | None]]:
        """(role, action, round or None) in the order a stage runs them."""
        rounds = int(params.get("rounds", 1)) if self.round_stage else 0
        plan: list[tuple[Role, str, int | None]] = [(r, a, None) for r, a in self.stage]
        for number in range(1, rounds + 1):
            plan += [(r, a, number) for r, a in self.round_stage]
        return plan + [(r, a, None) for r, a in self.final_stage]

    def rule_for(self, step: str, sender: Role, receiver: Role) -> Rule | None:
        for rule in self.rules:
            if rule.step == step and rule.sender == sender and rule.receiver == receiver:
                return rule
        return None

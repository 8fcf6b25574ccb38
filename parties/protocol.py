"""What a protocol is, for the runtime: rules that say which steps may cross
between which roles with which labels, and the logic of each role.

A protocol folder under `protocols/` builds one `Protocol`. Its rules are
enforced by every receiving boundary; its handlers and actions run inside
the parties.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from typing import Protocol as TypingProtocol

from cryptography.hazmat.primitives.asymmetric import ed25519
from pydantic import BaseModel

from evidence.claims import OfflineChecks
from parties.envelope import Envelope
from parties.errors import AirlockError, ConfigError, OutOfStep, Refused
from parties.labels import Form, Label, asset_matches
from parties.message import Message
from parties.roles import HOLDINGS, Holdings, Role, holdings_for
from parties.store import Kept, PartyStore


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


class RoleState:
    """Base of a role's typed state in one protocol: a dataclass whose
    `phase` (an enum of the protocol's own) says where the role stands.
    `expect` is the one check that a message or action comes in step."""

    phase: enum.Enum

    def expect(self, *phases: enum.Enum, doing: str) -> None:
        if self.phase not in phases:
            wanted = " or ".join(p.name.lower() for p in phases)
            raise OutOfStep(
                f"{doing} needs the role to be {wanted}, it is {self.phase.name.lower()}"
            )


class PartyContext(TypingProtocol):
    """What role logic may use inside a party."""

    name: str
    protocol: str
    role: Role
    holdings: Holdings
    adversary: str | None
    state: Any  # the role's RoleState when the protocol declares one, else a dict
    settings: Mapping[str, Any]
    provision: Any
    store: PartyStore

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

    def publish(self, path: str, data: bytes) -> None: ...


S = TypeVar("S", bound=RoleState)


def state_of(ctx: PartyContext, kind: type[S]) -> S:
    """The role's typed state, as declared in `Protocol.states`."""
    if not isinstance(ctx.state, kind):
        raise OutOfStep(f"a {ctx.role} has no {kind.__name__} in {ctx.protocol}")
    return ctx.state


H = TypeVar("H", bound=Holdings)


def holdings_as(ctx: PartyContext, kind: type[H]) -> H:
    """The party's holdings as this protocol declares them (`Protocol.holdings`)."""
    if not isinstance(ctx.holdings, kind):
        raise ConfigError(f"{ctx.protocol} declares no {kind.__name__} for a {ctx.role}")
    return ctx.holdings


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


@dataclass(frozen=True)
class Provisioned:
    """What a protocol's trusted setup hands out: `parties`, party -> what
    that party alone receives; `public`, what the setup publishes for
    everyone (JSON; the run's manifest keeps it under `provisioned`, by
    protocol, for `airlock verify`), e.g. a simulated vendor's root
    certificate."""

    parties: Mapping[str, Any]
    public: Mapping[str, Any] = field(default_factory=dict)


class ProvisionRequest(TypingProtocol):
    """What a party makes for its protocol's trusted setup in its own
    process (e.g. a simulated chip's device key): only `public` leaves it;
    `complete` turns what the setup sends back into the party's provision."""

    public: bytes

    def complete(self, material: Any) -> Any: ...


# party -> role, the stage's params and party -> the public part of its
# request -> what each party receives, and what is published
Provision = Callable[[Mapping[str, Role], Mapping[str, Any], Mapping[str, bytes]], Provisioned]


@dataclass(frozen=True)
class Adversary:
    """A misbehaviour a protocol knows, played by a party of `role`, kept
    apart from the honest code. `handlers` (by step) and `actions` (by
    name) replace the role's honest ones for the adversarial party only;
    `after_stage`, if set, names an action run once after the stage's plan
    (an adversary's own, or an honest one). `state`, if set, replaces the
    role's state for that party: a subclass of the honest one, so the honest
    handlers it keeps still find theirs, with what the adversary remembers."""

    role: Role
    handlers: Mapping[str, Handler] = field(default_factory=dict)
    actions: Mapping[str, Action] = field(default_factory=dict)
    after_stage: str | None = None
    state: Callable[[], RoleState] | None = None


@dataclass(frozen=True)
class Artifacts:
    """What a stage needs its parties to keep from earlier stages, and what
    it leaves in their stores for later ones: (role, kept) pairs, each
    meaning every party of that role."""

    needs: tuple[tuple[Role, Kept[Any]], ...] = ()
    makes: tuple[tuple[Role, Kept[Any]], ...] = ()


# a stage's params and the part it runs (None: the whole stage) -> its artifacts
ArtifactsOf = Callable[[Mapping[str, Any], str | None], Artifacts]


@dataclass(frozen=True)
class Protocol:
    """A protocol's rules, the handlers of receiving roles and the actions of
    initiating roles. A stage runs, in order, the (role, action) pairs of
    `stage`, then `round_stage` once per round (the stage's `rounds` param),
    then `final_stage`; or, when it names one of `parts`, only that part's
    pairs, so that other protocols' stages can run between the parts (the
    parts share the parties' state of this protocol, and its params).
    `artifacts`, if set, says what a stage needs kept by earlier stages and
    what it keeps for later ones; the scenario is refused when a stage needs
    what no earlier stage makes. `adversaries` are the misbehaviours it knows
    (`Adversary`). `messages` defines each step's payload (parties.message),
    one for every step its rules name. `states` gives each role's typed state (a RoleState
    factory); a role without one gets a dict.

    `params`, if set, is the pydantic model a stage's params must fit;
    `holdings` the holdings model of each role that holds something for
    this protocol (a subclass of the role's own model in parties.roles).
    Parties of a role in `survives_loss_of` may die without ending the run:
    the protocol copes (e.g. contributors dropping out of a round). `report`
    turns the stage's action results into lines of the run's report.
    `provision`, if set, runs in the orchestrator once per run before the
    parties start and hands each party its own setup material (trusted
    setup, e.g. a simulated hardware vendor's endorsement) from the public
    parts of what each party made for it in its own process
    (`provision_request`: a secret stays in the party); it reaches the
    party as `ctx.provision` over the control plane, never over the wire;
    what it publishes (`Provisioned.public`) goes in the run's manifest.
    `verify`, if set, is what `airlock verify` (and `airlock bom`) check of
    a finished run of this protocol, from its logs alone."""

    name: str
    rules: tuple[Rule, ...]
    messages: Mapping[str, Message] = field(default_factory=dict)
    handlers: Mapping[Step, Handler] = field(default_factory=dict)
    actions: Mapping[Step, Action] = field(default_factory=dict)
    stage: tuple[Step, ...] = ()
    round_stage: tuple[Step, ...] = ()
    final_stage: tuple[Step, ...] = ()
    parts: Mapping[str, tuple[Step, ...]] = field(default_factory=dict)
    artifacts: ArtifactsOf | None = None
    adversaries: Mapping[str, Adversary] = field(default_factory=dict)
    states: Mapping[Role, Callable[[], RoleState]] = field(default_factory=dict)
    holdings: Mapping[Role, type[Holdings]] = field(default_factory=dict)
    survives_loss_of: frozenset[Role] = frozenset()
    params: type[BaseModel] | None = None
    report: Report | None = None
    provision: Provision | None = None
    provision_request: Callable[[Role], ProvisionRequest | None] | None = None
    verify: OfflineChecks | None = None

    def __post_init__(self) -> None:
        """A handler for a step no rule names, or an adversary's after-stage
        action that exists nowhere, is a mistake in the protocol's code."""
        steps = self.steps
        if set(self.messages) != steps:
            raise ConfigError(
                f"{self.name}: steps without a message definition "
                f"{sorted(steps - set(self.messages))}, definitions without a step "
                f"{sorted(set(self.messages) - steps)}"
            )
        for role, schema in self.holdings.items():
            if not issubclass(schema, HOLDINGS[role]):
                raise ConfigError(f"{self.name}: holdings of {role} must extend its role's model")
        for _role, step in self.handlers:
            if step not in steps:
                raise ConfigError(f"{self.name}: handler for {step!r}, which no rule names")
        for part, pairs in self.parts.items():
            for pair in pairs:
                if pair not in self.actions:
                    raise ConfigError(f"{self.name}: part {part} runs unknown action {pair[1]!r}")
        for name, adversary in self.adversaries.items():
            for step in adversary.handlers:
                if step not in steps:
                    raise ConfigError(f"{self.name}: adversary {name} handles unknown {step!r}")
            action = adversary.after_stage
            if (
                action is not None
                and action not in adversary.actions
                and ((adversary.role, action) not in self.actions)
            ):
                raise ConfigError(f"{self.name}: adversary {name} runs unknown action {action!r}")

    def holdings_model(self, role: Role) -> type[Holdings]:
        return self.holdings.get(role, HOLDINGS[role])

    def new_state(self, role: Role, adversary: str | None) -> Any:
        """A party's fresh state: the adversary's, if it plays one with its own here."""
        played = self.adversaries.get(adversary) if adversary else None
        if played is not None and played.role == role and played.state is not None:
            return played.state()
        return self.states.get(role, dict)()

    def handler(self, role: Role, step: str, adversary: str | None) -> Handler | None:
        """The handler `role` runs for `step`: the adversary's, if it plays one here."""
        played = self.adversaries.get(adversary) if adversary else None
        if played is not None and played.role == role and step in played.handlers:
            return played.handlers[step]
        return self.handlers.get((role, step))

    def action(self, role: Role, name: str, adversary: str | None) -> Action | None:
        played = self.adversaries.get(adversary) if adversary else None
        if played is not None and played.role == role and name in played.actions:
            return played.actions[name]
        return self.actions.get((role, name))

    @property
    def steps(self) -> frozenset[str]:
        return frozenset(rule.step for rule in self.rules)

    @property
    def action_names(self) -> frozenset[str]:
        """Every action a stage of this protocol may run, adversaries' included."""
        planned = {a for _, a in self.stage + self.round_stage + self.final_stage}
        planned |= {a for steps in self.parts.values() for _, a in steps}
        return frozenset(
            planned | {a.after_stage for a in self.adversaries.values() if a.after_stage}
        )

    def plan(
        self, params: Mapping[str, Any], part: str | None = None
    ) -> list[tuple[Role, str, int | None]]:
        """(role, action, round or None) in the order a stage runs them."""
        if part is not None:
            return [(r, a, None) for r, a in self.parts[part]]
        rounds = int(params.get("rounds", 1)) if self.round_stage else 0
        plan: list[tuple[Role, str, int | None]] = [(r, a, None) for r, a in self.stage]
        for number in range(1, rounds + 1):
            plan += [(r, a, number) for r, a in self.round_stage]
        return plan + [(r, a, None) for r, a in self.final_stage]

    def artifacts_of(self, params: Mapping[str, Any], part: str | None = None) -> Artifacts:
        return self.artifacts(params, part) if self.artifacts is not None else Artifacts()

    def rule_for(self, step: str, sender: Role, receiver: Role) -> Rule | None:
        for rule in self.rules:
            if rule.step == step and rule.sender == sender and rule.receiver == receiver:
                return rule
        return None


def party_holdings(
    role: Role, values: Mapping[str, Any], where: str, protocols: Mapping[str, Protocol]
) -> dict[str, Holdings]:
    """A party's holdings as each of `protocols` declares them for its role."""
    schemas = {name: protocol.holdings_model(role) for name, protocol in protocols.items()}
    return holdings_for(role, values, where, schemas)

"""A run's deliveries: each envelope once, put together from the entries both
sides logged (the sender's `sending` and its outcome, the receiver's
admission or refusal), in time order, with the stage and round it belongs
to; and the arrows the sequence diagram draws for them."""

from __future__ import annotations

import re
from collections import Counter, defaultdict, deque
from dataclasses import dataclass
from typing import Any

from orchestrator.scenario import StageSpec
from parties.log import Direction, Outcome

# a step that crosses the boundary this often in one run (CrypTen's
# messages, Beaver triples) is drawn in bursts: one arrow per sender,
# receiver and step for a stretch of consecutive such deliveries
CHATTY = 20
# sessions that name a round (the federated protocol's "round-2")
ROUND_RE = re.compile(r"round-(\d+)")
BLOCKED = frozenset({Outcome.REFUSED, Outcome.WITHHELD})
IN_FLIGHT = "in flight"  # a sender that died after logging `sending` left nothing else


@dataclass
class Delivery:
    """One envelope, with every log entry about it as (log owner, entry)."""

    sender: str
    receiver: str
    entries: list[tuple[str, dict[str, Any]]]
    stage: str = ""
    round: int | None = None

    def field(self, name: str, default: Any = "") -> Any:
        """A header field, from the first entry that has it (an envelope
        refused before its header parsed has none)."""
        for _, entry in self.entries:
            if name in entry:
                return entry[name]
        return default

    @property
    def time(self) -> str:
        return min(str(entry.get("time", "")) for _, entry in self.entries)

    @property
    def outcome(self) -> str:
        """What happened to it: the receiver's word (admitted, refused), else
        the sender's (withheld, undelivered, refused; delivered reads as
        admitted; replied, when the caller's log says nothing)."""
        incoming = [e for _, e in self.entries if e.get("direction") == Direction.IN]
        if incoming:
            return str(incoming[-1].get("outcome", ""))
        settled = [e for _, e in self.entries if e.get("outcome") != Outcome.SENDING]
        if not settled:
            return IN_FLIGHT
        outcome = str(settled[-1].get("outcome", ""))
        return str(Outcome.ADMITTED) if outcome == Outcome.DELIVERED else outcome

    @property
    def blocked(self) -> bool:
        """Refused at the receiving boundary or withheld by the sender's own."""
        return self.outcome in BLOCKED

    @property
    def admission(self) -> dict[str, Any] | None:
        """The receiver's `admitted` entry: the one that kept the payload."""
        for party, entry in self.entries:
            admitted = (entry.get("direction"), entry.get("outcome")) == (
                Direction.IN,
                Outcome.ADMITTED,
            )
            if party == self.receiver and admitted:
                return entry
        return None

    @property
    def reason(self) -> str:
        for _, entry in self.entries:
            if entry.get("refusal"):
                return f"{entry['refusal']}: {entry.get('detail', '')}"
        return ""


def pair_deliveries(logs: dict[str, list[dict[str, Any]]]) -> list[Delivery]:
    """Every delivery of the run, in time order. Entries are matched by
    header digest, first come first matched (a replayed header is two
    deliveries)."""
    found: list[Delivery] = []
    # (receiver, header digest) -> sent, not yet matched with the receiver's entry
    awaiting: dict[tuple[str, str], deque[Delivery]] = defaultdict(deque)
    for party, entries in logs.items():
        # header digest -> logged `sending`, whose outcome is a later entry
        leaving: dict[str, deque[Delivery]] = defaultdict(deque)
        for entry in entries:
            if entry.get("direction") != Direction.OUT:
                continue
            digest, outcome = entry.get("header_sha256", ""), entry.get("outcome")
            if outcome != Outcome.SENDING and leaving[digest]:
                leaving[digest].popleft().entries.append((party, entry))
                continue
            delivery = Delivery(party, str(entry.get("peer", "")), [(party, entry)])
            found.append(delivery)
            if outcome == Outcome.SENDING:
                leaving[digest].append(delivery)
            if outcome != Outcome.WITHHELD and digest:
                awaiting[(delivery.receiver, digest)].append(delivery)
    for party, entries in logs.items():
        for entry in entries:
            if entry.get("direction") != Direction.IN:
                continue
            sent = awaiting.get((party, entry.get("header_sha256", "")))
            if sent:
                sent.popleft().entries.append((party, entry))
            else:  # its sender logged nothing we know of (or no header parsed)
                found.append(Delivery(str(entry.get("peer", "")), party, [(party, entry)]))
    found.sort(key=lambda d: d.time)
    return found


def assign_stages(deliveries: list[Delivery], stages: list[StageSpec]) -> None:
    """Set each delivery's stage and round. Logs name protocols, not stages:
    stages run one after another, so walking the deliveries in time order,
    a delivery of another protocol than the current stage's moves on to the
    next stage of its protocol (two adjacent stages of one protocol cannot
    be told apart; their deliveries go to the first)."""
    current = 0
    for delivery in deliveries:
        protocol = delivery.field("protocol")
        if stages[current].protocol != protocol:
            later = [i for i in range(current + 1, len(stages)) if stages[i].protocol == protocol]
            current = later[0] if later else current
        delivery.stage = stages[current].name
        match = ROUND_RE.fullmatch(str(delivery.field("session")))
        delivery.round = int(match.group(1)) if match else None


@dataclass
class Arrow:
    """What the sequence diagram draws: one delivery, or a burst of chatty ones."""

    number: int
    deliveries: list[Delivery]

    @property
    def first(self) -> Delivery:
        return self.deliveries[0]

    @property
    def size(self) -> int:
        return sum(int(d.field("size", 0) or 0) for d in self.deliveries)


def chatty_steps(deliveries: list[Delivery]) -> set[tuple[str, str]]:
    """(protocol, step) of each step that crosses at least CHATTY times."""
    steps = Counter((str(d.field("protocol")), str(d.field("step"))) for d in deliveries)
    return {key for key, count in steps.items() if count >= CHATTY}


def arrows(deliveries: list[Delivery]) -> list[Arrow]:
    """The diagram's arrows in time order. A stretch of consecutive chatty
    deliveries (none blocked) becomes one arrow per sender, receiver and
    step, at the place of its first; anything else is an arrow of its own
    and ends the stretch."""
    chatty = chatty_steps(deliveries)
    drawn: list[Arrow] = []
    burst: dict[tuple[Any, ...], Arrow] = {}
    for delivery in deliveries:
        protocol, step = delivery.field("protocol"), delivery.field("step")
        if (protocol, step) not in chatty or delivery.blocked:
            burst = {}
            drawn.append(Arrow(len(drawn), [delivery]))
            continue
        key: tuple[Any, ...] = (
            delivery.sender,
            delivery.receiver,
            protocol,
            step,
            delivery.outcome,
        )
        key += (delivery.stage, delivery.round)
        if key in burst:
            burst[key].deliveries.append(delivery)
        else:
            burst[key] = Arrow(len(drawn), [delivery])
            drawn.append(burst[key])
    return drawn

"""A run's timeline, for trace viewers: `airlock trace`.

Read from the run directory alone: the manifest's actions (the orchestrator
records when it called each and when the last party answered) and every
party's visibility log. Two sides of one envelope are tied by the SHA-256 of
its signed header, which the sender's and the receiver's entries both carry.

What the logs record, and so what the timeline shows:

- a **send** lasts from the sender's `sending` entry to its `delivered`,
  `refused` or `undelivered` entry (a sender killed mid-send has only the
  first: its send lasts 1 µs);
- a **handler** (the receiver's role code for an admitted request) starts at
  the receiver's `admitted` entry. No entry marks where it ends, so its end is
  the receiver's `replied` entry for its reply when it replied, else the
  sender's `delivered` entry (the sender hears back once the handler
  returned: a little late, and by the sender's clock), else unknown (1 µs);
- a reply, a refusal and a withheld envelope are instants (1 µs);
- an **action** lasts from the orchestrator's call to the last answer of the
  parties it called at once. Runs made before the manifest recorded those
  times have actions without a time; they are counted, not drawn.

The logs are read, not verified: `airlock audit` verifies them.
"""

from __future__ import annotations

import datetime
import enum
import itertools
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parties.errors import AirlockError
from parties.log import Direction, LogProblem, Outcome, labels_text, read_entries

PARTIES_DIR = "parties"
MANIFEST = "manifest.json"
INSTANT_US = 1  # what a one-entry event lasts: viewers drop zero-length slices
BLOCKED = frozenset({Outcome.REFUSED, Outcome.WITHHELD, Outcome.UNDELIVERED})


def _micros(text: Any) -> int | None:
    """Microseconds since the epoch of a log or manifest time (ISO 8601)."""
    try:
        moment = datetime.datetime.fromisoformat(str(text))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    delta = moment - datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _number(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class Entry:
    """One visibility-log entry, typed (header fields empty when the
    receiver refused before the header parsed)."""

    party: str
    index: int
    time: int  # µs since the epoch
    direction: str
    outcome: str
    peer: str
    sender: str = ""
    receiver: str = ""
    protocol: str = ""
    step: str = ""
    sequence: int | None = None
    session: str = ""
    labels: tuple[str, ...] = ()
    size: int | None = None
    payload_sha256: str = ""
    header_sha256: str = ""
    refusal: str = ""
    detail: str = ""

    @classmethod
    def parse(cls, party: str, raw: dict[str, Any]) -> Entry | None:
        """None for a line that did not parse or has no time."""
        time = _micros(raw.get("time"))
        if raw.get("unparsed") or time is None:
            return None
        labels = raw.get("labels")
        if not isinstance(labels, list):
            labels = []
        return cls(
            party=party,
            index=raw["index"] if isinstance(raw.get("index"), int) else -1,
            time=time,
            direction=str(raw.get("direction", "")),
            outcome=str(raw.get("outcome", "")),
            peer=str(raw.get("peer", "")),
            sender=str(raw.get("sender", "")),
            receiver=str(raw.get("receiver", "")),
            protocol=str(raw.get("protocol", "")),
            step=str(raw.get("step", "")),
            sequence=_number(raw.get("sequence")),
            session=str(raw.get("session", "")),
            labels=tuple(labels_text([label]) for label in labels if isinstance(label, dict)),
            size=_number(raw.get("size")),
            payload_sha256=str(raw.get("payload_sha256", "")),
            header_sha256=str(raw.get("header_sha256", "")),
            refusal=str(raw.get("refusal", "")),
            detail=str(raw.get("detail", "")),
        )

    @property
    def where(self) -> str:
        return f"{self.party} entry {self.index}"


@dataclass
class Delivery:
    """One envelope: what its sender logged and what its receiver logged."""

    number: int  # ties the two sides in a viewer (flow id)
    sent: Entry | None = None  # the sender's `sending`, `replied` or `withheld`
    result: Entry | None = None  # the sender's `delivered`, `refused` or `undelivered`
    received: Entry | None = None  # the receiver's `admitted` or `refused`
    handled_until: int | None = None  # µs: end of the receiver's handler, if known

    @property
    def header(self) -> Entry:
        """An entry that carries the envelope's header fields."""
        for entry in (self.sent, self.received, self.result):
            if entry is not None and entry.sender:
                return entry
        entry = self.sent or self.received
        assert entry is not None  # a delivery is made from at least one entry
        return entry

    @property
    def crossed(self) -> bool:
        """Both sides logged it: a viewer draws an arrow between them."""
        return self.sent is not None and self.received is not None

    @property
    def is_reply(self) -> bool:
        return self.sent is not None and self.sent.outcome == Outcome.REPLIED

    @property
    def outcome(self) -> str:
        """How it ended: the receiver's word when it logged one, else the sender's."""
        last = self.received or self.result or self.sent
        assert last is not None
        return last.outcome

    @property
    def blocked(self) -> bool:
        """Refused by the receiver, withheld by the sender, or lost on the way."""
        return self.outcome in BLOCKED

    @property
    def refusal(self) -> tuple[str, str]:
        """(reason, detail) of a refusal on either side, or why it was
        undelivered (a detail with no reason), else empty."""
        for entry in (self.received, self.result, self.sent):
            if entry is not None and (entry.refusal or entry.detail):
                return entry.refusal, entry.detail
        return "", ""

    def attributes(self) -> dict[str, Any]:
        """The envelope's fields, for a viewer's details pane."""
        header = self.header
        reason, detail = self.refusal
        fields: dict[str, Any] = {
            "sender": header.sender,
            "receiver": header.receiver,
            "protocol": header.protocol,
            "step": header.step,
            "sequence": header.sequence,
            "session": header.session,
            "labels": list(header.labels),
            "size": header.size,
            "payload_sha256": header.payload_sha256,
            "header_sha256": header.header_sha256,
            "outcome": self.outcome,
            "refusal": reason,
            "refusal_detail": detail,
            "reply": self.is_reply,
            "sender_entry": self.sent.where if self.sent else "",
            "receiver_entry": self.received.where if self.received else "",
        }
        return {key: value for key, value in fields.items() if value not in (None, "")}


@dataclass(frozen=True)
class Action:
    party: str
    stage: str
    protocol: str
    action: str
    round: int | None
    adversarial: bool
    start: int
    end: int

    @property
    def label(self) -> str:
        return self.action + (f" (round {self.round})" if self.round is not None else "")


class Kind(enum.IntEnum):
    """What a slice shows; the order breaks ties when slices start together
    (the outer one first)."""

    ACTION = 0
    HANDLE = 1  # the receiver's handler for an admitted request
    SEND = 2  # a request, from `sending` to its outcome
    REPLY = 3  # a reply leaving its handler
    WITHHELD = 4  # stopped by the sender's own boundary
    RECEIVE = 5  # a reply admitted by its requester
    REFUSED = 6  # refused by the receiver's boundary

    @property
    def sending(self) -> bool:
        return self in (Kind.SEND, Kind.REPLY, Kind.WITHHELD)


@dataclass(eq=False)
class Slice:
    """A span of time on one party: an action or one side of a delivery."""

    party: str
    kind: Kind
    name: str
    start: int
    end: int
    action: Action | None = None
    delivery: Delivery | None = None
    track: int = 0  # lane within the party, so that slices on one lane nest
    parent: Slice | None = None  # the slice of this party's lane it sits in

    @property
    def category(self) -> str:
        if self.action is not None:
            return "action,adversarial" if self.action.adversarial else "action"
        assert self.delivery is not None
        blocked = self.delivery.blocked
        return f"envelope,{self.delivery.outcome}" if blocked else "envelope"

    @property
    def blocked(self) -> bool:
        return self.delivery is not None and self.delivery.blocked

    def enclosing_work(self) -> Slice | None:
        """The action or handler of this party that this slice happened in."""
        parent = self.parent
        while parent is not None and parent.kind not in (Kind.ACTION, Kind.HANDLE):
            parent = parent.parent
        return parent


@dataclass
class Timeline:
    run_id: str
    scenario: str
    parties: list[str]
    roles: dict[str, str]
    actions: list[Action]
    untimed_actions: int
    deliveries: list[Delivery]
    slices: list[Slice] = field(default_factory=list)
    problems: list[LogProblem] = field(default_factory=list)

    @property
    def origin(self) -> int:
        """The earliest time in the timeline (µs since the epoch)."""
        return min((s.start for s in self.slices), default=0)

    @property
    def end(self) -> int:
        return max((s.end for s in self.slices), default=0)


def load_timeline(run_dir: Path) -> Timeline:
    """Read a run directory into a timeline: AirlockError if it is not one."""
    try:
        manifest = json.loads((run_dir / MANIFEST).read_text())
    except FileNotFoundError:
        raise AirlockError(f"{run_dir} is not a run directory: {MANIFEST} is missing") from None
    except (OSError, ValueError) as exc:
        raise AirlockError(f"{run_dir}/{MANIFEST} cannot be read: {exc}") from None
    root = run_dir / PARTIES_DIR
    if not isinstance(manifest, dict) or not root.is_dir():
        raise AirlockError(f"{run_dir} is not a run directory: no {PARTIES_DIR}/ folder")
    declared: dict[str, Any] = manifest.get("parties") or {}
    logged = sorted(p.name for p in root.iterdir() if p.is_dir())
    parties = [*declared, *(name for name in logged if name not in declared)]
    entries: dict[str, list[Entry]] = {}
    problems: list[LogProblem] = []
    for name in logged:
        raw, found = read_entries(root / name, name)
        problems += found
        entries[name] = [e for e in (Entry.parse(name, r) for r in raw) if e is not None]
    actions, untimed = _actions(manifest.get("actions") or [])
    timeline = Timeline(
        run_id=str(manifest.get("run_id", "")),
        scenario=str(manifest.get("scenario", "")),
        parties=parties,
        roles={name: str(spec.get("role", "")) for name, spec in declared.items()},
        actions=actions,
        untimed_actions=untimed,
        deliveries=_deliveries(entries),
        problems=problems,
    )
    timeline.slices = _slices(timeline)
    _pack(timeline.slices)
    return timeline


def _actions(records: list[dict[str, Any]]) -> tuple[list[Action], int]:
    actions, untimed = [], 0
    for record in records:
        start, end = _micros(record.get("started")), _micros(record.get("finished"))
        if start is None or end is None:
            untimed += 1
            continue
        actions.append(
            Action(
                party=str(record.get("party", "")),
                stage=str(record.get("stage", "")),
                protocol=str(record.get("protocol", "")),
                action=str(record.get("action", "")),
                round=record.get("round"),
                adversarial=bool(record.get("adversarial")),
                start=start,
                end=max(end, start + INSTANT_US),
            )
        )
    return actions, untimed


def _deliveries(entries: dict[str, list[Entry]]) -> list[Delivery]:
    """Every envelope the logs mention, each side tied to the other by the
    header digest (unique: it covers sender, receiver, run and sequence)."""
    deliveries: list[Delivery] = []
    by_header: dict[str, Delivery] = {}
    numbers = itertools.count(1)
    # senders first, so that each receiver's entry finds its envelope
    for party_entries in entries.values():
        for entry in party_entries:
            if entry.direction != Direction.OUT:
                continue
            known = by_header.get(entry.header_sha256) if entry.header_sha256 else None
            if entry.outcome in (Outcome.SENDING, Outcome.REPLIED, Outcome.WITHHELD):
                delivery = Delivery(next(numbers), sent=entry)
                deliveries.append(delivery)
                if entry.header_sha256:
                    by_header[entry.header_sha256] = delivery
            elif known is not None and known.result is None:
                known.result = entry
            else:  # an outcome whose `sending` is missing (a log cut short)
                deliveries.append(Delivery(next(numbers), sent=None, result=entry))
    for party_entries in entries.values():
        for entry in party_entries:
            if entry.direction != Direction.IN:
                continue
            known = by_header.get(entry.header_sha256) if entry.header_sha256 else None
            if known is not None and known.received is None:
                known.received = entry
            else:  # no sender entry (a header that never parsed, a replay)
                deliveries.append(Delivery(next(numbers), received=entry))
    _handler_ends(deliveries)
    return deliveries


def _handler_ends(deliveries: list[Delivery]) -> None:
    """When each admitted request's handler ended (see the module docstring):
    its reply is the receiver's first unclaimed `replied` entry to the same
    peer in the same protocol and session, logged after the request was
    admitted and before the sender heard back."""
    replies: dict[tuple[str, str, str, str], list[Delivery]] = defaultdict(list)
    for delivery in sorted(deliveries, key=lambda d: d.sent.time if d.sent else 0):
        if delivery.is_reply and delivery.sent is not None:
            sent = delivery.sent
            replies[(sent.party, sent.receiver, sent.protocol, sent.session)].append(delivery)
    requests = [d for d in deliveries if d.received is not None and not d.is_reply]
    for request in sorted(requests, key=lambda d: d.received.time if d.received else 0):
        received = request.received
        assert received is not None
        if received.outcome != Outcome.ADMITTED:
            continue
        heard_back = request.result.time if request.result else None
        key = (received.party, received.sender, received.protocol, received.session)
        waiting = replies.get(key, [])
        for reply in waiting:
            assert reply.sent is not None
            if reply.sent.time < received.time:
                continue
            if heard_back is None or reply.sent.time <= heard_back:
                waiting.remove(reply)
                request.handled_until = reply.sent.time + INSTANT_US
            break
        if request.handled_until is None and heard_back is not None:
            request.handled_until = heard_back


def _slices(timeline: Timeline) -> list[Slice]:
    slices = [
        Slice(a.party, Kind.ACTION, a.label, a.start, a.end, action=a) for a in timeline.actions
    ]
    for delivery in timeline.deliveries:
        for side in (_sender_side(delivery), _receiver_side(delivery)):
            if side is not None:
                slices.append(side)
    return slices


SENDER_KINDS: dict[str, Kind] = {Outcome.REPLIED: Kind.REPLY, Outcome.WITHHELD: Kind.WITHHELD}
VERBS = {Kind.SEND: "send", Kind.REPLY: "reply", Kind.WITHHELD: "withheld"}


def _sender_side(d: Delivery) -> Slice | None:
    """A send lasts until its outcome; a reply and a withheld envelope are
    instants, and so is an outcome whose `sending` entry is missing."""
    entry = d.sent or d.result
    if entry is None:
        return None
    kind = SENDER_KINDS.get(entry.outcome, Kind.SEND)
    end = d.result.time if d.sent is not None and d.result is not None else entry.time
    name = f"{VERBS[kind]} {d.header.step} → {d.header.receiver}"
    return _slice(entry.party, kind, name, entry.time, end, d)


def _receiver_side(d: Delivery) -> Slice | None:
    """A refusal and an admitted reply are instants; a handler lasts until
    its end, where the logs tell it."""
    received = d.received
    if received is None:
        return None
    step, sender = d.header.step or "(no header)", d.header.sender or received.peer
    at = received.time
    if received.outcome != Outcome.ADMITTED:
        name = f"refused {step} ← {sender}: {received.refusal}"
        return _slice(received.party, Kind.REFUSED, name, at, at, d)
    if d.is_reply:
        return _slice(received.party, Kind.RECEIVE, f"receive {step} ← {sender}", at, at, d)
    end = d.handled_until or at
    return _slice(received.party, Kind.HANDLE, f"handle {step} ← {sender}", at, end, d)


def _slice(party: str, kind: Kind, name: str, start: int, end: int, delivery: Delivery) -> Slice:
    return Slice(party, kind, name, start, max(end, start + INSTANT_US), delivery=delivery)


def _pack(slices: list[Slice]) -> None:
    """Give each slice a lane of its party such that slices on one lane
    nest (as trace viewers require of one thread): a slice goes on the first
    lane where it fits inside the innermost slice still open, or where
    nothing is open. Concurrent handlers get lanes of their own."""
    by_party: dict[str, list[Slice]] = defaultdict(list)
    for piece in slices:
        by_party[piece.party].append(piece)
    for mine in by_party.values():
        lanes: list[list[Slice]] = []  # per lane, the slices open (outermost first)
        for piece in sorted(mine, key=lambda s: (s.start, -s.end, s.kind)):
            piece.track = _lane_for(piece, lanes)
            open_slices = lanes[piece.track]
            piece.parent = open_slices[-1] if open_slices else None
            open_slices.append(piece)


def _lane_for(piece: Slice, lanes: list[list[Slice]]) -> int:
    """The first lane `piece` nests in (a new one if none), closing on each
    lane the slices that ended before it starts."""
    for number, open_slices in enumerate(lanes):
        while open_slices and open_slices[-1].end <= piece.start:
            open_slices.pop()
        if not open_slices or piece.end <= open_slices[-1].end:
            return number
    lanes.append([])
    return len(lanes) - 1

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

import enum
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.trace.records import (
    INSTANT_US,
    Action,
    Delivery,
    Entry,
    actions_of,
    deliveries_of,
)
from parties.errors import AirlockError
from parties.log import Outcome
from parties.log_check import LogProblem, read_entries

PARTIES_DIR = "parties"
MANIFEST = "manifest.json"


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
    actions, untimed = actions_of(manifest.get("actions") or [])
    timeline = Timeline(
        run_id=str(manifest.get("run_id", "")),
        scenario=str(manifest.get("scenario", "")),
        parties=parties,
        roles={name: str(spec.get("role", "")) for name, spec in declared.items()},
        actions=actions,
        untimed_actions=untimed,
        deliveries=deliveries_of(entries),
        problems=problems,
    )
    timeline.slices = _slices(timeline)
    _pack(timeline.slices)
    return timeline


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

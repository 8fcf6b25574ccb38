"""The log entries and manifest records of a run, typed and paired: each
envelope's two sides (tied by the SHA-256 of its signed header, which the
sender's and the receiver's entries both carry) and each timed action.
`timeline.py` turns them into slices for trace viewers."""

from __future__ import annotations

import datetime
import itertools
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from parties.log import Direction, Outcome, labels_text

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


def actions_of(records: list[dict[str, Any]]) -> tuple[list[Action], int]:
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


def deliveries_of(entries: dict[str, list[Entry]]) -> list[Delivery]:
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

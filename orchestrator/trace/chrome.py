"""The timeline in the Trace Event Format (JSON), which Perfetto
(ui.perfetto.dev) and chrome://tracing open.

A process per party, named after it; its slices ("X" complete events) on as
many lanes ("threads") as concurrent handlers need; an arrow per envelope
that both sides logged, from the sender's slice to the receiver's (flow
events bound to the slices themselves: "bind_id" with "flow_out" on the
sender's, "flow_in" on the receiver's). Refused and withheld envelopes carry
the category "envelope,refused" / "envelope,withheld" and the reason in their
args. Times are microseconds from the timeline's first event.
"""

from __future__ import annotations

from typing import Any

from orchestrator.trace.timeline import Slice, Timeline


def chrome_trace(timeline: Timeline) -> dict[str, Any]:
    """The JSON object of a Trace Event Format file (`traceEvents` and metadata)."""
    pids = {party: number for number, party in enumerate(timeline.parties, 1)}
    for piece in timeline.slices:  # a log whose party the manifest does not name
        pids.setdefault(piece.party, len(pids) + 1)
    events: list[dict[str, Any]] = []
    for party, pid in pids.items():
        events.append(_metadata("process_name", pid, name=party))
        events.append(_metadata("process_sort_index", pid, sort_index=pid))
        if timeline.roles.get(party):
            events.append(_metadata("process_labels", pid, labels=timeline.roles[party]))
    lanes = sorted({(pids[s.party], s.track) for s in timeline.slices})
    for pid, track in lanes:
        events.append(_metadata("thread_name", pid, tid=track + 1, name=f"lane {track + 1}"))
    origin = timeline.origin
    for piece in sorted(timeline.slices, key=lambda s: (s.start, -s.end, s.kind)):
        events.append(_complete(piece, pids[piece.party], origin))
    return {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {
            "run_id": timeline.run_id,
            "scenario": timeline.scenario,
            "origin_unix_us": origin,
            "actions_without_times": timeline.untimed_actions,
        },
    }


def _metadata(event: str, pid: int, tid: int = 0, **args: Any) -> dict[str, Any]:
    return {"ph": "M", "name": event, "pid": pid, "tid": tid, "args": args}


def _complete(piece: Slice, pid: int, origin: int) -> dict[str, Any]:
    event: dict[str, Any] = {
        "ph": "X",
        "name": piece.name,
        "cat": piece.category,
        "ts": piece.start - origin,
        "dur": piece.end - piece.start,
        "pid": pid,
        "tid": piece.track + 1,
    }
    if piece.action is not None:
        action = piece.action
        event["args"] = {
            "stage": action.stage,
            "protocol": action.protocol,
            "round": action.round,
            "adversarial": action.adversarial,
        }
    elif piece.delivery is not None:
        delivery = piece.delivery
        event["args"] = delivery.attributes()
        if delivery.crossed:
            event["bind_id"] = delivery.number
            event["flow_out" if piece.kind.sending else "flow_in"] = True
    return event

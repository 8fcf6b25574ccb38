"""The timeline as OpenTelemetry spans, encoded as OTLP JSON (an
ExportTraceServiceRequest: what the OpenTelemetry Collector's `otlpjsonfile`
receiver reads, and Jaeger's UI uploads).

Made with the OpenTelemetry SDK: a resource (service) per party and one for
the orchestrator, whose span covers the run. Each action is a span of its
party under the run. Each envelope is two spans: the sender's (PRODUCER,
under the action or handler it was sent from) and the receiver's (CONSUMER,
a child of the sender's, across parties), with the envelope's fields as
`airlock.*` attributes and an error status when it was refused or withheld.
Span times are the log entries' own; ids are derived from the run id, so
exporting a run twice gives the same file.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry import trace as otel
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import SpanKind, Status, StatusCode

from orchestrator.trace.timeline import Kind, Slice, Timeline

ORCHESTRATOR = "airlock-orchestrator"
SCOPE = "airlock.trace"
_NS = 1000  # nanoseconds a microsecond


class _RunIds(IdGenerator):
    """One trace id per run, span ids counted from it: the same run exports
    the same ids."""

    def __init__(self, run_id: str) -> None:
        self._seed = hashlib.sha256(f"airlock-trace:{run_id}".encode()).digest()
        self._count = itertools.count(1)

    def generate_trace_id(self) -> int:
        return int.from_bytes(self._seed[:16], "big") or 1

    def generate_span_id(self) -> int:
        digest = hashlib.sha256(self._seed + next(self._count).to_bytes(8, "big")).digest()
        return int.from_bytes(digest[:8], "big") or 1


def otlp_trace(timeline: Timeline) -> str:
    """The timeline as one line of OTLP JSON."""
    exporter = InMemorySpanExporter()
    ids = _RunIds(timeline.run_id)

    def tracer(service: str, **attributes: str) -> otel.Tracer:
        # Resource(...) rather than Resource.create(): nothing from the environment
        resource = Resource({"service.name": service, "service.namespace": "airlock", **attributes})
        provider = TracerProvider(resource=resource, id_generator=ids, sampler=ALWAYS_ON)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        return provider.get_tracer(SCOPE)

    run_attributes = {"airlock.run_id": timeline.run_id}
    tracers = {
        party: tracer(party, **run_attributes, **{"airlock.role": timeline.roles.get(party, "")})
        for party in {*timeline.parties, *(s.party for s in timeline.slices)}
    }
    run = tracer(ORCHESTRATOR, **run_attributes).start_span(
        f"run {timeline.scenario}",
        attributes={"airlock.scenario": timeline.scenario, **run_attributes},
        start_time=timeline.origin * _NS,
    )
    spans: dict[int, otel.Span] = {}
    sender_slice = {
        s.delivery.number: s for s in timeline.slices if s.delivery is not None and s.kind.sending
    }

    def parent_of(piece: Slice) -> Slice | None:
        delivery = piece.delivery
        if delivery is not None and not piece.kind.sending and delivery.crossed:
            return sender_slice.get(delivery.number)  # across parties: the sender's span
        if piece.kind == Kind.ACTION:
            return None
        return piece.enclosing_work()

    def start(piece: Slice, parent: otel.Span) -> None:
        span = tracers[piece.party].start_span(
            piece.name,
            context=otel.set_span_in_context(parent),
            kind=_KINDS[piece.kind],
            attributes=_attributes(piece),
            start_time=piece.start * _NS,
        )
        if piece.blocked and piece.delivery is not None:
            reason, detail = piece.delivery.refusal
            span.set_status(Status(StatusCode.ERROR, f"{reason}: {detail}" if reason else detail))
        spans[id(piece)] = span

    def span_of(piece: Slice) -> None:
        """Start the piece's span after its ancestors' (the SDK needs a
        parent's context), without recursion: a chain of handlers that send
        can be long."""
        chain = [piece]
        parent = parent_of(piece)
        while parent is not None and id(parent) not in spans:
            if parent in chain:  # clocks of two hosts disagree into a cycle: cut it
                parent = None
                break
            chain.append(parent)
            parent = parent_of(parent)
        above = spans[id(parent)] if parent is not None else run
        for link in reversed(chain):
            start(link, above)
            above = spans[id(link)]

    ordered = sorted(timeline.slices, key=lambda s: (s.start, -s.end, s.kind))
    for piece in ordered:
        if id(piece) not in spans:
            span_of(piece)
    for piece in ordered:
        spans[id(piece)].end(end_time=piece.end * _NS)
    run.end(end_time=max(timeline.end, timeline.origin + 1) * _NS)
    request = MessageToDict(
        encode_spans(exporter.get_finished_spans()), use_integers_for_enums=True
    )
    return json.dumps(_hex_ids(request), separators=(",", ":"))


_KINDS = {
    Kind.ACTION: SpanKind.INTERNAL,
    Kind.HANDLE: SpanKind.CONSUMER,
    Kind.SEND: SpanKind.PRODUCER,
    Kind.REPLY: SpanKind.PRODUCER,
    Kind.WITHHELD: SpanKind.PRODUCER,
    Kind.RECEIVE: SpanKind.CONSUMER,
    Kind.REFUSED: SpanKind.CONSUMER,
}


def _attributes(piece: Slice) -> dict[str, Any]:
    if piece.action is not None:
        action = piece.action
        found: dict[str, Any] = {
            "airlock.stage": action.stage,
            "airlock.protocol": action.protocol,
            "airlock.action": action.action,
            "airlock.adversarial": action.adversarial,
        }
        if action.round is not None:
            found["airlock.round"] = action.round
        return found
    assert piece.delivery is not None
    return {f"airlock.{key}": value for key, value in piece.delivery.attributes().items()}


def _hex_ids(request: dict[str, Any]) -> dict[str, Any]:
    """OTLP JSON writes trace and span ids as hex, where protobuf's own JSON
    mapping writes bytes as base64."""
    for resource in request.get("resourceSpans", []):
        for scope in resource.get("scopeSpans", []):
            for span in scope.get("spans", []):
                for holder in (span, *span.get("links", [])):
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in holder:
                            holder[key] = base64.b64decode(holder[key]).hex()
    return request

"""Envelopes as typed Python objects, and the only conversion to and from the
wire format (cf. Flower's serde). Protocol code never touches protobuf.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from parties.errors import Refused
from parties.labels import Form, Label
from parties.wire import airlock_pb2 as pb

SIGNING_CONTEXT = b"airlock-envelope-v1\x00"
CHUNK_SIZE = 1 << 20  # payload bytes per stream message
INLINE_SIZE = 64 << 10  # payloads up to this size travel in the header's message


@dataclass(frozen=True)
class Header:
    sender: str
    receiver: str
    run_id: str
    session_id: str
    protocol: str
    step: str
    sequence: int
    labels: tuple[Label, ...]
    payload_size: int
    payload_sha256: bytes
    sent_at_unix_ns: int


@dataclass(frozen=True)
class Envelope:
    """A signed header (as received bytes), its signature and the payload."""

    header: Header
    header_bytes: bytes
    signature: bytes
    payload: bytes

    @property
    def header_sha256(self) -> str:
        return hashlib.sha256(self.header_bytes).hexdigest()


def signed_message(header_bytes: bytes) -> bytes:
    return SIGNING_CONTEXT + header_bytes


def header_to_bytes(header: Header) -> bytes:
    message = pb.EnvelopeHeader(
        sender=header.sender,
        receiver=header.receiver,
        run_id=header.run_id,
        session_id=header.session_id,
        protocol=header.protocol,
        step=header.step,
        sequence=header.sequence,
        labels=[pb.Label(asset=label.asset, form=label.form.name) for label in header.labels],
        payload_size=header.payload_size,
        payload_sha256=header.payload_sha256,
        sent_at_unix_ns=header.sent_at_unix_ns,
    )
    return message.SerializeToString(deterministic=True)


def header_from_bytes(data: bytes) -> Header:
    """Parse a header; anything malformed is a MALFORMED refusal."""
    message = pb.EnvelopeHeader()
    try:
        message.ParseFromString(data)
    except DecodeError:
        raise Refused(pb.MALFORMED, "header does not parse") from None
    if not message.sender or not message.receiver or not message.protocol or not message.step:
        raise Refused(pb.MALFORMED, "header lacks sender, receiver, protocol or step")
    if len(message.payload_sha256) != 32:
        raise Refused(pb.MALFORMED, "payload digest is not SHA-256")
    if not message.labels:
        raise Refused(pb.MALFORMED, "envelope carries no label")
    labels = []
    for label in message.labels:
        try:
            labels.append(Label(label.asset, Form(label.form)))
        except ValueError as exc:
            raise Refused(pb.MALFORMED, f"bad label: {exc}") from None
    return Header(
        sender=message.sender,
        receiver=message.receiver,
        run_id=message.run_id,
        session_id=message.session_id,
        protocol=message.protocol,
        step=message.step,
        sequence=message.sequence,
        labels=tuple(labels),
        payload_size=message.payload_size,
        payload_sha256=message.payload_sha256,
        sent_at_unix_ns=message.sent_at_unix_ns,
    )


def new_header(
    *,
    sender: str,
    receiver: str,
    run_id: str,
    session_id: str,
    protocol: str,
    step: str,
    sequence: int,
    labels: Iterable[Label],
    payload: bytes,
) -> Header:
    return Header(
        sender=sender,
        receiver=receiver,
        run_id=run_id,
        session_id=session_id,
        protocol=protocol,
        step=step,
        sequence=sequence,
        labels=tuple(labels),
        payload_size=len(payload),
        payload_sha256=hashlib.sha256(payload).digest(),
        sent_at_unix_ns=time.time_ns(),
    )


def to_messages(envelope: Envelope) -> Iterator[pb.Envelope]:
    """Frame an envelope as a stream: header and signature first, then payload
    pieces. A small payload rides in the header's message: one stream message
    fewer to read (the largest cost of a small envelope: docs/benchmarks.md),
    while a large one still waits until its header has been checked."""
    payload = envelope.payload
    if len(payload) <= INLINE_SIZE:
        yield pb.Envelope(
            header=envelope.header_bytes, signature=envelope.signature, payload=payload
        )
        return
    yield pb.Envelope(header=envelope.header_bytes, signature=envelope.signature)
    for start in range(0, len(payload), CHUNK_SIZE):
        yield pb.Envelope(
            payload=payload[start : start + CHUNK_SIZE]
        )  # a whole slice is not copied


def parse_message(data: bytes) -> pb.Envelope:
    message = pb.Envelope()
    try:
        message.ParseFromString(data)
    except DecodeError:
        raise Refused(pb.MALFORMED, "stream message does not parse as an Envelope") from None
    return message


def read_payload(first: bytes, rest: Iterator[bytes], declared: int) -> tuple[bytes, bytes]:
    """Read the payload: `first` (carried with the header) and the pieces in
    the raw stream messages that follow, up to the declared size; returns it
    with its SHA-256, hashed piece by piece as the pieces arrive (while the
    next ones are still on the wire). The envelope ends at its signed size:
    the stream's end is not waited for (waiting was a quarter of a small
    envelope's time, the client's gRPC thread half-closing the stream), and
    nothing sent after it is read."""
    pieces = [first] if first else []
    digest = hashlib.sha256(first)
    size = len(first)
    if size > declared:
        raise Refused(pb.OVERSIZED, "payload longer than its signed size")
    for data in rest if size < declared else ():
        piece = parse_message(data)
        if piece.header or piece.signature:
            raise Refused(pb.MALFORMED, "a second header inside one envelope")
        pieces.append(piece.payload)
        digest.update(pieces[-1])
        size += len(pieces[-1])
        if size > declared:
            raise Refused(pb.OVERSIZED, "payload longer than its signed size")
        if size == declared:
            break
    if size != declared:
        raise Refused(pb.DIGEST_MISMATCH, "payload shorter than its signed size")
    return (pieces[0] if len(pieces) == 1 else b"".join(pieces)), digest.digest()

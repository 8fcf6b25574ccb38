"""The boundary: the one path by which envelopes leave and enter a party.

It owns the whole delivery in both directions: `seal` then `send` (the
outgoing checks, log, transport, the peer's answer, the reply) and
`receive` (admit, hand to the role, seal and log the reply). The runtime
only says which role logic runs.

Outgoing envelopes are signed with a fresh sequence number, and withheld
unless the active protocol's rules and the scenario's guarantees permit them:
a party's own boundary stops it leaking what a peer asked for but may not
see (a peer's word never relaxes this party's settings). A permitted one is
logged as `sending` before it leaves, so a sender killed mid-send still has
the entry that the receiver's twin matches; its outcome follows as a second
entry. Incoming ones are admitted only after the four checks of DESIGN.md,
in this order:

1. the TLS peer is the party named as sender;
2. the signature verifies with the sender's key and the sequence number is
   fresh (with the size and destination checks that go with it);
3. a rule of the active protocol permits this step between these roles with
   these labels, within the step's size limit;
4. the scenario's guarantees let the receiver see each asset in that form.

All four run on the signed header, before the payload is read (so a refused
envelope costs no buffering); the payload is then read against its signed
size and digest, within the log's quota for kept payloads, and must fit its
step's message definition (parties.message) before any role logic reads it. Every outcome,
admitted, refused or withheld, is written to the visibility log.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator

from cryptography.exceptions import InvalidSignature

from parties.directory import Directory
from parties.envelope import (
    Envelope,
    Header,
    header_from_bytes,
    header_to_bytes,
    new_header,
    parse_message,
    read_payload,
    signed_message,
)
from parties.errors import Refused, Undelivered
from parties.identity import PartyKeys
from parties.labels import Label
from parties.log import Direction, LogUnwritable, Outcome, VisibilityLog
from parties.policy import Policy
from parties.protocol import Reply
from parties.transport import PartyClient
from parties.wire import airlock_pb2 as pb

DEFAULT_MAX_PAYLOAD = 256 << 20
# deliveries one peer may have in progress at once (the server has 16 threads):
# a flooding peer cannot take every thread from the others
PEER_CONCURRENCY = 8
# payload bytes one peer may have in progress at once (read, then handled):
# with PEER_CONCURRENCY, what bounds the memory a flooding peer can take
PEER_IN_FLIGHT_BYTES = 512 << 20
# refusals a receiver gives after it admitted the envelope: it was delivered
AFTER_ADMISSION = frozenset({pb.HANDLER_FAILED, pb.OUT_OF_STEP})
# the role logic that receives an admitted envelope; raises Refused for a
# refusal that comes after admission, returns the reply or None
Dispatch = Callable[[Envelope], Reply | None]


class ReplayGuard:
    """Admits each sender's sequence number once, in bounded memory: a sliding
    window below the highest number seen (as IPsec's anti-replay window).
    Numbers older than the window are refused; concurrent sends that arrive
    out of order within it are admitted."""

    WINDOW = 4096

    def __init__(self) -> None:
        self._highest: dict[str, int] = defaultdict(int)
        self._seen: dict[str, set[int]] = defaultdict(set)
        self._lock = threading.Lock()

    def claim(self, sender: str, sequence: int) -> bool:
        with self._lock:
            highest, seen = self._highest[sender], self._seen[sender]
            if sequence <= highest - self.WINDOW or sequence in seen:
                return False
            seen.add(sequence)
            if sequence > highest:
                self._highest[sender] = sequence
                if len(seen) > 2 * self.WINDOW:
                    floor = sequence - self.WINDOW
                    self._seen[sender] = {s for s in seen if s > floor}
            return True


class Boundary:
    def __init__(
        self,
        *,
        party: str,
        run_id: str,
        keys: PartyKeys,
        directory: Directory,
        policy: Policy,
        log: VisibilityLog,
        client: PartyClient,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
    ) -> None:
        self.party = party
        self.client = client
        self.run_id = run_id
        self.keys = keys
        self.directory = directory
        self.policy = policy
        self.log = log
        self.max_payload = max_payload
        self._replays = ReplayGuard()
        self._sequences: dict[str, itertools.count[int]] = defaultdict(lambda: itertools.count(1))
        self._sequence_lock = threading.Lock()
        self._in_flight: dict[str, int] = defaultdict(int)
        self._in_flight_bytes: dict[str, int] = defaultdict(int)
        self._in_flight_lock = threading.Lock()

    # -- outgoing ---------------------------------------------------------

    def seal(
        self,
        receiver: str,
        protocol: str,
        step: str,
        labels: Iterable[Label],
        payload: bytes,
        session: str = "",
        answering: str | None = None,
        check: bool = True,
    ) -> Envelope:
        """Sign an envelope for `receiver` with the next sequence number.
        With `check` (always, except for an adversary bypassing its own
        party's boundary), the rules and guarantees are applied as the
        receiver would: a forbidden envelope is logged as withheld and
        Refused is raised; it never leaves. `answering`: the request step,
        when this is a reply."""
        with self._sequence_lock:
            sequence = next(self._sequences[receiver])
        header = new_header(
            sender=self.party,
            receiver=receiver,
            run_id=self.run_id,
            session_id=session,
            protocol=protocol,
            step=step,
            sequence=sequence,
            labels=labels,
            payload=payload,
        )
        header_bytes = header_to_bytes(header)
        envelope = Envelope(
            header, header_bytes, self.keys.sign(signed_message(header_bytes)), payload
        )
        if check:
            try:
                self._check_policy(header, answering)
                self.policy.check_payload(header, payload)
            except Refused as refusal:
                self._log_out(envelope, Outcome.WITHHELD, refusal)
                raise
        return envelope

    def _log_out(
        self, envelope: Envelope, outcome: Outcome, refusal: Refused | None = None, detail: str = ""
    ) -> None:
        self.log.record(
            direction=Direction.OUT,
            outcome=outcome,
            peer=envelope.header.receiver,
            envelope=envelope,
            refusal=refusal.reason_name if refusal else "",
            detail=refusal.detail if refusal else detail,
        )

    def send(self, envelope: Envelope) -> Envelope | None:
        """Log and send one envelope `seal` made; return the admitted reply,
        if any. Raises Refused (by the receiver's boundary) or Undelivered;
        the log records each."""
        receiver = envelope.header.receiver
        self._log_out(envelope, Outcome.SENDING)
        try:
            raw_reply = self.client.send(receiver, self.directory.entry(receiver).address, envelope)
        except Refused as refusal:
            after = refusal.reason in AFTER_ADMISSION
            self._log_out(envelope, Outcome.DELIVERED if after else Outcome.REFUSED, refusal)
            raise
        except Undelivered as error:
            self._log_out(envelope, Outcome.UNDELIVERED, detail=str(error))
            raise
        self._log_out(envelope, Outcome.DELIVERED)
        if not raw_reply:
            return None
        # The channel's TLS target name is the receiver, so the replying peer is it.
        return self.admit(receiver, iter(raw_reply), answering=envelope.header.step)

    # -- incoming ---------------------------------------------------------

    def receive(
        self, tls_peer: str, messages: Iterator[bytes], dispatch: Dispatch, check_reply: bool
    ) -> Envelope | None:
        """Admit one delivery, hand it to the role (`dispatch`) and seal its
        reply. `check_reply` is false only for an adversarial party, whose
        handlers are its own code and bypass its own boundary."""
        with self.peer_slot(tls_peer), contextlib.ExitStack() as held:
            envelope = self.admit(tls_peer, messages, held=held)
            header = envelope.header
            answer = dispatch(envelope)
            if answer is None:
                return None
            try:
                reply = self.seal(
                    header.sender,
                    header.protocol,
                    answer.step,
                    answer.labels,
                    answer.payload,
                    header.session_id,
                    answering=header.step,
                    check=check_reply,
                )
            except Refused as refusal:
                raise Refused(
                    pb.HANDLER_FAILED, f"{header.step} reply withheld by {self.party}: {refusal}"
                ) from None
            self._log_out(reply, Outcome.REPLIED)
            return reply

    @contextlib.contextmanager
    def peer_slot(self, tls_peer: str) -> Iterator[None]:
        """One of the PEER_CONCURRENCY deliveries `tls_peer` may have in
        progress; refused (OVERLOADED, logged) when it has them all."""
        with self._in_flight_lock:
            busy = self._in_flight[tls_peer] >= PEER_CONCURRENCY
            if not busy:
                self._in_flight[tls_peer] += 1
        if busy:
            refusal = Refused(
                pb.OVERLOADED, f"{tls_peer!r} has {PEER_CONCURRENCY} deliveries in progress"
            )
            with contextlib.suppress(LogUnwritable):
                self.log.record(
                    direction=Direction.IN,
                    outcome=Outcome.REFUSED,
                    peer=tls_peer,
                    refusal=refusal.reason_name,
                    detail=refusal.detail,
                )
            raise refusal
        try:
            yield
        finally:
            with self._in_flight_lock:
                self._in_flight[tls_peer] -= 1

    @contextlib.contextmanager
    def payload_room(self, tls_peer: str, size: int) -> Iterator[None]:
        """Room for `size` more payload bytes of `tls_peer` in progress;
        refused (OVERLOADED) past PEER_IN_FLIGHT_BYTES."""
        with self._in_flight_lock:
            busy = self._in_flight_bytes[tls_peer] + size > PEER_IN_FLIGHT_BYTES
            if not busy:
                self._in_flight_bytes[tls_peer] += size
        if busy:
            raise Refused(
                pb.OVERLOADED,
                f"{tls_peer!r} has {PEER_IN_FLIGHT_BYTES >> 20} MiB of payloads in progress at "
                f"most; {size} more bytes refused",
            )
        try:
            yield
        finally:
            with self._in_flight_lock:
                self._in_flight_bytes[tls_peer] -= size

    def admit(
        self,
        tls_peer: str,
        messages: Iterator[bytes],
        answering: str | None = None,
        held: contextlib.ExitStack | None = None,
    ) -> Envelope:
        """Read one envelope from raw stream messages and admit it, or raise
        Refused. `answering` is the step of the request when this is a reply.
        The payload's room is held until `held` closes (while the delivery is
        handled), else until it is read. Both outcomes are logged."""
        header = None
        header_bytes = b""
        try:
            first = next(messages, None)
            if first is None:
                raise Refused(pb.MALFORMED, "empty stream")
            start = parse_message(first)
            header_bytes = start.header
            header = header_from_bytes(header_bytes)
            self._check_identity(tls_peer, header, start.header, start.signature)
            if header.payload_size > self.max_payload:
                raise Refused(
                    pb.OVERSIZED,
                    f"payload of {header.payload_size} bytes exceeds {self.max_payload}",
                )
            if not self._replays.claim(header.sender, header.sequence):
                raise Refused(pb.REPLAYED, f"sequence {header.sequence} already seen")
            self._check_policy(header, answering)
            with (
                contextlib.ExitStack() as reading,
                self.log.reserve(header.payload_size, header.payload_sha256.hex()),
            ):
                (held or reading).enter_context(self.payload_room(tls_peer, header.payload_size))
                payload, digest = read_payload(start.payload, messages, header.payload_size)
                if digest != header.payload_sha256:
                    raise Refused(pb.DIGEST_MISMATCH, "payload does not match its signed digest")
                self.policy.check_payload(header, payload)
                envelope = Envelope(header, start.header, start.signature, payload)
                self.log.record(
                    direction=Direction.IN,
                    outcome=Outcome.ADMITTED,
                    peer=tls_peer,
                    envelope=envelope,
                )
        except Refused as refusal:
            # a log that cannot be written cannot hold the refusal either: it
            # is still told, and the log stays whole without it
            with contextlib.suppress(LogUnwritable):
                self.log.record(
                    direction=Direction.IN,
                    outcome=Outcome.REFUSED,
                    peer=tls_peer,
                    header=header,
                    header_bytes=header_bytes if header else b"",
                    refusal=refusal.reason_name,
                    detail=refusal.detail,
                )
            raise
        return envelope

    def _check_policy(self, header: Header, answering: str | None) -> None:
        self.policy.check(
            header,
            self.directory.role_of(header.sender),
            self.directory.role_of(header.receiver),
            answering,
        )

    def _check_identity(
        self, tls_peer: str, header: Header, header_bytes: bytes, signature: bytes
    ) -> None:
        if header.run_id != self.run_id or header.receiver != self.party:
            raise Refused(pb.WRONG_DESTINATION, "envelope is for another receiver or run")
        if header.sender not in self.directory:
            raise Refused(pb.UNKNOWN_SENDER, f"no party named {header.sender!r} in this run")
        if tls_peer != header.sender:
            raise Refused(pb.PEER_MISMATCH, f"TLS peer {tls_peer!r} sent as {header.sender!r}")
        try:
            self.directory.public_key(header.sender).verify(signature, signed_message(header_bytes))
        except InvalidSignature:
            raise Refused(pb.BAD_SIGNATURE, "signature does not verify") from None

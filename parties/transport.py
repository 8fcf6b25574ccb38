"""gRPC with mutual TLS: the server every party runs and the client it uses.

Both sides move raw stream messages (bytes); parsing is the boundary's job,
so malformed bytes are refused and logged like any other bad input instead
of failing inside gRPC's deserializer.

A client keeps up to STREAMS_PER_PEER long-lived Converse streams open to
each peer and sends each envelope on an idle one: setting up a gRPC call
per envelope (its HTTP/2 stream, and the thread Python's gRPC starts to feed
a call's requests) was most of a small envelope's time (docs/benchmarks.md).
A stream is never waited for: when every one to a peer is busy (a handler
may deliver back to the peer whose envelope it is handling), or the
receiver has no room for another, the envelope goes in a Deliver call of
its own. Streams unused for IDLE_CLOSE seconds are closed, so that a
receiver's threads are not held by idle streams for long.
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures

import grpc
from google.protobuf.message import DecodeError

from parties.envelope import Envelope, to_messages
from parties.errors import Refused, Undelivered
from parties.identity import PartyCredentials
from parties.wire import airlock_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["Party"].full_name
METHOD = f"/{SERVICE}/Deliver"
STREAM_METHOD = f"/{SERVICE}/Converse"
REFUSAL_KEY = "airlock-refusal-bin"
STREAMS_FULL_KEY = "airlock-streams-full"
# Deliver calls a server handles at once; PEER_CONCURRENCY in parties.boundary
# is a share of these
CALL_THREADS = 16
# Converse streams a server keeps open at once, in all and from one peer: each
# holds a thread of its own while open, on top of CALL_THREADS
MAX_STREAMS = 8
MAX_PEER_STREAMS = 4
# streams a client keeps to one peer (below MAX_PEER_STREAMS: a stream the
# client has just closed may still hold its place at the receiver)
STREAMS_PER_PEER = 2
IDLE_CLOSE = 2.0  # seconds an unused stream stays open
_WATCH_PERIOD = 0.1  # seconds between the client's checks of its streams
_STOP_GRACE = 1.0  # seconds a stopping server gives the deliveries in progress
# seconds for one delivery, the reply included (a scenario's [run] sets it)
DEFAULT_DELIVERY_TIMEOUT = 120.0
_MESSAGE_LIMIT = 8 << 20  # a stream message is at most one 1 MiB chunk plus a header
_OPTIONS = [
    ("grpc.max_receive_message_length", _MESSAGE_LIMIT),
    ("grpc.max_send_message_length", _MESSAGE_LIMIT),
]

STATUS_OF_REFUSAL = {
    pb.MALFORMED: grpc.StatusCode.INVALID_ARGUMENT,
    pb.PEER_MISMATCH: grpc.StatusCode.UNAUTHENTICATED,
    pb.UNKNOWN_SENDER: grpc.StatusCode.UNAUTHENTICATED,
    pb.BAD_SIGNATURE: grpc.StatusCode.UNAUTHENTICATED,
    pb.REPLAYED: grpc.StatusCode.ALREADY_EXISTS,
    pb.OVERSIZED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    pb.WRONG_DESTINATION: grpc.StatusCode.FAILED_PRECONDITION,
    pb.DIGEST_MISMATCH: grpc.StatusCode.INVALID_ARGUMENT,
    pb.UNKNOWN_PROTOCOL: grpc.StatusCode.UNIMPLEMENTED,
    pb.UNKNOWN_STEP: grpc.StatusCode.UNIMPLEMENTED,
    pb.RULE_NOT_PERMITTED: grpc.StatusCode.PERMISSION_DENIED,
    pb.GUARANTEE_VIOLATED: grpc.StatusCode.PERMISSION_DENIED,
    pb.HANDLER_FAILED: grpc.StatusCode.ABORTED,
    pb.OVERLOADED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    pb.OUT_OF_STEP: grpc.StatusCode.FAILED_PRECONDITION,
    pb.BAD_PAYLOAD: grpc.StatusCode.INVALID_ARGUMENT,
}

# Called with (TLS peer name, raw request messages); returns a reply or None.
DeliveryHandler = Callable[[str, Iterator[bytes]], Envelope | None]


def _tls_peer(context: grpc.ServicerContext) -> str:
    names = context.auth_context().get("x509_common_name") or [b""]
    return names[0].decode(errors="replace")


class _OpenStreams:
    """The Converse streams a server holds open, per peer, within MAX_STREAMS
    and MAX_PEER_STREAMS; those waiting for their next envelope can be ended."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._peers: dict[grpc.ServicerContext, str] = {}
        self._waiting: set[grpc.ServicerContext] = set()

    def open(self, peer: str, context: grpc.ServicerContext) -> bool:
        with self._lock:
            from_peer = sum(1 for other in self._peers.values() if other == peer)
            if len(self._peers) >= MAX_STREAMS or from_peer >= MAX_PEER_STREAMS:
                return False
            self._peers[context] = peer
            self._waiting.add(context)
            return True

    def waiting(self, context: grpc.ServicerContext, waiting: bool) -> None:
        with self._lock:
            if waiting:
                self._waiting.add(context)
            else:
                self._waiting.discard(context)

    def close(self, context: grpc.ServicerContext) -> None:
        with self._lock:
            self._peers.pop(context, None)
            self._waiting.discard(context)
            self._lock.notify_all()

    def end_waiting(self, within: float) -> None:
        """End the streams between envelopes, waiting up to `within` seconds
        for their handlers to return (a stopping server's grace is for
        envelopes being handled, not for idle streams)."""
        with self._lock:
            waiting = list(self._waiting)
        for context in waiting:
            context.cancel()
        with self._lock:
            self._lock.wait_for(lambda: not self._waiting.intersection(waiting), within)


class PartyServer:
    """One party's gRPC server. Requires a client certificate from the run's CA."""

    def __init__(
        self, credentials: PartyCredentials, tls_key_pem: bytes, on_delivery: DeliveryHandler
    ) -> None:
        self._on_delivery = on_delivery
        self._streams = _OpenStreams()
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=CALL_THREADS + MAX_STREAMS), options=_OPTIONS
        )
        handlers = {
            "Deliver": grpc.stream_stream_rpc_method_handler(
                self._deliver,
                request_deserializer=None,
                response_serializer=pb.Envelope.SerializeToString,
            ),
            "Converse": grpc.stream_stream_rpc_method_handler(
                self._converse,
                request_deserializer=None,
                response_serializer=pb.Answer.SerializeToString,
            ),
        }
        self._server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler(SERVICE, handlers)]
        )
        self._credentials = grpc.ssl_server_credentials(
            [(tls_key_pem, credentials.tls_cert_pem)],
            root_certificates=credentials.ca_pem,
            require_client_auth=True,
        )

    def start(self, host: str, advertise: str) -> str:
        """Listen on `host` (an ephemeral port); the address to advertise."""
        port = self._server.add_secure_port(f"{host}:0", self._credentials)
        if port == 0:
            raise Undelivered(f"cannot listen on {host}")
        self._server.start()
        return f"{advertise}:{port}"

    def stop(self) -> None:
        self._streams.end_waiting(within=_STOP_GRACE)
        self._server.stop(grace=_STOP_GRACE).wait()

    def _deliver(
        self, requests: Iterator[bytes], context: grpc.ServicerContext
    ) -> Iterator[pb.Envelope]:
        reply = self._answer(_tls_peer(context), requests, context)
        if reply is not None:
            yield from to_messages(reply)

    def _converse(
        self, requests: Iterator[bytes], context: grpc.ServicerContext
    ) -> Iterator[pb.Answer]:
        peer = _tls_peer(context)
        if not self._streams.open(peer, context):
            context.set_trailing_metadata([(STREAMS_FULL_KEY, "1")])
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "no room for another stream")
        try:
            for first in requests:
                self._streams.waiting(context, False)
                # the envelope ends at its signed size: what follows is the next one
                reply = self._answer(peer, itertools.chain((first,), requests), context)
                if reply is not None:
                    for message in to_messages(reply):
                        yield pb.Answer(reply=message.SerializeToString())
                # waiting from here on: a stopping server need not wait for
                # the client to take this answer before it ends the stream
                self._streams.waiting(context, True)
                yield pb.Answer(done=True)
        finally:
            self._streams.close(context)

    def _answer(
        self, peer: str, messages: Iterator[bytes], context: grpc.ServicerContext
    ) -> Envelope | None:
        """The delivery's reply; a refusal aborts the call with its reason."""
        try:
            return self._on_delivery(peer, messages)
        except Refused as refusal:
            context.set_trailing_metadata(
                [
                    (
                        REFUSAL_KEY,
                        pb.Refusal(
                            reason=refusal.reason, detail=refusal.detail
                        ).SerializeToString(),
                    )
                ]
            )
            context.abort(STATUS_OF_REFUSAL[refusal.reason], refusal.detail)
            raise  # abort raised already; this tells the type checker


def _refusal_of(error: grpc.RpcError) -> Refused | None:
    for key, value in error.trailing_metadata() or ():  # type: ignore[attr-defined]
        if key == REFUSAL_KEY:
            refusal = pb.Refusal.FromString(value)
            return Refused(refusal.reason, refusal.detail)
    return None


def _streams_full(error: grpc.RpcError) -> bool:
    return any(key == STREAMS_FULL_KEY for key, _ in error.trailing_metadata() or ())  # type: ignore[attr-defined]


class _Stream:
    """One Converse call: envelopes go one at a time, each answered first."""

    def __init__(self, key: tuple[str, str], method: grpc.StreamStreamMultiCallable) -> None:
        self.key = key  # (peer, address)
        self.peer = key[0]
        # the envelopes' messages, fed to gRPC lazily (a large payload's
        # pieces are not all copied at once); None ends the stream
        self._envelopes: queue.SimpleQueue[Iterator[pb.Envelope] | None] = queue.SimpleQueue()
        self._call = method(self._requests())
        self.last_used = time.monotonic()
        self.busy_since: float | None = None
        self.timed_out = False

    def _requests(self) -> Iterator[pb.Envelope]:
        while (messages := self._envelopes.get()) is not None:
            yield from messages

    def exchange(self, envelope: Envelope) -> list[bytes]:
        """Send one envelope; the raw messages of its reply. Raises RpcError
        (the receiver's refusal among them) or Undelivered."""
        self.busy_since = time.monotonic()
        self._envelopes.put(to_messages(envelope))
        reply: list[bytes] = []
        for raw in self._call:
            try:
                answer = pb.Answer.FromString(raw)
            except DecodeError:
                raise Undelivered(f"{self.peer}: an answer that does not parse") from None
            if answer.done:
                self.busy_since, self.last_used = None, time.monotonic()
                return reply
            reply.append(answer.reply)
        raise Undelivered(f"{self.peer} ended the stream without an answer")

    def end(self) -> None:
        """Half-close: the receiver's handler returns, the call ends cleanly."""
        self._envelopes.put(None)

    def cancel(self, timed_out: bool = False) -> None:
        self.timed_out = timed_out
        self.end()
        self._call.cancel()  # type: ignore[attr-defined]


class PartyClient:
    """Opens one mutually authenticated channel per peer. The server's
    certificate must name the intended peer (TLS target name = party name)."""

    def __init__(
        self,
        credentials: PartyCredentials,
        tls_key_pem: bytes,
        timeout: float = DEFAULT_DELIVERY_TIMEOUT,
    ) -> None:
        self._credentials = grpc.ssl_channel_credentials(
            credentials.ca_pem, tls_key_pem, credentials.tls_cert_pem
        )
        self._timeout = timeout
        self._channels: dict[tuple[str, str], grpc.Channel] = {}
        self._lock = threading.Lock()
        self._idle: dict[tuple[str, str], list[_Stream]] = {}
        self._open: dict[tuple[str, str], int] = {}
        self._full_until: dict[tuple[str, str], float] = {}
        self._busy: set[_Stream] = set()
        self._closed = threading.Event()
        self._watch: threading.Thread | None = None

    def _channel(self, peer: str, address: str) -> grpc.Channel:
        key = (peer, address)
        with self._lock:
            if key not in self._channels:
                options = [*_OPTIONS, ("grpc.ssl_target_name_override", peer)]
                self._channels[key] = grpc.secure_channel(
                    address, self._credentials, options=options
                )
            return self._channels[key]

    def send(self, peer: str, address: str, envelope: Envelope) -> list[bytes]:
        """Deliver; return the raw reply messages (empty when no reply).
        Raises Refused when the peer's boundary refused, Undelivered otherwise."""
        stream = self._take_stream(peer, address)
        if stream is None:
            return self._call(peer, address, envelope)
        try:
            reply = stream.exchange(envelope)
        except grpc.RpcError as error:
            self._drop(stream)
            if _streams_full(error):  # nothing of the envelope was read
                with self._lock:
                    self._full_until[(peer, address)] = time.monotonic() + IDLE_CLOSE
                return self._call(peer, address, envelope)
            raise self._failure(peer, address, error, stream.timed_out) from None
        except Undelivered:
            self._drop(stream)
            stream.cancel()
            raise
        with self._lock:
            self._busy.discard(stream)
            self._idle.setdefault(stream.key, []).append(stream)
        return reply

    def _method(
        self, peer: str, address: str, method: str = METHOD
    ) -> grpc.StreamStreamMultiCallable:
        return self._channel(peer, address).stream_stream(
            method, request_serializer=pb.Envelope.SerializeToString, response_deserializer=None
        )

    def _call(self, peer: str, address: str, envelope: Envelope) -> list[bytes]:
        try:
            return list(self._method(peer, address)(to_messages(envelope), timeout=self._timeout))
        except grpc.RpcError as error:
            raise self._failure(
                peer, address, error, error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            ) from None

    def _failure(
        self, peer: str, address: str, error: grpc.RpcError, timed_out: bool
    ) -> Refused | Undelivered:
        refusal = _refusal_of(error)
        if refusal is not None:
            return refusal
        if timed_out:
            return Undelivered(f"{peer} at {address}: no reply within {self._timeout:g} s")
        return Undelivered(f"{peer} at {address}: {error.code().name}: {error.details()}")

    def _take_stream(self, peer: str, address: str) -> _Stream | None:
        """An idle stream to the peer, a new one, or None: use a call."""
        key = (peer, address)
        with self._lock:
            if self._closed.is_set():
                return None
            idle = self._idle.get(key)
            if idle:
                stream = idle.pop()
            elif (
                self._open.get(key, 0) < STREAMS_PER_PEER
                and self._full_until.get(key, 0.0) <= time.monotonic()
            ):
                self._open[key] = self._open.get(key, 0) + 1
                stream = None
            else:
                return None
            if self._watch is None:
                self._watch = threading.Thread(
                    target=self._watch_streams, name="airlock-streams", daemon=True
                )
                self._watch.start()
        if stream is None:
            stream = _Stream(key, self._method(peer, address, STREAM_METHOD))
        with self._lock:
            self._busy.add(stream)
        return stream

    def _drop(self, stream: _Stream) -> None:
        with self._lock:
            self._busy.discard(stream)
            self._open[stream.key] -= 1

    def _watch_streams(self) -> None:
        """End streams that waited past the delivery timeout for an answer
        (the delivery fails as a call past its deadline would) and streams
        idle for IDLE_CLOSE seconds."""
        while not self._closed.wait(_WATCH_PERIOD):
            now = time.monotonic()
            with self._lock:
                late = [
                    stream
                    for stream in self._busy
                    if stream.busy_since is not None and now - stream.busy_since > self._timeout
                ]
                unused = []
                for key, idle in self._idle.items():
                    for stream in [s for s in idle if now - s.last_used > IDLE_CLOSE]:
                        idle.remove(stream)
                        self._open[key] -= 1
                        unused.append(stream)
            for stream in late:
                stream.cancel(timed_out=True)
            for stream in unused:
                stream.end()

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            streams = [*self._busy, *itertools.chain.from_iterable(self._idle.values())]
            self._idle.clear()
        for stream in streams:
            stream.cancel()
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()

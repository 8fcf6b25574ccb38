"""gRPC with mutual TLS: the server every party runs and the client it uses.

Both sides move raw stream messages (bytes); parsing is the boundary's job,
so malformed bytes are refused and logged like any other bad input instead
of failing inside gRPC's deserializer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent import futures

import grpc

from parties.envelope import Envelope, to_messages
from parties.errors import Refused, Undelivered
from parties.identity import PartyCredentials
from parties.wire import airlock_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["Party"].full_name
METHOD = f"/{SERVICE}/Deliver"
REFUSAL_KEY = "airlock-refusal-bin"
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


class PartyServer:
    """One party's gRPC server. Requires a client certificate from the run's CA."""

    def __init__(
        self, credentials: PartyCredentials, tls_key_pem: bytes, on_delivery: DeliveryHandler
    ) -> None:
        self._on_delivery = on_delivery
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=_OPTIONS)
        handler = grpc.stream_stream_rpc_method_handler(
            self._deliver,
            request_deserializer=None,
            response_serializer=pb.Envelope.SerializeToString,
        )
        self._server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler(SERVICE, {"Deliver": handler})]
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
        self._server.stop(grace=1).wait()

    def _deliver(
        self, requests: Iterator[bytes], context: grpc.ServicerContext
    ) -> Iterator[pb.Envelope]:
        try:
            reply = self._on_delivery(_tls_peer(context), requests)
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
        if reply is not None:
            yield from to_messages(reply)


def _refusal_of(error: grpc.RpcError) -> Refused | None:
    for key, value in error.trailing_metadata() or ():  # type: ignore[attr-defined]
        if key == REFUSAL_KEY:
            refusal = pb.Refusal.FromString(value)
            return Refused(refusal.reason, refusal.detail)
    return None


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

    def _method(self, peer: str, address: str) -> grpc.StreamStreamMultiCallable:
        key = (peer, address)
        if key not in self._channels:
            options = [*_OPTIONS, ("grpc.ssl_target_name_override", peer)]
            self._channels[key] = grpc.secure_channel(address, self._credentials, options=options)
        return self._channels[key].stream_stream(
            METHOD, request_serializer=pb.Envelope.SerializeToString, response_deserializer=None
        )

    def send(self, peer: str, address: str, envelope: Envelope) -> list[bytes]:
        """Deliver; return the raw reply messages (empty when no reply).
        Raises Refused when the peer's boundary refused, Undelivered otherwise."""
        try:
            return list(self._method(peer, address)(to_messages(envelope), timeout=self._timeout))
        except grpc.RpcError as error:
            refusal = _refusal_of(error)
            if refusal is not None:
                raise refusal from None
            if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise Undelivered(
                    f"{peer} at {address}: no reply within {self._timeout:g} s"
                ) from None
            raise Undelivered(
                f"{peer} at {address}: {error.code().name}: {error.details()}"
            ) from None

    def close(self) -> None:
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()

"""Deliveries ride long-lived Converse streams between a pair of parties,
one envelope at a time; a busy or full stream never makes a delivery wait,
a refusal or a lost peer ends the stream, and idle streams close."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import grpc
import pytest

from parties import transport
from parties.envelope import Envelope
from parties.errors import Refused, Undelivered
from parties.labels import Form, Label
from parties.roles import Role
from parties.transport import PartyClient
from parties.wire import airlock_pb2 as pb
from protocols import get_protocol
from tests.helpers import Parties

CATALOG = [Label("catalog:guidelines_db", Form.PUBLIC)]


def catalog(parties: Parties, payload: bytes = b"{}") -> Envelope | None:
    return parties["alice"].deliver(
        "guidelines_db", "walkthrough", "catalog_request", CATALOG, payload
    )


def open_streams(parties: Parties, receiver: str) -> int:
    """Converse streams the receiver's server holds open now."""
    return len(parties[receiver]._server._streams._peers)  # type: ignore[union-attr]


def calls_counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Peers of the deliveries made as a Deliver call of their own."""
    calls: list[str] = []
    call = PartyClient._call

    def counted(self: PartyClient, peer: str, address: str, envelope: Envelope) -> list[bytes]:
        calls.append(peer)
        return call(self, peer, address, envelope)

    monkeypatch.setattr(PartyClient, "_call", counted)
    return calls


def wait_until(condition, seconds: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_envelopes_in_a_row_share_one_stream(
    parties: Parties, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = calls_counted(monkeypatch)
    for _ in range(20):
        reply = catalog(parties)
        assert reply is not None and reply.header.step == "catalog"
    assert calls == []
    assert open_streams(parties, "guidelines_db") == 1


def test_a_refusal_ends_the_stream_and_the_next_delivery_opens_another(
    parties: Parties,
) -> None:
    catalog(parties)
    with pytest.raises(Refused) as refused:
        catalog(parties, b"not json")
    assert refused.value.reason == pb.BAD_PAYLOAD
    assert wait_until(lambda: open_streams(parties, "guidelines_db") == 0)
    assert catalog(parties) is not None
    assert open_streams(parties, "guidelines_db") == 1


def test_a_receiver_without_room_for_streams_takes_calls(
    parties: Parties, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport, "MAX_STREAMS", 0)
    calls = calls_counted(monkeypatch)
    for _ in range(3):
        assert catalog(parties) is not None
    # the first was refused a stream before it was read and went as a call;
    # the client then stops asking this peer for a while
    assert calls == ["guidelines_db"] * 3
    assert open_streams(parties, "guidelines_db") == 0


def test_concurrent_deliveries_never_wait_for_a_busy_stream(
    parties: Parties, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Eight threads deliver at once: each is admitted, on at most
    STREAMS_PER_PEER streams, the rest as calls of their own."""
    calls = calls_counted(monkeypatch)
    replies: list[Envelope | None] = []
    threads = [
        threading.Thread(target=lambda: replies.extend(catalog(parties) for _ in range(5)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(replies) == 40 and all(reply is not None for reply in replies)
    assert open_streams(parties, "guidelines_db") <= transport.STREAMS_PER_PEER
    assert len(calls) < 40  # most rode a stream


def test_a_handler_may_deliver_back_while_its_stream_is_busy(
    parties: Parties, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database, handling alice's envelope, delivers to alice: that goes
    on the database's own stream to alice (alice's to the database is busy
    until the handler returns), and both deliveries are answered."""
    handlers = get_protocol("walkthrough").handlers
    key = (Role.EXTERNAL_DATABASE, "catalog_request")
    honest = handlers[key]
    nested: list[Refused] = []

    def calls_back(ctx, envelope):  # type: ignore[no-untyped-def]
        # unasked, past its own boundary: alice's boundary refuses it
        with pytest.raises(Refused) as refused:
            ctx._runtime.deliver("alice", "walkthrough", "catalog", CATALOG, b"{}", check=False)
        nested.append(refused.value)
        return honest(ctx, envelope)

    monkeypatch.setitem(handlers, key, calls_back)
    reply = catalog(parties)
    assert reply is not None and reply.header.step == "catalog"
    assert [refusal.reason for refusal in nested] == [pb.RULE_NOT_PERMITTED]


def test_a_hung_receiver_ends_the_delivery_at_its_timeout(
    parties: Parties, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = threading.Event()
    handlers = get_protocol("walkthrough").handlers
    key = (Role.EXTERNAL_DATABASE, "catalog_request")
    monkeypatch.setitem(handlers, key, lambda ctx, envelope: release.wait(30))
    alice = parties["alice"]
    client = PartyClient(alice.credentials, alice.keys.tls_key_pem(), timeout=0.5)
    envelope = alice.boundary.seal(
        "guidelines_db", "walkthrough", "catalog_request", CATALOG, b"{}"
    )
    address = parties.directory.entry("guidelines_db").address
    start = time.monotonic()
    try:
        with pytest.raises(Undelivered, match="no reply within 0.5 s"):
            client.send("guidelines_db", address, envelope)
        assert time.monotonic() - start < 0.5 + 1.0
    finally:
        release.set()
        client.close()


def test_idle_streams_close(parties: Parties, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport, "IDLE_CLOSE", 0.2)
    catalog(parties)
    assert open_streams(parties, "guidelines_db") == 1
    assert wait_until(lambda: open_streams(parties, "guidelines_db") == 0, 3.0)
    assert catalog(parties) is not None  # and a new one opens


def test_a_stopping_server_ends_idle_streams_at_once(parties: Parties) -> None:
    catalog(parties)
    start = time.monotonic()
    parties["guidelines_db"].seal()
    assert time.monotonic() - start < 0.5  # not the grace of a delivery in progress
    with pytest.raises(Undelivered):
        catalog(parties)


def test_a_peer_holds_at_most_its_share_of_streams(parties: Parties) -> None:
    """Streams opened straight on the channel, past the client's own limit:
    the receiver ends the one past MAX_PEER_STREAMS before reading it."""
    alice = parties["alice"]
    address = parties.directory.entry("guidelines_db").address
    channel = alice._client._channel("guidelines_db", address)  # type: ignore[union-attr]
    method = channel.stream_stream(transport.STREAM_METHOD)
    quiet = threading.Event()

    def nothing_yet() -> Iterator[bytes]:
        quiet.wait(10)
        yield from ()

    calls = [method(nothing_yet()) for _ in range(transport.MAX_PEER_STREAMS + 1)]
    try:
        assert wait_until(lambda: sum(call.done() for call in calls) == 1)
        (full,) = [call for call in calls if call.done()]
        assert full.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert (transport.STREAMS_FULL_KEY, "1") in full.trailing_metadata()
        assert open_streams(parties, "guidelines_db") == transport.MAX_PEER_STREAMS
    finally:
        quiet.set()

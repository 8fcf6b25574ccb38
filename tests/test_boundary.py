"""The boundary admits only what the four checks allow, refuses everything
else with a reason, logs both sides, and keeps running after bad input."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest

from parties import envelope as envelope_module
from parties.envelope import Envelope, header_to_bytes, signed_message, to_messages
from parties.errors import Refused, Undelivered
from parties.identity import PartyKeys, RunAuthority, issue_credentials
from parties.labels import Form, Label
from parties.log import BLOB_DIR
from parties.log_check import read_entries
from parties.roles import Role
from parties.runtime import PartyRuntime
from parties.transport import METHOD, REFUSAL_KEY, PartyClient
from parties.wire import airlock_pb2 as pb
from protocols import get_protocol
from tests.helpers import Parties, refusal, start_parties

CATALOG = [Label("catalog:guidelines_db", Form.PUBLIC)]


def client_of(runtime: PartyRuntime) -> PartyClient:
    return PartyClient(runtime.credentials, runtime.keys.tls_key_pem())


def send(
    parties: Parties,
    sender: str,
    receiver: str,
    envelope: Envelope,
    client: PartyClient | None = None,
) -> list[bytes]:
    client = client or client_of(parties[sender])
    try:
        return client.send(receiver, parties.directory.entry(receiver).address, envelope)
    finally:
        client.close()


def catalog_request(parties: Parties, payload: bytes = b"{}") -> Envelope:
    return parties["alice"].boundary.seal(
        "guidelines_db", "walkthrough", "catalog_request", CATALOG, payload, check=False
    )


def resign(envelope: Envelope, keys: PartyKeys, **changes: object) -> Envelope:
    """The envelope with header fields changed and a valid signature by `keys`."""
    header = dataclasses.replace(envelope.header, **changes)
    header_bytes = header_to_bytes(header)
    return Envelope(header, header_bytes, keys.sign(signed_message(header_bytes)), envelope.payload)


def last_entry(runtime: PartyRuntime) -> dict:
    entries, problems = read_entries(runtime.log.directory, runtime.name)
    assert not problems
    return entries[-1]


def still_serves(parties: Parties) -> None:
    """A valid delivery after the bad one is admitted: the party kept running."""
    reply = parties["alice"].deliver(
        "guidelines_db", "walkthrough", "catalog_request", CATALOG, b"{}"
    )
    assert reply is not None and reply.header.step == "catalog"


@pytest.mark.parametrize("inline", [True, False])
def test_an_envelope_ends_at_its_signed_size(
    parties: Parties, inline: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The receiver admits an envelope once its signed size has arrived: it
    neither waits for the stream's end nor reads on, so nothing a stream
    carries after an envelope is admitted with it. The payload rides in the
    header's message, or (`inline` False) in a message of its own."""
    if not inline:
        monkeypatch.setattr(envelope_module, "INLINE_SIZE", 10)
    envelope = catalog_request(parties, b"{}" + b" " * 998)

    def stream() -> Iterator[bytes]:
        messages = list(to_messages(envelope))
        assert len(messages) == (1 if inline else 2)
        yield from (message.SerializeToString() for message in messages)
        raise AssertionError("read past the envelope")

    admitted = parties["guidelines_db"].boundary.admit("alice", stream())
    assert admitted.payload == envelope.payload
    assert last_entry(parties["guidelines_db"])["outcome"] == "admitted"


def test_admitted_delivery_and_reply_are_logged_on_both_sides(parties: Parties) -> None:
    reply = parties["alice"].deliver(
        "guidelines_db", "walkthrough", "catalog_request", CATALOG, b"{}"
    )
    assert reply is not None and json.loads(reply.payload) == {"titles": []}
    db_entries, _ = read_entries(parties["guidelines_db"].log.directory, "guidelines_db")
    alice_entries, _ = read_entries(parties["alice"].log.directory, "alice")
    received, replied = db_entries
    sending, sent, reply_in = alice_entries
    assert (sending["outcome"], sending["header_sha256"]) == ("sending", sent["header_sha256"])
    assert (received["direction"], received["outcome"], received["peer"]) == (
        "in",
        "admitted",
        "alice",
    )
    assert (sent["direction"], sent["outcome"]) == ("out", "delivered")
    assert received["header_sha256"] == sent["header_sha256"]
    # what the database received is exactly what its log keeps
    blob = parties["guidelines_db"].log.directory / BLOB_DIR / received["payload_sha256"]
    assert blob.read_bytes() == b"{}"
    assert (replied["outcome"], reply_in["outcome"]) == ("replied", "admitted")
    assert replied["header_sha256"] == reply_in["header_sha256"]
    alice_blob = parties["alice"].log.directory / BLOB_DIR / reply_in["payload_sha256"]
    assert alice_blob.read_bytes() == reply.payload


def test_the_sender_logs_an_envelope_before_it_leaves(parties: Parties) -> None:
    """When the receiver admits an envelope, the sender's log already holds
    it: a sender killed mid-send leaves an entry that the receiver's twin
    matches (the audit's "deliveries agree" then holds)."""
    receiver = parties["guidelines_db"].boundary
    admit, seen_by_sender = receiver.admit, []

    def admit_and_look(*args, **kwargs):
        envelope = admit(*args, **kwargs)
        entries, _ = read_entries(parties["alice"].log.directory, "alice")
        seen_by_sender.append((entries[-1], envelope.header_sha256))
        return envelope

    receiver.admit = admit_and_look  # type: ignore[method-assign]
    parties["alice"].deliver("guidelines_db", "walkthrough", "catalog_request", CATALOG, b"{}")
    (entry, digest), *_ = seen_by_sender
    assert (entry["direction"], entry["outcome"], entry["header_sha256"]) == (
        "out",
        "sending",
        digest,
    )


def _malformed_bytes(parties: Parties) -> Refused:
    runtime = parties["alice"]
    credentials = grpc.ssl_channel_credentials(
        runtime.credentials.ca_pem, runtime.keys.tls_key_pem(), runtime.credentials.tls_cert_pem
    )
    address = parties.directory.entry("guidelines_db").address
    with grpc.secure_channel(
        address, credentials, options=[("grpc.ssl_target_name_override", "guidelines_db")]
    ) as channel:
        call = channel.stream_stream(METHOD, request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.RpcError) as caught:
            list(call(iter([b"\xff\xff\xff\x00 not protobuf"]), timeout=10))
    metadata = dict(caught.value.trailing_metadata())
    refusal = pb.Refusal.FromString(metadata[REFUSAL_KEY])
    return Refused(refusal.reason, refusal.detail)


def _unknown_sender(parties: Parties) -> Refused:
    mallory = PartyKeys.generate("mallory")
    credentials = issue_credentials(parties.authority, "mallory", mallory.certificate_requests())
    envelope = resign(catalog_request(parties), mallory, sender="mallory")
    with pytest.raises(Refused) as caught:
        send(
            parties,
            "alice",
            "guidelines_db",
            envelope,
            PartyClient(credentials, mallory.tls_key_pem()),
        )
    return caught.value


def _other_partys_certificate(parties: Parties) -> Refused:
    # alice's valid TLS certificate, carrying an envelope validly signed by hospital_1
    envelope = resign(catalog_request(parties), parties["hospital_1"].keys, sender="hospital_1")
    with pytest.raises(Refused) as caught:
        send(parties, "alice", "guidelines_db", envelope)
    return caught.value


def _bad_signature(parties: Parties) -> Refused:
    envelope = catalog_request(parties)
    forged = dataclasses.replace(envelope, signature=bytes(b ^ 1 for b in envelope.signature))
    with pytest.raises(Refused) as caught:
        send(parties, "alice", "guidelines_db", forged)
    return caught.value


def _replayed(parties: Parties) -> Refused:
    envelope = catalog_request(parties)
    send(parties, "alice", "guidelines_db", envelope)
    with pytest.raises(Refused) as caught:
        send(parties, "alice", "guidelines_db", envelope)
    return caught.value


def _oversized(parties: Parties) -> Refused:
    envelope = catalog_request(parties, b"x" * (parties["guidelines_db"].max_payload + 1))
    with pytest.raises(Refused) as caught:
        send(parties, "alice", "guidelines_db", envelope)
    return caught.value


def _payload_swapped(parties: Parties) -> Refused:
    envelope = dataclasses.replace(catalog_request(parties, b"{}"), payload=b"[]")
    with pytest.raises(Refused) as caught:
        send(parties, "alice", "guidelines_db", envelope)
    return caught.value


def _wrong_receiver(parties: Parties) -> Refused:
    envelope = parties["alice"].boundary.seal(
        "deployer", "walkthrough", "catalog_request", CATALOG, b"{}", check=False
    )
    with pytest.raises(Refused) as caught:
        send(parties, "alice", "guidelines_db", envelope)
    return caught.value


def _deliver(protocol: str, step: str, labels: list[Label]) -> Callable[[Parties], Refused]:
    def attempt(parties: Parties) -> Refused:
        with pytest.raises(Refused) as caught:  # past alice's own boundary, as an attacker
            parties["alice"].deliver("guidelines_db", protocol, step, labels, b"{}", check=False)
        return caught.value

    return attempt


BAD_INPUTS = {
    "malformed bytes": (_malformed_bytes, pb.MALFORMED),
    "unknown sender": (_unknown_sender, pb.UNKNOWN_SENDER),
    "certificate of another party": (_other_partys_certificate, pb.PEER_MISMATCH),
    "bad signature": (_bad_signature, pb.BAD_SIGNATURE),
    "replayed sequence number": (_replayed, pb.REPLAYED),
    "oversized payload": (_oversized, pb.OVERSIZED),
    "payload not matching its digest": (_payload_swapped, pb.DIGEST_MISMATCH),
    "addressed to another party": (_wrong_receiver, pb.WRONG_DESTINATION),
    "labels no rule permits": (
        _deliver("walkthrough", "catalog_request", [Label("prompt:alice", Form.PUBLIC)]),
        pb.RULE_NOT_PERMITTED,
    ),
    "step to a role the rule does not name": (
        _deliver("walkthrough", "sealed_prompt", [Label("prompt:alice", Form.CIPHERTEXT)]),
        pb.RULE_NOT_PERMITTED,
    ),
    "unknown protocol": (_deliver("telepathy", "catalog_request", CATALOG), pb.UNKNOWN_PROTOCOL),
    "unknown step": (_deliver("walkthrough", "exfiltrate", CATALOG), pb.UNKNOWN_STEP),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_refused_logged_and_survived(tmp_path: Path, case: str) -> None:
    parties = start_parties(tmp_path, max_payload=1 << 16)
    try:
        attempt, reason = BAD_INPUTS[case]
        refusal = attempt(parties)
        assert refusal.reason == reason, refusal
        logged = last_entry(parties["guidelines_db"])
        assert (logged["direction"], logged["outcome"]) == ("in", "refused")
        assert logged["refusal"] == pb.RefusalReason.Name(reason)
        assert logged["blob"] is False  # a refused payload is not kept
        still_serves(parties)
    finally:
        for runtime in parties.runtimes.values():
            runtime.stop()


def test_refusal_is_logged_on_both_sides_with_the_same_digest(parties: Parties) -> None:
    plain = [Label("prompt:alice", Form.PLAINTEXT)]
    caught = refusal(
        parties["alice"], "deployer", "walkthrough", "sealed_prompt", plain, b"hello", check=False
    )
    assert caught.reason == pb.GUARANTEE_VIOLATED
    sent, received = last_entry(parties["alice"]), last_entry(parties["deployer"])
    assert (sent["direction"], sent["outcome"], sent["refusal"]) == (
        "out",
        "refused",
        "GUARANTEE_VIOLATED",
    )
    assert (received["direction"], received["outcome"]) == ("in", "refused")
    assert sent["header_sha256"] == received["header_sha256"]


def test_certificate_from_another_run_cannot_connect(parties: Parties) -> None:
    outsider_ca = RunAuthority("another-run")
    keys = PartyKeys.generate("alice")
    credentials = issue_credentials(outsider_ca, "alice", keys.certificate_requests())
    with pytest.raises(Undelivered):
        send(
            parties,
            "alice",
            "guidelines_db",
            catalog_request(parties),
            PartyClient(credentials, keys.tls_key_pem()),
        )
    still_serves(parties)


def test_server_must_be_the_named_party(parties: Parties) -> None:
    """A client addressing 'deployer' at the database's address fails TLS name checks."""
    client = client_of(parties["alice"])
    envelope = parties["alice"].boundary.seal(
        "deployer", "walkthrough", "catalog_request", CATALOG, b"{}", check=False
    )
    with pytest.raises(Undelivered):
        client.send("deployer", parties.directory.entry("guidelines_db").address, envelope)
    client.close()


def test_a_bad_payload_is_refused_before_the_role_reads_it(parties: Parties) -> None:
    digest = [Label("train:hospital_1", Form.DIGEST)]
    commitment = ("model_creator", "walkthrough", "dataset_commitment", digest)
    # withheld by the sender's own boundary, and refused by the receiver's
    withheld = refusal(parties["hospital_1"], *commitment, b'{"records": "1"}')
    assert withheld.reason == pb.BAD_PAYLOAD and "records" in withheld.detail
    assert last_entry(parties["hospital_1"])["outcome"] == "withheld"
    envelope = parties["hospital_1"].boundary.seal(*commitment, b"x", check=False)
    with pytest.raises(Refused) as refused:
        parties["hospital_1"].boundary.send(envelope)
    assert refused.value.reason == pb.BAD_PAYLOAD
    assert last_entry(parties["model_creator"])["outcome"] == "refused"


def test_handler_failure_keeps_the_party_running(
    parties: Parties, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A handler that raises (a bug, not the role's own refusal) is refused
    as HANDLER_FAILED without its internals, and the party keeps serving."""

    def broken(ctx: object, envelope: Envelope) -> None:
        raise KeyError("internal detail")

    handlers = get_protocol("walkthrough").handlers
    key = (Role.MODEL_CREATOR, "dataset_commitment")
    honest = handlers[key]
    monkeypatch.setitem(handlers, key, broken)  # type: ignore[arg-type]
    commitment = json.dumps({"records": 1, "sha256": "00" * 32}).encode()
    digest = [Label("train:hospital_1", Form.DIGEST)]
    args = ("model_creator", "walkthrough", "dataset_commitment", digest, commitment)
    failed = refusal(parties["hospital_1"], *args)
    assert failed.reason == pb.HANDLER_FAILED and "internal detail" not in failed.detail
    assert last_entry(parties["hospital_1"])["outcome"] == "delivered"
    monkeypatch.setitem(handlers, key, honest)  # type: ignore[arg-type]
    parties["hospital_1"].deliver(*args)


def test_64_mib_payload_crosses_the_boundary(parties: Parties) -> None:
    payload = os.urandom(64 << 20)
    reply = parties["alice"].deliver(
        "deployer",
        "walkthrough",
        "sealed_prompt",
        [Label("prompt:alice", Form.CIPHERTEXT)],
        payload,
    )
    assert reply is not None and reply.payload == hashlib.sha256(payload).digest()
    received = [
        e
        for e in read_entries(parties["deployer"].log.directory, "deployer")[0]
        if e["direction"] == "in"
    ]
    assert received[-1]["size"] == len(payload)
    blob = parties["deployer"].log.directory / BLOB_DIR / received[-1]["payload_sha256"]
    assert blob.stat().st_size == len(payload)


def test_replay_guard_admits_each_number_once_in_bounded_memory() -> None:
    from parties.boundary import ReplayGuard

    guard = ReplayGuard()
    assert guard.claim("alice", 2) and guard.claim("alice", 1)  # out of order is fine
    assert not guard.claim("alice", 2)
    assert guard.claim("bob", 2)  # per sender
    for sequence in range(3, 3 + 3 * ReplayGuard.WINDOW):
        assert guard.claim("alice", sequence)
    assert not guard.claim("alice", 5)  # older than the window: refused
    assert len(guard._seen["alice"]) <= 2 * ReplayGuard.WINDOW + 1

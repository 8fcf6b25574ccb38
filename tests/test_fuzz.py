"""Whatever bytes arrive, the boundary answers with a refusal and a log entry,
never another exception and never an admission (property-based, with
hypothesis): called directly, and over gRPC with mutual TLS."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parties.errors import Refused
from parties.labels import Form, Label
from parties.log_check import read_entries
from parties.transport import METHOD, REFUSAL_KEY
from parties.wire import airlock_pb2 as pb
from tests.helpers import Parties, start_parties
from tests.test_boundary import client_of


@pytest.fixture(scope="module")
def fuzz_parties(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Parties]:
    """One set of parties for all examples (starting servers per example is slow)."""
    started = start_parties(tmp_path_factory.mktemp("fuzz"), max_payload=4096)
    yield started
    for runtime in started.runtimes.values():
        runtime.stop()


def envelope_messages() -> st.SearchStrategy[list[bytes]]:
    """Raw stream messages: random bytes, or protobuf Envelopes with random fields."""
    random_bytes = st.binary(max_size=300)
    structured = st.builds(
        lambda header, signature, payload: pb.Envelope(
            header=header, signature=signature, payload=payload
        ).SerializeToString(),
        st.one_of(
            st.binary(max_size=200),
            st.builds(
                lambda sender, step, size, seq: pb.EnvelopeHeader(
                    sender=sender,
                    receiver="guidelines_db",
                    run_id="testrun",
                    protocol="walkthrough",
                    step=step,
                    sequence=seq,
                    payload_size=size,
                    payload_sha256=b"\x00" * 32,
                    labels=[pb.Label(asset="catalog:guidelines_db", form=pb.PUBLIC)],
                ).SerializeToString(),
                st.sampled_from(["alice", "deployer", "mallory", ""]),
                st.sampled_from(["catalog_request", "sealed_prompt", "x"]),
                st.integers(0, 10_000),
                st.integers(0, 2**64 - 1),
            ),
        ),
        st.binary(max_size=80),
        st.binary(max_size=100),
    )
    return st.lists(st.one_of(random_bytes, structured), max_size=4)


@settings(max_examples=300, deadline=None)
@given(messages=envelope_messages(), peer=st.sampled_from(["alice", "deployer", "mallory"]))
def test_any_input_is_refused_and_logged_never_raised(
    fuzz_parties: Parties, messages: list[bytes], peer: str
) -> None:
    receiver = fuzz_parties["guidelines_db"]
    before = len(read_entries(receiver.log.directory, "guidelines_db")[0])
    with pytest.raises(Refused) as caught:
        receiver.boundary.admit(peer, iter(messages))
    assert caught.value.reason in pb.RefusalReason.values()
    assert_one_refusal_logged(fuzz_parties, before, caught.value.reason)


def assert_one_refusal_logged(parties: Parties, before: int, reason: int) -> None:
    entries, problems = read_entries(parties["guidelines_db"].log.directory, "guidelines_db")
    assert not problems
    assert len(entries) == before + 1
    assert (entries[-1]["direction"], entries[-1]["outcome"]) == ("in", "refused")
    assert entries[-1]["refusal"] == pb.RefusalReason.Name(reason)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def raw_deliver(fuzz_parties: Parties) -> Iterator[grpc.StreamStreamMultiCallable]:
    """Deliver over alice's mutually authenticated channel, bytes as they are."""
    client = client_of(fuzz_parties["alice"])
    address = fuzz_parties.directory.entry("guidelines_db").address
    client._method("guidelines_db", address)  # opens the channel
    yield client._channels[("guidelines_db", address)].stream_stream(METHOD)
    client.close()


@settings(max_examples=100, deadline=None)
@given(messages=envelope_messages())
def test_any_stream_over_grpc_and_tls_is_refused_with_a_reason(
    fuzz_parties: Parties, raw_deliver: grpc.StreamStreamMultiCallable, messages: list[bytes]
) -> None:
    before = len(read_entries(fuzz_parties["guidelines_db"].log.directory, "guidelines_db")[0])
    with pytest.raises(grpc.RpcError) as caught:
        list(raw_deliver(iter(messages), timeout=10))
    trailers = dict(caught.value.trailing_metadata() or ())  # type: ignore[attr-defined]
    refusal = pb.Refusal.FromString(trailers[REFUSAL_KEY])
    assert refusal.reason != pb.REFUSAL_REASON_UNSPECIFIED and refusal.detail
    assert_one_refusal_logged(fuzz_parties, before, refusal.reason)
    fuzz_parties["alice"].deliver(  # and the party still serves
        "guidelines_db",
        "walkthrough",
        "catalog_request",
        [Label("catalog:guidelines_db", Form.PUBLIC)],
        b"{}",
    )

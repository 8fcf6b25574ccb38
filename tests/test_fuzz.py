"""Whatever bytes arrive, the boundary answers with a refusal and a log entry,
never another exception (property-based, with hypothesis)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parties.errors import Refused
from parties.log import read_entries
from parties.wire import airlock_pb2 as pb
from tests.helpers import Parties, start_parties


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
    try:
        receiver.boundary.admit(peer, iter(messages))
    except Refused as refusal:
        assert refusal.reason in pb.RefusalReason.values()
    entries, problems = read_entries(receiver.log.directory, "guidelines_db")
    assert not problems
    assert len(entries) == before + 1
    assert entries[-1]["direction"] == "in"

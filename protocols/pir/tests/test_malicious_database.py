"""A malicious database against the client, between real parties
(in-process, real gRPC with mutual TLS): it cannot learn which cluster a
question wants, neither through the catalog (a batch smaller than the
largest cluster is refused before any query) nor by selective failure (a
corrupted answer fails the same way wherever it sits in the batch). Every
catalog field the client relies on is checked, each refusal with its reason."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from models.corpus import guidelines
from parties.labels import Form, Label
from parties.log_check import read_entries
from parties.payload import unpack
from parties.roles import Role
from protocols.pir.catalog import BadCatalog
from protocols.pir.catalog import read as read_catalog
from protocols.pir.client import WRONG_ANSWER
from protocols.pir.embed import DIMENSIONS, embed
from protocols.pir.index import build_index, nearest_cluster, rank
from protocols.pir.rag import retrieved_documents
from protocols.pir.records import pack
from protocols.pir.tests.test_protocol import CLUSTERS, DOCUMENTS, PROMPTS, rag_text
from tests.helpers import result_of, run_text, running_parties


def _sent_and_received(run: Path) -> list[tuple[str, str, str, str, int]]:
    """What the client's log holds, in order, without times or digests."""
    entries, problems = read_entries(run / "parties/alice", "alice")
    assert not problems
    return [(e["direction"], e["outcome"], e["peer"], e["step"], e["size"]) for e in entries]


def test_a_batch_below_the_largest_cluster_is_refused_before_any_query(tmp_path: Path) -> None:
    result = run_text(rag_text("xor", {"guidelines_a": "small_batch"}), tmp_path / "run")
    assert result.failure is not None
    assert "guidelines_a's catalog is refused: its batch of" in result.failure
    assert "is not its largest cluster" in result.failure
    steps = [step for _, _, _, step, _ in _sent_and_received(tmp_path / "run")]
    assert "catalog" in steps and "pir_query" not in steps


@pytest.mark.parametrize("scheme", ["xor", "simplepir"])
def test_a_corrupted_answer_fails_the_same_way_wherever_it_is(tmp_path: Path, scheme: str) -> None:
    documents = guidelines(DOCUMENTS)
    index = build_index(documents, embed(documents), CLUSTERS)
    wanted = [nearest_cluster(index.centroids, question) for question in embed(PROMPTS)]
    spans = [index.starts[c + 1] - index.starts[c] for c in wanted]
    # the first position is always a wanted record; the last is padding for
    # a question whose cluster is smaller than the largest
    assert min(spans) < index.largest_cluster
    behaviour: dict[str, Any] = {}
    for adversary in ("corrupt_first_answer", "corrupt_last_answer"):
        run = tmp_path / adversary
        result = run_text(rag_text(scheme, {"guidelines_a": adversary}), run)
        assert result.failure is None, result.failure
        retrieved = result_of(result, "alice", "retrieve")
        behaviour[adversary] = (retrieved["errors"], retrieved["answers"], _sent_and_received(run))
    assert behaviour["corrupt_first_answer"] == behaviour["corrupt_last_answer"]
    errors, answers, _ = behaviour["corrupt_first_answer"]
    assert answers == [] and errors == [f"{prompt!r}: {WRONG_ANSWER}" for prompt in PROMPTS]


# -- the catalog, field by field --------------------------------------------------------

Catalog = tuple[dict[str, Any], bytes]


@pytest.fixture(scope="module")
def catalogs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Catalog]:
    """An honest catalog of each scheme (40 documents, 4 clusters), as it
    crossed the wire."""
    served = {}
    for scheme in ("xor", "simplepir"):
        roles = {"alice": Role.END_USER, "guidelines_a": Role.EXTERNAL_DATABASE}
        holdings = {"guidelines_a": {"synthetic_documents": 40}, "alice": {"prompts": ["x"]}}
        tmp = tmp_path_factory.mktemp(scheme)
        with running_parties(tmp, roles=roles, protocol="pir", holdings=holdings) as parties:
            parties["guidelines_a"].act("pir", "build_index", {"scheme": scheme, "clusters": 4})
            label = [Label("catalog:guidelines_a", Form.PUBLIC)]
            reply = parties["alice"].deliver("guidelines_a", "pir", "catalog_request", label, b"{}")
            assert reply is not None
            served[scheme] = unpack(reply.payload)
    return served


def test_an_honest_catalog_is_read_with_the_batch_computed_by_the_client(catalogs) -> None:
    for scheme, (meta, body) in catalogs.items():
        catalog = read_catalog("guidelines_a", meta, body, scheme, 4)  # type: ignore[arg-type]
        sizes = [b - a for a, b in zip(meta["starts"], meta["starts"][1:], strict=False)]
        assert catalog.batch == max(sizes) == meta["batch"]
        assert catalog.count == 40 and len(catalog.centroids) == len(sizes)
        assert (catalog.setup is None) == (scheme == "xor")


def _with(**changes: Any) -> Callable[[Catalog], Catalog]:
    return lambda served: ({**served[0], **changes}, served[1])


def _starts(change: Callable[[list[int]], list[int]]) -> Callable[[Catalog], Catalog]:
    return lambda served: ({**served[0], "starts": change(list(served[0]["starts"]))}, served[1])


BAD_CATALOGS: dict[str, tuple[Callable[[Catalog], Catalog], str]] = {
    "batch below the largest cluster": (
        lambda c: _with(batch=c[0]["batch"] - 1)(c),
        "is not its largest cluster",
    ),
    "batch above the largest cluster": (
        lambda c: _with(batch=c[0]["batch"] + 1)(c),
        "is not its largest cluster",
    ),
    "an empty cluster": (_starts(lambda s: [s[0], s[1], *s[1:]]), "not strictly increasing"),
    "boundaries out of order": (
        _starts(lambda s: [s[0], s[2], s[1], *s[3:]]),
        "not strictly increasing",
    ),
    "a boundary past the records": (_starts(lambda s: [*s[:-1], s[-1] + 8]), "do not span its 40"),
    "a negative boundary": (_starts(lambda s: [-1, *s[1:]]), "do not span its 40"),
    "a count above the records": (_with(count=41), "do not span its 41"),
    "fewer clusters than centroids": (_starts(lambda s: [s[0], *s[2:]]), "bytes, not the"),
    "a digest missing": (lambda c: (c[0], c[1][:-32]), "bytes, not the"),
    "a digest changed": (
        lambda c: (c[0], c[1][:-1] + bytes([c[1][-1] ^ 1])),
        "version does not name",
    ),
    "a version of another database": (_with(version="0" * 64), "version does not name"),
    "a count that is not a number": (_with(count="40"), "malformed: count"),
    "no batch": (lambda c: ({k: v for k, v in c[0].items() if k != "batch"}, c[1]), "batch"),
    "odd record size": (_with(record_bytes=1001), "malformed: record_bytes"),
}


@pytest.mark.parametrize("bad", BAD_CATALOGS, ids=list(BAD_CATALOGS))
def test_a_bad_catalog_is_refused_with_its_reason(catalogs, bad: str) -> None:
    tamper, reason = BAD_CATALOGS[bad]
    meta, body = tamper(catalogs["xor"])
    with pytest.raises(BadCatalog, match="guidelines_a's catalog is") as refused:
        read_catalog("guidelines_a", meta, body, "xor", 4)
    assert reason in str(refused.value)


def test_a_catalog_beyond_the_clients_own_settings_is_refused(catalogs) -> None:
    meta, body = catalogs["xor"]
    with pytest.raises(BadCatalog, match="4 clusters, more than the 3 configured"):
        read_catalog("guidelines_a", meta, body, "xor", 3)
    with pytest.raises(BadCatalog, match="serves xor, this client is configured for simplepir"):
        read_catalog("guidelines_a", meta, body, "simplepir", 4)


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"bits": 16}, "SimplePIR parameters"),
        ({"digits": 1}, "SimplePIR parameters"),
        ({"seed": "00" * 16}, "seed of A is not the one its version names"),
    ],
    ids=["plaintext modulus", "digit count", "seed of A"],
)
def test_simplepir_parameters_are_the_clients_own(catalogs, change: dict, reason: str) -> None:
    meta, body = _with(**change)(catalogs["simplepir"])
    with pytest.raises(BadCatalog, match=reason):
        read_catalog("guidelines_a", meta, body, "simplepir", 4)


def test_a_committed_record_that_is_not_a_document_is_left_out_not_an_error() -> None:
    """The database may commit to garbage; failing on it would fail exactly
    when its cluster is wanted, so it is left out of the ranking."""
    embedding = np.linspace(-1, 1, DIMENSIONS).astype(np.float16)
    table = pack([embedding.tobytes() + b"wanted", embedding.tobytes() + b"padding"])
    garbage = np.full(table.shape[1], 0xFF, dtype=np.uint8)
    embeddings, texts = retrieved_documents([table[0], garbage, table[1]], span=2)
    assert texts == ["wanted"] and np.array_equal(embeddings, embedding[None, :])
    embeddings, texts = retrieved_documents([garbage, table[1]], span=1)
    assert texts == [] and embeddings.shape == (0, DIMENSIONS)
    assert rank(embedding.astype(np.float32), embeddings, texts, 2) == []

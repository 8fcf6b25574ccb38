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
from protocols.pir.rag import STOPS, retrieved_documents
from protocols.pir.records import pack
from protocols.pir.tests.test_protocol import CLUSTERS, DOCUMENTS, PROMPTS, rag_text
from tests.helpers import run_text, running_parties


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
        behaviour[adversary] = (result.failure, _sent_and_received(run))
    assert behaviour["corrupt_first_answer"] == behaviour["corrupt_last_answer"]
    failure, sent = behaviour["corrupt_first_answer"]
    # every question's batch was sent, then the run stopped, naming each
    assert failure is not None and STOPS in failure
    assert f"{len(PROMPTS)} of {len(PROMPTS)} retrievals failed" in failure
    assert all(f"{prompt!r}: {WRONG_ANSWER}" in failure for prompt in PROMPTS)
    queries = [entry for entry in sent if entry[3] == "pir_query" and entry[1] == "delivered"]
    assert len(queries) == len(PROMPTS) * (2 if scheme == "xor" else 1)


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


# -- one record altered, and a later stage ------------------------------------------------

# the asthma question's top guideline, in its cluster and no other question's
ALTERED = (
    "guideline 9000: asthma in children: avoid budesonide; prefer a specialist plan; "
    "see a nurse in 3 days."
)
ASTHMA, GOUT = PROMPTS[0], PROMPTS[1]
# a later stage that sends each retrieved question, with its top guideline,
# to an enclave (the healthcare pipeline's tee stage, without its commitment)
ENCLAVE_STAGE = """
[parties.model_creator]
role = "model_creator"
site = "training"

[parties.deployer]
role = "deployer"
site = "serving"

[parties.enclave]
role = "enclave"
site = "serving"

[parties.verifier]
role = "verifier"
site = "verification"

[[stages]]
name = "enclave"
protocol = "tee"
params = { prompts = "retrieved", max_new_tokens = 1 }
"""


def _shape(run: Path, party: str) -> list[tuple[Any, ...]]:
    """What `party`'s log holds, in order, without times or digests."""
    entries, problems = read_entries(run / "parties" / party, party)
    assert not problems
    return [
        (e["direction"], e["outcome"], e["peer"], e.get("protocol"), e.get("step"), e.get("size"))
        for e in entries
    ]


def test_a_record_altered_for_one_question_stops_the_run_alike(tmp_path: Path) -> None:
    """A SimplePIR database builds its hint and answers from a copy with
    one record altered, publishing the real digests: only a fetch of that
    record fails. Before, alice dropped that question, and the enclave stage
    sent one prompt fewer (the host's log, and with receipts the ledger,
    would tell the database which question wanted the record). Now the run
    stops at the end of the retrieval, after every question's queries, and
    no party's traffic says which question it was: asked first or second,
    every log but alice's is the same."""
    corpus = [ALTERED, *guidelines(DOCUMENTS)]
    index = build_index(corpus, embed(corpus), CLUSTERS)
    position = index.documents.index(ALTERED)
    wanted = [nearest_cluster(index.centroids, question) for question in embed([ASTHMA, GOUT])]
    spans = [range(index.starts[c], index.starts[c + 1]) for c in wanted]
    assert position in spans[0] and position not in spans[1]
    parties = ["guidelines_a", "guidelines_b", "model_creator", "deployer", "enclave", "verifier"]
    shapes = []
    for order in ([ASTHMA, GOUT], [GOUT, ASTHMA]):
        run = tmp_path / f"asthma-{order.index(ASTHMA) + 1}"
        text = rag_text(
            "simplepir",
            {"guidelines_a": "alter_one_record"},
            order,
            documents=[ALTERED],
            params=", answer = false",
        )
        result = run_text(text + ENCLAVE_STAGE, run)
        failure = result.failure
        assert failure is not None and failure.startswith("stage 1/2 (retrieve)"), failure
        assert STOPS in failure and f"{ASTHMA!r}: {WRONG_ANSWER}" in failure
        assert not [a for a in result.actions if a["protocol"] == "tee"]
        shape = {party: _shape(run, party) for party in parties}
        assert not any(entry[3] == "tee" for entries in shape.values() for entry in entries)
        assert len([e for e in shape["guidelines_a"] if e[4] == "pir_query"]) == 2
        shapes.append(shape)
    assert shapes[0] == shapes[1]

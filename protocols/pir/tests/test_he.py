"""Ranking under homomorphic encryption (CKKS) between real parties
(in-process, real gRPC with mutual TLS): the database scores every document
against the encrypted question, the end user fetches the top ones by PIR
and gets what plaintext search over the whole corpus finds; bad keys, bad
ciphertexts and replays get a clear refusal, and the database keeps
serving."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tenseal as ts

from models.corpus import guidelines
from parties.errors import Refused
from parties.labels import Form, Label
from parties.log_check import read_entries
from parties.payload import pack, unpack
from parties.roles import Role
from parties.wire import airlock_pb2 as pb
from protocols.pir import he
from protocols.pir.client import MISSCORED, STEERED
from protocols.pir.embed import embed
from protocols.pir.index import rank
from protocols.pir.rag import STOPS
from protocols.pir.tests.test_protocol import PROMPTS, rag_text
from tests.helpers import Parties, failing, result_of, run_text, running_parties

DOCUMENTS = 300


def test_ranked_retrieval_finds_the_whole_corpus_top_k(tmp_path: Path) -> None:
    """The top 2 of plaintext nearest-neighbour search over every document,
    for every question; the databases received only ciphertexts and PIR
    queries, and every claim holds."""
    text = rag_text().replace('scheme = "xor",', 'scheme = "xor", ranking = "he",')
    result = run_text(text, tmp_path / "run")
    assert result.failure is None, result.failure
    assert not failing(result.audit)
    retrieved = result_of(result, "alice", "retrieve")
    corpus = guidelines(DOCUMENTS)
    embeddings = embed(corpus).astype(np.float16)  # as the records hold them
    wanted = [rank(query, embeddings, corpus, 2) for query in embed(PROMPTS)]
    assert [a["documents"] for a in retrieved["answers"]] == wanted
    visible = result.audit.visibility  # the queries: XOR shares (PIR) and a CKKS ciphertext
    assert visible["guidelines_a"]["query:alice"] == "share"
    assert visible["guidelines_a"]["evaluation_keys:alice"] == "public"
    assert visible["alice"]["scores:alice"] == "ciphertext"


ROLES = {"alice": Role.END_USER, "guidelines_a": Role.EXTERNAL_DATABASE}
KEYS = [Label("evaluation_keys:alice", Form.PUBLIC)]
QUERY = [Label("query:alice", Form.CIPHERTEXT)]


@pytest.fixture
def ranking(tmp_path: Path) -> Iterator[Parties]:
    holdings: dict[str, dict[str, Any]] = {
        "guidelines_a": {"synthetic_documents": 40},
        "alice": {"prompts": ["x"]},
    }
    settings = {"scheme": "simplepir", "ranking": "he", "clusters": 4}
    with running_parties(
        tmp_path, roles=ROLES, protocol="pir", holdings=holdings, settings=settings
    ) as started:
        started["guidelines_a"].act("pir", "build_index", settings)
        yield started


def refusal(started: Parties, step: str, labels: list[Label], payload: bytes) -> Refused:
    with pytest.raises(Refused) as refused:
        started["alice"].deliver("guidelines_a", "pir", step, labels, payload)
    return refused.value


def test_bad_keys_and_queries_are_refused_and_the_database_keeps_serving(
    ranking: Parties,
) -> None:
    catalog = ranking["alice"].deliver(
        "guidelines_a",
        "pir",
        "catalog_request",
        [Label("catalog:guidelines_a", Form.PUBLIC)],
        b"{}",
    )
    assert catalog is not None
    version = unpack(catalog.payload)[0]["version"]
    keys = he.RankingKeys()
    query = embed(["how should asthma be treated in children?"])[0]

    def request(body: bytes, made_under: str = keys.evaluation_keys_sha256) -> bytes:
        meta = {"version": version, "nonce": os.urandom(16).hex(), "keys_sha256": made_under}
        return pack(meta, body)

    def role_refusal(step: str, labels: list[Label], payload: bytes) -> str:
        refused = refusal(ranking, step, labels, payload)
        assert refused.reason == pb.HANDLER_FAILED, refused
        return refused.detail

    # a rank request before any evaluation keys
    assert "no evaluation keys from alice" in role_refusal(
        "rank_request", QUERY, request(keys.encrypt(query))
    )
    # keys that are not a context, that hold the secret key, of other parameters
    assert "not a TenSEAL context" in role_refusal("evaluation_keys", KEYS, bytes(2 << 20))
    secret = ts.context(
        ts.SCHEME_TYPE.CKKS,
        poly_modulus_degree=he.POLY_MODULUS_DEGREE,
        coeff_mod_bit_sizes=list(he.COEFF_MOD_BIT_SIZES),
    )
    secret.global_scale = he.SCALE
    secret.generate_galois_keys()
    with_secret = secret.serialize(save_secret_key=True)
    assert "hold a secret key" in role_refusal("evaluation_keys", KEYS, with_secret)
    other = ts.context(ts.SCHEME_TYPE.CKKS, 16384, coeff_mod_bit_sizes=[60, 40, 60])
    other.global_scale = he.SCALE
    public_other = other.serialize(save_secret_key=False)
    assert "not N=4096" in role_refusal("evaluation_keys", KEYS, public_other)
    # keys past their message's bound never reach the role
    oversized = refusal(ranking, "evaluation_keys", KEYS, bytes(he.MAX_KEYS_BYTES + 1))
    assert oversized.reason == pb.BAD_PAYLOAD
    # the honest keys
    ranking["alice"].deliver("guidelines_a", "pir", "evaluation_keys", KEYS, keys.evaluation_keys)
    # a ciphertext under other parameters, not a ciphertext, of the wrong length
    other_query = ts.ckks_vector(other, query.tolist()).serialize()
    assert "not a CKKS vector" in role_refusal("rank_request", QUERY, request(other_query))
    assert "not a CKKS vector" in role_refusal("rank_request", QUERY, request(b"\x00" * 64))
    short = keys.encrypt(query[:100])
    assert "holds 100 values" in role_refusal("rank_request", QUERY, request(short))
    # made under other keys than the ones the database holds
    assert "other evaluation keys" in role_refusal(
        "rank_request", QUERY, request(keys.encrypt(query), made_under="00" * 32)
    )
    # the database still serves: an honest request is answered, once
    honest = request(keys.encrypt(query))
    reply = ranking["alice"].deliver("guidelines_a", "pir", "rank_request", QUERY, honest)
    assert reply is not None and reply.header.step == "rank_answer"
    meta, body = unpack(reply.payload)
    assert meta == {"chunks": [len(body)]}
    # every document's score (in the database's layout order), as in plaintext
    scores = keys.scores([body], 40)
    embeddings = embed(guidelines(40)).astype(np.float16).astype(np.float64)
    assert np.allclose(np.sort(scores), np.sort(embeddings @ query), atol=5e-5)
    assert "replayed" in role_refusal("rank_request", QUERY, honest)


def test_the_scores_match_plaintext_inner_products() -> None:
    """CKKS at these parameters: every score within 5e-5 of the plaintext
    inner product, so the top k is plaintext's but for near ties."""
    rng = np.random.default_rng(7)
    documents = rng.normal(size=(he.CHUNK + 10, 384))  # two chunks
    documents /= np.linalg.norm(documents, axis=1, keepdims=True)
    query = documents[3] + 0.1 * rng.normal(size=384)
    query /= np.linalg.norm(query)
    keys = he.RankingKeys()
    held = he.public_context(keys.evaluation_keys)
    encrypted = he.encrypted_query(held, keys.evaluation_keys_sha256, keys.encrypt(query))
    chunks = he.score(encrypted, documents)
    assert len(chunks) == 2
    scores = keys.scores(chunks, len(documents))
    assert np.max(np.abs(scores - documents @ query)) < 5e-5
    with pytest.raises(Exception, match="2 chunks"):
        keys.scores(chunks[:1], len(documents))


# -- a database that steers the ranking ---------------------------------------------------

# an off-topic document, never among any question's top 2, and one that is
# the asthma question's top 1: what a database promotes, what it buries
OFF_TOPIC = "guideline 9999: a late addition; review after 7 days."
TOP = (
    "guideline 9000: asthma in children: avoid budesonide; prefer a specialist plan; "
    "see a nurse in 3 days."
)
ASKED = PROMPTS[:2]  # the asthma question, and another


def ranked_text(chosen: str, adversaries: dict[str, str]) -> str:
    """Ranking under HE over both replicas, each holding `chosen` (the
    document an adversary acts on) with the synthetic guidelines."""
    return rag_text(adversaries=adversaries, prompts=ASKED, documents=[chosen]).replace(
        'scheme = "xor",', 'scheme = "xor", ranking = "he",'
    )


def plaintext_top(chosen: str) -> list[list[str]]:
    corpus = [chosen, *guidelines(DOCUMENTS)]
    embeddings = embed(corpus).astype(np.float16)
    return [rank(query, embeddings, corpus, 2) for query in embed(ASKED)]


@pytest.mark.parametrize(
    "adversary, replica, chosen",
    [("steer_ranking", "guidelines_a", OFF_TOPIC), ("bury_ranking", "guidelines_b", TOP)],
)
def test_one_replica_steering_the_ranking_stops_the_run(
    tmp_path: Path, adversary: str, replica: str, chosen: str
) -> None:
    """One replica adds to (or takes from) its chosen document's encrypted
    score, under alice's own public key: the other replica's scores differ,
    and the run stops once every question's queries were sent. (Before
    the replicas both ranked, alice fetched the promoted document for every
    question, and never the buried one.)"""
    result = run_text(ranked_text(chosen, {replica: adversary}), tmp_path / "run")
    failure = result.failure
    assert failure is not None and STOPS in failure, failure
    assert f"{len(ASKED)} of {len(ASKED)} retrievals failed" in failure
    assert failure.count(STEERED) == len(ASKED)
    # each replica got a rank request and a PIR batch for every question
    for database in ("guidelines_a", "guidelines_b"):
        entries, problems = read_entries(tmp_path / "run/parties" / database, database)
        assert not problems
        admitted = [e["step"] for e in entries if e["outcome"] == "admitted"]
        assert admitted.count("rank_request") == admitted.count("pir_query") == len(ASKED)


def test_a_colluding_pair_cannot_promote_a_document(tmp_path: Path) -> None:
    """Both replicas promote the same document, so their scores agree; but
    alice fetches it and its score is not its own embedding's inner product
    with her question: the run stops."""
    assert all(OFF_TOPIC not in top for top in plaintext_top(OFF_TOPIC))
    adversaries = {"guidelines_a": "steer_ranking", "guidelines_b": "steer_ranking"}
    result = run_text(ranked_text(OFF_TOPIC, adversaries), tmp_path / "run")
    failure = result.failure
    assert failure is not None and STOPS in failure, failure
    assert failure.count(MISSCORED) == len(ASKED)


def test_a_colluding_pair_can_bury_a_document_unseen(tmp_path: Path) -> None:
    """What the checks cannot stop (docs/pir.md): both replicas lower the
    same document's score, every fetched document's score is its own, and
    alice gets the best of the rest without an error."""
    honest = plaintext_top(TOP)
    assert honest[0][0] == TOP  # the asthma question's top 1
    adversaries = {"guidelines_a": "bury_ranking", "guidelines_b": "bury_ranking"}
    result = run_text(ranked_text(TOP, adversaries), tmp_path / "run")
    assert result.failure is None, result.failure
    retrieved = result_of(result, "alice", "retrieve")
    assert retrieved["errors"] == []
    found = [a["documents"] for a in retrieved["answers"]]
    assert found[1] == honest[1] and TOP not in found[0] and found[0][0] == honest[0][1]

"""The pir protocol between real parties (in-process, real gRPC with mutual
TLS): PIR retrieval returns exactly what plaintext retrieval returns, the
databases see only PIR queries, and bad, replayed or stale queries get a
clear refusal, never a wrong document."""

from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path

import pytest

from models.corpus import example_for, guidelines
from models.pretrain import names_the_advice
from orchestrator.scenario import load_scenario, parse_scenario
from parties.errors import ConfigError, Refused
from parties.labels import Form, Label
from parties.log_check import read_entries
from parties.payload import pack, unpack
from parties.roles import Role
from parties.wire import airlock_pb2 as pb
from protocols.pir.embed import embed
from protocols.pir.index import build_index, plaintext_retrieve
from protocols.pir.rag import STOPS
from tests.helpers import failing, result_of, run_text, running_parties, with_adversary

DOCUMENTS = 300
CLUSTERS = 8
PROMPTS = [  # in the corpus's question format (models/corpus.py)
    "how should asthma be treated in children?",
    "what is the plan for gout in kidney disease?",
    "malaria in pregnancy: what do you advise?",
    "how should diabetes be treated in older adults?",
    "what is the plan for migraine in adults?",
]


def rag_text(
    scheme: str = "xor",
    adversaries: dict[str, str] | None = None,
    prompts: list[str] = PROMPTS,
    *,
    documents: list[str] | None = None,
    params: str = "",
) -> str:
    """The private-rag scenario, smaller; `documents` are held by both
    databases before their synthetic ones, `params` added to the stage's."""
    _, text = load_scenario("private-rag")
    held = f"synthetic_documents = {DOCUMENTS}"
    if documents is not None:
        held += f"\ndocuments = {json.dumps(documents)}"
    text = text.replace("synthetic_documents = 2000", held)
    text = re.sub(
        r"params = \{.*\}",
        f'params = {{ scheme = "{scheme}", clusters = {CLUSTERS}, top_k = 2{params} }}',
        text,
    )
    text = re.sub(r"prompts = \[[^\]]*\]", lambda _: f"prompts = {json.dumps(prompts)}", text)
    for party, adversary in (adversaries or {}).items():
        text = with_adversary(text, party, adversary)
    return text


def expected(documents: list[str]) -> list[list[str]]:
    index = build_index(documents, embed(documents), CLUSTERS)
    return [plaintext_retrieve(index, query, 2) for query in embed(PROMPTS)]


def names_the_top_advice(answered: dict) -> bool:
    """The answer names the top guideline's drug and, if it has one, its dose."""
    top = example_for(answered["documents"][0], random.Random(0))
    return names_the_advice(top, answered["answer"])


@pytest.fixture(scope="module")
def reference() -> list[list[str]]:
    return expected(guidelines(DOCUMENTS))


@pytest.mark.parametrize("scheme", ["xor", "simplepir"])
def test_pir_retrieval_is_plaintext_retrieval_and_databases_see_only_queries(
    tmp_path: Path, reference: list[list[str]], scheme: str
) -> None:
    result = run_text(rag_text(scheme), tmp_path / "run")
    assert result.failure is None and result.audit.ok, failing(result.audit)
    retrieved = result_of(result, "alice", "retrieve")
    assert retrieved["errors"] == []
    assert [a["documents"] for a in retrieved["answers"]] == reference
    # the shipped model answers from the whole top guideline: its drug, and
    # its dose if it has one (here it has none: see WITH_DOSES)
    assert all(names_the_top_advice(a) for a in retrieved["answers"]), retrieved["answers"]
    scans = [c for c in result.audit.claims if "query:alice" in c.name]
    assert len(scans) == 2 and all(c.ok and c.checked > 0 for c in scans)
    databases = ["guidelines_a", "guidelines_b"] if scheme == "xor" else ["guidelines_a"]
    form = "share" if scheme == "xor" else "ciphertext"
    for database in databases:
        seen = result.audit.visibility[database]
        assert seen == {"query:alice": form, "catalog:" + database: "public"}
        # what the database received is what its log says: one batch per
        # question, each blob the logged digest, the same size every time
        entries, problems = read_entries(tmp_path / "run/parties" / database, database)
        assert not problems
        queries = [e for e in entries if e["step"] == "pir_query"]
        assert len(queries) == len(PROMPTS)
        assert len({e["size"] for e in queries}) == 1
        for entry in queries:
            blob = tmp_path / "run/parties" / database / "blobs" / entry["payload_sha256"]
            assert hashlib.sha256(blob.read_bytes()).hexdigest() == entry["payload_sha256"]


def test_a_plaintext_query_is_refused(tmp_path: Path) -> None:
    result = run_text(rag_text(adversaries={"alice": "plaintext_query"}), tmp_path / "run")
    refused = [a for a in result.actions if a["action"] == "send_plaintext_query"]
    assert "RULE_NOT_PERMITTED" in refused[0]["result"]["refused"]
    assert [b["refusal"] for b in result.audit.blocked] == ["RULE_NOT_PERMITTED"]
    # refused, yet its bytes reached the database (the audit cannot tell an
    # honest refusal from a receiver that kept them): the guarantee fails
    # there, and nothing else does
    ((claim, (finding,)),) = failing(result.audit).items()
    assert claim == "guarantee: databases see queries only as PIR queries"
    assert finding.startswith("guidelines_a entry") and "query:alice as plaintext" in finding


# Over the synthetic corpus, the top guideline for a question of the
# corpus's format is an `avoid <drug>; prefer a specialist plan` one, with
# no dose (docs/pir.md); these databases hold only guidelines with doses.
WITH_DOSES = [
    "guideline 0001: asthma in children: start salbutamol 100 mg twice daily; review after 7 days.",
    "guideline 0002: gout in kidney disease: reduce allopurinol to 50 mg once daily; "
    "check blood tests after 14 days.",
    "guideline 0003: malaria in pregnancy: switch to quinine 500 mg twice daily after side "
    "effects; refer if no better in 3 days.",
    "guideline 0004: flu in older adults: add oseltamivir 20 mg at night if control is poor; "
    "see a nurse in 28 days.",
]
OUTSIDE = "how should asthma be treated in children \u2014 now?"
TOO_LONG = "what is the plan for asthma in children? " * 10


@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A run whose databases hold WITH_DOSES, asked PROMPTS[:3] and two
    questions the model cannot take."""
    text = rag_text(prompts=[OUTSIDE, *PROMPTS[:3], TOO_LONG]).replace(
        f"synthetic_documents = {DOCUMENTS}",
        f"synthetic_documents = 0\ndocuments = {json.dumps(WITH_DOSES)}",
    )
    out = tmp_path_factory.mktemp("small") / "run"
    result = run_text(text, out)
    assert result.failure is None and result.audit.ok, failing(result.audit)
    return out, result_of(result, "alice", "retrieve")


def test_the_answer_names_the_retrieved_drug_and_dose(small_run: tuple[Path, dict]) -> None:
    _, retrieved = small_run
    answers = retrieved["answers"]
    assert [(a["prompt"], a["documents"][0]) for a in answers] == list(
        zip(PROMPTS[:3], WITH_DOSES[:3], strict=True)
    )
    for answered, dose in zip(answers, ("100", "50", "500"), strict=True):
        assert names_the_top_advice(answered) and dose in answered["answer"].split(), answered


def test_a_question_the_model_cannot_take_is_refused_before_any_query(
    small_run: tuple[Path, dict],
) -> None:
    out, retrieved = small_run
    refused_char, refused_length = retrieved["errors"]
    assert refused_char.startswith(f"{OUTSIDE!r}: the question: character '\u2014' at position 41")
    assert refused_length == (
        f"{TOO_LONG!r}: the question takes 94 tokens: with 24 for the answer, more than the "
        "model's context of 96"
    )
    # no query was sent for either: the databases answered the three others
    entries, _ = read_entries(out / "parties/guidelines_a", "guidelines_a")
    assert len([e for e in entries if e["step"] == "pir_query"]) == 3


def test_a_replayed_query_is_refused_never_answered(tmp_path: Path) -> None:
    result = run_text(rag_text(adversaries={"alice": "replay_query"}), tmp_path / "run")
    # the first batch was fresh; every later one is refused, and the run
    # stops once every question's batch was sent
    failure = result.failure
    assert failure is not None and STOPS in failure
    assert f"{len(PROMPTS) - 1} of {len(PROMPTS)} retrievals failed" in failure
    assert failure.count("replayed query") == len(PROMPTS) - 1
    assert not [a for a in result.actions if a["action"] == "retrieve"]


def test_a_stale_hint_is_a_clear_error_and_the_client_downloads_again(tmp_path: Path) -> None:
    text = rag_text("simplepir", adversaries={"guidelines_a": "update_corpus"})
    result = run_text(text, tmp_path / "run")
    retrieved = result_of(result, "alice", "retrieve")
    (error,) = retrieved["errors"]
    assert "stale catalog" in error and "downloading the catalog again" in error
    updated = guidelines(DOCUMENTS) + ["guideline 9999: a late addition; review after 7 days."]
    assert [a["documents"] for a in retrieved["answers"]] == expected(updated)


@pytest.fixture
def database(tmp_path: Path):
    roles = {"alice": Role.END_USER, "guidelines_a": Role.EXTERNAL_DATABASE}
    holdings: dict[str, dict] = {
        "guidelines_a": {"synthetic_documents": 40},
        "alice": {"prompts": ["x"]},
    }
    with running_parties(tmp_path, roles=roles, protocol="pir", holdings=holdings) as started:
        yield started


def test_malformed_queries_are_refused_and_the_database_keeps_serving(database) -> None:
    alice = database["alice"]
    database["guidelines_a"].act("pir", "build_index", {"clusters": 4})
    catalog = alice.deliver(
        "guidelines_a",
        "pir",
        "catalog_request",
        [Label("catalog:guidelines_a", Form.PUBLIC)],
        b"{}",
    )
    assert catalog is not None
    meta, _ = unpack(catalog.payload)
    version, batch = meta["version"], meta["batch"]
    label = [Label("query:alice", Form.SHARE)]

    def refusal(payload: bytes, reason: int = pb.HANDLER_FAILED) -> str:
        with pytest.raises(Refused) as refused:
            alice.deliver("guidelines_a", "pir", "pir_query", label, payload)
        assert refused.value.reason == reason
        return refused.value.detail

    good = bytes(5)  # 40 records: 5 bytes of selection bits
    named = {"version": version, "nonce": "ab" * 16}
    # what breaks the query's message definition (messages.py) never reaches the role
    unnamed = pack({"version": version, "size": 5}, good * batch)
    assert "nonce: Field required" in refusal(unnamed, pb.BAD_PAYLOAD)
    as_text = pack({**named, "size": "5"}, good * batch)
    assert "size: Input should be a valid integer" in refusal(as_text, pb.BAD_PAYLOAD)
    assert "payload" in refusal(b"\x00\x01", pb.BAD_PAYLOAD)
    # what fits it but is wrong, the database judges
    assert "stale catalog" in refusal(pack({**named, "version": "old", "size": 5}, good * batch))
    assert "queries of equal size" in refusal(pack({**named, "size": 5}, good))
    assert "XOR query is 5 bytes" in refusal(pack({**named, "size": 4}, bytes(4) * batch))
    # still serving, and a good batch is answered once only
    reply = alice.deliver(
        "guidelines_a", "pir", "pir_query", label, pack({**named, "size": 5}, good * batch)
    )
    assert reply is not None
    assert "replayed query" in refusal(pack({**named, "size": 5}, good * batch))
    # the same queries under another nonce are another batch (an honest repeat)
    again = pack({**named, "nonce": "cd" * 16, "size": 5}, good * batch)
    assert alice.deliver("guidelines_a", "pir", "pir_query", label, again) is not None


def test_a_request_before_the_index_is_built_is_out_of_step(database) -> None:
    label = [Label("catalog:guidelines_a", Form.PUBLIC)]
    with pytest.raises(Refused) as refused:
        database["alice"].deliver("guidelines_a", "pir", "catalog_request", label, b"{}")
    assert refused.value.reason == pb.OUT_OF_STEP
    assert "a catalog request needs the role to be serving" in refused.value.detail


def test_a_database_with_nothing_to_serve_is_refused_when_the_scenario_is_parsed() -> None:
    text = rag_text().replace(f"synthetic_documents = {DOCUMENTS}", "synthetic_documents = 0", 1)
    with pytest.raises(ConfigError) as caught:
        parse_scenario(text, "rag.toml")
    message = str(caught.value)
    assert message.startswith("rag.toml: parties.guidelines_a: ")
    assert "needs `documents` or `synthetic_documents`" in message

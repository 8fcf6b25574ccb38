"""What each role does in the pir protocol (private retrieval for RAG).

external database: builds its index (embeds its corpus with MiniLM, k-means
    clusters, records laid out cluster by cluster), answers catalog requests
    with the public part (centroids, cluster boundaries, version, and for
    SimplePIR the seed of A and the hint), and answers batches of PIR
    queries. It refuses a query for another version (a stale catalog or
    hint), of the wrong size or form, a batch of the wrong size, and a batch
    it has answered before (a replay).
end user: checks each database's catalog against its own settings
    (catalog.py), embeds each question locally, picks the nearest cluster,
    and fetches every record of it by PIR. The batch is always as large as
    the largest cluster, as the client computes it, so its size says
    nothing of the cluster. Every record of the batch, padding too, is
    checked against its digest in the catalog, and a wrong one is the same
    error wherever it sits. It ranks what it fetched and answers the
    question with the top documents in the shared model's prompt.
Malicious databases are in adversaries.py.

Schemes (the stage's `scheme`): `xor`, two replicas that must not collude;
`simplepir`, one server.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from models.charlm import TOKENIZER, generate
from models.corpus import pretrained_model
from parties.envelope import Envelope
from parties.errors import AirlockError, BadQuery
from parties.labels import Form, Label
from parties.payload import pack, unpack
from parties.protocol import FINGERPRINTS, Adversary, PartyContext, Protocol, Reply, attempt
from parties.roles import ExternalDatabase
from protocols.pir import records, xor
from protocols.pir.adversaries import DATABASE_ADVERSARIES, declared_batch, served_answers
from protocols.pir.catalog import Catalog, publish
from protocols.pir.catalog import read as read_catalog
from protocols.pir.corpus import guidelines
from protocols.pir.embed import DIMENSIONS, embed
from protocols.pir.index import Index, build_index, decode_record, nearest_cluster, rank
from protocols.pir.rules import DATABASE, NAME, RULES, USER
from protocols.pir.simplepir import SimplePirClient, SimplePirServer, seed_for

Summary = dict[str, Any]
MAX_SEEN = 1 << 20  # replay memory per database, in batches
STALE = "stale catalog"  # the refusal a client answers by downloading the catalog again
# one error for every wrong answer, whatever its position in the batch
WRONG_ANSWER = "a retrieved record does not match its digest in the catalog: a wrong answer"


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    scheme: Literal["xor", "simplepir"] = "xor"
    clusters: int = Field(default=32, ge=1)
    top_k: int = Field(default=2, ge=1, le=16)
    pretrain_steps: int = Field(default=150, ge=0)
    max_new_tokens: int = Field(default=32, ge=1, le=256)


def _form(scheme: str) -> Form:
    return Form.SHARE if scheme == "xor" else Form.CIPHERTEXT


# -- external database -------------------------------------------------------------


def _corpus(ctx: PartyContext) -> list[str]:
    holdings = ctx.holdings
    assert isinstance(holdings, ExternalDatabase)
    documents = list(holdings.documents) + guidelines(holdings.synthetic_documents)
    if ctx.state.get("updated"):  # the update_corpus adversary changed it
        documents.append("guideline 9999: a late addition; review after 7 days.")
    return documents


@dataclass
class Database:
    """A database's built index, its PIR server, its catalog (header and
    body, fixed for this version) and the batches it has answered."""

    settings: Settings
    index: Index
    server: xor.XorServer | SimplePirServer
    batch: int  # queries per batch: the largest cluster (see adversaries.declared_batch)
    catalog: tuple[dict[str, Any], bytes]
    seen: set[bytes] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _build(ctx: PartyContext, s: Settings) -> Database:
    documents = _corpus(ctx)
    index = build_index(documents, embed(documents), min(s.clusters, len(documents)))
    table = index.records()
    digests = records.digests(table)
    version = records.version_of(digests, table.shape[1])
    server: xor.XorServer | SimplePirServer
    if s.scheme == "xor":
        server = xor.XorServer(table)
    else:
        server = SimplePirServer(table, seed=seed_for(version))
    batch = declared_batch(ctx.adversary, index)
    meta, body = publish(
        s.scheme,
        index,
        batch=batch,
        record_bytes=table.shape[1],
        digests=digests,
        version=version,
        setup=server.setup() if isinstance(server, SimplePirServer) else None,
    )
    return Database(s, index, server, batch, (meta, body))


def build_index_action(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    database = ctx.state["db"] = _build(ctx, Settings.model_validate(params))
    meta, _ = database.catalog
    return {
        "documents": meta["count"],
        "clusters": len(meta["starts"]) - 1,
        "largest_cluster": database.index.largest_cluster,
        "record_bytes": meta["record_bytes"],
        "version": meta["version"][:16],
    }


def _db(ctx: PartyContext) -> Database:
    database = ctx.state.get("db")
    if database is None:
        raise AirlockError("the database has no index yet")
    return database


def on_catalog_request(ctx: PartyContext, envelope: Envelope) -> Reply:
    database = _db(ctx)
    meta, body = database.catalog
    if ctx.adversary == "update_corpus" and not ctx.state.get("updated"):
        # the database changes right after the client's download
        ctx.state["updated"] = True
        ctx.state["db"] = _build(ctx, database.settings)
    return Reply("catalog", (Label(f"catalog:{ctx.name}", Form.PUBLIC),), pack(meta, body))


def on_pir_query(ctx: PartyContext, envelope: Envelope) -> Reply:
    database = _db(ctx)
    server = database.server
    meta, body = unpack(envelope.payload)
    if meta.get("version") != server.version:
        raise BadQuery(f"{STALE}: the database changed since the client's download")
    batch = database.batch
    if not isinstance(meta.get("size"), int) or meta["size"] * batch != len(body):
        raise BadQuery(f"a batch is {batch} queries of equal size")
    size = meta["size"]
    queries = [body[i * size : (i + 1) * size] for i in range(batch)]
    digest = hashlib.sha256(body).digest()
    with database.lock:
        if digest in database.seen:
            raise BadQuery("replayed query: this batch was answered before")
        if len(database.seen) >= MAX_SEEN:
            database.seen.clear()
        database.seen.add(digest)
    if isinstance(server, SimplePirServer):
        answers = server.answer_batch(queries, meta["version"])
    else:
        answers = server.answer_batch(queries)
    answers = served_answers(ctx.adversary, answers)
    label = (Label(f"records:{ctx.name}", _form(database.settings.scheme)),)
    return Reply("pir_answer", label, pack({"size": len(answers[0])}, b"".join(answers)))


# -- end user ---------------------------------------------------------------------------


def _catalogs(ctx: PartyContext, s: Settings) -> tuple[list[str], list[Catalog]]:
    databases = sorted(ctx.peers(DATABASE))
    wanted = 2 if s.scheme == "xor" else 1
    if len(databases) < wanted:
        raise AirlockError(f"{s.scheme} needs {wanted} database(s), found {len(databases)}")
    databases = databases[:wanted]
    catalogs = []
    for name in databases:
        label = [Label(f"catalog:{name}", Form.PUBLIC)]
        reply = ctx.deliver(name, "catalog_request", label, b"{}")
        if reply is None:
            raise AirlockError(f"{name} sent no catalog")
        catalogs.append(read_catalog(name, *unpack(reply.payload), s.scheme, s.clusters))
    if s.scheme == "xor" and not catalogs[0].same_as(catalogs[1]):
        raise AirlockError("the two replicas hold different databases")
    return databases, catalogs


def _ask(
    ctx: PartyContext, database: str, catalog: Catalog, queries: list[bytes], s: Settings
) -> list[bytes]:
    meta = {"version": catalog.version, "size": len(queries[0])}
    label = [Label(f"query:{ctx.name}", _form(s.scheme))]
    body = b"".join(queries)
    sent = ctx.state.setdefault("last_batch", {})
    if ctx.adversary == "replay_query" and database in sent:
        meta, body = sent[database]  # the previous batch, sent again
    sent[database] = (meta, body)
    reply = ctx.deliver(database, "pir_query", label, pack(meta, body))
    if reply is None:
        raise AirlockError(f"{database} sent no answer")
    answer_meta, answer_body = unpack(reply.payload)
    size = catalog.answer_bytes
    if answer_meta.get("size") != size or size * len(queries) != len(answer_body):
        raise BadQuery(f"{database} answered a batch of the wrong size")
    return [answer_body[i * size : (i + 1) * size] for i in range(len(queries))]


def fetch(
    ctx: PartyContext,
    databases: list[str],
    catalogs: list[Catalog],
    indices: list[int],
    s: Settings,
) -> list[np.ndarray]:
    """The records at `indices`, by PIR (one batch per database), each
    checked against its digest in the catalog. All are checked, and any
    mismatch is the same error whatever its position: a database that
    corrupts one answer learns only that it did, never whether that
    position was a record the client wanted or padding."""
    first = catalogs[0]
    rows: list[np.ndarray]
    if s.scheme == "xor":
        pairs = [xor.make_queries(i, first.count) for i in indices]
        left = _ask(ctx, databases[0], first, [a for a, _ in pairs], s)
        right = _ask(ctx, databases[1], catalogs[1], [b for _, b in pairs], s)
        rows = [xor.combine(a, b) for a, b in zip(left, right, strict=True)]
    else:
        assert first.setup is not None
        client = ctx.state.get("pir_client")
        if client is None or client.setup.version != first.version:
            client = ctx.state["pir_client"] = SimplePirClient(first.setup)
        queries, lwe_secrets = client.query_batch(indices)
        rows = client.decode_batch(_ask(ctx, databases[0], first, queries, s), lwe_secrets)
    intact = [records.digest(row) == first.digest(i) for i, row in zip(indices, rows, strict=True)]
    if not all(intact):
        raise BadQuery(WRONG_ANSWER)
    return rows


def _fetch_cluster(
    ctx: PartyContext,
    databases: list[str],
    catalogs: list[Catalog],
    query: np.ndarray,
    s: Settings,
) -> tuple[int, list[np.ndarray]]:
    """Every record of the cluster nearest the query, then random padding
    records up to the batch (the largest cluster, as the client computed
    it), so the batch's size says nothing of the cluster. Returns the
    cluster's size and the records."""
    catalog = catalogs[0]
    wanted = catalog.cluster(nearest_cluster(catalog.centroids, query))
    padding = [secrets.randbelow(catalog.count) for _ in range(catalog.batch - len(wanted))]
    return len(wanted), fetch(ctx, databases, catalogs, [*wanted, *padding], s)


def _documents(rows: list[np.ndarray], span: int) -> tuple[np.ndarray, list[str]]:
    """The embeddings and texts of the first `span` rows. Every row is
    decoded, padding too, so the work does not depend on the span. A row
    that matched its digest but is not a document (the database committed
    to garbage) is left out rather than failing: a failure would happen
    exactly when its cluster is wanted."""
    decoded: list[tuple[np.ndarray, str] | None] = []
    for row in rows:
        try:
            decoded.append(decode_record(row))
        except (AirlockError, UnicodeDecodeError):
            decoded.append(None)
    kept = [d for d in decoded[:span] if d is not None]
    embeddings = np.array([e for e, _ in kept], dtype=np.float16).reshape(-1, DIMENSIONS)
    return embeddings, [t for _, t in kept]


def _prompt_text(documents: list[str], question: str, context: int) -> str:
    """The retrieved text, then the question, in the model's vocabulary, cut to its context."""
    text = " ".join(d.split(": ", 1)[-1] for d in documents) + "\n" + question
    kept = "".join(c for c in text.lower() if c in TOKENIZER.index)
    return kept[-context:]


def retrieve(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    s = Settings.model_validate(ctx.settings)  # the client's own, never a database's
    prompts = list(getattr(ctx.holdings, "prompts", ()))
    model = pretrained_model(s.pretrain_steps)
    databases, catalogs = _catalogs(ctx, s)
    embeddings = embed(prompts) if prompts else np.zeros((0, DIMENSIONS), np.float32)
    results, errors, timings = [], [], []
    for prompt, query in zip(prompts, embeddings, strict=True):
        started = time.perf_counter()
        try:
            try:
                span, rows = _fetch_cluster(ctx, databases, catalogs, query, s)
            except AirlockError as error:
                if STALE not in str(error):
                    raise
                errors.append(f"{prompt!r}: {error}; downloading the catalog again")
                databases, catalogs = _catalogs(ctx, s)
                span, rows = _fetch_cluster(ctx, databases, catalogs, query, s)
        except AirlockError as error:
            errors.append(f"{prompt!r}: {error}")
            continue
        documents = rank(query, *_documents(rows, span), s.top_k)
        timings.append(time.perf_counter() - started)
        prompt_text = _prompt_text(documents, prompt, model.config.context)
        answer = generate(model, prompt_text, s.max_new_tokens)[len(prompt_text) :]
        results.append({"prompt": prompt, "documents": documents, "answer": answer})
    fingerprints = {
        f"query:{ctx.name}": [p.encode().hex() for p in prompts]
        + [q.astype("<f4").tobytes()[:32].hex() for q in embeddings]
        + [q.astype("<f2").tobytes()[:32].hex() for q in embeddings]
    }
    summary: Summary = {"scheme": s.scheme, "answers": results, "errors": errors}
    if timings:
        summary["retrieval_ms"] = round(1000 * min(timings), 1)
    summary[FINGERPRINTS] = fingerprints
    return summary


def send_plaintext_query(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    """Adversary plaintext_query: a misconfigured client sends its question
    in the clear where a PIR query is due."""
    prompts = list(getattr(ctx.holdings, "prompts", ()))
    database = sorted(ctx.peers(DATABASE))[0]
    label = [Label(f"query:{ctx.name}", Form.PLAINTEXT)]
    return attempt(ctx, database, "pir_query", label, pack({}, prompts[0].encode()))


PROTOCOL = Protocol(
    name=NAME,
    rules=RULES,
    handlers={
        (DATABASE, "catalog_request"): on_catalog_request,
        (DATABASE, "pir_query"): on_pir_query,
    },
    actions={
        (DATABASE, "build_index"): build_index_action,
        (USER, "retrieve"): retrieve,
        (USER, "send_plaintext_query"): send_plaintext_query,
    },
    stage=((DATABASE, "build_index"), (USER, "retrieve")),
    adversaries={
        "plaintext_query": Adversary(USER, after_stage="send_plaintext_query"),
        "replay_query": Adversary(USER),
        "update_corpus": Adversary(DATABASE),
        **{name: Adversary(DATABASE) for name in DATABASE_ADVERSARIES},
    },
    params=Settings,
)

"""What each role does in the pir protocol (private retrieval for RAG).

external database: builds its index (embeds its corpus with MiniLM, k-means
    clusters, records laid out cluster by cluster), answers catalog requests
    with the public part (centroids, cluster boundaries, version, and for
    SimplePIR the seed of A and the hint), and answers batches of PIR
    queries. It refuses a query for another version (a stale catalog or
    hint), of the wrong size or form, a batch of the wrong size, and a batch
    it has answered before (a replay).
end user: embeds each question locally, picks the nearest cluster, and
    fetches every record of it by PIR. The batch is always as large as the
    largest cluster, so its size says nothing of the cluster. It ranks what
    it fetched and answers the question with the top documents in the
    shared model's prompt.

Schemes (the stage's `scheme`): `xor`, two replicas that must not collude;
`simplepir`, one server.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from models.charlm import TOKENIZER, generate
from models.corpus import pretrained_model
from parties.envelope import Envelope
from parties.errors import AirlockError, BadQuery
from parties.labels import Form, Label
from parties.payload import pack, unpack
from parties.protocol import FINGERPRINTS, PartyContext, Protocol, Reply, attempt
from parties.roles import ExternalDatabase
from protocols.pir import xor
from protocols.pir.corpus import guidelines
from protocols.pir.embed import DIMENSIONS, embed
from protocols.pir.index import Index, build_index, decode_record, nearest_cluster, rank
from protocols.pir.rules import DATABASE, NAME, RULES, USER
from protocols.pir.simplepir import Setup, SimplePirClient, SimplePirServer

Summary = dict[str, Any]
MAX_SEEN = 1 << 20  # replay memory per database, in batches
STALE = "stale catalog"  # the refusal a client answers by downloading the catalog again


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


def _build(ctx: PartyContext, s: Settings) -> dict[str, Any]:
    documents = _corpus(ctx)
    index = build_index(documents, embed(documents), min(s.clusters, len(documents)))
    table = index.records()
    server: xor.XorServer | SimplePirServer
    if s.scheme == "xor":
        server = xor.XorServer(table)
    else:
        # the seed of A from the contents: replicas and rebuilds of one
        # version agree, another version gets another A
        server = SimplePirServer(table, seed=hashlib.sha256(table.tobytes()).digest()[:16])
    return {
        "settings": s,
        "index": index,
        "server": server,
        "record_bytes": int(table.shape[1]),
        "seen": set(),
        "lock": threading.Lock(),
    }


def build_index_action(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    s = Settings.model_validate(params)
    built = _build(ctx, s)
    ctx.state["db"] = built
    index: Index = built["index"]
    return {
        "documents": len(index.documents),
        "clusters": len(index.starts) - 1,
        "largest_cluster": index.largest_cluster,
        "record_bytes": built["record_bytes"],
        "version": built["server"].version[:16],
    }


def _db(ctx: PartyContext) -> dict[str, Any]:
    built = ctx.state.get("db")
    if built is None:
        raise AirlockError("the database has no index yet")
    return built


def on_catalog_request(ctx: PartyContext, envelope: Envelope) -> Reply:
    built = _db(ctx)
    index: Index = built["index"]
    server = built["server"]
    meta: dict[str, Any] = {
        "scheme": built["settings"].scheme,
        "count": len(index.documents),
        "starts": index.starts,
        "batch": index.largest_cluster,
        "version": server.version,
    }
    body = index.centroids.astype("<f4").tobytes()
    if isinstance(server, SimplePirServer):
        setup = server.setup()
        meta.update(
            seed=setup.seed.hex(),
            bits=setup.bits,
            record_bytes=setup.record_bytes,
            digits=int(setup.hint.shape[0]),
        )
        body += setup.hint.astype("<u4").tobytes()
    if ctx.adversary == "update_corpus" and not ctx.state.get("updated"):
        # the database changes right after the client's download
        ctx.state["updated"] = True
        ctx.state["db"] = _build(ctx, built["settings"])
    return Reply("catalog", (Label(f"catalog:{ctx.name}", Form.PUBLIC),), pack(meta, body))


def on_pir_query(ctx: PartyContext, envelope: Envelope) -> Reply:
    built = _db(ctx)
    server = built["server"]
    meta, body = unpack(envelope.payload)
    if meta.get("version") != server.version:
        raise BadQuery(f"{STALE}: the database changed since the client's download")
    batch = built["index"].largest_cluster
    if not isinstance(meta.get("size"), int) or meta["size"] * batch != len(body):
        raise BadQuery(f"a batch is {batch} queries of equal size")
    size = meta["size"]
    queries = [body[i * size : (i + 1) * size] for i in range(batch)]
    digest = hashlib.sha256(body).digest()
    with built["lock"]:
        if digest in built["seen"]:
            raise BadQuery("replayed query: this batch was answered before")
        if len(built["seen"]) >= MAX_SEEN:
            built["seen"].clear()
        built["seen"].add(digest)
    if isinstance(server, SimplePirServer):
        answers = server.answer_batch(queries, meta["version"])
    else:
        answers = server.answer_batch(queries)
    form = _form(built["settings"].scheme)
    label = (Label(f"records:{ctx.name}", form),)
    return Reply("pir_answer", label, pack({"size": len(answers[0])}, b"".join(answers)))


# -- end user ---------------------------------------------------------------------------


class Catalog:
    """A database's public catalog, as the client downloaded it."""

    def __init__(self, meta: dict[str, Any], body: bytes) -> None:
        try:
            self.scheme = str(meta["scheme"])
            self.count = int(meta["count"])
            self.starts = [int(x) for x in meta["starts"]]
            self.batch = int(meta["batch"])
            self.version = str(meta["version"])
            clusters = len(self.starts) - 1
            centroid_bytes = clusters * DIMENSIONS * 4
            self.centroids = np.frombuffer(body[:centroid_bytes], dtype="<f4").reshape(
                clusters, DIMENSIONS
            )
            self.setup: Setup | None = None
            if self.scheme == "simplepir":
                digits = int(meta["digits"])
                hint = np.frombuffer(body[centroid_bytes:], dtype="<u4").reshape(digits, -1)
                self.setup = Setup(
                    bytes.fromhex(meta["seed"]),
                    hint,
                    self.count,
                    int(meta["bits"]),
                    int(meta["record_bytes"]),
                    self.version,
                )
        except (KeyError, TypeError, ValueError) as exc:
            raise AirlockError(f"malformed catalog: {exc}") from None

    def same_as(self, other: Catalog) -> bool:
        return (
            self.version == other.version
            and self.starts == other.starts
            and np.array_equal(self.centroids, other.centroids)
        )


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
        catalogs.append(Catalog(*unpack(reply.payload)))
    if any(c.scheme != s.scheme for c in catalogs):
        raise AirlockError(f"a database does not serve {s.scheme}")
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
    size = int(answer_meta["size"])
    if size * len(queries) != len(answer_body):
        raise BadQuery(f"{database} answered a batch of the wrong size")
    return [answer_body[i * size : (i + 1) * size] for i in range(len(queries))]


def fetch(
    ctx: PartyContext,
    databases: list[str],
    catalogs: list[Catalog],
    indices: list[int],
    s: Settings,
) -> list[np.ndarray]:
    """The records at `indices`, by PIR (one batch per database)."""
    first = catalogs[0]
    if s.scheme == "xor":
        pairs = [xor.make_queries(i, first.count) for i in indices]
        left = _ask(ctx, databases[0], first, [a for a, _ in pairs], s)
        right = _ask(ctx, databases[1], catalogs[1], [b for _, b in pairs], s)
        return [xor.combine(a, b) for a, b in zip(left, right, strict=True)]
    assert first.setup is not None
    client = ctx.state.get("pir_client")
    if client is None or client.setup.version != first.version:
        client = ctx.state["pir_client"] = SimplePirClient(first.setup)
    queries, secrets = client.query_batch(indices)
    return client.decode_batch(_ask(ctx, databases[0], first, queries, s), secrets)


def _fetch_cluster(
    ctx: PartyContext,
    databases: list[str],
    catalogs: list[Catalog],
    query: np.ndarray,
    s: Settings,
) -> tuple[int, list[np.ndarray]]:
    """Every record of the cluster nearest the query, then padding records
    up to the catalog's batch size, so the batch's size says nothing of the
    cluster. Returns the cluster's size and the records."""
    catalog = catalogs[0]
    cluster = nearest_cluster(catalog.centroids, query)
    start, end = catalog.starts[cluster], catalog.starts[cluster + 1]
    padding = [
        int.from_bytes(os.urandom(4), "big") % catalog.count
        for _ in range(catalog.batch - (end - start))
    ]
    return end - start, fetch(ctx, databases, catalogs, [*range(start, end), *padding], s)


def _prompt_text(documents: list[str], question: str, context: int) -> str:
    """The retrieved text, then the question, in the model's vocabulary, cut to its context."""
    text = " ".join(d.split(": ", 1)[-1] for d in documents) + "\n" + question
    kept = "".join(c for c in text.lower() if c in TOKENIZER.index)
    return kept[-context:]


def retrieve(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    s = Settings.model_validate(params)
    prompts = list(getattr(ctx.holdings, "prompts", ()))
    model = pretrained_model(s.pretrain_steps)
    databases, catalogs = _catalogs(ctx, s)
    embeddings = embed(prompts) if prompts else np.zeros((0, DIMENSIONS), np.float32)
    results, errors, timings = [], [], []
    for prompt, query in zip(prompts, embeddings, strict=True):
        started = time.perf_counter()
        try:
            try:
                span, records = _fetch_cluster(ctx, databases, catalogs, query, s)
            except AirlockError as error:
                if STALE not in str(error):
                    raise
                errors.append(f"{prompt!r}: {error}; downloading the catalog again")
                databases, catalogs = _catalogs(ctx, s)
                span, records = _fetch_cluster(ctx, databases, catalogs, query, s)
        except AirlockError as error:
            errors.append(f"{prompt!r}: {error}")
            continue
        decoded = [decode_record(r) for r in records[:span]]
        documents = rank(query, np.stack([e for e, _ in decoded]), [t for _, t in decoded], s.top_k)
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
        "plaintext_query": (USER, "send_plaintext_query"),
        "replay_query": (USER, None),
        "update_corpus": (DATABASE, None),
    },
    params=Settings,
)

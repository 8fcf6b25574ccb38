"""The external database's side of the pir protocol: honest code only.

It builds its index (embeds its corpus with MiniLM, k-means clusters,
records laid out cluster by cluster), answers catalog requests with the
public part (centroids, cluster boundaries, version, and for SimplePIR the
seed of A and the hint), and answers batches of PIR queries. It refuses a
query for another version (StaleCatalog), of the wrong size or form, a
batch of the wrong size, a batch it has answered before (a replay), and any
request before its index is built (OUT_OF_STEP). With `ranking = "he"` it
keeps each end user's CKKS evaluation keys and answers an encrypted
question with every document's score, encrypted (he.py).
"""

from __future__ import annotations

import enum
import hashlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import tenseal as ts
from pydantic import Field, model_validator

from models.corpus import guidelines
from parties.envelope import Envelope
from parties.errors import BadQuery
from parties.labels import Form, Label
from parties.payload import pack, unpack
from parties.protocol import PartyContext, Reply, RoleState, holdings_as, state_of
from parties.roles import ExternalDatabase
from protocols.pir import he, records, xor
from protocols.pir.catalog import StaleCatalog, publish
from protocols.pir.embed import embed
from protocols.pir.index import Index, build_index
from protocols.pir.rules import Step, query_form
from protocols.pir.settings import Settings
from protocols.pir.simplepir import SimplePirServer, seed_for

MAX_SEEN = 1 << 20  # replay memory per database, in batches


class DatabaseHoldings(ExternalDatabase):
    """What a database holds for PIR: its `documents`, plus
    `synthetic_documents` generated clinical guidelines (models/corpus.py)."""

    synthetic_documents: int = Field(default=0, ge=0, le=1_000_000)

    @model_validator(mode="after")
    def _something_to_serve(self) -> DatabaseHoldings:
        if not self.documents and not self.synthetic_documents:
            raise ValueError("a PIR database needs `documents` or `synthetic_documents`")
        return self


@dataclass
class Database:
    """A database's built index, its PIR server, its catalog (header and
    body, fixed for this version) and the batches it has answered."""

    settings: Settings
    index: Index
    server: xor.XorServer | SimplePirServer
    batch: int  # queries per batch: honestly, the largest cluster
    catalog: tuple[dict[str, Any], bytes]
    seen: set[bytes] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


class DatabasePhase(enum.Enum):
    NO_INDEX = 1  # nothing to serve yet
    SERVING = 2  # an index is built; catalog requests and queries are answered


@dataclass
class DatabaseState(RoleState):
    phase: DatabasePhase = DatabasePhase.NO_INDEX
    database: Database | None = None
    # each end user's CKKS evaluation keys (public), for ranking under HE
    evaluation_keys: dict[str, he.EvaluationKeys] = field(default_factory=dict)

    def serve(self, database: Database) -> None:
        self.database, self.phase = database, DatabasePhase.SERVING

    def serving(self, doing: str) -> Database:
        """The database in service; OutOfStep before an index is built."""
        self.expect(DatabasePhase.SERVING, doing=doing)
        return cast(Database, self.database)  # serve() sets both together


def corpus(ctx: PartyContext) -> list[str]:
    holdings = holdings_as(ctx, DatabaseHoldings)
    return list(holdings.documents) + guidelines(holdings.synthetic_documents)


def honest_batch(settings: Settings, index: Index) -> int:
    """Queries a batch holds: the largest cluster, fetched whole; or, when
    ranking under HE, the top_k documents."""
    return settings.top_k if settings.ranking == "he" else index.largest_cluster


def build(
    settings: Settings,
    documents: list[str],
    batch_of: Callable[[Settings, Index], int] = honest_batch,
) -> Database:
    """The index of `documents`, its PIR server and its catalog, declaring
    batches of `batch_of(settings, index)` queries."""
    index = build_index(documents, embed(documents), min(settings.clusters, len(documents)))
    table = index.records()
    digests = records.digests(table)
    version = records.version_of(digests, table.shape[1])
    server: xor.XorServer | SimplePirServer
    if settings.scheme == "xor":
        server = xor.XorServer(table)
    else:
        server = SimplePirServer(table, seed=seed_for(version))
    batch = batch_of(settings, index)
    catalog = publish(
        settings.scheme,
        index,
        batch=batch,
        record_bytes=table.shape[1],
        digests=digests,
        version=version,
        setup=server.setup() if isinstance(server, SimplePirServer) else None,
    )
    return Database(settings, index, server, batch, catalog)


def serve(ctx: PartyContext, database: Database) -> dict[str, Any]:
    """Put `database` in service; what the stage reports of it."""
    state_of(ctx, DatabaseState).serve(database)
    meta, _ = database.catalog
    return {
        "documents": meta["count"],
        "clusters": len(meta["starts"]) - 1,
        "largest_cluster": database.index.largest_cluster,
        "record_bytes": meta["record_bytes"],
        "version": meta["version"][:16],
    }


def build_index_action(ctx: PartyContext, params: Mapping[str, Any]) -> dict[str, Any]:
    return serve(ctx, build(Settings.model_validate(params), corpus(ctx)))


def on_catalog_request(ctx: PartyContext, envelope: Envelope) -> Reply:
    database = state_of(ctx, DatabaseState).serving("a catalog request")
    label = (Label(f"catalog:{ctx.name}", Form.PUBLIC),)
    return Reply(Step.CATALOG, label, pack(*database.catalog))


def claim_once(database: Database, request: bytes) -> None:
    """BadQuery if this request (its nonce and bytes) was answered before."""
    digest = hashlib.sha256(request).digest()
    with database.lock:
        if digest in database.seen:
            raise BadQuery("replayed query: this batch was answered before")
        if len(database.seen) >= MAX_SEEN:
            database.seen.clear()
        database.seen.add(digest)


def answers_to(ctx: PartyContext, envelope: Envelope) -> list[bytes]:
    """The answers to a batch of queries, once it passed every check."""
    database = state_of(ctx, DatabaseState).serving("a PIR query")
    server = database.server
    meta, body = unpack(envelope.payload)
    if meta.get("version") != server.version:
        raise StaleCatalog(StaleCatalog.MESSAGE)
    batch = database.batch
    # its fields' types and the nonce's length are the message's (messages.Query)
    size, nonce = meta["size"], meta["nonce"]
    if size * batch != len(body):
        raise BadQuery(f"a batch is {batch} queries of equal size")
    queries = [body[i * size : (i + 1) * size] for i in range(batch)]
    claim_once(database, nonce.encode() + body)
    if isinstance(server, SimplePirServer):
        return server.answer_batch(queries, meta["version"])
    return server.answer_batch(queries)


def answer_reply(ctx: PartyContext, answers: list[bytes]) -> Reply:
    scheme = state_of(ctx, DatabaseState).serving("a PIR answer").settings.scheme
    label = (Label(f"records:{ctx.name}", query_form(scheme)),)
    return Reply(Step.PIR_ANSWER, label, pack({"size": len(answers[0])}, b"".join(answers)))


def on_pir_query(ctx: PartyContext, envelope: Envelope) -> Reply:
    return answer_reply(ctx, answers_to(ctx, envelope))


def ranking_database(ctx: PartyContext, doing: str) -> Database:
    database = state_of(ctx, DatabaseState).serving(doing)
    if database.settings.ranking != "he":
        raise BadQuery('this database ranks no queries: its scenario sets ranking = "cluster"')
    return database


def on_evaluation_keys(ctx: PartyContext, envelope: Envelope) -> None:
    """Keep an end user's evaluation keys, once they load as a public CKKS
    context with the parameters of he.py (a later set replaces them)."""
    ranking_database(ctx, "evaluation keys")
    keys = he.public_context(envelope.payload)
    state_of(ctx, DatabaseState).evaluation_keys[envelope.header.sender] = keys


def rank_query(ctx: PartyContext, envelope: Envelope) -> tuple[Database, str, ts.CKKSVector]:
    """The database, the user and the encrypted question of a rank request,
    once it passed every check."""
    database = ranking_database(ctx, "a rank request")
    user = envelope.header.sender
    keys = state_of(ctx, DatabaseState).evaluation_keys.get(user)
    if keys is None:
        raise BadQuery(f"no evaluation keys from {user}: send them before a rank request")
    meta, body = unpack(envelope.payload)
    if meta["version"] != database.server.version:
        raise StaleCatalog(StaleCatalog.MESSAGE)
    query = he.encrypted_query(keys, meta["keys_sha256"], body)
    claim_once(database, b"rank" + meta["nonce"].encode() + body)
    return database, user, query


def rank_reply(user: str, chunks: list[bytes]) -> Reply:
    label = (Label(f"scores:{user}", Form.CIPHERTEXT),)
    payload = pack({"chunks": [len(c) for c in chunks]}, b"".join(chunks))
    return Reply(Step.RANK_ANSWER, label, payload)


def on_rank_request(ctx: PartyContext, envelope: Envelope) -> Reply:
    """Every document's score against the encrypted question, encrypted."""
    database, user, query = rank_query(ctx, envelope)
    return rank_reply(user, he.score(query, database.index.embeddings))

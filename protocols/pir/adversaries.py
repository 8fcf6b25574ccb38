"""Misbehaviours of the pir protocol, apart from the honest roles: each
overrides one honest action or handler of the adversarial party.

Played by the end user:
plaintext_query: a misconfigured client sends its question in the clear
    where a PIR query is due (after the stage); the database's boundary
    refuses it.
replay_query: the client sends each database its first batch again in
    place of every later one; the database refuses the replays.

Played by a database, each trying to learn which cluster a client wants:
update_corpus: the database changes right after the client's first
    catalog download; the client's next query is refused as a stale
    catalog, and it downloads the catalog again.
small_batch: declares, and answers, batches of its smallest cluster's size.
    A client that padded to the declared batch would send exactly as many
    queries as the wanted cluster has records: the batch's size would name
    the cluster.
curious_db: logs every batch of queries it answers and, after the stage,
    analyses them for what the client asked: every condition and
    population its guidelines name, searched in the bytes it received. It
    finds none: a query is a share (XOR) or a ciphertext (SimplePIR).
corrupt_first_answer, corrupt_last_answer: corrupt the answer at the first
    or last position of every batch (selective failure). A client that
    checked only the wanted cluster's records, the first `span` of a batch,
    would fail on the last position exactly when the wanted cluster is the
    largest: its failure or success would tell the database the cluster's
    size.
alter_one_record: builds its PIR server (for SimplePIR, the hint too) from
    a copy of its records in which one, its chosen document (the first of
    its holdings' `documents`), is altered, while its catalog publishes the
    real digests. Only a fetch that includes that record fails (for
    SimplePIR; an XOR answer mixes it into about half the queries, whatever
    is wanted). A client that dropped the failed question would send one
    prompt fewer in a later stage, telling the database which question
    wanted the record; the client stops the run after every question's
    queries, whichever failed.

Played by a database when ranking under HE (it holds the user's public
key and evaluation keys, so it can add any encrypted value, or any linear
function of the encrypted question, to any score):
steer_ranking: adds 2 to the score of its chosen document (the first of its
    holdings' `documents`): the user fetches it for every question. Played
    by one replica, the replicas' scores differ; played by both (a
    colluding pair), the fetched document's score is not its own embedding's
    inner product with the question. Either way the client stops the run.
bury_ranking: subtracts 2 from the score of its chosen document: the user
    never fetches it. Played by one replica, the scores differ and the run
    stops; played by both, nothing the user fetches is wrong and the
    document is silently missing: what a colluding pair can still do
    (docs/pir.md).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from models.corpus import CONDITIONS, POPULATIONS
from parties.envelope import Envelope
from parties.errors import ConfigError
from parties.labels import Form, Label
from parties.payload import pack
from parties.protocol import Adversary, Handler, PartyContext, Reply, attempt, holdings_as, state_of
from parties.roles import EndUser
from protocols.pir import he, records, server, xor
from protocols.pir.catalog import publish
from protocols.pir.client import Client
from protocols.pir.index import Index
from protocols.pir.rag import retrieve_with
from protocols.pir.rules import BUILD_INDEX, DATABASE, RETRIEVE, USER, Step
from protocols.pir.settings import Settings
from protocols.pir.simplepir import SimplePirServer


class Name(enum.StrEnum):
    PLAINTEXT_QUERY = "plaintext_query"
    REPLAY_QUERY = "replay_query"
    UPDATE_CORPUS = "update_corpus"
    SMALL_BATCH = "small_batch"
    CORRUPT_FIRST_ANSWER = "corrupt_first_answer"
    CORRUPT_LAST_ANSWER = "corrupt_last_answer"
    CURIOUS_DB = "curious_db"
    ALTER_ONE_RECORD = "alter_one_record"
    STEER_RANKING = "steer_ranking"
    BURY_RANKING = "bury_ranking"


SEND_PLAINTEXT_QUERY = "send_plaintext_query"
LATE_ADDITION = "guideline 9999: a late addition; review after 7 days."


def send_plaintext_query(ctx: PartyContext, params: Mapping[str, Any]) -> dict[str, Any]:
    prompts = holdings_as(ctx, EndUser).prompts
    databases = sorted(ctx.peers(DATABASE))
    if not prompts or not databases:
        raise ConfigError(f"{Name.PLAINTEXT_QUERY} needs a prompt and a database")
    label = [Label(f"query:{ctx.name}", Form.PLAINTEXT)]
    return attempt(ctx, databases[0], Step.PIR_QUERY, label, pack({}, prompts[0].encode()))


class ReplayingClient(Client):
    """Sends each database the first batch it sent it, again and again."""

    def __init__(self, ctx: PartyContext, settings: Settings) -> None:
        super().__init__(ctx, settings)
        self.first_batch: dict[str, bytes] = {}

    def send(self, database: str, payload: bytes) -> Envelope | None:
        return super().send(database, self.first_batch.setdefault(database, payload))


def on_catalog_request_then_update(ctx: PartyContext, envelope: Envelope) -> Reply:
    """The catalog, then, the first time, a new index with one more document."""
    reply = server.on_catalog_request(ctx, envelope)
    state = state_of(ctx, server.DatabaseState)
    database = state.serving("an update")
    if LATE_ADDITION not in database.index.documents:
        state.serve(server.build(database.settings, [*server.corpus(ctx), LATE_ADDITION]))
    return reply


def smallest_cluster(settings: Settings, index: Index) -> int:
    return min(b - a for a, b in zip(index.starts, index.starts[1:], strict=False))


def build_small_batch_index(ctx: PartyContext, params: Mapping[str, Any]) -> dict[str, Any]:
    settings = Settings.model_validate(params)
    return server.serve(ctx, server.build(settings, server.corpus(ctx), smallest_cluster))


def corrupting(position: int) -> Handler:
    """A PIR query handler that flips the top bit of the fourth byte of the
    answer at `position` in every batch: a SimplePIR digit moves by p/2,
    an XOR record's length changes."""

    def on_pir_query(ctx: PartyContext, envelope: Envelope) -> Reply:
        answers = server.answers_to(ctx, envelope)
        corrupted = bytearray(answers[position])
        corrupted[3] ^= 0x80
        answers[position] = bytes(corrupted)
        return server.answer_reply(ctx, answers)

    return on_pir_query


def chosen_document(ctx: PartyContext, index: Index) -> int:
    """Where the database's chosen document (the first of its holdings'
    `documents`) sits in its layout."""
    documents = holdings_as(ctx, server.DatabaseHoldings).documents
    if not documents:
        raise ConfigError("this adversary needs `documents`: the first is the one it acts on")
    return index.documents.index(documents[0])


def build_altered_index(ctx: PartyContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """The honest index and catalog (the real digests and version), served
    from a copy whose chosen record holds its text in capitals: a valid
    record, of the same size, that is not the one committed to."""
    honest = server.build(Settings.model_validate(params), server.corpus(ctx))
    index, table = honest.index, honest.index.records()
    position = chosen_document(ctx, index)
    embedding = index.embeddings[position].tobytes()
    altered = embedding + index.documents[position].upper().encode()
    table[position] = records.pack([altered], table.shape[1])[0]
    served: xor.XorServer | SimplePirServer
    meta, body = honest.catalog
    if isinstance(honest.server, SimplePirServer):
        served = SimplePirServer(table, seed=honest.server.seed)
        meta, body = publish(
            honest.settings.scheme,
            index,
            batch=honest.batch,
            record_bytes=table.shape[1],
            digests=records.digests(index.records()),  # the real ones
            version=honest.server.version,
            setup=served.setup(),  # the hint of the altered copy
        )
    else:
        served = xor.XorServer(table)
    served.version = honest.server.version  # answers queries made for the real catalog
    return server.serve(ctx, replace(honest, server=served, catalog=(meta, body)))


def steering(shift: float) -> Handler:
    """A rank request handler that adds `shift` to the chosen document's
    encrypted score, under the user's own public key."""

    def on_rank_request(ctx: PartyContext, envelope: Envelope) -> Reply:
        database, user, query = server.rank_query(ctx, envelope)
        vectors = he.products(query, database.index.embeddings)
        chunk, slot = divmod(chosen_document(ctx, database.index), he.CHUNK)
        offsets = [0.0] * vectors[chunk].size()
        offsets[slot] = shift
        vectors[chunk] = vectors[chunk] + offsets
        return server.rank_reply(user, [vector.serialize() for vector in vectors])

    return on_rank_request


@dataclass
class CuriousDatabase(server.DatabaseState):
    received: list[bytes] = field(default_factory=list)  # every batch, as it came


def log_and_answer(ctx: PartyContext, envelope: Envelope) -> Reply:
    state_of(ctx, CuriousDatabase).received.append(envelope.payload)
    return server.on_pir_query(ctx, envelope)


def analyse_queries(ctx: PartyContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """Search what the client sent for any term the guidelines use."""
    terms = sorted({*CONDITIONS, *POPULATIONS})
    received = state_of(ctx, CuriousDatabase).received
    found = sorted({t for t in terms for batch in received if t.encode() in batch})
    return {"batches": len(received), "terms_searched": len(terms), "terms_found": found}


ADVERSARIES: dict[str, Adversary] = {
    Name.PLAINTEXT_QUERY: Adversary(
        USER,
        actions={SEND_PLAINTEXT_QUERY: send_plaintext_query},
        after_stage=SEND_PLAINTEXT_QUERY,
    ),
    Name.REPLAY_QUERY: Adversary(USER, actions={RETRIEVE: retrieve_with(ReplayingClient)}),
    Name.UPDATE_CORPUS: Adversary(
        DATABASE, handlers={Step.CATALOG_REQUEST: on_catalog_request_then_update}
    ),
    Name.SMALL_BATCH: Adversary(DATABASE, actions={BUILD_INDEX: build_small_batch_index}),
    Name.CORRUPT_FIRST_ANSWER: Adversary(DATABASE, handlers={Step.PIR_QUERY: corrupting(0)}),
    Name.CORRUPT_LAST_ANSWER: Adversary(DATABASE, handlers={Step.PIR_QUERY: corrupting(-1)}),
    Name.ALTER_ONE_RECORD: Adversary(DATABASE, actions={BUILD_INDEX: build_altered_index}),
    Name.STEER_RANKING: Adversary(DATABASE, handlers={Step.RANK_REQUEST: steering(2.0)}),
    Name.BURY_RANKING: Adversary(DATABASE, handlers={Step.RANK_REQUEST: steering(-2.0)}),
    Name.CURIOUS_DB: Adversary(
        DATABASE,
        handlers={Step.PIR_QUERY: log_and_answer},
        actions={"analyse_queries": analyse_queries},
        after_stage="analyse_queries",
        state=CuriousDatabase,
    ),
}

"""The end user's retrieval by PIR: honest code only.

It checks each database's catalog against its own settings (catalog.py),
picks the cluster nearest a question's embedding, and fetches every record
of it by PIR. The batch is always as large as the largest cluster, as the
client computes it, so its size says nothing of the cluster. Or, with
`ranking = "he"`, it has both replicas score every document against the
question encrypted under CKKS (he.py), refuses scores that disagree, fetches
only the top_k by PIR, a batch of top_k, and checks their scores are their
own. Every record of a batch, padding too, is checked against its digest in
the catalog, and a wrong one is the same error wherever it sits.
"""

from __future__ import annotations

import enum
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from parties.envelope import Envelope
from parties.errors import AirlockError, BadQuery, Refused
from parties.labels import Form, Label
from parties.payload import pack, unpack
from parties.protocol import PartyContext, RoleState, state_of
from protocols.pir import records, xor
from protocols.pir.catalog import Catalog, StaleCatalog
from protocols.pir.catalog import read as read_catalog
from protocols.pir.he import SCORE_TOLERANCE, RankingKeys
from protocols.pir.index import decode_record, nearest_cluster
from protocols.pir.messages import RankAnswer
from protocols.pir.rules import DATABASE, Step, query_form
from protocols.pir.settings import Settings
from protocols.pir.simplepir import SimplePirClient

# one error for every wrong answer, whatever its position in the batch
WRONG_ANSWER = "a retrieved record does not match its digest in the catalog: a wrong answer"
# the two replicas scored the same encrypted question differently
STEERED = "the replicas' scores differ beyond CKKS's precision: a database steered the ranking"
# both replicas agree, but a fetched document's score is not its own
MISSCORED = (
    "a fetched document's score is not its embedding's inner product with the question: "
    "the ranking was steered"
)


class ClientPhase(enum.Enum):
    NO_CATALOG = 1  # nothing downloaded yet
    CATALOG_CHECKED = 2  # the databases' catalogs passed every check


@dataclass
class ClientState(RoleState):
    phase: ClientPhase = ClientPhase.NO_CATALOG
    databases: list[str] = field(default_factory=list)
    catalogs: list[Catalog] = field(default_factory=list)  # one per database, in order
    simplepir: SimplePirClient | None = None  # with the hint, for a SimplePIR catalog only
    ranking_keys: RankingKeys | None = None  # the CKKS key pair, for ranking under HE
    keys_sent: set[str] = field(default_factory=set)  # databases holding its evaluation keys


class Client:
    """An end user's PIR client under its own settings, never a database's.
    Its catalogs stay in the role's state between questions."""

    def __init__(self, ctx: PartyContext, settings: Settings) -> None:
        self.ctx = ctx
        self.settings = settings
        self.state = state_of(ctx, ClientState)

    def download_catalogs(self) -> None:
        """Every database's catalog, checked; kept only if all pass. XOR
        fetches from two replicas, and ranking under HE has two replicas rank
        (either scheme), whose catalogs must then agree."""
        scheme, ranking = self.settings.scheme, self.settings.ranking
        databases = sorted(self.ctx.peers(DATABASE))
        wanted = 2 if scheme == "xor" or ranking == "he" else 1
        if len(databases) < wanted:
            what = f"{scheme} PIR" + (" ranked under HE" if ranking == "he" else "")
            raise AirlockError(f"{what} needs {wanted} database(s), found {len(databases)}")
        databases = databases[:wanted]
        catalogs = []
        for name in databases:
            label = [Label(f"catalog:{name}", Form.PUBLIC)]
            reply = self.ctx.deliver(name, Step.CATALOG_REQUEST, label, b"{}")
            if reply is None:
                raise AirlockError(f"{name} sent no catalog")
            meta, body = unpack(reply.payload)
            batch = self.settings.top_k if ranking == "he" else None
            catalogs.append(read_catalog(name, meta, body, scheme, self.settings.clusters, batch))
        if len(catalogs) == 2 and not catalogs[0].same_as(catalogs[1]):
            raise AirlockError("the two replicas hold different databases")
        state = self.state
        setup = catalogs[0].setup
        if setup is None:
            state.simplepir = None
        elif state.simplepir is None or state.simplepir.setup.version != setup.version:
            state.simplepir = SimplePirClient(setup)  # expands A: once per version
        state.databases, state.catalogs = databases, catalogs
        state.phase = ClientPhase.CATALOG_CHECKED

    def fetch_cluster(self, query: np.ndarray) -> tuple[int, list[np.ndarray]]:
        """Every record of the cluster nearest the query, then random padding
        records up to the batch (the largest cluster, as the client computed
        it), so the batch's size says nothing of the cluster. Returns the
        cluster's size and the records."""
        self.state.expect(ClientPhase.CATALOG_CHECKED, doing="a PIR fetch")
        catalog = self.state.catalogs[0]
        wanted = catalog.cluster(nearest_cluster(catalog.centroids, query))
        padding = [secrets.randbelow(catalog.count) for _ in range(catalog.batch - len(wanted))]
        return len(wanted), self.fetch([*wanted, *padding])

    def fetch_ranked(self, query: np.ndarray) -> list[np.ndarray]:
        """The top_k documents by their scores under CKKS (he.py), fetched by
        PIR in a batch of top_k. Both replicas score every document against
        the same encrypted question; the scores must agree within CKKS's
        precision (he.SCORE_TOLERANCE), and each fetched document's score
        must be its own embedding's inner product with the question, or the
        ranking was steered (one replica, or both together, scored other
        than the protocol says). Whatever goes wrong, every replica gets its
        rank request and its PIR batch, the same messages as when nothing
        does, and only then is the error raised: a failure the database can
        make depend on the question (it adds a function of the encrypted
        question to a score) must not change what the client sends next."""
        self.state.expect(ClientPhase.CATALOG_CHECKED, doing="a ranked fetch")
        catalog = self.state.catalogs[0]
        keys = self._ranking_keys()
        encrypted = keys.encrypt(query)
        scores: list[np.ndarray] = []
        problems: list[AirlockError] = []
        for database in self.state.databases:
            try:
                scores.append(self._scores_from(database, keys, encrypted))
            except StaleCatalog:
                raise  # the client downloads the catalog again and retries
            except AirlockError as error:
                problems.append(error)
        if len(scores) == 2 and np.max(np.abs(scores[0] - scores[1])) > SCORE_TOLERANCE:
            problems.append(BadQuery(STEERED))
        if scores:
            best = sorted(range(catalog.count), key=lambda i: (-scores[0][i], i))[: catalog.batch]
        else:  # nothing to rank by: the same batch's size, of records of no use
            best = [secrets.randbelow(catalog.count) for _ in range(catalog.batch)]
        rows = self.fetch(best)
        if problems:
            raise problems[0]
        wanted = query.astype(np.float64)
        for index, row in zip(best, rows, strict=True):
            try:
                embedding, _ = decode_record(row)
            except (AirlockError, UnicodeDecodeError):
                continue  # not a document: left out of the ranking (rag.retrieved_documents)
            own = float(embedding.astype(np.float64) @ wanted)
            if abs(own - scores[0][index]) > SCORE_TOLERANCE:
                raise BadQuery(MISSCORED)
        return rows

    def _scores_from(self, database: str, keys: RankingKeys, encrypted: bytes) -> np.ndarray:
        """Every document's score, decrypted, as `database` ranks the
        encrypted question."""
        catalog = self.state.catalogs[0]
        self._send_evaluation_keys(database, keys)
        meta = {
            "version": catalog.version,
            "nonce": os.urandom(16).hex(),
            "keys_sha256": keys.evaluation_keys_sha256,
        }
        label = [Label(f"query:{self.ctx.name}", Form.CIPHERTEXT)]
        reply = self._request(database, Step.RANK_REQUEST, label, pack(meta, encrypted))
        answer_meta, body = unpack(reply.payload)
        sizes = RankAnswer.model_validate(answer_meta).chunks  # as the boundary admitted it
        if sum(sizes) != len(body):
            raise BadQuery(f"{database}'s scores are not the {sum(sizes)} bytes it declares")
        starts = np.cumsum([0, *sizes]).tolist()
        chunks = [body[a:b] for a, b in zip(starts, starts[1:], strict=False)]
        return keys.scores(chunks, catalog.count)

    def _ranking_keys(self) -> RankingKeys:
        """This user's CKKS keys, made once."""
        if self.state.ranking_keys is None:
            self.state.ranking_keys = RankingKeys()
        return self.state.ranking_keys

    def _send_evaluation_keys(self, database: str, keys: RankingKeys) -> None:
        """The keys' public part, to `database`, once."""
        if database not in self.state.keys_sent:
            label = [Label(f"evaluation_keys:{self.ctx.name}", Form.PUBLIC)]
            self.ctx.deliver(database, Step.EVALUATION_KEYS, label, keys.evaluation_keys)
            self.state.keys_sent.add(database)

    def fetch(self, indices: list[int]) -> list[np.ndarray]:
        """The records at `indices`, by PIR (one batch per database), each
        checked against its digest in the catalog. All are checked, and any
        mismatch is the same error whatever its position: a database that
        corrupts one answer learns only that it did, never whether that
        position was a record the client wanted or padding."""
        first = self.state.catalogs[0]
        simplepir = self.state.simplepir
        rows: list[np.ndarray]
        if simplepir is None:  # an XOR catalog: one share of each query per replica
            pairs = [xor.make_queries(i, first.count) for i in indices]
            left = self._ask(0, [a for a, _ in pairs])
            right = self._ask(1, [b for _, b in pairs])
            rows = [xor.combine(a, b) for a, b in zip(left, right, strict=True)]
        else:
            queries, lwe_secrets = simplepir.query_batch(indices)
            rows = simplepir.decode_batch(self._ask(0, queries), lwe_secrets)
        intact = [records.digest(r) == first.digest(i) for i, r in zip(indices, rows, strict=True)]
        if not all(intact):
            raise BadQuery(WRONG_ANSWER)
        return rows

    def _ask(self, which: int, queries: list[bytes]) -> list[bytes]:
        """The answers of database number `which` to one batch of queries."""
        database, catalog = self.state.databases[which], self.state.catalogs[which]
        # a fresh nonce names the batch: over a small database two honest
        # batches can be equal bytes, and must not look like a replay
        meta = {"version": catalog.version, "size": len(queries[0]), "nonce": os.urandom(16).hex()}
        payload = pack(meta, b"".join(queries))
        reply = stale_or(lambda: self.send(database, payload), database)
        answer_meta, answer_body = unpack(reply.payload)
        size = catalog.answer_bytes
        if answer_meta.get("size") != size or size * len(queries) != len(answer_body):
            raise BadQuery(f"{database} answered a batch of the wrong size")
        return [answer_body[i * size : (i + 1) * size] for i in range(len(queries))]

    def send(self, database: str, payload: bytes) -> Envelope | None:
        """One batch of queries to `database`; its reply."""
        label = [Label(f"query:{self.ctx.name}", query_form(self.settings.scheme))]
        return self.ctx.deliver(database, Step.PIR_QUERY, label, payload)

    def _request(self, database: str, step: Step, labels: list[Label], payload: bytes) -> Envelope:
        return stale_or(lambda: self.ctx.deliver(database, step, labels, payload), database)


def stale_or(deliver: Callable[[], Envelope | None], database: str) -> Envelope:
    """The reply `deliver` gets; StaleCatalog if the database refused the
    request for another version of its records, AirlockError if it sent none."""
    try:
        reply = deliver()
    except Refused as refusal:
        stale = StaleCatalog.from_refusal(refusal)
        if stale is None:
            raise
        raise stale from refusal
    if reply is None:
        raise AirlockError(f"{database} sent no answer")
    return reply

"""Ranking under CKKS then fetching the top k by PIR, against fetching the
nearest cluster whole by PIR, against plaintext nearest-neighbour search
over the whole corpus: recall, bytes and time per question, same run.

    .venv/bin/python bench/ranking.py [--questions 100] [--documents 2000]
        [--clusters 32] [--k 2] [--json FILE]

The corpus is the private-rag databases' (synthetic guidelines); the
questions are models.corpus.held_out_examples', written from guidelines
that are not in it. The reference is plaintext search over every document
(the records' float16 embeddings, as the protocol ranks). The protocol's
own pieces run here without the network, on one thread each:

- cluster fetch (`ranking = "cluster"`): the nearest cluster by the public
  centroids, fetched whole by two-server XOR PIR (a batch of the largest
  cluster, the same whatever the question), ranked at the user;
- HE ranking (`ranking = "he"`, protocols/pir/he.py): the query encrypted
  under CKKS, every document scored by both replicas, both scores decrypted
  and compared, the top k fetched by XOR PIR (a batch of k) and their
  scores checked against their embeddings.

Bytes are payloads (queries up, answers down, both replicas), without
envelope headers; the evaluation keys, sent once per user and database,
are counted apart. Times are per question: the end user's (query making,
encryption, decryption, decoding) and the databases' (PIR answers, scoring).
Figures, not a test.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.figures import Figures, add_json_option  # noqa: E402
from models.corpus import guidelines, held_out_examples  # noqa: E402
from models.pretrain import PRETRAINING_GUIDELINES  # noqa: E402
from protocols.pir import he, xor  # noqa: E402
from protocols.pir.embed import embed  # noqa: E402
from protocols.pir.index import build_index, nearest_cluster  # noqa: E402


def top(scores: np.ndarray, k: int) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]


def pir_fetch(server: xor.XorServer, indices: list[int]) -> tuple[float, float, int, int]:
    """(user s, databases s, bytes up, bytes down) to fetch `indices` by XOR PIR."""
    started = time.perf_counter()
    pairs = [xor.make_queries(i, server.count) for i in indices]
    user = time.perf_counter() - started
    started = time.perf_counter()
    left = server.answer_batch([a for a, _ in pairs])
    right = server.answer_batch([b for _, b in pairs])
    database = time.perf_counter() - started
    started = time.perf_counter()
    for a, b in zip(left, right, strict=True):
        xor.combine(a, b)
    user += time.perf_counter() - started
    up = sum(len(a) + len(b) for a, b in pairs)
    return user, database, up, sum(len(a) for a in left + right)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--documents", type=int, default=2000)
    parser.add_argument("--clusters", type=int, default=32)
    parser.add_argument("--k", type=int, default=2)
    add_json_option(parser)
    args = parser.parse_args()
    if min(args.questions, args.documents, args.clusters, args.k) < 1:
        parser.error("every count must be positive")
    with threadpool_limits(limits=1):
        figures = measure(args)
    figures.write(args.json)


def measure(args: argparse.Namespace) -> Figures:
    k = args.k
    corpus = guidelines(args.documents)
    index = build_index(corpus, embed(corpus), args.clusters)
    server = xor.XorServer(index.records())
    embeddings = index.embeddings.astype(np.float64)  # layout order, as the records hold them
    examples = held_out_examples(args.questions, guidelines(PRETRAINING_GUIDELINES, "pretrain"))
    queries = embed([e.question for e in examples]).astype(np.float64)
    keys = he.RankingKeys()
    held = he.public_context(keys.evaluation_keys)
    batch = index.largest_cluster
    rows: dict[str, list[tuple[float, float, float, int, int]]] = {"cluster": [], "he": []}
    for query in queries:
        wanted = set(top(embeddings @ query, k))
        # cluster fetch
        started = time.perf_counter()
        c = nearest_cluster(index.centroids, query.astype(np.float32))
        span = list(range(index.starts[c], index.starts[c + 1]))
        user = time.perf_counter() - started
        padding = [0] * (batch - len(span))
        u, d, up, down = pir_fetch(server, span + padding)
        started = time.perf_counter()
        found = [span[i] for i in top(embeddings[span] @ query, k)]
        user += u + time.perf_counter() - started
        rows["cluster"].append((len(wanted & set(found)) / k, user, d, up, down))
        # HE ranking by both replicas, whose scores must agree, then the top
        # k by PIR, whose scores must be their own
        started = time.perf_counter()
        encrypted = keys.encrypt(query)
        user = time.perf_counter() - started
        started = time.perf_counter()
        replicas = []
        for _ in range(2):  # each replica loads the query and scores every document
            vector = he.encrypted_query(held, keys.evaluation_keys_sha256, encrypted)
            replicas.append(he.score(vector, index.embeddings))
        database = time.perf_counter() - started
        started = time.perf_counter()
        chunks = replicas[0]
        first, second = (keys.scores(scored, len(corpus)) for scored in replicas)
        assert np.max(np.abs(first - second)) <= he.SCORE_TOLERANCE
        found = top(first, k)
        user += time.perf_counter() - started
        u, d, up, down = pir_fetch(server, found)
        started = time.perf_counter()
        assert np.max(np.abs(embeddings[found] @ query - first[found])) <= he.SCORE_TOLERANCE
        user += time.perf_counter() - started
        rows["he"].append(
            (
                len(wanted & set(found)) / k,
                user + u,
                database + d,
                up + 2 * len(encrypted),
                down + sum(len(c) for scored in replicas for c in scored),
            )
        )

    print(
        f"{len(queries)} questions; {len(corpus)} documents in {len(index.starts) - 1} "
        f"clusters (largest {batch}); k = {k}; XOR PIR over two replicas; one thread"
    )
    print()
    print(
        "| retrieval | recall@k vs plaintext over the whole corpus | bytes up | bytes down "
        "| end user ms | databases ms |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    print("| plaintext nearest neighbours, whole corpus | 1.000 | | | | |")
    figures = Figures()
    names = {
        "cluster": "nearest cluster fetched whole by PIR (`cluster`)",
        "he": "every document ranked under CKKS, top k by PIR (`he`)",
    }
    for name, measured in rows.items():
        recall, user_s, database_s, bytes_up, bytes_down = (
            float(np.mean(col)) for col in zip(*measured, strict=True)
        )
        print(
            f"| {names[name]} | {recall:.3f} | {bytes_up / 1024:,.0f} KiB "
            f"| {bytes_down / 1024:,.0f} KiB | {1000 * user_s:,.0f} | {1000 * database_s:,.0f} |"
        )
        figures.row(
            "retrieval",
            path=name,
            recall=recall,
            bytes_up=bytes_up,
            bytes_down=bytes_down,
            user_ms=1000 * user_s,
            databases_ms=1000 * database_s,
        )
        figures.ratio(f"{name}_recall_vs_plaintext", recall)
    print()
    print(
        f"evaluation keys (once per user and database): {len(keys.evaluation_keys) / 2**20:.1f} MiB"
        f"; an encrypted query {len(encrypted) / 1024:.0f} KiB, the scores "
        f"{sum(len(c) for c in chunks) / 1024:.0f} KiB in {len(chunks)} ciphertext(s)"
    )
    return figures


if __name__ == "__main__":
    main()

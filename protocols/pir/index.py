"""The retrieval index: documents grouped into k-means clusters of their
embeddings, laid out cluster by cluster, so that a cluster is a contiguous
run of records. The centroids and the cluster boundaries are public (the
catalog); which cluster a client wants is what PIR hides.

Each record holds the document's embedding (float16, 768 bytes) and its
text, so a client ranks what it retrieved without re-embedding it, and
plaintext retrieval over the same index gives exactly the same documents.
k-means is SciPy's (`kmeans2`, k-means++ seeding, fixed seed), so every
replica builds the same layout from the same corpus.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.cluster.vq import kmeans2

from parties.errors import BadQuery, ConfigError
from protocols.pir import records
from protocols.pir.embed import DIMENSIONS

EMBEDDING_BYTES = 2 * DIMENSIONS


@dataclass(frozen=True)
class Index:
    documents: list[str]  # in layout order
    embeddings: np.ndarray  # (N, 384) float16, layout order
    centroids: np.ndarray  # (C, 384) float32
    starts: list[int]  # C + 1 boundaries: cluster c is records starts[c]..starts[c+1]

    @property
    def largest_cluster(self) -> int:
        return largest_cluster(self.starts)

    def records(self) -> np.ndarray:
        items = [
            self.embeddings[i].tobytes() + text.encode() for i, text in enumerate(self.documents)
        ]
        return records.pack(items)


def largest_cluster(starts: Sequence[int]) -> int:
    """The size of the largest cluster: every fetch is padded to it."""
    return max(b - a for a, b in zip(starts, starts[1:], strict=False))


def build_index(documents: Sequence[str], embeddings: np.ndarray, clusters: int) -> Index:
    if not 1 <= clusters <= len(documents):
        raise ConfigError(f"{clusters} clusters do not fit {len(documents)} documents")
    # seeded: the clusters of a public corpus are public and must be the same
    # on every replica; nothing secret is drawn here
    centroids, labels = kmeans2(
        embeddings.astype(np.float64), clusters, minit="++", seed=np.random.default_rng(0)
    )
    # an empty cluster is dropped: clients refuse a catalog with one (and a
    # question nearest it would fetch nothing)
    kept = np.flatnonzero(np.bincount(labels, minlength=clusters))
    labels = np.searchsorted(kept, labels)
    order = np.lexsort((np.arange(len(documents)), labels))  # by cluster, then original order
    starts = [0, *np.cumsum(np.bincount(labels)).tolist()]
    return Index(
        [documents[i] for i in order],
        embeddings[order].astype(np.float16),
        centroids[kept].astype(np.float32),
        starts,
    )


def nearest_cluster(centroids: np.ndarray, query: np.ndarray) -> int:
    return int(np.argmax(centroids @ query))


def rank(query: np.ndarray, embeddings: np.ndarray, texts: Sequence[str], k: int) -> list[str]:
    """The k texts whose embeddings are closest to the query (cosine), best
    first; ties go to the earlier record."""
    scores = embeddings.astype(np.float32) @ query
    order = sorted(range(len(texts)), key=lambda i: (-scores[i], i))
    return [texts[i] for i in order[:k]]


def plaintext_retrieve(index: Index, query: np.ndarray, k: int) -> list[str]:
    """What a database that saw the query would return: the reference for PIR."""
    c = nearest_cluster(index.centroids, query)
    span = slice(index.starts[c], index.starts[c + 1])
    return rank(query, index.embeddings[span], index.documents[span], k)


def decode_record(record: np.ndarray) -> tuple[np.ndarray, str]:
    """A retrieved record's (embedding, text); BadQuery if it is not one."""
    data = records.unpack_bytes(record)
    if len(data) < EMBEDDING_BYTES:
        raise BadQuery("the retrieved record holds no embedding")
    embedding = np.frombuffer(data[:EMBEDDING_BYTES], dtype=np.float16)
    return embedding, data[EMBEDDING_BYTES:].decode()

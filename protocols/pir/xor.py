"""Two-server XOR PIR (information-theoretic, Chor et al.): the client sends
a uniformly random bit vector r to one replica and r with bit i flipped to
the other; each returns the XOR of the records its vector selects; the XOR
of the two answers is record i. Each replica alone sees a uniformly random
vector, independent of i, as long as the two do not collude."""

from __future__ import annotations

import secrets

import numpy as np

from parties.errors import BadQuery
from protocols.pir.records import version

BLOCK_ROWS = 256  # selected rows gathered at a time: 1 MiB of 4 KiB records stays in cache


def make_queries(index: int, count: int) -> tuple[bytes, bytes]:
    """The two query bit vectors for record `index` of `count`, packed."""
    if not 0 <= index < count:
        raise BadQuery(f"record {index} is not among {count}")
    r = np.frombuffer(secrets.token_bytes(-(-count // 8)), dtype=np.uint8)
    bits = np.unpackbits(r)[:count]
    flipped = bits.copy()
    flipped[index] ^= 1
    return np.packbits(bits).tobytes(), np.packbits(flipped).tobytes()


class XorServer:
    """One replica. `records` is (N, record_bytes) uint8, record_bytes % 8 == 0."""

    def __init__(self, records: np.ndarray) -> None:
        self.count = records.shape[0]
        self.version = version(records)
        self._words = np.ascontiguousarray(records).view(np.uint64)

    def _bits(self, query: bytes) -> np.ndarray:
        if not isinstance(query, bytes) or len(query) != -(-self.count // 8):
            raise BadQuery(f"an XOR query is {-(-self.count // 8)} bytes for {self.count} records")
        bits = np.unpackbits(np.frombuffer(query, dtype=np.uint8))
        if bits[self.count :].any():
            raise BadQuery("padding bits of the query are set")
        return bits[: self.count].astype(bool)

    def answer(self, query: bytes) -> bytes:
        """The XOR of the records the query selects. The selected rows are
        gathered, a cache-sized block at a time, into one reused buffer and
        reduced there: only the selected half of the database is read."""
        chosen = np.flatnonzero(self._bits(query))
        result = np.zeros(self._words.shape[1], dtype=np.uint64)
        buffer = np.empty((BLOCK_ROWS, self._words.shape[1]), dtype=np.uint64)
        for start in range(0, len(chosen), BLOCK_ROWS):
            rows = chosen[start : start + BLOCK_ROWS]
            block = buffer[: len(rows)]
            np.take(self._words, rows, axis=0, out=block)
            np.bitwise_xor(result, np.bitwise_xor.reduce(block, axis=0), out=result)
        return result.tobytes()

    def answer_batch(self, queries: list[bytes]) -> list[bytes]:
        """Answers to several queries; all are checked before any is answered."""
        for query in queries:
            self._bits(query)
        return [self.answer(query) for query in queries]


def combine(first: bytes, second: bytes) -> np.ndarray:
    if len(first) != len(second):
        raise BadQuery("the two replicas answered with different lengths")
    return np.frombuffer(first, dtype=np.uint8) ^ np.frombuffer(second, dtype=np.uint8)

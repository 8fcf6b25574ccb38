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

BLOCK_ROWS = 256  # 1 MiB of 4 KiB records: stays in cache across a batch


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
        """The XOR of the records the query selects: one streaming pass, no copy."""
        bits = self._bits(query)
        zero = np.uint64(0)
        return np.bitwise_xor.reduce(
            self._words, axis=0, where=bits[:, None], initial=zero
        ).tobytes()

    def answer_batch(self, queries: list[bytes]) -> list[bytes]:
        """Answers to several queries in one pass over the database: each block
        of records is read from memory once and reduced from cache per query."""
        selections = [self._bits(q) for q in queries]
        results = np.zeros((len(queries), self._words.shape[1]), dtype=np.uint64)
        zero = np.uint64(0)
        for start in range(0, self.count, BLOCK_ROWS):
            block = self._words[start : start + BLOCK_ROWS]
            for result, bits in zip(results, selections, strict=True):
                chosen = bits[start : start + BLOCK_ROWS, None]
                np.bitwise_xor(
                    result,
                    np.bitwise_xor.reduce(block, axis=0, where=chosen, initial=zero),
                    out=result,
                )
        return [row.tobytes() for row in results]


def combine(first: bytes, second: bytes) -> np.ndarray:
    if len(first) != len(second):
        raise BadQuery("the two replicas answered with different lengths")
    return np.frombuffer(first, dtype=np.uint8) ^ np.frombuffer(second, dtype=np.uint8)

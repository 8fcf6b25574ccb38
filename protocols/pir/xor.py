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

BLOCK_ROWS = 4096


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

    def answer(self, query: bytes) -> bytes:
        if not isinstance(query, bytes) or len(query) != -(-self.count // 8):
            raise BadQuery(f"an XOR query is {-(-self.count // 8)} bytes for {self.count} records")
        bits = np.unpackbits(np.frombuffer(query, dtype=np.uint8))
        if bits[self.count :].any():
            raise BadQuery("padding bits of the query are set")
        chosen = np.flatnonzero(bits[: self.count])
        result = np.zeros(self._words.shape[1], dtype=np.uint64)
        # in blocks: a gather of the whole selection would copy half the database
        for start in range(0, len(chosen), BLOCK_ROWS):
            block = self._words[chosen[start : start + BLOCK_ROWS]]
            np.bitwise_xor(result, np.bitwise_xor.reduce(block, axis=0), out=result)
        return result.tobytes()


def combine(first: bytes, second: bytes) -> np.ndarray:
    if len(first) != len(second):
        raise BadQuery("the two replicas answered with different lengths")
    return np.frombuffer(first, dtype=np.uint8) ^ np.frombuffer(second, dtype=np.uint8)

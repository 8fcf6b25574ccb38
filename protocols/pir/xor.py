"""Two-server XOR PIR (information-theoretic, Chor et al.): the client sends
a uniformly random bit vector r to one replica and r with bit i flipped to
the other; each returns the XOR of the records its vector selects; the XOR
of the two answers is record i. Each replica alone sees a uniformly random
vector, independent of i, as long as the two do not collude."""

from __future__ import annotations

import secrets

import numba
import numpy as np

from parties.errors import BadQuery
from protocols.pir.records import version


# The XOR of selected rows is compiled with numba: numpy can only gather the
# selected rows into a copy and reduce the copy (two passes, 0.4x-0.7x of a
# memory read), and a batch would read the database once per query. The
# compiled loops read each selected row once, straight into the answers.
@numba.njit(cache=True, nogil=True)
def _xor_rows(words: np.ndarray, chosen: np.ndarray, answer: np.ndarray) -> None:
    """XORs the rows `chosen` into `answer`, eight rows per store: one
    read-modify-write of the answer per row held it to 0.7x of a memory read."""
    whole = len(chosen) - len(chosen) % 8
    for i in range(0, whole, 8):
        r0, r1, r2, r3 = (
            words[chosen[i]],
            words[chosen[i + 1]],
            words[chosen[i + 2]],
            words[chosen[i + 3]],
        )
        r4, r5, r6, r7 = (
            words[chosen[i + 4]],
            words[chosen[i + 5]],
            words[chosen[i + 6]],
            words[chosen[i + 7]],
        )
        for word in range(words.shape[1]):
            answer[word] ^= (
                r0[word]
                ^ r1[word]
                ^ r2[word]
                ^ r3[word]
                ^ r4[word]
                ^ r5[word]
                ^ r6[word]
                ^ r7[word]
            )
    for i in range(whole, len(chosen)):
        for word in range(words.shape[1]):
            answer[word] ^= words[chosen[i], word]


@numba.njit(cache=True, nogil=True)
def _xor_rows_batch(words: np.ndarray, selected: np.ndarray, answers: np.ndarray) -> None:
    """`selected` is (rows, queries): each row is read once from memory and
    XORed into every answer that selects it (the answers stay in cache)."""
    for row in range(words.shape[0]):
        for query in range(selected.shape[1]):
            if selected[row, query]:
                for word in range(words.shape[1]):
                    answers[query, word] ^= words[row, word]


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
        """The XOR of the records the query selects: only the selected half
        of the database is read."""
        answer = np.zeros(self._words.shape[1], dtype=np.uint64)
        _xor_rows(self._words, np.flatnonzero(self._bits(query)), answer)
        return answer.tobytes()

    def answer_batch(self, queries: list[bytes]) -> list[bytes]:
        """Answers to several queries in one pass over the database; all are
        checked before any is answered."""
        if not queries:
            return []
        selected = np.stack([self._bits(query) for query in queries], axis=1)
        answers = np.zeros((len(queries), self._words.shape[1]), dtype=np.uint64)
        _xor_rows_batch(self._words, selected, answers)
        return [answer.tobytes() for answer in answers]


def combine(first: bytes, second: bytes) -> np.ndarray:
    if len(first) != len(second):
        raise BadQuery("the two replicas answered with different lengths")
    return np.frombuffer(first, dtype=np.uint8) ^ np.frombuffer(second, dtype=np.uint8)

"""Single-server PIR from LWE, in the style of SimplePIR (Henzinger et al.,
USENIX Security 2023): n = 1024, q = 2^32, plaintext modulus p chosen so
decryption is correct, a hint downloaded once.

Layout: record j is column j of D, written as digits in Z_p (m digits per
record). Public A (N x n) comes from a seed. The server publishes
hint = D.A mod q. The client asks for record j with qv = A.s + e + Delta.u_j
(s secret, e small Gaussian noise, Delta = q / p, u_j the j-th unit vector);
the server answers D.qv; the client computes D.qv - hint.s = D.e + Delta.D[:, j]
and rounds away the noise. To the server, qv is an LWE sample: pseudorandom.

The server's products with D run through float64 BLAS, as numpy's integer
matmul has no BLAS: one product per block of 2^21 / p records, the whole
uint32 operand at once (exact while the block's sums stay below 2^53), each
block's result reduced mod 2^32. This keeps the server's scan close to
memory bandwidth.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from parties.errors import BadQuery, ConfigError
from protocols.pir.records import version

LWE_N = 1024
SIGMA = 6.4  # noise standard deviation (SimplePIR's)
TAIL = 8  # noise bound in standard deviations: decryption fails with probability < 1e-15
MASK32 = np.uint64(0xFFFFFFFF)


def plaintext_bits(count: int) -> int:
    """log2 of the largest power-of-two p for which D.e stays below Delta/2,
    with entries of D uniform in [0, p) (std of a sum: sigma * p * sqrt(N/3))."""
    for bits in range(16, 0, -1):
        p = 1 << bits
        if TAIL * SIGMA * p * math.sqrt(count / 3) < 2**32 / (2 * p):
            return bits
    raise ConfigError(f"no plaintext modulus keeps SimplePIR correct for {count} records")


def seed_for(version: str) -> bytes:
    """The seed of A for one database version: replicas and rebuilds of a
    version agree, another version gets another A, and since a client
    derives it too, a malicious database cannot choose its own A."""
    return hashlib.sha256(b"airlock-simplepir-seed\x00" + version.encode()).digest()[:16]


def expand_matrix(seed: bytes, rows: int, cols: int = LWE_N) -> np.ndarray:
    """Public matrix A from a 16-byte seed, by AES-128-CTR (as SimplePIR does)."""
    encryptor = Cipher(algorithms.AES(seed), modes.CTR(b"\x00" * 16)).encryptor()
    stream = encryptor.update(b"\x00" * (rows * cols * 4))
    return np.frombuffer(stream, dtype="<u4").reshape(rows, cols)


def _mulmod32(digits: np.ndarray, wide: np.ndarray, bits: int) -> np.ndarray:
    """(digits @ wide) mod 2^32, `digits` float64 with entries < 2^bits, `wide`
    uint32. A block of 2^(21 - bits) columns of digits times the whole uint32
    operand sums to less than 2^bits * 2^32 * 2^(21 - bits) = 2^53, so every
    partial sum is an exact integer in float64. (Splitting the operand into
    16-bit halves instead took two products over the digits: half the speed.)"""
    block = 1 << (21 - bits)
    total = np.zeros((digits.shape[0], wide.shape[1]), dtype=np.uint64)
    for start in range(0, digits.shape[1], block):
        part = digits[:, start : start + block] @ wide[start : start + block].astype(np.float64)
        total += part.astype(np.uint64)  # exact integers; wraps mod 2^64, a multiple of 2^32
    return (total & MASK32).astype(np.uint32)


def to_digits(records: np.ndarray, bits: int) -> np.ndarray:
    """(N, bytes) uint8 -> (m, N) digits < 2^bits, record j in column j."""
    bit_rows = np.unpackbits(records, axis=1)
    digits_per_record = -(-bit_rows.shape[1] // bits)
    padded = np.zeros((records.shape[0], digits_per_record * bits), dtype=np.uint8)
    padded[:, : bit_rows.shape[1]] = bit_rows
    weights = (1 << np.arange(bits - 1, -1, -1)).astype(np.uint32)
    return (padded.reshape(records.shape[0], digits_per_record, bits) @ weights).T.astype(np.uint32)


def from_digits(digits: np.ndarray, bits: int, record_bytes: int) -> np.ndarray:
    """One column of digits back to the record's bytes."""
    bit_rows = ((digits[:, None] >> np.arange(bits - 1, -1, -1)) & 1).astype(np.uint8).reshape(-1)
    return np.packbits(bit_rows[: record_bytes * 8])


@dataclass(frozen=True)
class Setup:
    """What a client downloads once: the seed of A, the hint and the shape."""

    seed: bytes
    hint: np.ndarray  # (m, n) uint32
    count: int
    bits: int
    record_bytes: int
    version: str


DIGIT_BLOCK = 4096  # records digitised at a time


def lwe_noise(shape: tuple[int, ...]) -> np.ndarray:
    """Rounded Gaussian noise of deviation SIGMA (int64), by Box-Muller from
    os.urandom: the noise hides the query, so it must not come from numpy's
    generators, whose state the server could rebuild. (LWE needs the noise's
    size, not DP's exact discrete Gaussian, so floating point is fine here.)"""
    count = math.prod(shape)
    words = np.frombuffer(os.urandom(16 * count), dtype=np.uint64).reshape(2, count)
    # 53-bit uniforms; u1 in (0, 1] so that its log is finite
    u1 = ((words[0] >> np.uint64(11)).astype(np.float64) + 1.0) / 2.0**53
    u2 = (words[1] >> np.uint64(11)).astype(np.float64) / 2.0**53
    normal = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
    return np.rint(SIGMA * normal).astype(np.int64).reshape(shape)


class SimplePirServer:
    def __init__(self, records: np.ndarray, seed: bytes | None = None) -> None:
        self.count, self.record_bytes = records.shape
        self.bits = plaintext_bits(self.count)
        self.seed = seed or os.urandom(16)
        self.version = version(records)
        # a block of records at a time: digitising the whole database at once
        # held 30 times its size in temporaries (out of memory at 512 MiB)
        digits_per_record = -(-self.record_bytes * 8 // self.bits)
        self._digits = np.empty((digits_per_record, self.count), dtype=np.float64)
        for start in range(0, self.count, DIGIT_BLOCK):
            block = records[start : start + DIGIT_BLOCK]
            self._digits[:, start : start + len(block)] = to_digits(block, self.bits)
        self.hint = _mulmod32(self._digits, expand_matrix(self.seed, self.count), self.bits)

    def setup(self) -> Setup:
        return Setup(self.seed, self.hint, self.count, self.bits, self.record_bytes, self.version)

    def answer(self, query: bytes, query_version: str) -> bytes:
        """D.qv mod 2^32 for a query made with this database's hint."""
        return self.answer_batch([query], query_version)[0]

    def answer_batch(self, queries: list[bytes], query_version: str) -> list[bytes]:
        """Several queries as one matrix product: D is read once for the batch."""
        if query_version != self.version:
            raise BadQuery("stale hint: the database changed since the client's setup")
        for query in queries:
            if not isinstance(query, bytes) or len(query) != 4 * self.count:
                raise BadQuery(
                    f"a SimplePIR query is {4 * self.count} bytes for {self.count} records"
                )
        matrix = np.stack([np.frombuffer(q, dtype="<u4") for q in queries], axis=1)
        answers = _mulmod32(self._digits, matrix, self.bits)
        return [answers[:, i].astype("<u4").tobytes() for i in range(len(queries))]


class SimplePirClient:
    """Queries and decoding, a batch at a time: A.S and hint.S run as exact
    float64 BLAS products (`_mulmod32_full`), not as numpy integer loops."""

    def __init__(self, setup: Setup) -> None:
        self.setup = setup
        self._a = _halves(expand_matrix(setup.seed, setup.count))
        self._hint = _halves(setup.hint)
        self._delta = np.uint64(1 << (32 - setup.bits))

    def query(self, index: int) -> tuple[bytes, np.ndarray]:
        """The query for record `index`, and the secret needed to decode its answer."""
        queries, secrets = self.query_batch([index])
        return queries[0], secrets[:, 0]

    def query_batch(self, indices: list[int]) -> tuple[list[bytes], np.ndarray]:
        """One query per index, and the (n, k) secrets that decode the answers."""
        for index in indices:
            if not 0 <= index < self.setup.count:
                raise BadQuery(f"record {index} is not among {self.setup.count}")
        k = len(indices)
        secrets = np.frombuffer(os.urandom(LWE_N * k * 4), dtype="<u4").reshape(LWE_N, k)
        noise = lwe_noise((self.setup.count, k))
        vectors = _mulmod32_full(self._a, secrets).astype(np.uint64) + noise.astype(np.uint64)
        vectors[indices, np.arange(k)] += self._delta
        vectors &= MASK32  # uint64 arithmetic wraps mod 2^64, a multiple of 2^32
        return [vectors[:, j].astype("<u4").tobytes() for j in range(k)], secrets

    def decode(self, answer: bytes, secret: np.ndarray) -> np.ndarray:
        return self.decode_batch([answer], secret.reshape(LWE_N, 1))[0]

    def decode_batch(self, answers: list[bytes], secrets: np.ndarray) -> list[np.ndarray]:
        digits_count = self.setup.hint.shape[0]
        for answer in answers:
            if len(answer) != 4 * digits_count:
                raise BadQuery(f"a SimplePIR answer is {4 * digits_count} bytes")
        raw = np.stack([np.frombuffer(a, dtype="<u4") for a in answers], axis=1)
        noisy = (raw.astype(np.uint64) - _mulmod32_full(self._hint, secrets)) & MASK32
        digits = ((noisy + self._delta // np.uint64(2)) // self._delta) % np.uint64(
            1 << self.setup.bits
        )
        return [
            from_digits(digits[:, j].astype(np.uint32), self.setup.bits, self.setup.record_bytes)
            for j in range(len(answers))
        ]


def _halves(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A uint32 matrix as its low and high 16 bits, in float64."""
    return (matrix & 0xFFFF).astype(np.float64), (matrix >> 16).astype(np.float64)


def _mulmod32_full(left: tuple[np.ndarray, np.ndarray], right: np.ndarray) -> np.ndarray:
    """(L @ R) mod 2^32 for uint32 L (given as halves) and R, exactly: the
    high-by-high product vanishes mod 2^32; each other product of 16-bit
    halves sums to < 2^53 while the inner dimension is under 2^21."""
    low, high = left
    r_low, r_high = _halves(right)
    result = np.rint(low @ r_low).astype(np.uint64)
    middle = np.rint(low @ r_high).astype(np.uint64) + np.rint(high @ r_low).astype(np.uint64)
    return ((result + (middle << np.uint64(16))) & MASK32).astype(np.uint32)

"""PIR schemes: every record comes back exactly; bad queries are refused with
a clear error; a stale hint never yields a wrong document."""

from __future__ import annotations

import numpy as np
import pytest

from parties.errors import BadQuery, ConfigError
from protocols.pir import simplepir
from protocols.pir.records import pack, unpack
from protocols.pir.simplepir import (
    SIGMA,
    SimplePirClient,
    SimplePirServer,
    _mulmod32,
    expand_matrix,
    lwe_noise,
    plaintext_bits,
    to_digits,
)
from protocols.pir.xor import XorServer, combine, make_queries

DOCS = [f"guideline {i:03d}: " + "rest and fluids " * (i % 7) for i in range(300)]
RECORDS = pack(DOCS)


def test_records_round_trip_and_refuse_garbage() -> None:
    assert [unpack(row) for row in RECORDS] == DOCS
    assert RECORDS.shape[1] % 8 == 0
    with pytest.raises(BadQuery, match="not a document"):
        unpack(np.full(RECORDS.shape[1], 0xFF, dtype=np.uint8))
    with pytest.raises(ConfigError):
        pack([])


def test_xor_pir_returns_every_record_exactly() -> None:
    first, second = XorServer(RECORDS), XorServer(RECORDS)
    for index in range(len(DOCS)):
        q1, q2 = make_queries(index, len(DOCS))
        assert unpack(combine(first.answer(q1), second.answer(q2))) == DOCS[index]


@pytest.mark.parametrize("count", [1, 7, 8, 9, 300])
def test_compiled_xor_answers_equal_numpys_reduction(count: int) -> None:
    """The compiled kernels (eight rows at a time, and a batch in one pass)
    against numpy's XOR of the selected rows, for every remainder mod 8."""
    records = np.random.default_rng(count).integers(0, 256, (count, 16), dtype=np.uint8)
    server = XorServer(records)
    queries = [make_queries(i % count, count)[0] for i in range(5)]
    expected = []
    for query in queries:
        bits = np.unpackbits(np.frombuffer(query, dtype=np.uint8))[:count].astype(bool)
        expected.append(np.bitwise_xor.reduce(records[bits], axis=0).tobytes())
    assert [server.answer(query) for query in queries] == expected
    assert server.answer_batch(queries) == expected
    assert server.answer(bytes(-(-count // 8))) == bytes(16)


def test_each_xor_replica_sees_a_uniform_vector() -> None:
    """The bit of the wanted record is a fair coin in either replica's query."""
    ones = [
        np.unpackbits(np.frombuffer(make_queries(17, 300)[0], dtype=np.uint8))[17]
        for _ in range(2000)
    ]
    assert 0.45 < np.mean(ones) < 0.55


@pytest.mark.parametrize("block", [4096, 7])
def test_simplepir_returns_records_exactly(block: int, monkeypatch) -> None:
    """Also with the database digitised a few records at a time (7 does not divide 300)."""
    monkeypatch.setattr(simplepir, "DIGIT_BLOCK", block)
    server = SimplePirServer(RECORDS)
    client = SimplePirClient(server.setup())
    for index in [0, 1, 150, 298, 299, *range(3, 300, 37)]:
        query, secret = client.query(index)
        assert unpack(client.decode(server.answer(query, server.version), secret)) == DOCS[index]


def test_the_query_noise_is_gaussian_and_not_from_numpys_generators(monkeypatch) -> None:
    """The LWE noise hides the query; numpy's Mersenne Twister / PCG state
    can be rebuilt from outputs, so the client must not draw from them."""

    def refuse(*args, **kwargs):
        raise AssertionError("a numpy generator was used for secret noise")

    monkeypatch.setattr(np.random, "default_rng", refuse)
    monkeypatch.setattr(np.random, "normal", refuse)
    noise = lwe_noise((200_000,))
    assert abs(noise.mean()) < 0.1 and abs(noise.std() - SIGMA) < 0.1
    assert abs(noise).max() < 12 * SIGMA and not np.array_equal(noise, lwe_noise((200_000,)))
    client = SimplePirClient(SimplePirServer(RECORDS).setup())
    client.query_batch([1, 2])


@pytest.mark.parametrize("bits", [10, 16], ids=["one block", "three blocks"])
def test_the_float_products_equal_exact_integer_arithmetic(bits: int) -> None:
    digits = to_digits(RECORDS[:80], bits)  # at 16 bits a block is 32 records
    a = expand_matrix(b"\x01" * 16, 80)
    exact = (digits.astype(np.uint64) @ a.astype(np.uint64)) & np.uint64(0xFFFFFFFF)
    assert np.array_equal(_mulmod32(digits.astype(np.float64), a, bits), exact.astype(np.uint32))


def test_the_float_products_are_exact_at_their_bound() -> None:
    """Every digit and every operand at its largest: a block's sum is just under 2^53."""
    bits = 9
    count = 3 * (1 << (21 - bits))
    digits = np.full((2, count), (1 << bits) - 1, dtype=np.uint64)
    wide = np.full((count, 3), 0xFFFFFFFF, dtype=np.uint32)
    exact = (digits @ wide.astype(np.uint64)) & np.uint64(0xFFFFFFFF)
    assert np.array_equal(_mulmod32(digits.astype(np.float64), wide, bits), exact.astype(np.uint32))


def test_plaintext_modulus_shrinks_as_the_database_grows() -> None:
    assert plaintext_bits(300) >= plaintext_bits(4096) >= plaintext_bits(1 << 20) >= 1


@pytest.mark.parametrize(
    "query",
    [b"", b"\x00" * 7, "not bytes", np.zeros(300, dtype=np.uint32)],
    ids=["empty", "wrong length", "str", "numpy array"],
)
def test_bad_queries_are_refused(query) -> None:
    with pytest.raises(BadQuery):
        XorServer(RECORDS).answer(query)
    server = SimplePirServer(RECORDS)
    with pytest.raises(BadQuery):
        server.answer(query, server.version)


def test_xor_query_with_padding_bits_set_is_refused() -> None:
    server = XorServer(pack(DOCS[:5]))  # 5 records in one byte: 3 padding bits
    with pytest.raises(BadQuery, match="padding"):
        server.answer(b"\xff")


@pytest.mark.parametrize("index", [-1, 300])
def test_out_of_range_records_are_refused_before_anything_is_sent(index: int) -> None:
    with pytest.raises(BadQuery):
        make_queries(index, 300)
    with pytest.raises(BadQuery):
        SimplePirClient(SimplePirServer(RECORDS).setup()).query(index)


def test_a_stale_hint_is_refused_and_never_yields_a_wrong_document() -> None:
    old = SimplePirServer(RECORDS)
    client = SimplePirClient(old.setup())
    changed = DOCS.copy()
    changed[5] = "guideline 005: updated advice"
    new = SimplePirServer(pack(changed, RECORDS.shape[1]), seed=old.seed)
    query, secret = client.query(5)
    with pytest.raises(BadQuery, match="stale hint"):
        new.answer(query, client.setup.version)
    # even a server that skipped the check could not make the old hint decode a wrong document
    answer = new.answer(query, new.version)
    with pytest.raises(BadQuery):
        unpack(client.decode(answer, secret))


def test_a_record_corrupted_anywhere_in_its_text_is_an_error() -> None:
    record = RECORDS[42].copy()
    for position in (4, 10, 4 + len(DOCS[42].encode()) - 1):
        corrupted = record.copy()
        corrupted[position] ^= 0x01
        with pytest.raises(BadQuery):
            unpack(corrupted)

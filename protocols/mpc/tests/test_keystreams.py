"""AES-CTR keystreams, and CrypTen drawing its own secret randomness from
them; no torch, numpy or `random` generator behind any secret the protocol
draws (told by behaviour), nor named in its code."""

from __future__ import annotations

import ast
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from parties.errors import AirlockError
from protocols.mpc import compat
from protocols.mpc.dealer import Dealer
from protocols.mpc.model import split
from protocols.mpc.randomness import KEY_BYTES, KeyStream
from protocols.mpc.tests.conftest import run_both
from protocols.mpc.tests.test_dealer_communicator import deal_both
from tests.generators import Draw, assert_drawn_from_the_os

CPU = torch.device("cpu")


def test_a_shared_key_gives_a_shared_stream_and_a_fresh_one_does_not() -> None:
    key = os.urandom(KEY_BYTES)
    one, other = KeyStream(key), KeyStream(key)
    assert torch.equal(one.ring_elements((3, 5)), other.ring_elements((3, 5)))
    assert torch.equal(one.ring_elements(7), other.ring_elements(7))  # and stays in step
    assert not torch.equal(one.ring_elements(8), KeyStream.fresh().ring_elements(8))
    assert not torch.equal(one.ring_elements(8), one.ring_elements(8))  # never repeats
    assert one.ring_elements((0, 4)).shape == (0, 4)
    bits = one.bits(1000, 3)
    assert bits.dtype == torch.long and set(bits.unique().tolist()) == set(range(8))
    with pytest.raises(ValueError, match="1 to 64 random bits"):
        one.bits(4, 65)
    with pytest.raises(ValueError, match="32 bytes"):
        KeyStream(b"short")


def test_a_stream_is_aes_ctr_and_each_nonce_keys_its_own() -> None:
    """The values are AES-256-CTR's keystream, byte for byte, also across the
    pieces it is made in; the nonce starts the counter in a range of its own."""
    key = os.urandom(KEY_BYTES)
    size = (3, 40_000)  # 960,000 bytes: several pieces, the last one short
    for nonce in (0, 5):
        encryptor = Cipher(algorithms.AES(key), modes.CTR((nonce << 64).to_bytes(16, "big")))
        expected = encryptor.encryptor().update(bytes(8 * 120_000))
        values = KeyStream(key, nonce).ring_elements(size)
        assert values.numpy().tobytes() == expected
    assert not torch.equal(KeyStream(key, 1).ring_elements(8), KeyStream(key, 2).ring_elements(8))
    with pytest.raises(ValueError, match="64 bits"):
        KeyStream(key, 1 << 64)


def test_crypten_draws_its_secret_randomness_from_keystreams(monkeypatch) -> None:
    module = compat.crypten()
    from crypten.common import rng
    from crypten.mpc.primitives import arithmetic, binary

    arithmetic_tensor, binary_tensor = arithmetic.ArithmeticSharedTensor, binary.BinarySharedTensor
    for drawing in (rng, arithmetic, binary):
        for name in ("generate_random_ring_element", "generate_kbit_random_tensor"):
            if hasattr(drawing, name):
                assert getattr(drawing, name) in (compat.ring_element, compat.kbit_tensor)
    assert module._setup_prng is compat.share_keys
    with pytest.raises(AirlockError, match="Z/2\\^64"):
        rng.generate_random_ring_element((4,), ring_size=2**32)
    with pytest.raises(AirlockError, match="secret randomness from a"):
        rng.generate_random_ring_element((4,), generator=object())
    # CrypTen's local randomness: fresh every time
    assert not torch.equal(arithmetic_tensor.PRSS((8,)).share, arithmetic_tensor.PRSS((8,)).share)
    # Zero sharings between two ranks: each rank's "next" key is the other's
    # "prev" key, so the two shares cancel out, and neither is zero.
    keys = os.urandom(KEY_BYTES), os.urandom(KEY_BYTES)
    for kind, combine in ((arithmetic_tensor, torch.add), (binary_tensor, torch.bitwise_xor)):
        shares = []
        for rank in (0, 1):
            monkeypatch.setitem(module.generators["prev"], CPU, KeyStream(keys[1 - rank]))
            monkeypatch.setitem(module.generators["next"], CPU, KeyStream(keys[rank]))
            shares.append(kind.PRZS((1000,)).share)
        assert torch.equal(combine(*shares), torch.zeros(1000, dtype=torch.long))
        assert bool((shares[0] != 0).all())


def test_the_ranks_exchange_the_keys_of_crypten_generators() -> None:
    zero, one = run_both(lambda comm, rank: compat.exchange_keys(comm))
    assert zero["next"] == one["prev"] and zero["prev"] == one["next"]
    assert zero["global"] == one["global"]
    keys = [*zero.values(), one["local"]]
    assert len(set(keys)) == len(keys) and all(len(key) == KEY_BYTES for key in keys)


def _from_an_entropy_seeded_torch_generator() -> list[torch.Tensor]:
    generator = torch.Generator()
    generator.seed()
    return [torch.randint(-(2**63), 2**63 - 1, (64,), generator=generator)]


def test_the_draw_check_tells_a_non_cryptographic_generator() -> None:
    randint = "randint"  # reached by name, as a scan of the source cannot see
    bad: list[Draw] = [
        lambda: [torch.randint(-(2**63), 2**63 - 1, (64,))],
        lambda: [getattr(torch, randint)(-(2**63), 2**63 - 1, (64,))],
        lambda: [torch.empty(64, dtype=torch.long).random_()],
        lambda: [torch.randint(0, 2**62, (64,), generator=torch.Generator())],
        _from_an_entropy_seeded_torch_generator,
        lambda: [np.random.bytes(64)],
        lambda: [np.random.default_rng().integers(0, 2**62, 64)],
        lambda: [random.getrandbits(512)],
        lambda: [random.Random().getrandbits(512)],
    ]
    for draw in bad:
        with pytest.raises(AssertionError, match="repeat under|change with"):
            assert_drawn_from_the_os(draw)
    assert_drawn_from_the_os(lambda: [KeyStream.fresh().ring_elements(64), os.urandom(32)])


def secret_draws() -> list[torch.Tensor]:
    """One of each secret the protocol draws: the shares of a prompt or a
    weight, each rank's shares of each kind of tuple and the dealer's
    corrections, and CrypTen's own masks."""
    compat.crypten()
    from crypten.common import rng

    dealer = Dealer()
    requests: list[dict[str, Any]] = [
        {"kind": "additive", "op": "matmul", "size0": [4, 8], "size1": [8, 4]},
        {"kind": "binary", "size0": [64], "size1": [64]},
        {"kind": "square", "size0": [64], "count": 2},
        {"kind": "wraps", "size0": [64]},
        {"kind": "B2A", "size0": [256]},
    ]
    dealt = [deal_both(dealer, {"id": i, **r}) for i, r in enumerate(requests, start=1)]
    return [
        *split(torch.arange(64)),
        *(share for ranks in dealt for shares in ranks for share in shares),
        rng.generate_random_ring_element((64,)),
        rng.generate_kbit_random_tensor((256,), bitlength=1),
    ]


def test_no_secret_is_drawn_from_a_non_cryptographic_generator() -> None:
    """The guard against regressions: every kind of share, tuple and mask
    is new under the same seeds of torch's, numpy's and `random`'s
    generators, and is the same under the same `os.urandom` bytes."""
    assert_drawn_from_the_os(secret_draws)


TORCH_DRAWS = {"randint", "rand", "randn", "randperm", "Generator", "manual_seed"}
RANDOM_MODULES = {"random", "numpy.random"}


def imported_modules(node: ast.AST) -> set[str]:
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    if isinstance(node, ast.ImportFrom) and node.module:
        return {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return set()


def non_cryptographic_draws(tree: ast.AST) -> list[str]:
    """Calls of torch's generators (torch.randint(...), torch.Generator(...),
    ...), any use of numpy's, and imports of `random` or numpy.random."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner, name = node.func.value, node.func.attr
            if isinstance(owner, ast.Name) and owner.id == "torch" and name in TORCH_DRAWS:
                found.append(f"{node.lineno}: torch.{name}(...)")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id in ("np", "numpy") and node.attr == "random":
                found.append(f"{node.lineno}: {node.value.id}.random")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            if imported_modules(node) & RANDOM_MODULES:
                found.append(f"{node.lineno}: imports a random module")
    return found


def test_the_scan_finds_a_non_cryptographic_draw() -> None:
    old_split = "shares = [torch.randint(-(2**63), 2**63 - 1, shape) for _ in range(n)]"
    assert non_cryptographic_draws(ast.parse(old_split)) == ["1: torch.randint(...)"]
    assert len(non_cryptographic_draws(ast.parse("import random\nnp.random.default_rng()"))) == 2
    assert not non_cryptographic_draws(ast.parse("isinstance(g, torch.Generator)"))


def test_no_generator_is_named_in_the_protocols_code() -> None:
    """A lint beside the behavioural guard above: the protocol's own code
    (not its tests) names no torch, numpy or `random` generator."""
    package = Path(__file__).resolve().parent.parent
    found = {
        path.name: draws
        for path in sorted(package.glob("*.py"))
        if (draws := non_cryptographic_draws(ast.parse(path.read_text())))
    }
    assert not found, found

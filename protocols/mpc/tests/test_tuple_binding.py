"""A compute rank cannot choose the other rank's correlated randomness.

Only the last rank tells the dealer which tuple it wants. Until tuples were
bound to their requests, it could ask for tuple N as another kind or shape
than rank 0 draws by (an empty product, a B2A pair, a binary triple over a
triple's words), and the correction it got back was made of rank 0's own
stream words: rank 0's Beaver masks, and with the openings, the prompt and
the weights. Each test here failed on the code before `dealer.tuple_key`.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch

from parties.errors import AirlockError, Refused
from parties.labels import Form, Label
from protocols.mpc.dealer import Dealer, extend_transcript, own_tuple, tuple_key, tuple_stream
from tests.helpers import Parties

# rank 0's tuple 1: a Beaver triple for an elementwise product of 16 values
HONEST: dict[str, Any] = {
    "id": 1,
    "count": 2,
    "kind": "additive",
    "op": "mul",
    "size0": [16],
    "size1": [16],
}

# what the dealer's API lets the last rank ask for in place of HONEST, each
# well formed (the message definitions admit every one)
DEVIATIONS: dict[str, dict[str, Any]] = {
    "a B2A pair": {"kind": "B2A", "size0": [16], "size1": []},
    "a B2A pair over the whole triple": {"kind": "B2A", "size0": [32], "size1": []},
    "a wrap count": {"kind": "wraps", "size0": [16], "size1": []},
    "a square": {"kind": "square", "size0": [16], "size1": []},
    "a binary triple": {"kind": "binary", "size0": [16], "size1": [16]},
    "a matmul": {"kind": "additive", "op": "matmul", "size0": [4, 4], "size1": [4, 4]},
    "a smaller product": {"kind": "additive", "op": "mul", "size0": [8], "size1": [8]},
    "a broadcast product": {"kind": "additive", "op": "mul", "size0": [16], "size1": [1]},
    "more tuples": {"count": 16},
    "fewer tuples": {"count": 1},
}


def deviating(name: str) -> dict[str, Any]:
    deviation = DEVIATIONS[name]
    base = {"id": HONEST["id"], "count": HONEST["count"]}
    return {**(HONEST if "kind" not in deviation else base), **deviation}


def bits_agreeing(a: torch.Tensor, b: torch.Tensor) -> float:
    """The fraction of the 64 bits of each value that agree, over both tensors."""
    differ = a ^ b
    count = sum(int(((differ >> bit) & 1).sum()) for bit in range(64))
    return 1 - count / (64 * a.numel())


def most_agreement(correction: torch.Tensor, words: torch.Tensor) -> float:
    """How closely the correction (or its negation) matches any run of
    `words` of its length: 0.5 for independent values, 1 for a copy."""
    flat = correction.reshape(-1)
    best = 0.0
    for candidate in (flat, -flat, -flat - 1):
        for start in range(words.numel() - flat.numel() + 1):
            window = words[start : start + flat.numel()]
            best = max(best, bits_agreeing(candidate, window))
    return best


@pytest.mark.parametrize("name", sorted(DEVIATIONS))
def test_a_deviating_request_gets_nothing_of_rank_0s_tuple(name: str) -> None:
    dealer = Dealer()
    seeds = [dealer.seed(0), dealer.seed(1)]
    corrections = dealer.deal(1, deviating(name))
    for index, correction in enumerate(corrections[: HONEST["count"]]):
        # every word rank 0 draws for its own tuple, in its stream's order
        words = tuple_stream(seeds[0], HONEST, index).ring_elements(64)
        assert most_agreement(correction, words) < 0.7, name
    # what rank 0 actually holds differs from what a forged request implies
    mine = own_tuple(HONEST, tuple_stream(seeds[0], HONEST, 0), None)
    forged = own_tuple(HONEST, tuple_stream(seeds[0], deviating(name), 0), None)
    assert not any(torch.equal(a, b) for a, b in zip(mine, forged, strict=True))


def test_an_empty_product_is_refused_by_the_dealer_and_by_rank_0() -> None:
    """The review's attack: an empty matmul draws no inputs, so its
    correction was minus rank 0's first stream words, which mask the prompt."""
    dealer = Dealer()
    seed = dealer.seed(0)
    empty = {**HONEST, "op": "matmul", "size0": [16, 0], "size1": [0, 1]}
    with pytest.raises(AirlockError, match="empty dimension"):
        dealer.deal(1, empty)
    with pytest.raises(AirlockError, match="empty dimension"):  # nor does rank 0 draw by one
        own_tuple(empty, tuple_stream(seed, HONEST, 0), None)


def test_the_dealer_refuses_a_rank_whose_tuples_differ_from_the_last_ranks() -> None:
    dealer = Dealer()
    asked = deviating("a square")
    dealer.deal(1, asked)
    used = extend_transcript(bytes(32), tuple_key(HONEST))
    with pytest.raises(AirlockError, match="other tuples than rank 0 used"):
        dealer.check(0, 1, used)
    with pytest.raises(AirlockError, match="no more tuples"):  # and deals nothing more
        dealer.deal(1, {**HONEST, "id": 2})


def test_the_dealer_passes_ranks_that_asked_alike() -> None:
    dealer = Dealer()
    transcript = bytes(32)
    for ident in (1, 2):
        request = {**HONEST, "id": ident}
        dealer.deal(1, request)
        transcript = extend_transcript(transcript, tuple_key(request))
    dealer.check(0, 2, transcript)
    with pytest.raises(AirlockError, match="other tuples"):  # not through another id
        dealer.check(0, 1, transcript)
    with pytest.raises(AirlockError, match="checked against"):  # the last rank checks nothing
        dealer.check(1, 2, transcript)


def test_the_dealers_boundary_refuses_empty_sizes_and_mismatched_checks(
    mpc_parties: Parties,
) -> None:
    """Through gRPC with mutual TLS: the last rank's empty product is
    refused by the message definition; rank 0's check that does not match
    what the last rank asked for is refused by the dealer."""
    label = [Label("randomness:dealer", Form.PUBLIC)]

    def ask(party: str, step: str, body: dict) -> None:
        mpc_parties[party].deliver("dealer", "mpc", step, label, json.dumps(body).encode())

    empty = {**HONEST, "op": "matmul", "size0": [16, 0], "size1": [0, 1]}
    with pytest.raises(Refused):
        ask("compute", "tuple_request", empty)
    ask("compute", "tuple_request", deviating("a B2A pair"))
    check = {"through": 1, "transcript": extend_transcript(bytes(32), tuple_key(HONEST)).hex()}
    with pytest.raises(Refused, match="other tuples than rank 0 used"):
        ask("deployer", "tuple_check", check)

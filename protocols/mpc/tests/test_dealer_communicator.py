"""The dealer's tuples reconstruct correctly from each rank's seeded shares
and the last rank's corrections, each seed told once and each tuple dealt
once; the boundary communicator's collectives, between two ranks in threads."""

from __future__ import annotations

import pytest
import torch

from parties.errors import AirlockError
from protocols.mpc.communicator import BoundaryCommunicator
from protocols.mpc.dealer import Dealer, own_tuple, tuple_stream
from protocols.mpc.model import decode, encode, split
from protocols.mpc.tests.conftest import run_both


def deal_both(dealer: Dealer, request: dict) -> list[list[torch.Tensor]]:
    """Each rank's shares of the request's tuples, one after the other, as
    DealerProvider makes them: rank 0 from its seed alone, rank 1 from its
    seed and the corrections it asks the dealer for."""
    seeds = getattr(dealer, "test_seeds", None) or [dealer.seed(0), dealer.seed(1)]
    dealer.test_seeds = seeds  # type: ignore[attr-defined]
    corrections = dealer.deal(1, request)
    return [
        [
            share
            for index, correction in enumerate(corrections)
            for share in own_tuple(
                request,
                tuple_stream(seeds[rank], request, index),
                correction if rank == 1 else None,
            )
        ]
        for rank in (0, 1)
    ]


def test_beaver_triples_reconstruct() -> None:
    dealer = Dealer()
    for ident, (op, size0, size1) in enumerate(
        (("mul", [3, 4], [3, 4]), ("matmul", [3, 5], [5, 2])), start=1
    ):
        shares = deal_both(
            dealer, {"id": ident, "kind": "additive", "size0": size0, "size1": size1, "op": op}
        )
        a, b, c = (shares[0][i] + shares[1][i] for i in range(3))
        assert torch.equal(c, getattr(torch, op)(a, b))
        assert not torch.equal(shares[0][0], a)  # a share is not the value


def test_tuples_come_in_bulk_each_one_fresh() -> None:
    shares = deal_both(Dealer(), {"id": 1, "kind": "square", "size0": [3], "count": 4})
    assert len(shares[0]) == 8  # 4 tuples of (r, r^2)
    values = [shares[0][i] + shares[1][i] for i in range(8)]
    for r, r2 in zip(values[0::2], values[1::2], strict=True):
        assert torch.equal(r2, r * r)
    assert len({tuple(v.tolist()) for v in values[0::2]}) == 4
    with pytest.raises(AirlockError, match="1 to 16 tuples"):
        Dealer().deal(1, {"id": 1, "kind": "square", "size0": [3], "count": 99})


def test_binary_square_wrap_and_b2a_tuples_reconstruct() -> None:
    from crypten.common.util import count_wraps

    dealer = Dealer()
    binary = deal_both(dealer, {"id": 1, "kind": "binary", "size0": [4], "size1": [4]})
    a, b, c = (binary[0][i] ^ binary[1][i] for i in range(3))
    assert torch.equal(c, a & b)
    square = deal_both(dealer, {"id": 2, "kind": "square", "size0": [4]})
    r = square[0][0] + square[1][0]
    assert torch.equal(square[0][1] + square[1][1], r * r)
    wraps = deal_both(dealer, {"id": 3, "kind": "wraps", "size0": [6]})
    theta = wraps[0][1] + wraps[1][1]
    assert torch.equal(theta, count_wraps([wraps[0][0], wraps[1][0]]))
    b2a = deal_both(dealer, {"id": 4, "kind": "B2A", "size0": [8]})
    bit = b2a[0][1] ^ b2a[1][1]
    assert set(bit.tolist()) <= {0, 1} and torch.equal(b2a[0][0] + b2a[1][0], bit)


def test_the_dealer_refuses_bad_requests() -> None:
    dealer = Dealer()
    request = {"id": 9, "kind": "square", "size0": [2]}
    dealer.deal(1, request)
    with pytest.raises(AirlockError, match="ids only increase"):
        dealer.deal(1, request)
    with pytest.raises(AirlockError, match="only the last asks"):
        dealer.deal(0, {"id": 20, "kind": "square", "size0": [2]})
    with pytest.raises(AirlockError, match="unknown tuple kind"):
        dealer.deal(1, {"id": 10, "kind": "secrets", "size0": [1]})
    with pytest.raises(AirlockError, match="not supported"):
        dealer.deal(1, {"id": 11, "kind": "additive", "size0": [1], "size1": [1], "op": "exp"})
    with pytest.raises(AirlockError, match="bad size"):
        dealer.deal(1, {"id": 12, "kind": "square", "size0": [1 << 14, 1 << 14]})
    with pytest.raises(AirlockError, match="with the product"):
        # small inputs, a 2^50-element product: refused before anything is drawn
        dealer.deal(
            1,
            {
                "id": 14,
                "kind": "additive",
                "op": "matmul",
                "size0": [1 << 25, 1],
                "size1": [1, 1 << 25],
            },
        )
    with pytest.raises(AirlockError, match="with the product"):
        dealer.deal(1, {"id": 15, "kind": "binary", "size0": [1 << 13, 1], "size1": [1, 1 << 13]})
    with pytest.raises(AirlockError, match="bad size"):
        dealer.deal(
            1, {"id": 16, "kind": "additive", "op": "matmul", "size0": [2, 3], "size1": [4, 5]}
        )
    with pytest.raises(AirlockError, match="integer id"):
        dealer.deal(1, {"id": "x", "kind": "square", "size0": [1]})
    with pytest.raises(AirlockError, match="not a compute party"):
        dealer.deal(2, {"id": 13, "kind": "square", "size0": [1]})


def test_each_seed_is_told_once_and_the_ranks_seeds_differ() -> None:
    dealer = Dealer()
    seeds = [dealer.seed(0), dealer.seed(1)]
    assert seeds[0] != seeds[1] and all(len(seed) == 32 for seed in seeds)
    with pytest.raises(AirlockError, match="has its seed already"):
        dealer.seed(0)
    with pytest.raises(AirlockError, match="not a compute party"):
        dealer.seed(2)
    assert seeds[0] != Dealer().seed(0)  # a fresh draw per dealer


def test_rank_0_shares_are_its_own_stream_and_the_correction_is_all_rank_1_gets() -> None:
    """What rank 1 gets for a product is its share of it only: without rank
    0's seed the product's value stays hidden (c - c1 is rank 0's share,
    drawn from rank 0's stream)."""
    dealer = Dealer()
    request = {"id": 1, "kind": "additive", "op": "mul", "size0": [64], "size1": [64], "count": 2}
    shares = deal_both(dealer, request)
    (first, second) = dealer.deal(1, {**request, "id": 2})
    assert shares[1][2].shape == first.shape == (64,)
    # tuples of one request, and of two requests, are independent draws
    assert not torch.equal(shares[1][2], shares[1][5])
    assert not torch.equal(first, shares[1][2]) and not torch.equal(first, second)


def test_fixed_point_sharing_round_trips() -> None:
    values = torch.tensor([[-1.5, 0.25], [3.0, 1e-4]])
    shares = split(encode(values))
    assert torch.allclose(decode(shares[0] + shares[1]), values.double(), atol=2**-16)


def test_collectives_between_two_ranks() -> None:
    def work(comm: BoundaryCommunicator, rank: int):
        mine = torch.tensor([rank + 1, 10 * (rank + 1)])
        return (
            comm.all_reduce(mine),
            comm.all_reduce([mine, mine * 2], batched=True),
            comm.all_reduce(mine, op=torch.distributed.ReduceOp.BXOR),
            comm.broadcast(mine, 1),
            comm.all_gather(mine),
            comm.gather(mine, 0),
            comm.reduce(mine, 1),
            comm.broadcast_obj({"rank": rank} if rank == 0 else None, 0),
        )

    zero, one = run_both(work)
    for result in (zero, one):
        assert result[0].tolist() == [3, 30]
        assert [t.tolist() for t in result[1]] == [[3, 30], [6, 60]]
        assert result[2].tolist() == [1 ^ 2, 10 ^ 20]
        assert result[3].tolist() == [2, 20]
        assert [t.tolist() for t in result[4]] == [[1, 10], [2, 20]]
        assert result[7] == {"rank": 0}
    assert [t.tolist() for t in zero[5]] == [[1, 10], [2, 20]] and one[5] == [None]
    assert zero[6] is None and one[6].tolist() == [3, 30]


def test_a_message_of_the_wrong_kind_is_a_protocol_error() -> None:
    def work(comm: BoundaryCommunicator, rank: int):
        if rank == 0:
            comm.send(torch.tensor([1]), 1)
            return None
        with pytest.raises(AirlockError, match="out of step"):
            comm.broadcast(torch.tensor([0]), 0)
        return "checked"

    assert run_both(work)[1] == "checked"

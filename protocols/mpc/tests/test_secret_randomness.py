"""The attacks of issue 11 on the mpc protocol's randomness, played by the
parties that received the shares, through the real runtime. Shares and
tuples once came from torch's Mersenne Twister: a rank rebuilt it from its
own shares, or reseeded it as the code did, and read the secrets. Each
attack must now fail, while the shares still reconstruct and look uniform."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from models.checkpoint import served_model, shipped_tokenizer
from models.transformer import ModelConfig
from parties.errors import Refused
from parties.labels import Form, Label
from parties.log_check import read_entries
from protocols.mpc.communicator import pack_tensors, unpack_tensors
from protocols.mpc.dealer import Dealer, own_tuple, tuple_stream
from protocols.mpc.model import encode, one_hot, split
from protocols.mpc.tests.conftest import MPC_ROLES
from protocols.mpc.tests.test_dealer_communicator import deal_both
from tests.helpers import Parties, running_parties

PROMPT_SHARE = [Label("prompt:alice", Form.SHARE)]
MT_VALUES = 312  # int64 values that hold the 624 32-bit outputs of a Mersenne Twister state


def torch_ring_elements(shape: torch.Size | tuple[int, ...]) -> torch.Tensor:
    """What the old code drew for a share, from torch's global generator."""
    return torch.randint(-(2**63), 2**63 - 1, shape, dtype=torch.long)


def _untemper(word: int) -> int:
    word ^= word >> 18
    word ^= (word << 15) & 0xEFC60000
    undone = word
    for _ in range(5):
        undone = word ^ ((undone << 7) & 0x9D2C5680)
    word = undone & 0xFFFFFFFF
    undone = word
    for _ in range(3):
        undone = word ^ (undone >> 11)
    return undone & 0xFFFFFFFF


def predict_next(seen: torch.Tensor, count: int) -> torch.Tensor:
    """The attack on torch's Mersenne Twister: from MT_VALUES int64 values it
    drew uniformly (each is two 32-bit outputs, the high one first), rebuild
    its state and draw the next `count` values the same way."""
    words = []
    for value in seen.reshape(-1)[:MT_VALUES].tolist():
        unsigned = (value + 2**63) % 2**64
        words += [unsigned >> 32, unsigned & 0xFFFFFFFF]
    twister = random.Random()
    twister.setstate((3, (*(_untemper(w) for w in words), 624), None))
    values = [
        ((twister.getrandbits(32) << 32) | twister.getrandbits(32)) - 2**63 for _ in range(count)
    ]
    return torch.tensor(values, dtype=torch.long)


def received(parties: Parties, party: str, step: str) -> dict[str, torch.Tensor]:
    """The tensors of the first `step` envelope `party` admitted, from its
    log's blobs: exactly what it saw."""
    workdir = parties[party].log.directory
    entries, _ = read_entries(workdir, party)
    (entry, *_) = [e for e in entries if e["step"] == step and e["outcome"] == "admitted"]
    return unpack_tensors((workdir / "blobs" / entry["payload_sha256"]).read_bytes())[1]


def ask_dealer(parties: Parties, party: str, step: str, request: dict) -> bytes:
    label = [Label("randomness:dealer", Form.PUBLIC)]
    reply = parties[party].deliver("dealer", "mpc", step, label, json.dumps(request).encode())
    assert reply is not None
    return reply.payload


def test_a_rank_cannot_predict_the_dealers_next_tuple(mpc_parties: Parties) -> None:
    seeds = {
        party: bytes.fromhex(json.loads(ask_dealer(mpc_parties, party, "seed_request", {}))["seed"])
        for party in ("deployer", "compute")
    }
    request = {"id": 1, "kind": "square", "size0": [MT_VALUES], "count": 2}
    meta, tensors = unpack_tensors(ask_dealer(mpc_parties, "compute", "tuple_request", request))
    corrections = [tensors[str(i)] for i in range(meta["count"])]  # rank 1's r^2 shares, twice
    with pytest.raises(Refused, match="only the last asks"):  # rank 0 draws its own
        ask_dealer(mpc_parties, "deployer", "tuple_request", {**request, "id": 2})
    shares = [
        [
            own_tuple(request, tuple_stream(seeds[party], request, index), correction)
            for index, correction in enumerate(corrections if party == "compute" else [None] * 2)
        ]
        for party in ("deployer", "compute")
    ]
    (r, r2), (next_r, next_r2) = (
        [a + b for a, b in zip(rank0, rank1, strict=True)]
        for rank0, rank1 in zip(shares[0], shares[1], strict=True)
    )
    assert torch.equal(r2, r * r) and torch.equal(next_r2, next_r * next_r)
    assert not torch.equal(r, next_r)
    # Rank 1 rebuilds a Mersenne Twister from what the dealer sent it and runs
    # it on, as it once could with the dealer's generator: it predicts
    # neither the next correction nor rank 0's share of r^2.
    predicted = predict_next(corrections[0], 2 * MT_VALUES)
    assert not torch.equal(predicted[:MT_VALUES], corrections[1])
    assert not torch.equal(predicted[MT_VALUES:], shares[0][0][1])


def test_two_dealers_deal_different_tuples() -> None:
    request = {"id": 1, "kind": "additive", "op": "mul", "size0": [64], "size1": [64]}
    first, second = (deal_both(Dealer(), request) for _ in range(2))
    for i in range(3):  # a, b and c, as shared to each rank
        assert not torch.equal(first[0][i], second[0][i])
        assert not torch.equal(first[0][i] + first[1][i], second[0][i] + second[1][i])


def test_a_compute_party_cannot_rebuild_the_prompt_from_its_share(mpc_parties: Parties) -> None:
    tokens = shipped_tokenizer().encode("question: how should asthma be treated in adults?")
    secret = encode(one_hot(tokens, ModelConfig().vocab))
    # Alice shares her one-hot window with torch's global generator where an
    # attacker can replay it: seeded with a public seed, as pretraining at run
    # time once left it.
    torch.manual_seed(0)
    shares = split(secret)
    payload = pack_tensors({}, {"prompt": shares[1]})
    with pytest.raises(Refused, match="OUT_OF_STEP.*awaiting_weights"):  # but admitted, logged
        mpc_parties["alice"].deliver("compute", "mpc", "prompt_shares", PROMPT_SHARE, payload)
    share = received(mpc_parties, "compute", "prompt_shares")["prompt"]  # rank 1: x - r
    assert share.shape == secret.shape and not torch.equal(share, secret)
    torch.manual_seed(0)
    assert not torch.equal(share + torch_ring_elements(share.shape), secret)


def creator_shares(tmp: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """One run's weight shares, as rank 0 and rank 1 received them."""
    with running_parties(tmp, roles=MPC_ROLES, protocol="mpc") as parties:
        parties["model_creator"].act("mpc", "share_weights", {})
        return (
            received(parties, "deployer", "weight_shares"),
            received(parties, "compute", "weight_shares"),
        )


def test_the_creators_weight_shares_differ_between_runs(tmp_path: Path) -> None:
    first, _ = creator_shares(tmp_path / "first")
    second, compute_share = creator_shares(tmp_path / "second")
    weights = {k: encode(v) for k, v in served_model().state_dict().items()}  # the checkpoint's
    assert first.keys() == second.keys() == compute_share.keys() == weights.keys()
    for name, value in weights.items():
        assert torch.equal(second[name] + compute_share[name], value)
        assert not torch.equal(first[name], second[name])
    # Rank 1 replays the creator's process as it once was: torch seeded with
    # the public seed 0, then share 0 of each weight drawn in turn.
    torch.manual_seed(0)
    for name, value in weights.items():
        guessed_share = torch_ring_elements(value.shape)
        assert not torch.equal(compute_share[name] + guessed_share, weights[name])


def bit_frequencies(values: torch.Tensor, bits: int = 64) -> torch.Tensor:
    """How often each of the low `bits` bits is set, over all values."""
    return ((values.reshape(-1, 1) >> torch.arange(bits)) & 1).double().mean(dim=0)


def balanced(values: torch.Tensor, bits: int = 64) -> bool:
    """Each bit set in half the values, within 5 standard deviations."""
    tolerance = 5 * 0.5 / values.numel() ** 0.5
    return bool(((bit_frequencies(values, bits) - 0.5).abs() < tolerance).all())


def test_shares_look_uniform_over_the_ring_and_still_reconstruct() -> None:
    tokens = shipped_tokenizer().encode("question: how should asthma be treated in adults?")
    secret = encode(one_hot(tokens * 100, ModelConfig().vocab))  # mostly zeros
    shares = split(secret)
    assert all(balanced(share) for share in shares)
    assert torch.equal(shares[0] + shares[1], secret)
    assert not balanced(secret)  # the check can tell a skewed value
    dealt = deal_both(Dealer(), {"id": 1, "kind": "B2A", "size0": [1 << 16]})
    assert all(balanced(share) for share in (dealt[0][0], dealt[1][0]))
    assert all(set(share.unique().tolist()) == {0, 1} for share in (dealt[0][1], dealt[1][1]))
    assert balanced(dealt[0][1], bits=1) and balanced(dealt[1][1], bits=1)

"""The key-ordered Merkle tree: honest paths verify at every size; a tree out
of key order, or one that lies about a node's range, cannot hold a record
that both is a provable member and was proved absent."""

from __future__ import annotations

import dataclasses

import pytest

from evidence.ordered import Node, OrderedTree, leaf_node, parent, verify_path
from parties.errors import ClaimFailed
from protocols.attestation.adversaries import OutOfOrderDataset
from protocols.attestation.dataset import (
    Commitment,
    Dataset,
    ExclusionProof,
    MembershipProof,
    leaf_for,
    verify_exclusion,
)

SCHEMA = ("source", "text")


def leaves(keys: list[str]) -> list[tuple[bytes, bytes]]:
    return [(k.encode(), leaf_for(k, k.encode())) for k in keys]


def commitment_of(dataset: Dataset) -> Commitment:
    return Commitment(dataset.name, dataset.root, len(dataset.keys), "source", SCHEMA)


@pytest.mark.parametrize("size", range(1, 41))
def test_every_path_of_a_sorted_tree_verifies(size: int) -> None:
    pairs = leaves([f"k{i:03d}" for i in range(size)])
    tree = OrderedTree(pairs)
    for index, (key, leaf) in enumerate(pairs):
        verify_path(key, leaf, index, size, tree.path(index), tree.root(), "m")
    with pytest.raises(ClaimFailed, match="does not lead to the root"):
        verify_path(b"k000a", leaf_for("k000a", b""), 0, size, tree.path(0), tree.root(), "m")


def test_the_root_commits_to_every_key() -> None:
    keys = ["a", "b", "c", "d", "e"]
    roots = {OrderedTree(leaves(keys)).root()}
    for i in range(len(keys)):
        changed = [*keys]
        changed[i] += "x"
        roots.add(OrderedTree(leaves(changed)).root())
    assert len(roots) == len(keys) + 1


def nyt_dataset(cls: type[Dataset] = Dataset, **kwargs: object) -> Dataset:
    sources = ["bmj.com/a", "nytimes.com/2023/ai", "who.int/b", "zeit.de/c"]
    records = [{"source": s, "text": s} for s in sources]
    return cls("train:h2", records, SCHEMA, "source", **kwargs)


def test_a_tree_out_of_key_order_proves_nothing_through_the_disorder() -> None:
    dataset = nyt_dataset(OutOfOrderDataset, hidden=("nytimes.com",))
    assert dataset.keys[0].startswith("nytimes.com")  # the record placed out of order
    proof = dataset.prove_exclusion("nytimes.com")
    with pytest.raises(ClaimFailed, match="keys out of order"):
        verify_exclusion(commitment_of(dataset), proof)
    with pytest.raises(ClaimFailed, match="keys out of order"):
        dataset._proof(0).verify(commitment_of(dataset), "m")


def test_a_record_hidden_under_a_lying_range_cannot_be_proved_a_member() -> None:
    """The contributor builds the tree by hand: the nytimes.com leaf first,
    shown to verifiers as if its range were "a". Exclusion then verifies,
    but the record is outside the committed set: its own path fails."""
    keys = ["nytimes.com/2023/ai", "bmj.com/a", "who.int/b", "zeit.de/c"]
    pairs = leaves(keys)
    nyt, bmj, who, zeit = (leaf_node(k, leaf) for k, leaf in pairs)
    lie = Node(nyt.hash, b"a", b"a")
    right = parent(who, zeit)
    root = parent(parent(lie, bmj), right).hash
    commitment = Commitment("train:h2", root, 4, "source", SCHEMA)
    before = MembershipProof(1, 4, pairs[1][1], (lie, right))
    after = MembershipProof(2, 4, pairs[2][1], (zeit, parent(lie, bmj)))
    verify_exclusion(commitment, ExclusionProof("nytimes.com", before, after))
    for claimed_sibling in (bmj, dataclasses.replace(bmj, low=b"o", high=b"o")):
        hidden = MembershipProof(0, 4, pairs[0][1], (claimed_sibling, right))
        with pytest.raises(ClaimFailed):
            hidden.verify(commitment, "membership of the hidden record")


def test_malformed_nodes_are_refused() -> None:
    dataset = nyt_dataset()
    good = dataset._proof(1).to_json()
    for node in ({"hash": "zz", "low": "a", "high": "b"}, {"hash": "ab"}, "x", {}):
        with pytest.raises(ClaimFailed, match="malformed membership proof"):
            MembershipProof.from_json({**good, "path": [node]}, "m")
    inverted = dataclasses.replace(dataset._proof(1), path=(Node(b"\0" * 32, b"z", b"a"),))
    with pytest.raises(ClaimFailed, match="range is malformed"):
        inverted.verify(commitment_of(dataset), "m")

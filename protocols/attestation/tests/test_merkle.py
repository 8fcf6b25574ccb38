"""RFC 6962 trees, cross-checked against pymerkle (an independent
implementation) for every size from 1 to 70, and proofs that must fail."""

from __future__ import annotations

import pytest
from pymerkle import InmemoryTree
from pymerkle import verify_consistency as pm_verify_consistency

from evidence.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from parties.errors import ClaimFailed

MAX = 70
DATA = [f"record {i}".encode() for i in range(MAX)]


@pytest.fixture(scope="module")
def reference() -> InmemoryTree:
    tree = InmemoryTree(algorithm="sha256")
    for item in DATA:
        tree.append_entry(item)
    return tree


@pytest.fixture(scope="module")
def ours() -> MerkleTree:
    return MerkleTree.from_data(DATA)


@pytest.mark.parametrize("size", range(1, MAX + 1))
def test_roots_and_inclusion_paths_match_pymerkle(
    reference: InmemoryTree, ours: MerkleTree, size: int
) -> None:
    assert ours.root(size) == reference.get_root(size)
    assert MerkleTree.from_data(DATA[:size]).root() == reference.get_root(size)
    for index in range(size):
        path = ours.inclusion_proof(index, size)
        theirs = reference.prove_inclusion(index + 1, size)  # pymerkle counts from 1
        assert theirs.path[0] == leaf_hash(DATA[index])
        assert path == theirs.path[1:]
        verify_inclusion(leaf_hash(DATA[index]), index, size, path, ours.root(size))


@pytest.mark.parametrize("second", range(1, MAX + 1))
def test_consistency_proofs_verify_between_pymerkle_states(
    reference: InmemoryTree, ours: MerkleTree, second: int
) -> None:
    for first in range(1, second + 1):
        proof = ours.consistency_proof(first, second)
        verify_consistency(
            first, second, reference.get_root(first), reference.get_root(second), proof
        )
        # the independent implementation agrees that these two states are consistent
        pm_verify_consistency(
            reference.get_root(first),
            reference.get_root(second),
            reference.prove_consistency(first, second),
        )


def test_empty_tree_root_is_the_hash_of_nothing() -> None:
    assert MerkleTree().root() == EMPTY_ROOT


def test_tampered_leaf_or_path_fails(ours: MerkleTree) -> None:
    root, path = ours.root(), ours.inclusion_proof(17)
    with pytest.raises(ClaimFailed, match="does not lead to the root"):
        verify_inclusion(leaf_hash(b"record 17 (edited)"), 17, len(ours), path, root)
    with pytest.raises(ClaimFailed):
        verify_inclusion(leaf_hash(DATA[17]), 17, len(ours), [path[0][::-1], *path[1:]], root)
    with pytest.raises(ClaimFailed):
        verify_inclusion(leaf_hash(DATA[17]), 16, len(ours), path, root)  # wrong index


@pytest.mark.parametrize("proved_size", [40, 64, 69])
def test_proof_for_another_tree_size_fails_against_the_signed_head(
    ours: MerkleTree, proved_size: int
) -> None:
    """A proof made for a tree of `proved_size` does not verify against the
    head (size 70 and its root), whichever of the two sizes it claims."""
    index = proved_size - 1  # the right edge, where the size shapes the path
    proof = ours.inclusion_proof(index, proved_size)
    for claimed_size in (proved_size, len(ours)):
        with pytest.raises(ClaimFailed):
            verify_inclusion(leaf_hash(DATA[index]), index, claimed_size, proof, ours.root())


def test_rewritten_history_fails_consistency(ours: MerkleTree) -> None:
    rewritten = MerkleTree.from_data([b"forged", *DATA[1:]])
    proof = rewritten.consistency_proof(10, MAX)
    with pytest.raises(ClaimFailed, match="does not link"):
        verify_consistency(10, MAX, ours.root(10), rewritten.root(), proof)
    with pytest.raises(ClaimFailed):
        verify_consistency(10, MAX, ours.root(10), ours.root(), proof[:-1])  # truncated proof


@pytest.mark.parametrize("first", [1, 10, 32, 39, 40])
def test_a_proof_to_another_new_root_fails_consistency(ours: MerkleTree, first: int) -> None:
    """History kept up to `first` but rewritten after it: a true proof from
    the old root, with a new root it does not lead to. Only the new root's
    comparison can refuse it (the old root's matches)."""
    other = MerkleTree.from_data([*DATA[:40], b"forged", *DATA[41:]])
    assert other.root(first) == ours.root(first) and other.root() != ours.root()
    proof = ours.consistency_proof(first, MAX)
    verify_consistency(first, MAX, ours.root(first), ours.root(), proof)
    with pytest.raises(ClaimFailed, match="does not link"):
        verify_consistency(first, MAX, ours.root(first), other.root(), proof)
    with pytest.raises(ClaimFailed, match="equal sizes must have equal roots"):
        verify_consistency(MAX, MAX, ours.root(), other.root(), [])


def test_out_of_range_requests_are_errors(ours: MerkleTree) -> None:
    with pytest.raises(ValueError):
        ours.inclusion_proof(MAX)
    with pytest.raises(ValueError):
        ours.consistency_proof(0, 5)
    with pytest.raises(ClaimFailed):
        verify_inclusion(leaf_hash(DATA[0]), 3, 3, [], ours.root())


def test_appending_keeps_earlier_roots(ours: MerkleTree) -> None:
    tree = MerkleTree()
    for item in DATA[:33]:
        tree.append(item)
    assert tree.root() == ours.root(33)
    tree.append(DATA[33])
    assert tree.root() == ours.root(34)

"""Merkle trees exactly as RFC 6962 / RFC 9162 section 2.1 define them.

SHA-256; leaf hash = H(0x00 || data), node hash = H(0x01 || left || right);
a tree of n > 1 leaves splits at k, the largest power of two below n. The
level-by-level construction used here (a lone last node is carried up
unchanged) yields exactly the RFC's tree, and lets a tree of 10^6 leaves be
built, and proved against, without recursion.

Written here rather than taken from a library: the libraries at hand either
use another proof layout (pymerkle, used in the tests as the independent
cross-check) or are not maintained. Verification follows RFC 9162 2.1.3.2
and 2.1.4.2 step by step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from evidence.errors import ClaimFailed

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()
Node = TypeVar("Node")


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _largest_power_of_two_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """An append-only tree over leaf hashes; levels are rebuilt on demand."""

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._leaves: list[bytes] = list(leaf_hashes)
        self._levels: list[list[bytes]] | None = None

    @classmethod
    def from_data(cls, items: Iterable[bytes]) -> MerkleTree:
        sha256 = hashlib.sha256  # inlined leaf_hash: this loop runs once per record
        return cls([sha256(LEAF_PREFIX + item).digest() for item in items])

    def __len__(self) -> int:
        return len(self._leaves)

    def append(self, data: bytes) -> int:
        """Add a leaf; return its index."""
        self._leaves.append(leaf_hash(data))
        self._levels = None
        return len(self._leaves) - 1

    def leaf(self, index: int) -> bytes:
        return self._leaves[index]

    def _build(self) -> list[list[bytes]]:
        if self._levels is None:
            sha256 = hashlib.sha256
            levels = [self._leaves]
            while len(levels[-1]) > 1:
                below = levels[-1]
                above = [
                    sha256(NODE_PREFIX + below[i] + below[i + 1]).digest()
                    for i in range(0, len(below) - 1, 2)
                ]
                if len(below) % 2:
                    above.append(below[-1])
                levels.append(above)
            self._levels = levels
        return self._levels

    def _subtree(self, start: int, end: int) -> bytes:
        """MTH(D[start:end]) for the ranges RFC 6962's recursion produces:
        start is a multiple of 2^L with end = min(start + 2^L, size)."""
        width = end - start
        level = (width - 1).bit_length()
        if start % (1 << level) == 0 and end == min(start + (1 << level), len(self)):
            return self._build()[level][start >> level]
        k = _largest_power_of_two_below(width)  # any other range: the RFC's recursion
        return node_hash(self._subtree(start, start + k), self._subtree(start + k, end))

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first `size` leaves (default: all)."""
        size = len(self) if size is None else size
        self._check_size(size)
        if size == 0:
            return EMPTY_ROOT
        if size == len(self):
            return self._build()[-1][0]
        return self._prefix_root(size)

    def _prefix_root(self, size: int) -> bytes:
        # Fold the complete subtrees that make up the first `size` leaves.
        nodes, start = [], 0
        for level in reversed(range(size.bit_length())):
            if size & (1 << level):
                nodes.append(self._build()[level][start >> level])
                start += 1 << level
        root = nodes[-1]
        for node in reversed(nodes[:-1]):
            root = node_hash(node, root)
        return root

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[size]): the audit path, bottom up."""
        size = len(self) if size is None else size
        self._check_size(size)
        if not 0 <= index < size:
            raise ValueError(f"leaf {index} is not in a tree of {size}")
        return self._path(index, 0, size)

    def _path(self, index: int, start: int, end: int) -> list[bytes]:
        if end - start == 1:
            return []
        k = _largest_power_of_two_below(end - start)
        if index < start + k:
            return [*self._path(index, start, start + k), self._subtree(start + k, end)]
        return [*self._path(index, start + k, end), self._subtree(start, start + k)]

    def consistency_proof(self, first: int, second: int | None = None) -> list[bytes]:
        """PROOF(first, D[second]): shows the first `first` leaves are a prefix."""
        second = len(self) if second is None else second
        self._check_size(second)
        if not 0 < first <= second:
            raise ValueError(f"no consistency proof from size {first} to {second}")
        return self._subproof(first, 0, second, True)

    def _subproof(self, m: int, start: int, end: int, whole: bool) -> list[bytes]:
        n = end - start
        if m == n:
            return [] if whole else [self._subtree(start, end)]
        k = _largest_power_of_two_below(n)
        if m <= k:
            return [*self._subproof(m, start, start + k, whole), self._subtree(start + k, end)]
        return [*self._subproof(m - k, start + k, end, False), self._subtree(start, start + k)]

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= len(self):
            raise ValueError(f"tree has {len(self)} leaves, not {size}")


def fold_path(
    leaf: Node,
    index: int,
    size: int,
    proof: Sequence[Node],
    combine: Callable[[Node, Node], Node],
    claim: str,
) -> Node:
    """RFC 9162 2.1.3.2's walk from leaf `index` of a tree of `size` up its
    audit path; `combine(left, right)` makes a parent. Returns the root the
    path leads to (the caller compares it). Shared by this module's trees and
    the key-ordered tree of `ordered`, whose nodes carry key ranges."""
    if not 0 <= index < size:
        raise ClaimFailed(claim, f"leaf index {index} is outside a tree of {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ClaimFailed(claim, "inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = combine(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = combine(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ClaimFailed(claim, "inclusion proof does not lead to the root (too short)")
    return r


def verify_inclusion(
    leaf: bytes,
    index: int,
    size: int,
    proof: Sequence[bytes],
    root: bytes,
    claim: str = "inclusion",
) -> None:
    """RFC 9162 2.1.3.2. `leaf` is the leaf hash. Raises ClaimFailed."""
    if fold_path(leaf, index, size, proof, node_hash, claim) != root:
        raise ClaimFailed(claim, "inclusion proof does not lead to the root")


def verify_consistency(
    first: int,
    second: int,
    first_root: bytes,
    second_root: bytes,
    proof: Sequence[bytes],
    claim: str = "consistency",
) -> None:
    """RFC 9162 2.1.4.2. Raises ClaimFailed."""
    if not 0 < first <= second:
        raise ClaimFailed(claim, f"no consistency between sizes {first} and {second}")
    if first == second:
        if proof or first_root != second_root:
            raise ClaimFailed(claim, "equal sizes must have equal roots and an empty proof")
        return
    path = list(proof)
    if first & (first - 1) == 0:  # an exact power of two
        path.insert(0, first_root)
    if not path:
        raise ClaimFailed(claim, "empty consistency proof")
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ClaimFailed(claim, "consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr != first_root or sr != second_root:
        raise ClaimFailed(claim, "consistency proof does not link the two roots")

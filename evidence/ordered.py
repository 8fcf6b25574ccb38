"""A key-ordered Merkle tree with range commitments: the tree of a
contributor's dataset, in which the absence of a whole range of keys (every
key starting with "nytimes.com") is provable, and sound against the
contributor who built the tree.

Every node carries the lowest and highest key below it. A leaf's hash is
`H(0x00 || leaf bytes)` (the leaf bytes hold the key) and its range is its key.
The parent of L and R has range (L.low, R.high) and hash
`H(0x01 || enc(L) || enc(R))`, enc(N) = `N.hash || u16be(len) || N.low ||
u16be(len) || N.high`: a parent commits to both children's ranges. The tree
has RFC 6962's shape, so a path is walked as RFC 9162 2.1.3.2 walks it
(`merkle.fold_path`); at every node on the way up the verifier checks that
each range is well formed (low <= high) and that L.high < R.low. Ordering is
thus checked by every proof, not taken on the prover's word.

Soundness. Take one root and size, an exclusion proof for prefix P (leaves i
and i+1 are adjacent, key_i < P, and key_i+1 sorts after every key starting
with P; or leaf 0 alone, or the last leaf alone), and a membership proof of
some key k at index j; both verify. SHA-256 being collision resistant, two
paths that lead to one root open the same node, with the same ranges, at
every position they share. If j < i, let N be the lowest common ancestor of
leaves j and i: leaf j lies under its left child L, leaf i under its right
child R. The walk keeps a leaf's key inside the range of each node it
computes, so k <= L.high < R.low <= key_i < P. If j > i + 1, symmetrically
k > key_i+1. If j is i or i + 1, k is a neighbour's key. So k never starts
with P: no key in the excluded range can be proved a member.

What the contributor can still do is put a record under a node whose range
lies about it (then no membership proof of that record verifies: it is not
in the committed set, as if left out of the commitment, which no commitment
can prevent), or build a tree out of key order, which fails at the node where
the order breaks, on every path through it. Keys compare as UTF-8 bytes
(the same order as code points).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from evidence.errors import ClaimFailed
from evidence.merkle import EMPTY_ROOT, LEAF_PREFIX, NODE_PREFIX, fold_path

TREE_FORMAT = "airlock-key-ordered-merkle-sha256-v1"


def _field(key: bytes) -> bytes:
    return len(key).to_bytes(2, "big") + key


@dataclass(frozen=True)
class Node:
    """A node as a parent (and a proof) sees it: its hash and its key range."""

    hash: bytes
    low: bytes
    high: bytes

    def encode(self) -> bytes:
        return self.hash + _field(self.low) + _field(self.high)

    def to_json(self) -> dict[str, str]:
        return {"hash": self.hash.hex(), "low": self.low.decode(), "high": self.high.decode()}

    @classmethod
    def from_json(cls, data: Any) -> Node:
        """Raises KeyError, TypeError, ValueError or AttributeError on bad input."""
        node = cls(bytes.fromhex(data["hash"]), data["low"].encode(), data["high"].encode())
        if len(node.hash) != 32 or max(len(node.low), len(node.high)) > 0xFFFF:
            raise ValueError("not a tree node")
        return node


def leaf_node(key: bytes, leaf: bytes) -> Node:
    return Node(hashlib.sha256(LEAF_PREFIX + leaf).digest(), key, key)


def parent(left: Node, right: Node) -> Node:
    """The parent as built, without checks (a builder may be dishonest)."""
    digest = hashlib.sha256(NODE_PREFIX + left.encode() + right.encode()).digest()
    return Node(digest, left.low, right.high)


def checked_parent(claim: str) -> Callable[[Node, Node], Node]:
    """`parent` for a verifier: refuses malformed ranges and keys out of order."""

    def combine(left: Node, right: Node) -> Node:
        if left.low > left.high or right.low > right.high:
            raise ClaimFailed(claim, "a node's key range is malformed (low above high)")
        if not left.high < right.low:
            raise ClaimFailed(
                claim,
                f"keys out of order: {left.high.decode(errors='replace')!r} "
                f"does not sort before {right.low.decode(errors='replace')!r}",
            )
        return parent(left, right)

    return combine


class OrderedTree:
    """Built level by level from (key, leaf bytes) pairs in the given order,
    RFC 6962's shape (a lone last node is carried up unchanged).

    Only the hashes are kept: in that shape node j of level k spans leaves
    j * 2^k to min((j + 1) * 2^k, n) - 1, so its range is two keys looked up
    by index, and a Node is made only for the paths asked for. (Building a
    Node per tree node was most of the commit's time.)"""

    def __init__(self, leaves: Sequence[tuple[bytes, bytes]]) -> None:
        sha256 = hashlib.sha256
        self._keys = [key for key, _ in leaves]
        fields = [_field(key) for key in self._keys]
        level = [sha256(LEAF_PREFIX + leaf).digest() for _, leaf in leaves]
        self.levels = [level]
        count, span = len(level), 1
        while len(level) > 1:
            above = []
            for j in range(0, len(level) - 1, 2):
                low = j * span  # the left child is whole: span leaves
                middle = low + span
                encoded = (
                    NODE_PREFIX,
                    level[j],
                    fields[low],
                    fields[middle - 1],
                    level[j + 1],
                    fields[middle],
                    fields[min(middle + span, count) - 1],
                )
                # parent()'s bytes, without a Node per child (every path
                # test verifies through parent(), so the two cannot drift)
                above.append(sha256(b"".join(encoded)).digest())
            if len(level) % 2:
                above.append(level[-1])
            self.levels.append(above)
            level, span = above, span * 2

    def __len__(self) -> int:
        return len(self.levels[0])

    def root(self) -> bytes:
        return self.levels[-1][0] if len(self) else EMPTY_ROOT

    def node(self, height: int, index: int) -> Node:
        low = index << height
        high = min((index + 1) << height, len(self)) - 1
        return Node(self.levels[height][index], self._keys[low], self._keys[high])

    def path(self, index: int) -> tuple[Node, ...]:
        """The audit path of leaf `index`, bottom up."""
        siblings = []
        for height, level in enumerate(self.levels[:-1]):
            if index ^ 1 < len(level):
                siblings.append(self.node(height, index ^ 1))
            index >>= 1
        return tuple(siblings)


def verify_path(
    key: bytes, leaf: bytes, index: int, size: int, path: Sequence[Node], root: bytes, claim: str
) -> None:
    """Leaf `index` of a tree of `size` with this root, ordered all the way up."""
    top = fold_path(leaf_node(key, leaf), index, size, path, checked_parent(claim), claim)
    if top.hash != root:
        raise ClaimFailed(claim, "inclusion proof does not lead to the root")

"""A data contributor's commitment to its dataset, and what it can prove
from it to a verifier who sees nothing else.

Each record is a JSON object with exactly the declared schema's fields. Its
leaf is `u16 big-endian length of key || key (UTF-8) || SHA-256 of the
record's canonical JSON` (binary, as the per-record cost dominates commit
time). Leaves are sorted by key into a key-ordered Merkle tree with range
commitments (`ordered`): every node commits to the lowest and highest key
below it, and every proof checks the order along its path. So:

- membership: a record, its index and a path show that this exact record is
  in the committed set;
- exclusion: two adjacent leaves whose keys bracket a prefix X (or the first
  or last leaf alone, at the ends) show that no key starts with X, e.g. no
  record from source domain "nytimes.com". This is sound against the
  contributor: no tree it can build has both a valid exclusion proof for X
  and a member whose key starts with X (the argument is in `ordered`).

A proof reveals the neighbours' keys and, for each sibling on their paths,
the lowest and highest key below it; never a record's contents.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from evidence.canonical import canonical_json
from evidence.ordered import TREE_FORMAT, Node, OrderedTree, verify_path
from evidence.statements import OpenedStatement, integer
from parties.errors import ClaimFailed, ConfigError
from protocols.attestation.rules import DATASET_PREDICATE

# records hold strings only, so RFC 8785 (`canonical_json`) is exactly this
CANONICALIZATION = "json:sorted-keys,no-whitespace,utf-8"
LEAF_FORMAT = "u16be(len(key)) || key || sha256(record)"


def record_leaf(key: str, record: Mapping[str, Any]) -> bytes:
    return leaf_for(key, canonical_json(dict(record)))


def leaf_for(key: str, encoded_record: bytes) -> bytes:
    """The leaf of a record already in canonical encoding."""
    key_bytes = key.encode()
    if len(key_bytes) > 0xFFFF:
        raise ConfigError(f"sort key value longer than 65535 bytes: {key[:40]!r}...")
    return len(key_bytes).to_bytes(2, "big") + key_bytes + hashlib.sha256(encoded_record).digest()


@dataclass(frozen=True)
class MembershipProof:
    index: int
    size: int
    leaf: bytes  # the leaf's encoded bytes
    path: tuple[Node, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "size": self.size,
            "leaf": self.leaf.hex(),
            "path": [node.to_json() for node in self.path],
        }

    @classmethod
    def from_json(cls, data: Any, claim: str) -> MembershipProof:
        try:
            return cls(
                int(data["index"]),
                int(data["size"]),
                bytes.fromhex(data["leaf"]),
                tuple(Node.from_json(node) for node in data["path"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ClaimFailed(claim, "malformed membership proof") from None

    def key(self, claim: str) -> bytes:
        """The leaf's key, UTF-8 encoded."""
        length = int.from_bytes(self.leaf[:2], "big")
        if len(self.leaf) != 2 + length + 32:
            raise ClaimFailed(claim, "leaf is not a dataset leaf")
        key = self.leaf[2 : 2 + length]
        try:
            key.decode()
        except UnicodeDecodeError:
            raise ClaimFailed(claim, "leaf key is not UTF-8") from None
        return key

    def verify(self, commitment: Commitment, claim: str) -> None:
        """The leaf is at `index` under the committed root, in key order."""
        if self.size != commitment.size:
            raise ClaimFailed(
                claim, f"proof is for {self.size} records, commitment has {commitment.size}"
            )
        verify_path(
            self.key(claim), self.leaf, self.index, self.size, self.path, commitment.root, claim
        )


@dataclass(frozen=True)
class ExclusionProof:
    prefix: str
    before: MembershipProof | None  # the last leaf whose key sorts before the prefix
    after: MembershipProof | None  # the first leaf whose key sorts after every key with it

    def to_json(self) -> dict[str, Any]:
        return {
            "prefix": self.prefix,
            "before": self.before.to_json() if self.before else None,
            "after": self.after.to_json() if self.after else None,
        }

    @classmethod
    def from_json(cls, data: Any, claim: str) -> ExclusionProof:
        try:
            before, after = data["before"], data["after"]
            return cls(
                str(data["prefix"]),
                MembershipProof.from_json(before, claim) if before is not None else None,
                MembershipProof.from_json(after, claim) if after is not None else None,
            )
        except (KeyError, TypeError):
            raise ClaimFailed(claim, "malformed exclusion proof") from None


@dataclass(frozen=True)
class Commitment:
    """What a verifier takes from a verified dataset statement."""

    dataset: str
    root: bytes
    size: int
    sort_key: str
    schema: tuple[str, ...]

    @classmethod
    def from_statement(cls, statement: OpenedStatement, claim: str) -> Commitment:
        predicate = statement.predicate
        if statement.predicate_type != DATASET_PREDICATE:
            raise ClaimFailed(claim, "not a dataset commitment")
        formats = (predicate.get("canonicalization"), predicate.get("leaf"), predicate.get("tree"))
        if formats != (CANONICALIZATION, LEAF_FORMAT, TREE_FORMAT):
            raise ClaimFailed(claim, "unknown record canonicalization, leaf or tree format")
        try:
            root = bytes.fromhex(statement.sha256)
            schema = tuple(str(field) for field in predicate["schema"])
            sort_key = str(predicate["sort_key"])
        except (ValueError, KeyError, TypeError):
            raise ClaimFailed(claim, "malformed dataset commitment") from None
        return cls(
            statement.subject, root, integer(predicate, "record_count", claim), sort_key, schema
        )


class Dataset:
    """A contributor's records, sorted and committed. Held only by the contributor."""

    def __init__(
        self, name: str, records: Iterable[Mapping[str, Any]], schema: Iterable[str], sort_key: str
    ) -> None:
        self.name = name
        self.schema = tuple(schema)
        self.sort_key = sort_key
        if sort_key not in self.schema:
            raise ConfigError(f"{name}: sort key {sort_key!r} is not in the schema")
        keyed = []
        for number, record in enumerate(records):
            if set(record) != set(self.schema):
                raise ConfigError(
                    f"{name}: record {number} has fields {sorted(record)}, "
                    f"schema is {list(self.schema)}"
                )
            key = record[sort_key]
            if not isinstance(key, str):
                raise ConfigError(f"{name}: record {number}: the sort key must be a string")
            keyed.append((key, dict(record)))
        keyed.sort(key=lambda pair: pair[0])
        for (a, _), (b, _) in zip(keyed, keyed[1:], strict=False):
            if a == b:
                raise ConfigError(f"{name}: two records share the key {a!r}")
        keyed = self._arrange(keyed)
        self.keys = [key for key, _ in keyed]
        self.records = [record for _, record in keyed]
        self.leaves = [record_leaf(key, record) for key, record in keyed]
        self.tree = OrderedTree(
            [(k.encode(), leaf) for k, leaf in zip(self.keys, self.leaves, strict=True)]
        )

    def _arrange(self, keyed: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
        """The order of the leaves: sorted by key (a dishonest contributor's may differ)."""
        return keyed

    @property
    def root(self) -> bytes:
        return self.tree.root()

    def predicate(self) -> dict[str, Any]:
        return {
            "record_count": len(self.records),
            "schema": list(self.schema),
            "sort_key": self.sort_key,
            "canonicalization": CANONICALIZATION,
            "leaf": LEAF_FORMAT,
            "tree": TREE_FORMAT,
        }

    def prove_membership(self, record: Mapping[str, Any]) -> MembershipProof:
        key = record.get(self.sort_key)
        if key not in self.keys:
            raise ClaimFailed(f"membership in {self.name}", "no record with that key")
        index = self.keys.index(key)
        return self._proof(index)

    def _proof(self, index: int) -> MembershipProof:
        return MembershipProof(index, len(self.leaves), self.leaves[index], self.tree.path(index))

    def prove_exclusion(self, prefix: str) -> ExclusionProof:
        """Prove that no key starts with `prefix`; fails if one does."""
        claim = f"exclusion of {prefix!r} from {self.name}"
        first = next((i for i, key in enumerate(self.keys) if key >= prefix), len(self.keys))
        if first < len(self.keys) and self.keys[first].startswith(prefix):
            raise ClaimFailed(claim, f"record {first} has key {self.keys[first]!r}")
        before = self._proof(first - 1) if first > 0 else None
        after = self._proof(first) if first < len(self.keys) else None
        return ExclusionProof(prefix, before, after)


def verify_membership(
    commitment: Commitment, record: Mapping[str, Any], proof: MembershipProof
) -> None:
    claim = f"membership of {record.get(commitment.sort_key)!r} in {commitment.dataset}"
    if set(record) != set(commitment.schema):
        raise ClaimFailed(claim, "record does not match the committed schema")
    if proof.leaf != record_leaf(record[commitment.sort_key], record):
        raise ClaimFailed(claim, "record does not match the proved leaf")
    proof.verify(commitment, claim)


def verify_exclusion(commitment: Commitment, proof: ExclusionProof) -> None:
    """Sound against the prover: see `ordered` for the argument."""
    claim = f"exclusion of {proof.prefix!r} from {commitment.dataset}"
    prefix = proof.prefix.encode()
    if not prefix:
        raise ClaimFailed(claim, "an empty prefix matches every record")
    for side in (proof.before, proof.after):
        if side is not None:
            side.verify(commitment, claim)
    if proof.before is None and proof.after is None:
        if commitment.size != 0:
            raise ClaimFailed(claim, "no neighbours given for a non-empty dataset")
        return
    if proof.before is not None:
        if proof.before.key(claim) >= prefix:
            raise ClaimFailed(claim, "the left neighbour does not sort before the prefix")
        if proof.after is None and proof.before.index != commitment.size - 1:
            raise ClaimFailed(claim, "the left neighbour is not the last record")
    if proof.after is not None:
        key = proof.after.key(claim)
        if key < prefix or key.startswith(prefix):
            raise ClaimFailed(claim, "the right neighbour does not sort after the prefix")
        if proof.before is None and proof.after.index != 0:
            raise ClaimFailed(claim, "the right neighbour is not the first record")
    if (
        proof.before is not None
        and proof.after is not None
        and proof.after.index != proof.before.index + 1
    ):
        raise ClaimFailed(claim, "the neighbours are not adjacent")

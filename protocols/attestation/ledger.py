"""The transparency log a `ledger` party keeps: every statement and receipt
appended as a leaf of an RFC 6962 tree, signed tree heads, inclusion and
consistency proofs. Parties check inclusion before they accept a statement,
and consistency between the heads they have seen, so a ledger that rewrites
history is caught."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from evidence.canonical import canonical_json
from evidence.merkle import MerkleTree, leaf_hash, verify_consistency, verify_inclusion
from evidence.signed_note import BadNote, open_note, sign_note
from evidence.statements import OpenedStatement, SigningParty, open_statement
from parties.errors import ClaimFailed

# the checkpoint's origin line and the ledger's key name (c2sp.org/tlog-checkpoint)
ORIGIN = "airlock/ledger/"
MAX_CHECKPOINT = 1024


def entry_bytes(envelope: dict[str, Any]) -> bytes:
    """A logged statement's leaf: its DSSE envelope as canonical JSON."""
    return canonical_json(envelope)


@dataclass(frozen=True)
class TreeHead:
    """A signed tree head: a C2SP tlog-checkpoint (origin `airlock/ledger/`
    and the ledger's name; tree size; base64 root) in a signed note whose key
    name is the origin (evidence/signed_note.py)."""

    ledger: str
    size: int
    root: bytes
    checkpoint: str  # the signed note

    @classmethod
    def signed(
        cls,
        ledger: str,
        size: int,
        root: bytes,
        key: ed25519.Ed25519PublicKey,
        sign: Callable[[bytes], bytes],
    ) -> TreeHead:
        origin = ORIGIN + ledger
        text = f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"
        return cls(ledger, size, root, sign_note(text, origin, key, sign))

    def to_json(self) -> dict[str, Any]:
        return {"checkpoint": self.checkpoint}

    @classmethod
    def from_json(cls, data: Any, claim: str) -> TreeHead:
        """The head a checkpoint states (its signature is checked by `verify`)."""
        try:
            checkpoint = data["checkpoint"]
            text = checkpoint.rpartition("\n\n")[0]
            origin, size, root = text.split("\n")
            if not origin.startswith(ORIGIN) or not size.isdigit() or size != str(int(size)):
                raise ValueError(text)
            head = cls(
                origin.removeprefix(ORIGIN),
                int(size),
                base64.b64decode(root, validate=True),
                checkpoint,
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ClaimFailed(claim, "malformed tree head") from None
        if len(head.root) != 32 or len(checkpoint) > MAX_CHECKPOINT:
            raise ClaimFailed(claim, "malformed tree head")
        return head

    def verify(self, key: ed25519.Ed25519PublicKey, claim: str) -> None:
        try:
            open_note(self.checkpoint, ORIGIN + self.ledger, key)
        except BadNote as bad:
            raise ClaimFailed(
                claim, f"tree head of size {self.size} is not signed by {self.ledger} ({bad})"
            ) from None


class TransparencyLog:
    """Thread-safe: a party serves concurrent submissions, and an answer's
    head and proofs must describe one and the same tree."""

    def __init__(
        self, name: str, key: ed25519.Ed25519PublicKey, sign: Callable[[bytes], bytes]
    ) -> None:
        self.name = name
        self._key = key
        self._sign = sign
        self._lock = threading.RLock()
        self.entries: list[bytes] = []
        self.tree = MerkleTree()

    @classmethod
    def of(cls, party: SigningParty) -> TransparencyLog:
        """The log of a ledger party, signed with its party key."""
        return cls(party.name, party.public_key(party.name), party.sign)

    def submit(self, entry: bytes, since: int) -> dict[str, Any]:
        """Append `entry` and answer for it, atomically; nothing is appended
        for an asker claiming to have seen a head this log never signed."""
        with self._lock:
            if not 0 <= since <= len(self.tree):
                raise ClaimFailed("ledger answer", f"no head of size {since} to be consistent with")
            self.entries.append(entry)
            return self.answer(self.tree.append(entry), since)

    def head(self) -> TreeHead:
        return TreeHead.signed(self.name, len(self.tree), self.tree.root(), self._key, self._sign)

    def answer(self, index: int | None, since: int) -> dict[str, Any]:
        """A signed head, the inclusion proof of `index` and the consistency
        proof from the asker's last seen size `since` (0: none)."""
        with self._lock:
            return self._answer(index, since)

    def _answer(self, index: int | None, since: int) -> dict[str, Any]:
        head = self.head()
        if not 0 <= since <= head.size:
            raise ClaimFailed("ledger answer", f"no head of size {since} to be consistent with")
        return {
            "index": index,
            "since": since,
            "head": head.to_json(),
            "inclusion": [p.hex() for p in self.tree.inclusion_proof(index)]
            if index is not None
            else [],
            "consistency": [p.hex() for p in self.tree.consistency_proof(since)]
            if 0 < since
            else [],
        }

    def rewrite(self, index: int, entry: bytes) -> None:
        """What a dishonest ledger does: replace a logged entry."""
        with self._lock:
            self.entries[index] = entry
            self.tree = MerkleTree.from_data(self.entries)


def check_answer(
    answer: Any,
    ledger_key: ed25519.Ed25519PublicKey,
    entry: bytes | None,
    last_head: TreeHead | None,
    claim: str,
) -> TreeHead:
    """A party's check of a ledger answer: the head is the ledger's, `entry`
    (if given) is included under it, and it extends `last_head`. Returns the head."""
    if not isinstance(answer, dict):
        raise ClaimFailed(claim, "malformed ledger answer")
    head = TreeHead.from_json(answer.get("head"), claim)
    head.verify(ledger_key, claim)
    try:
        inclusion = [bytes.fromhex(p) for p in answer.get("inclusion", [])]
        consistency = [bytes.fromhex(p) for p in answer.get("consistency", [])]
    except (TypeError, ValueError):
        raise ClaimFailed(claim, "malformed ledger proof") from None
    if entry is not None:
        index = answer.get("index")
        if not isinstance(index, int):
            raise ClaimFailed(claim, "ledger answer lacks the entry's index")
        verify_inclusion(leaf_hash(entry), index, head.size, inclusion, head.root, claim)
    if last_head is not None:
        verify_consistency(
            last_head.size,
            head.size,
            last_head.root,
            head.root,
            consistency,
            f"{claim}: ledger history from size {last_head.size} to {head.size}",
        )
    return head


def open_logged(
    shown: Any,
    signer_key: ed25519.Ed25519PublicKey,
    ledger_key: ed25519.Ed25519PublicKey,
    predicate_type: str,
    claim: str,
) -> OpenedStatement:
    """Check a statement shown with its ledger answer: signed by the signer,
    included in the ledger under a head the ledger signed."""
    if not isinstance(shown, dict) or "statement" not in shown or "logged" not in shown:
        raise ClaimFailed(claim, "malformed attestation")
    statement = open_statement(shown["statement"], signer_key, predicate_type, claim)
    check_answer(shown["logged"], ledger_key, entry_bytes(shown["statement"]), None, claim)
    return statement

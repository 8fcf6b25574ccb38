"""A data contributor's countersignature of the model it helped train.

After the last round the trainer (the model creator as aggregator) sends
each contributor the final model. The contributor computes the model's
weights root itself (`evidence.weights`, from the bytes it received) and
signs, with its party key, an in-toto statement about it:

- subject: `weights:<trainer>`, by that root (what a model statement and
  every receipt name);
- predicate: the contributor, the trainer, the run id, and each round it
  joined: its number, its context (which binds the trainer, the number and
  fresh randomness) and the SHA-256 of the model it was sent to train from
  (round 1's is the base model); and how many updates it sent.

The contributor logs it in the ledger and gives it to the trainer, whose
model statement and training provenance carry it. So a creator cannot
commit another model than the one its contributors were sent: `airlock
verify` checks that the committed root is the one at least the threshold
of the surviving contributors countersigned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from securesystemslib.signer import Signer

from evidence.errors import ClaimFailed
from evidence.statements import integer, open_statement, sign_statement

COUNTERSIGNATURE_PREDICATE = "urn:airlock:predicate:model-countersignature:v1"
CLAIM = "model countersignature"


@dataclass(frozen=True)
class JoinedRound:
    """A training round a contributor joined, as it saw it."""

    number: int
    context: str
    model_sha256: str  # of the model bytes it was sent to train from

    def to_json(self) -> dict[str, Any]:
        return {"round": self.number, "context": self.context, "model_sha256": self.model_sha256}


@dataclass(frozen=True)
class Countersignature:
    """What a contributor says of the final model it was sent."""

    contributor: str
    trainer: str
    run_id: str
    root: str  # hex Merkle root of the final model's weights, computed by the contributor
    rounds: tuple[JoinedRound, ...]
    updates_sent: int

    @property
    def subject(self) -> str:
        return f"weights:{self.trainer}"

    @property
    def last_round(self) -> int:
        return max((r.number for r in self.rounds), default=0)

    def predicate(self) -> dict[str, Any]:
        return {
            "contributor": self.contributor,
            "trainer": self.trainer,
            "run_id": self.run_id,
            "rounds": [r.to_json() for r in self.rounds],
            "updates_sent": self.updates_sent,
        }

    def sign(self, signer: Signer) -> dict[str, Any]:
        """The DSSE envelope, signed with the contributor's key."""
        return sign_statement(
            self.subject, self.root, COUNTERSIGNATURE_PREDICATE, self.predicate(), signer
        )


def open_countersignature(
    envelope: Any, contributor: str, key: ed25519.Ed25519PublicKey
) -> Countersignature:
    """A countersignature `contributor` signed with `key`, its fields read.
    Raises ClaimFailed naming what is wrong."""
    claim = f"{CLAIM} of {contributor}"
    statement = open_statement(envelope, key, COUNTERSIGNATURE_PREDICATE, claim)
    predicate = statement.predicate
    try:
        rounds = tuple(
            JoinedRound(integer(r, "round", claim), str(r["context"]), str(r["model_sha256"]))
            for r in predicate["rounds"]
        )
        signed = Countersignature(
            contributor=str(predicate["contributor"]),
            trainer=str(predicate["trainer"]),
            run_id=str(predicate["run_id"]),
            root=statement.sha256,
            rounds=rounds,
            updates_sent=integer(predicate, "updates_sent", claim),
        )
    except (KeyError, TypeError, AttributeError):
        raise ClaimFailed(claim, "malformed countersignature") from None
    if signed.contributor != contributor:
        raise ClaimFailed(claim, f"it names {signed.contributor!r} as its contributor")
    if statement.subject != signed.subject:
        raise ClaimFailed(claim, f"its subject {statement.subject!r} is not {signed.subject!r}")
    return signed

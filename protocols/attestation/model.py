"""A model creator's commitment to its weights.

The weights' identity is their Merkle root (`evidence.weights`). The signed
statement binds the root to the dataset attestations that went into
training, to the training protocol and its parameters (e.g. DP epsilon and
delta), and to the servers the creator deployed the model to: each
deployer's name and receipt key. A receipt counts only if signed by a key
the commitment endorses and if it names the committed root. (Without a TEE
this binds receipts to the deployments the creator made, not to the code
they run: a deployer could still sign the committed root while serving
other weights. The TEE protocol binds the receipt key to attested code.)

A model trained in the run also carries the contributors' countersignatures
of the final model they were sent (`countersignatures`: their DSSE
envelopes, evidence/countersignatures.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from evidence.statements import OpenedStatement, integer
from evidence.weights import Tensor, weights_root
from parties.errors import ClaimFailed
from protocols.attestation.rules import MODEL_PREDICATE


@dataclass(frozen=True)
class DatasetReference:
    """A dataset attestation that went into training: its subject and root."""

    name: str
    sha256: str


@dataclass(frozen=True)
class Server:
    """A deployment the creator endorses: who serves, with which receipt key."""

    name: str
    receipt_key: bytes  # raw Ed25519 public key

    @classmethod
    def of(cls, name: str, key: ed25519.Ed25519PublicKey) -> Server:
        raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return cls(name, raw)


def model_predicate(
    model: str,
    tensors: Mapping[str, Tensor],
    datasets: Sequence[DatasetReference],
    training: Mapping[str, Any],
    servers: Sequence[Server],
    countersignatures: Mapping[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """`countersignatures` (by contributor): for a model trained in the run."""
    predicate = {
        "model": model,
        "tensor_count": len(tensors),
        "parameter_count": sum(t.parameters for t in tensors.values()),
        "datasets": [{"name": d.name, "sha256": d.sha256} for d in datasets],
        "training": dict(training),
        "servers": [{"name": s.name, "ed25519_receipt_key": s.receipt_key.hex()} for s in servers],
        "tree": "rfc6962-sha256",
    }
    if countersignatures is not None:
        predicate["countersignatures"] = [countersignatures[n] for n in sorted(countersignatures)]
    return predicate


@dataclass(frozen=True)
class ModelCommitment:
    subject: str
    root: bytes
    model: str
    parameter_count: int
    datasets: tuple[DatasetReference, ...]
    training: dict[str, Any]
    servers: tuple[Server, ...]

    @classmethod
    def from_statement(cls, statement: OpenedStatement, claim: str) -> ModelCommitment:
        if statement.predicate_type != MODEL_PREDICATE:
            raise ClaimFailed(claim, "not a model commitment")
        predicate = statement.predicate
        try:
            datasets = tuple(
                DatasetReference(str(d["name"]), str(d["sha256"])) for d in predicate["datasets"]
            )
            root = bytes.fromhex(statement.sha256)
            servers = tuple(
                Server(str(d["name"]), bytes.fromhex(d["ed25519_receipt_key"]))
                for d in predicate["servers"]
            )
            return cls(
                statement.subject,
                root,
                str(predicate["model"]),
                integer(predicate, "parameter_count", claim),
                datasets,
                dict(predicate["training"]),
                servers,
            )
        except (KeyError, TypeError, ValueError):
            raise ClaimFailed(claim, "malformed model commitment") from None

    def receipt_key(self, server: str, claim: str) -> ed25519.Ed25519PublicKey:
        """The key `server` signs receipts with, as this commitment endorses it."""
        keys = [s.receipt_key for s in self.servers if s.name == server]
        if not keys:
            raise ClaimFailed(
                claim, f"{server} is not a server the commitment to {self.model!r} endorses"
            )
        try:
            return ed25519.Ed25519PublicKey.from_public_bytes(keys[0])
        except ValueError:
            raise ClaimFailed(claim, f"malformed receipt key endorsed for {server}") from None

    def check_weights(self, tensors: Mapping[str, Tensor], claim: str) -> None:
        """Whoever holds the weights can check they are the committed ones."""
        if weights_root(tensors) != self.root:
            raise ClaimFailed(claim, f"weights are not the committed model {self.model!r}")

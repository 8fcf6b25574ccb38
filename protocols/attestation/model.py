"""A model creator's commitment to its weights.

Leaves are the tensors in name order, each encoded as a canonical JSON header
({"name", "dtype", "shape"}), a newline, then the tensor's raw bytes
(little-endian, C order), as safetensors stores them; dtype names are
safetensors' (F32, BF16, I64, ...), so a commitment can be computed from a
.safetensors file without any ML framework. The Merkle root of those leaves is the model's
identity: any other weights (a swapped, smaller, fine-tuned model) give
another root. The signed statement binds the root to the dataset
attestations that went into training, to the training protocol and its
parameters (e.g. DP epsilon and delta), and to the servers the creator
deployed the model to: each deployer's name and receipt key. A receipt
counts only if signed by a key the commitment endorses and if it names the
committed root. (Without a TEE this binds receipts to the deployments the
creator made, not to the code they run: a deployer could still sign the
committed root while serving other weights. The TEE protocol binds the
receipt key to attested code.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from parties.errors import ClaimFailed
from protocols.attestation.dataset import canonical_json
from protocols.attestation.merkle import MerkleTree
from protocols.attestation.statements import MODEL_PREDICATE, OpenedStatement, integer

DTYPE_SIZES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
}


@dataclass(frozen=True)
class Tensor:
    dtype: str
    shape: tuple[int, ...]
    data: bytes

    def __post_init__(self) -> None:
        if self.dtype not in DTYPE_SIZES:
            raise ValueError(f"unknown dtype {self.dtype!r}")
        count = math.prod(self.shape)
        if len(self.data) != count * DTYPE_SIZES[self.dtype]:
            raise ValueError(f"{len(self.data)} bytes do not hold {self.dtype}{list(self.shape)}")

    @property
    def parameters(self) -> int:
        return math.prod(self.shape)


def tensor_leaf(name: str, tensor: Tensor) -> bytes:
    header = canonical_json({"name": name, "dtype": tensor.dtype, "shape": list(tensor.shape)})
    return header + b"\n" + tensor.data


def weights_root(tensors: Mapping[str, Tensor]) -> bytes:
    return MerkleTree.from_data(tensor_leaf(name, tensors[name]) for name in sorted(tensors)).root()


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
) -> dict[str, Any]:
    return {
        "model": model,
        "tensor_count": len(tensors),
        "parameter_count": sum(t.parameters for t in tensors.values()),
        "datasets": [{"name": d.name, "sha256": d.sha256} for d in datasets],
        "training": dict(training),
        "servers": [{"name": s.name, "ed25519_receipt_key": s.receipt_key.hex()} for s in servers],
        "tree": "rfc6962-sha256",
    }


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

"""A model creator's commitment to its weights.

Leaves are the tensors in name order, each encoded as a canonical JSON header
({"name", "dtype", "shape"}), a newline, then the tensor's raw bytes
(little-endian, C order), as safetensors stores them; dtype names are
safetensors' (F32, BF16, I64, ...), so a commitment can be computed from a
.safetensors file without any ML framework. The Merkle root of those leaves is the model's
identity: any other weights (a swapped, smaller, fine-tuned model) give
another root. The signed statement binds the root to the dataset
attestations that went into training and to the training protocol and its
parameters (e.g. DP epsilon and delta).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

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


def model_predicate(
    model: str,
    tensors: Mapping[str, Tensor],
    datasets: Sequence[DatasetReference],
    training: Mapping[str, Any],
) -> dict[str, Any]:
    return {
        "model": model,
        "tensor_count": len(tensors),
        "parameter_count": sum(t.parameters for t in tensors.values()),
        "datasets": [{"name": d.name, "sha256": d.sha256} for d in datasets],
        "training": dict(training),
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
            return cls(
                statement.subject,
                root,
                str(predicate["model"]),
                integer(predicate, "parameter_count", claim),
                datasets,
                dict(predicate["training"]),
            )
        except (KeyError, TypeError, ValueError):
            raise ClaimFailed(claim, "malformed model commitment") from None

    def check_weights(self, tensors: Mapping[str, Tensor], claim: str) -> None:
        """Whoever holds the weights can check they are the committed ones."""
        if weights_root(tensors) != self.root:
            raise ClaimFailed(claim, f"weights are not the committed model {self.model!r}")

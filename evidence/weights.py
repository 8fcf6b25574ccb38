"""A commitment to a model's weights: the RFC 6962 Merkle root over its
tensors in name order. Each leaf is a canonical JSON header ({"name",
"dtype", "shape"}), a newline, then the tensor's raw bytes (little-endian,
C order), as safetensors stores them; dtype names are safetensors' (F32,
BF16, I64, ...), so a commitment can be computed from a .safetensors file
without any ML framework. Any other weights (a swapped, smaller, fine-tuned
model) give another root. The attestation protocol signs it; the TEE
protocol measures the enclave with it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from evidence.canonical import canonical_json
from evidence.merkle import MerkleTree

if TYPE_CHECKING:
    import torch

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


def float32_tensors(state: Mapping[str, torch.Tensor]) -> dict[str, Tensor]:
    """A torch model's float32 weights (its `state_dict()`) as tensors to commit to."""
    return {
        name: Tensor("F32", tuple(t.shape), t.detach().contiguous().numpy().tobytes())
        for name, t in state.items()
    }


def float32_weights_root(state: Mapping[str, torch.Tensor]) -> bytes:
    """The root of a torch model's float32 weights (its `state_dict()`)."""
    return weights_root(float32_tensors(state))

"""The shared model's forward pass under CrypTen, built directly from the
weights (`crypten.nn.from_pytorch` does not work on current torch).

It mirrors `models.transformer.Transformer` operation for operation:

- the one-hot prompt times the token embedding;
- plus the position embedding;
- per block, ReLU attention (scores times a public causal weighting), then
  a ReLU MLP, each added back;
- the head, for the last position only.

There is no softmax, exp or reciprocal of a secret value. The only
non-linearity is ReLU, which CrypTen computes exactly. Inputs and weights
are fixed point with 16 fractional bits, as CrypTen encodes them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import torch

from models.transformer import ModelConfig
from parties.errors import AirlockError
from protocols.mpc.compat import crypten
from protocols.mpc.randomness import random_ring_elements

SCALE = 1 << 16  # CrypTen's default fixed-point precision: 16 bits


def encode(values: torch.Tensor) -> torch.Tensor:
    """Fixed point as CrypTen encodes it: round(x * 2^16) as int64."""
    return torch.round(values.double() * SCALE).long()


def decode(encoded: torch.Tensor) -> torch.Tensor:
    return encoded.double() / SCALE


def split(encoded: torch.Tensor, parties: int = 2) -> list[torch.Tensor]:
    """Additive shares mod 2^64 (int64 arithmetic wraps); all but the last
    are uniform ring elements from a fresh AES-CTR keystream."""
    shares = [random_ring_elements(encoded.shape) for _ in range(parties - 1)]
    last = encoded.clone()
    for share in shares:
        last = last - share
    return [*shares, last]


def one_hot(tokens: list[int], vocab: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(tokens), vocab).double()


def secret(share: torch.Tensor) -> Any:
    return crypten().mpc.MPCTensor.from_shares(share, precision=16)


def weight_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The name and shape of every weight `forward` reads: the state dict of
    `models.transformer.Transformer(config)`."""
    c = config
    shapes = {
        "token_embedding.weight": (c.vocab, c.width),
        "position_embedding.weight": (c.context, c.width),
        "head.weight": (c.vocab, c.width),
        "head.bias": (c.vocab,),
    }
    for b in range(c.layers):
        w = f"blocks.{b}."
        shapes |= {
            w + "attention.qkv.weight": (3 * c.width, c.width),
            w + "attention.qkv.bias": (3 * c.width,),
            w + "attention.out.weight": (c.width, c.width),
            w + "attention.out.bias": (c.width,),
            w + "mlp.0.weight": (c.hidden, c.width),
            w + "mlp.0.bias": (c.hidden,),
            w + "mlp.2.weight": (c.width, c.hidden),
            w + "mlp.2.bias": (c.width,),
        }
    return shapes


def check_weight_shares(config: ModelConfig, shares: Mapping[str, torch.Tensor]) -> None:
    """AirlockError, naming the difference, unless `shares` are int64 shares
    of exactly the weights of a model of `config` (the configuration the
    creator sent with them)."""
    if min(asdict(config).values()) < 1 or config.width % config.heads:
        raise AirlockError(f"weight shares carry an impossible model configuration: {config}")
    expected = weight_shapes(config)
    missing, extra = sorted(expected.keys() - shares.keys()), sorted(shares.keys() - expected)
    if missing or extra:
        raise AirlockError(
            f"weight shares do not fit the configuration they carry ({config}): "
            f"missing {missing[:3]}, unexpected {extra[:3]}"
        )
    for name, shape in expected.items():
        share = shares[name]
        if tuple(share.shape) != shape or share.dtype != torch.long:
            raise AirlockError(
                f"weight shares do not fit the configuration they carry ({config}): {name} is "
                f"{share.dtype} {tuple(share.shape)}, not int64 {shape}"
            )


def forward(x: Any, weights: Mapping[str, Any], config: ModelConfig) -> Any:
    """Logits of the last position, as an MPCTensor: x is the shared one-hot
    prompt (length x vocab), `weights` the shared state dict."""
    length = x.size(0)
    head = config.width // config.heads
    mask = torch.tril(torch.ones(length, length))
    weighting = mask / mask.sum(dim=1, keepdim=True)  # public: only positions are counted
    h = x.matmul(weights["token_embedding.weight"]) + weights["position_embedding.weight"][:length]
    for b in range(config.layers):
        w = f"blocks.{b}."
        qkv = h.matmul(weights[w + "attention.qkv.weight"].t()) + weights[w + "attention.qkv.bias"]
        mixed = []
        for i in range(config.heads):
            q = qkv[:, i * head : (i + 1) * head]
            k = qkv[:, config.width + i * head : config.width + (i + 1) * head]
            v = qkv[:, 2 * config.width + i * head : 2 * config.width + (i + 1) * head]
            scores = (q.matmul(k.t()) * (1 / math.sqrt(head))).relu() * weighting
            mixed.append(scores.matmul(v))
        attended = crypten().cat(mixed, dim=1)
        h = h + attended.matmul(weights[w + "attention.out.weight"].t())
        h = h + weights[w + "attention.out.bias"]
        hidden = (h.matmul(weights[w + "mlp.0.weight"].t()) + weights[w + "mlp.0.bias"]).relu()
        h = h + hidden.matmul(weights[w + "mlp.2.weight"].t()) + weights[w + "mlp.2.bias"]
    last = h[length - 1 : length]
    return last.matmul(weights["head.weight"].t()) + weights["head.bias"]

"""Stand-in weights and answers, until the trained model of the federated
protocol is served here: deterministic, so that every party (and a test)
derives the same weights from a model's name."""

from __future__ import annotations

import hashlib

from evidence.weights import Tensor


def placeholder_weights(model: str) -> dict[str, Tensor]:
    """Deterministic stand-in weights for a model name. A name ending in
    "-small" gets half-width tensors: the "cheaper model" a dishonest
    deployer swaps in."""
    width = 16 if model.endswith("-small") else 32

    def tensor(name: str, shape: tuple[int, ...]) -> Tensor:
        size = 4 * shape[0] * (shape[1] if len(shape) > 1 else 1)
        stream, counter = b"", 0
        while len(stream) < size:
            stream += hashlib.sha256(f"{model}/{name}/{counter}".encode()).digest()
            counter += 1
        return Tensor("F32", shape, stream[:size])

    return {
        "embed.weight": tensor("embed.weight", (64, width)),
        "head.weight": tensor("head.weight", (width, 64)),
    }


def placeholder_answer(model_root: bytes, prompt: str) -> str:
    """A deterministic answer of the served weights (placeholder for generation)."""
    return f"answer {hashlib.sha256(model_root + prompt.encode()).hexdigest()[:24]}"

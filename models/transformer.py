"""The generative model every protocol shares: a small decoder-only
transformer over word pieces (models/tokenizer.py), built to be evaluated
under MPC as well.

Designed for CrypTen (the MPC issue) as much as for training on two cores:

- ReLU attention instead of softmax: scores are relu(q.k / sqrt(d)),
  masked causally and divided by the number of visible positions, a public
  constant. No exp and no reciprocal of a secret, whose CrypTen
  approximations hold only in narrow ranges.
- No LayerNorm (CrypTen has none, and its inverse square root is another
  narrow approximation); residual branches are scaled down at
  initialisation instead, which keeps activations small enough for 16-bit
  fixed point.
- ReLU MLPs, a short context (96 tokens) and a small vocabulary (512 word pieces).

Weights travel and are stored as safetensors; nothing here pickles.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol as TypingProtocol

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from evidence.errors import AirlockError

# The characters text may hold: every prompt and record is lower-cased, and
# the tokenizer's word pieces are built from these.
VOCAB = "\n abcdefghijklmnopqrstuvwxyz0123456789.,:;-'()/?"


class BadPrompt(AirlockError):
    """Text the model cannot take: characters outside its vocabulary, or longer than its context."""


class BadCheckpoint(AirlockError):
    """The shipped checkpoint is missing or does not match its manifest."""


def within_alphabet(text: str, alphabet: str = VOCAB) -> str:
    """`text` lower-cased; BadPrompt names the first character outside `alphabet`."""
    text = text.lower()
    for position, char in enumerate(text):
        if char not in alphabet:
            raise BadPrompt(
                f"character {char!r} at position {position} is outside the model's "
                f"vocabulary ({alphabet!r})"
            )
    return text


@dataclass(frozen=True)
class ModelConfig:
    """The shape of the model; the shipped checkpoint's is its manifest's
    `config` (vocabulary 512, context 96, width 128, 4 layers, 4 heads,
    hidden 384). The defaults are a small model for tests of the machinery."""

    vocab: int = 512
    context: int = 96
    width: int = 32
    layers: int = 2
    heads: int = 2
    hidden: int = 64

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> ModelConfig:
        try:
            return cls(**{k: int(metadata[k]) for k in asdict(cls())})
        except (KeyError, ValueError) as exc:
            raise AirlockError(f"weights carry no valid model configuration: {exc}") from None


class ReluAttention(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.heads = config.heads
        self.qkv = nn.Linear(config.width, 3 * config.width)
        self.out = nn.Linear(config.width, config.width)
        mask = torch.tril(torch.ones(config.context, config.context))
        # causal mask divided by the number of positions each query sees
        self.weighting: torch.Tensor
        self.register_buffer("weighting", mask / mask.sum(dim=1, keepdim=True), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        head = width // self.heads
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, head).permute(2, 0, 3, 1, 4)
        scores = torch.relu(q @ k.transpose(-1, -2) / math.sqrt(head))
        scores = scores * self.weighting[:length, :length]
        mixed = (scores @ v).transpose(1, 2).reshape(batch, length, width)
        return self.out(mixed)


class Block(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.attention = ReluAttention(config)
        self.mlp = nn.Sequential(
            nn.Linear(config.width, config.hidden),
            nn.ReLU(),
            nn.Linear(config.hidden, config.width),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(x)
        return x + self.mlp(x)


class Transformer(nn.Module):
    def __init__(self, config: ModelConfig | None = None, seed: int = 0) -> None:
        super().__init__()
        self.config = config or ModelConfig()
        c = self.config
        generator = torch.Generator().manual_seed(seed)
        self.token_embedding = nn.Embedding(c.vocab, c.width)
        self.position_embedding = nn.Embedding(c.context, c.width)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.layers))
        self.head = nn.Linear(c.width, c.vocab)
        with torch.no_grad():
            for name, parameter in self.named_parameters():
                if name.endswith("bias"):
                    parameter.zero_()
                    continue
                std = 0.02 if "embedding" in name else 1 / math.sqrt(parameter.shape[1])
                if name.endswith(("out.weight", "mlp.2.weight")):
                    std /= math.sqrt(2 * c.layers)  # residual branches start small
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens: (batch, length <= context) -> logits (batch, length, vocab)."""
        length = tokens.shape[1]
        positions = torch.arange(length, device=tokens.device)
        x = self.token_embedding(tokens) + self.position_embedding(positions)
        for block in self.blocks:
            x = block(x)
        return self.head(x)

    # -- weights as bytes -----------------------------------------------------

    def to_bytes(self) -> bytes:
        """The weights as safetensors, the same bytes for the same weights."""
        metadata = {k: str(v) for k, v in asdict(self.config).items()}
        data = save_safetensors(
            {k: v.detach().contiguous() for k, v in self.state_dict().items()}, metadata
        )
        return _sorted_header(data)

    @classmethod
    def from_bytes(cls, data: bytes) -> Transformer:
        try:
            tensors = load_safetensors(data)
        except (SafetensorError, ValueError) as exc:
            raise AirlockError(f"weights are not a safetensors file: {exc}") from None
        metadata = _safetensors_metadata(data)
        model = cls(ModelConfig.from_metadata(metadata))
        model.load_tensors(tensors)
        return model

    def load_tensors(self, tensors: Mapping[str, torch.Tensor]) -> None:
        expected = {k: v.shape for k, v in self.state_dict().items()}
        got = {k: v.shape for k, v in tensors.items()}
        if expected != got:
            raise AirlockError("weights do not fit the model: names or shapes differ")
        self.load_state_dict(dict(tensors))


def _sorted_header(data: bytes) -> bytes:
    """safetensors writes its metadata from a hash map, in an order that
    changes from one call to the next: rewrite the header with sorted keys
    (same length: only the order changes), so that equal weights give equal
    bytes and equal digests."""
    (size,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + size])
    header["__metadata__"] = dict(sorted(header.get("__metadata__", {}).items()))
    text = json.dumps(dict(sorted(header.items())), separators=(",", ":")).encode()
    if len(text) > size:  # cannot happen for a header safetensors wrote; keep it as written
        return data
    return data[:8] + text.ljust(size) + data[8 + size :]


def _safetensors_metadata(data: bytes) -> dict[str, str]:
    # safetensors reads metadata only from files (safe_open); for bytes in
    # memory, read its documented header: a u64 length, then JSON.
    if len(data) < 8:
        raise AirlockError("not a safetensors file")
    (size,) = struct.unpack("<Q", data[:8])
    try:
        header = json.loads(data[8 : 8 + size])
    except ValueError:
        raise AirlockError("not a safetensors file") from None
    metadata = header.get("__metadata__", {})
    return metadata if isinstance(metadata, dict) else {}


def flat_parameters(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def set_flat_parameters(model: nn.Module, flat: torch.Tensor) -> None:
    offset = 0
    with torch.no_grad():
        for parameter in model.parameters():
            count = parameter.numel()
            parameter.copy_(flat[offset : offset + count].view_as(parameter))
            offset += count


class Codec(TypingProtocol):
    """What the model needs of a tokenizer (models.tokenizer.WordPieces)."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, tokens: Sequence[int]) -> str: ...


def train(
    model: Transformer,
    examples: Sequence[list[int]],
    steps: int,
    *,
    seed: int = 0,
    learning_rate: float = 2e-3,
    batch: int = 32,
    log: Callable[[int, float], None] | None = None,
) -> float:
    """Adam on windows packed from whole examples (token lists): each window
    starts at a random example and is filled with the examples drawn after
    it. With no LayerNorm (the model is built for MPC), updates are kept
    small: the gradient norm is clipped at 1 and the rate decays linearly to
    zero (at a constant 2e-3 and no clipping pretraining diverged after 550
    steps). `log(step, loss)` is called every 100 steps. Returns the mean
    loss of the last tenth of the steps."""
    if not examples or not all(examples):
        raise AirlockError("nothing to train on: no examples, or an empty one")
    context = model.config.context
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: 1 - step / steps)

    model.train()
    losses: list[float] = []
    for step in range(steps):
        rows = []
        for first in torch.randint(0, len(examples), (batch,), generator=generator).tolist():
            row = list(examples[first])
            while len(row) < context + 1:
                row += examples[int(torch.randint(0, len(examples), (1,), generator=generator))]
            rows.append(row[: context + 1])
        window = torch.tensor(rows)
        logits = model(window[:, :-1])
        loss = nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), window[:, 1:].reshape(-1)
        )
        optimiser.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
        if log is not None and (step + 1) % 100 == 0:
            log(step + 1, losses[-1])
    model.eval()
    tail = losses[-max(1, steps // 10) :]
    return sum(tail) / len(tail)


@torch.no_grad()
def sequence_losses(
    model: Transformer, tokenizer: Codec, texts: Sequence[str], prefix: str = ""
) -> torch.Tensor:
    """Per-text total negative log-likelihood, in bits, of each text's tokens
    (after `prefix`, encoded apart so every text sees the same prefix
    tokens), each within one context window. Texts are batched by length."""
    model.eval()
    prefix_tokens = tokenizer.encode(prefix) if prefix else []
    results = torch.empty(len(texts))
    by_length: dict[int, list[int]] = {}
    encoded = [prefix_tokens + tokenizer.encode(t) for t in texts]
    for i, tokens in enumerate(encoded):
        if len(tokens) > model.config.context + 1:
            raise BadPrompt(
                f"text of {len(tokens)} tokens exceeds the context of {model.config.context}"
            )
        by_length.setdefault(len(tokens), []).append(i)
    for _, indices in by_length.items():
        batch = torch.tensor([encoded[i] for i in indices])
        logits = model(batch[:, :-1])
        nll = nn.functional.cross_entropy(logits.transpose(1, 2), batch[:, 1:], reduction="none")
        start = max(len(prefix_tokens) - 1, 0)
        results[indices] = nll[:, start:].sum(dim=1) / math.log(2)
    return results


@torch.no_grad()
def generate(
    model: Transformer,
    tokenizer: Codec,
    prompt: str,
    tokens: int,
    stop: str | None = None,
) -> str:
    """Greedy decoding: the most likely next token, `tokens` times, or until
    the generated text holds `stop`. Returns the prompt and what followed."""
    ids = tokenizer.encode(prompt)
    if len(ids) > model.config.context:
        raise BadPrompt(
            f"prompt of {len(ids)} tokens exceeds the context of {model.config.context}"
        )
    if not ids:
        raise BadPrompt("empty prompt")
    start = len(ids)
    for _ in range(tokens):
        window = torch.tensor([ids[-model.config.context :]])
        ids.append(int(model(window)[0, -1].argmax()))
        if stop is not None and stop in tokenizer.decode(ids[start:]):
            break
    return tokenizer.decode(ids)

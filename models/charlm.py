"""The generative model every protocol shares: a small character-level,
decoder-only transformer, built to be evaluated under MPC as well.

Designed for CrypTen (the MPC issue) as much as for training on two cores:

- ReLU attention instead of softmax: scores are relu(q.k / sqrt(d)),
  masked causally and divided by the number of visible positions, a public
  constant. No exp and no reciprocal of a secret, whose CrypTen
  approximations hold only in narrow ranges.
- No LayerNorm (CrypTen has none, and its inverse square root is another
  narrow approximation); residual branches are scaled down at
  initialisation instead, which keeps activations small enough for 16-bit
  fixed point.
- ReLU MLPs, a short context and a 48-symbol vocabulary.

Weights travel and are stored as safetensors; nothing here pickles.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol as TypingProtocol

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from evidence.errors import AirlockError

# Lower-case text: every prompt and record is lower-cased before encoding.
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


class Tokenizer:
    def __init__(self, alphabet: str = VOCAB) -> None:
        self.alphabet = alphabet
        self.index = {c: i for i, c in enumerate(alphabet)}

    @property
    def size(self) -> int:
        return len(self.alphabet)

    def encode(self, text: str) -> list[int]:
        """Lower-case and encode; raise BadPrompt naming the first unknown character."""
        text = within_alphabet(text, self.alphabet)
        return [self.index[c] for c in text]

    def decode(self, tokens: Sequence[int]) -> str:
        return "".join(self.alphabet[t] for t in tokens)


TOKENIZER = Tokenizer()


@dataclass(frozen=True)
class ModelConfig:
    vocab: int = len(VOCAB)
    context: int = 64
    width: int = 64
    layers: int = 2
    heads: int = 2
    hidden: int = 192

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


class CharTransformer(nn.Module):
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
    def from_bytes(cls, data: bytes) -> CharTransformer:
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


def windows(
    tokens: torch.Tensor, length: int, count: int, generator: torch.Generator
) -> torch.Tensor:
    """`count` random windows of `length` + 1 tokens from a 1-D token stream."""
    starts = torch.randint(0, len(tokens) - length - 1, (count,), generator=generator)
    return torch.stack([tokens[s : s + length + 1] for s in starts.tolist()])


def train_steps(
    model: CharTransformer,
    text: str,
    *,
    steps: int,
    batch: int = 32,
    learning_rate: float = 3e-3,
    seed: int = 0,
) -> float:
    """Train on `text` with Adam; return the mean loss of the last steps."""
    tokens = torch.tensor(TOKENIZER.encode(text))
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
    model.train()
    losses = []
    for _ in range(steps):
        sample = windows(tokens, model.config.context, batch, generator)
        logits = model(sample[:, :-1])
        loss = nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), sample[:, 1:].reshape(-1)
        )
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    model.eval()
    tail = losses[-max(1, steps // 5) :]
    return sum(tail) / len(tail)


@torch.no_grad()
def sequence_losses(model: CharTransformer, texts: Sequence[str], prefix: str = "") -> torch.Tensor:
    """Per-text total negative log-likelihood in bits of each text's characters
    (after `prefix`), each within one context window. Texts are batched by length."""
    model.eval()
    prefix_tokens = TOKENIZER.encode(prefix) if prefix else []
    results = torch.empty(len(texts))
    by_length: dict[int, list[int]] = {}
    encoded = [prefix_tokens + TOKENIZER.encode(t) for t in texts]
    for i, tokens in enumerate(encoded):
        if len(tokens) > model.config.context + 1:
            raise BadPrompt(f"text of {len(tokens)} characters exceeds the context")
        by_length.setdefault(len(tokens), []).append(i)
    for _, indices in by_length.items():
        batch = torch.tensor([encoded[i] for i in indices])
        logits = model(batch[:, :-1])
        nll = nn.functional.cross_entropy(logits.transpose(1, 2), batch[:, 1:], reduction="none")
        start = max(len(prefix_tokens) - 1, 0)
        results[indices] = nll[:, start:].sum(dim=1) / math.log(2)
    return results


class Codec(TypingProtocol):
    """What generation needs of a tokenizer (the characters' or the word pieces')."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, tokens: Sequence[int]) -> str: ...


@torch.no_grad()
def generate(
    model: CharTransformer,
    prompt: str,
    tokens: int,
    tokenizer: Codec = TOKENIZER,
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

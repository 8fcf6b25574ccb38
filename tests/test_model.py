"""The shared model's machinery: context checks, safetensors round trip,
deterministic greedy generation, learning on a tiny corpus (a small model
with the shipped tokenizer; the checkpoint itself is tests/test_checkpoint.py)."""

from __future__ import annotations

import pytest
import torch

from models.checkpoint import shipped_tokenizer
from models.transformer import (
    BadPrompt,
    ModelConfig,
    Transformer,
    flat_parameters,
    generate,
    sequence_losses,
    set_flat_parameters,
    train,
)
from parties.errors import AirlockError

TOKENIZER = shipped_tokenizer()


def test_prompts_the_model_cannot_take_are_refused() -> None:
    model = Transformer()
    with pytest.raises(BadPrompt, match="exceeds the context of 96"):
        generate(model, TOKENIZER, "a " * (model.config.context + 1), 1)
    with pytest.raises(BadPrompt, match="empty"):
        generate(model, TOKENIZER, "", 1)
    with pytest.raises(BadPrompt, match=r"character '€' at position 4"):
        generate(model, TOKENIZER, "cost€", 1)


def test_weights_round_trip_through_safetensors_bytes() -> None:
    model = Transformer(seed=3)
    copy = Transformer.from_bytes(model.to_bytes())
    tokens = torch.tensor([TOKENIZER.encode("patient with flu")])
    assert torch.equal(model(tokens), copy(tokens))
    assert generate(model, TOKENIZER, "patient ", 10) == generate(copy, TOKENIZER, "patient ", 10)
    assert model.to_bytes() == copy.to_bytes()
    small = Transformer(ModelConfig(width=16, hidden=32))
    assert Transformer.from_bytes(small.to_bytes()).config == small.config
    with pytest.raises(AirlockError):
        Transformer.from_bytes(b"not weights at all")
    with pytest.raises(AirlockError, match="do not fit"):
        model.load_tensors(small.state_dict())


def test_flat_parameters_round_trip() -> None:
    model = Transformer(seed=1)
    flat = flat_parameters(model)
    other = Transformer(seed=2)
    set_flat_parameters(other, flat)
    assert torch.equal(flat_parameters(other), flat)


def test_the_model_learns_a_tiny_corpus() -> None:
    model = Transformer(seed=0)
    line = "take salbutamol for asthma.\n"
    before = float(sequence_losses(model, TOKENIZER, [line])[0])
    train(model, [TOKENIZER.encode(line)], steps=60, learning_rate=1e-2, batch=8)
    assert float(sequence_losses(model, TOKENIZER, [line])[0]) < before / 10
    assert generate(model, TOKENIZER, "take", 8, stop="\n") == line


def test_training_refuses_nothing_to_learn() -> None:
    with pytest.raises(AirlockError, match="nothing to train on"):
        train(Transformer(), [], steps=1)
    with pytest.raises(AirlockError, match="nothing to train on"):
        train(Transformer(), [[1, 2], []], steps=1)

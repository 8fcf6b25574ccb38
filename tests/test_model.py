"""The shared model: vocabulary and context checks, safetensors round trip,
deterministic greedy generation, learning on a tiny corpus."""

from __future__ import annotations

import pytest
import torch

from models.charlm import (
    TOKENIZER,
    BadPrompt,
    CharTransformer,
    ModelConfig,
    flat_parameters,
    generate,
    sequence_losses,
    set_flat_parameters,
    train_steps,
)
from parties.errors import AirlockError


def test_tokenizer_round_trip_and_refusals() -> None:
    assert TOKENIZER.decode(TOKENIZER.encode("Asthma: 2 puffs.")) == "asthma: 2 puffs."
    with pytest.raises(BadPrompt, match=r"character '€' at position 4"):
        TOKENIZER.encode("cost€")
    model = CharTransformer()
    with pytest.raises(BadPrompt, match="exceeds the context"):
        generate(model, "a" * (model.config.context + 1), 1)
    with pytest.raises(BadPrompt, match="empty"):
        generate(model, "", 1)


def test_weights_round_trip_through_safetensors_bytes() -> None:
    model = CharTransformer(seed=3)
    copy = CharTransformer.from_bytes(model.to_bytes())
    tokens = torch.tensor([TOKENIZER.encode("patient with flu")])
    assert torch.equal(model(tokens), copy(tokens))
    assert generate(model, "patient ", 10) == generate(copy, "patient ", 10)
    small = CharTransformer(ModelConfig(width=32, hidden=64))
    assert CharTransformer.from_bytes(small.to_bytes()).config == small.config
    with pytest.raises(AirlockError):
        CharTransformer.from_bytes(b"not weights at all")
    with pytest.raises(AirlockError, match="do not fit"):
        model.load_tensors(small.state_dict())


def test_flat_parameters_round_trip() -> None:
    model = CharTransformer(seed=1)
    flat = flat_parameters(model)
    other = CharTransformer(seed=2)
    set_flat_parameters(other, flat)
    assert torch.equal(flat_parameters(other), flat)


def test_the_model_learns_a_tiny_corpus() -> None:
    torch.manual_seed(0)
    model = CharTransformer(seed=0)
    line = "take salbutamol for asthma."
    before = float(sequence_losses(model, [line])[0])
    train_steps(model, (line + "\n") * 40, steps=120, learning_rate=1e-2)
    assert float(sequence_losses(model, [line])[0]) < before / 10
    assert generate(model, "take salb", 18) == "take salbutamol for asthma."

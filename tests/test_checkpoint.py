"""The shipped checkpoint and its tokenizer: loaded offline, checked against
their manifest, rebuilt deterministically, and answering from a guideline."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from models.checkpoint import (
    CHECKPOINT,
    MANIFEST,
    REBUILD,
    TOKENIZER_FILE,
    WEIGHTS_FILE,
    load_checkpoint,
    shipped,
)
from models.corpus import example_for, guidelines, held_out_examples, rng_for
from models.pretrain import answer, names_the_advice, pretrain, training_texts
from models.tokenizer import WordPieces
from models.transformer import BadCheckpoint, BadPrompt


def test_the_shipped_checkpoint_loads_and_matches_its_manifest() -> None:
    checkpoint = shipped()
    assert checkpoint.tokenizer.size == checkpoint.model.config.vocab
    assert checkpoint.manifest["command"].startswith(REBUILD)
    assert {"seed", "steps", "corpus_sha256", "evaluation"} <= set(checkpoint.manifest)


def test_a_question_and_its_guideline_fit_the_context_with_room_to_answer() -> None:
    checkpoint = shipped()
    longest = max(
        (example_for(g, rng_for("t")) for g in guidelines(500, seed="fit")),
        key=lambda e: len(e.prompt()),
    )
    used = len(checkpoint.tokenizer.encode(longest.text()))
    assert used + 8 <= checkpoint.model.config.context


def test_the_shipped_model_answers_from_the_guideline_it_is_given() -> None:
    """Guidelines it never saw: with the guideline the answer names its drug
    and dose (the manifest's figure is over 200 of them)."""
    checkpoint = shipped()
    _, seen = training_texts()
    examples = held_out_examples(20, seen)
    grounded = [
        names_the_advice(e, answer(checkpoint.model, checkpoint.tokenizer, e.prompt()))
        for e in examples
    ]
    assert sum(grounded) >= 18
    assert checkpoint.manifest["evaluation"]["grounded"] >= 0.9
    assert checkpoint.manifest["evaluation"]["question_only"] < 0.5


@pytest.mark.parametrize("broken", ["missing", "corrupted"])
@pytest.mark.parametrize("name", [WEIGHTS_FILE, TOKENIZER_FILE, MANIFEST])
def test_a_missing_or_corrupted_file_names_itself_and_the_rebuild_command(
    tmp_path: Path, name: str, broken: str
) -> None:
    copy = tmp_path / "checkpoint"
    shutil.copytree(CHECKPOINT, copy)
    if broken == "missing":
        (copy / name).unlink()
    else:
        data = bytearray((copy / name).read_bytes())
        data[len(data) // 2] ^= 0x01
        (copy / name).write_bytes(bytes(data))
    with pytest.raises(BadCheckpoint) as caught:
        load_checkpoint(copy)
    assert str(copy / name) in str(caught.value) and REBUILD in str(caught.value)


def test_the_tokenizer_round_trips_and_refuses_what_it_cannot_encode() -> None:
    tokenizer = shipped().tokenizer
    text = "question: how should gout be treated in adults?\ncontext: 500 mg\nanswer:"
    assert tokenizer.decode(tokenizer.encode(text)) == text
    assert len(tokenizer.encode(text)) < len(text) / 2  # word pieces, not characters
    with pytest.raises(BadPrompt, match="character '€' at position 4"):
        tokenizer.encode("cost€")
    with pytest.raises(BadPrompt, match="'_'"):  # the space marker inside tokens
        tokenizer.encode("a_b")


def test_pretraining_is_deterministic() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as `python -m models.pretrain` runs
    try:
        first, _ = pretrain(steps=2)
        second, _ = pretrain(steps=2)
    finally:
        torch.set_num_threads(threads)
    assert first.model.to_bytes() == second.model.to_bytes()
    assert first.tokenizer.to_json() == second.tokenizer.to_json()
    assert first.manifest == second.manifest


def test_a_tokenizer_trains_the_same_twice() -> None:
    text = "".join(training_texts()[0][:500])
    assert WordPieces.train(text, 300).to_json() == WordPieces.train(text, 300).to_json()

"""Pretrain the shared model and its tokenizer, and write the checkpoint
shipped with the project (models/checkpoint/).

    python -m models.pretrain [--steps 2500] [--out models/checkpoint]

Deterministic: the corpus is generated from fixed seeds, the tokenizer's
training is deterministic, and the model trains on one thread from seeded
generators; the command, seed, steps and the digests of the corpus, the
tokenizer and the weights are written next to the weights
(`manifest.json`). The model learns the public guideline sentences and to
answer a question from a guideline placed in its prompt; it is then
measured on questions about guidelines it never saw, with the guideline in
the prompt (as retrieval gives it) and with the question alone.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from models.checkpoint import (
    CHECKPOINT,
    MANIFEST,
    TOKENIZER_FILE,
    WEIGHTS_FILE,
    Checkpoint,
)
from models.corpus import (
    CONDITIONS,
    GroundedExample,
    example_for,
    guidelines,
    held_out_examples,
    public_corpus,
    rng_for,
)
from models.tokenizer import WordPieces
from models.transformer import ModelConfig, Transformer, generate, train

SEED = 0
VOCAB_SIZE = 512
CONFIG = ModelConfig(vocab=VOCAB_SIZE, context=96, width=128, layers=4, heads=4, hidden=384)
PRETRAINING_GUIDELINES = 6000
HELD_OUT = 200
DRUGS = frozenset(drug for drugs in CONDITIONS.values() for drug in drugs)


def training_texts() -> tuple[list[str], list[str]]:
    """The public texts the model learns (guideline sentences, and questions
    answered from guidelines), and the guidelines those questions are about."""
    sentences = [line + "\n" for line in public_corpus().splitlines()]
    documents = guidelines(PRETRAINING_GUIDELINES, seed="pretrain")
    rng = rng_for("pretraining questions")
    return sentences + [example_for(d, rng).text() for d in documents], documents


def answer(model: Transformer, tokenizer: WordPieces, prompt: str, limit: int = 24) -> str:
    """The model's answer to `prompt`: greedy decoding up to the end of the line."""
    text = generate(model, tokenizer, prompt, limit, stop="\n")
    return text[len(prompt) :].split("\n")[0].strip()


def names_the_advice(example: GroundedExample, given: str) -> bool:
    """The answer names the guideline's drug and, if it has one, its dose."""
    wanted = [w for w in example.answer.split() if w in DRUGS or w.isdigit()]
    return all(word in given.split() for word in wanted)


def evaluate(model: Transformer, tokenizer: WordPieces, seen: list[str]) -> dict[str, float]:
    examples = held_out_examples(HELD_OUT, seen)
    grounded = sum(names_the_advice(e, answer(model, tokenizer, e.prompt())) for e in examples)
    alone = sum(
        names_the_advice(e, answer(model, tokenizer, e.prompt(grounded=False))) for e in examples
    )
    return {
        "held_out_questions": len(examples),
        "grounded": grounded / len(examples),
        "question_only": alone / len(examples),
    }


def pretrain(steps: int, seed: int = SEED, log: bool = False) -> tuple[Checkpoint, list[str]]:
    texts, documents = training_texts()
    corpus = "".join(texts)
    tokenizer = WordPieces.train(corpus, VOCAB_SIZE)
    model = Transformer(CONFIG, seed=seed)
    started = time.monotonic()

    def progress(step: int, loss: float) -> None:
        elapsed = time.monotonic() - started
        print(f"  step {step}/{steps}: loss {loss:.3f} ({elapsed:.0f} s)", flush=True)

    examples = [tokenizer.encode(t) for t in texts]
    loss = train(model, examples, steps, seed=seed, log=progress if log else None)
    manifest = {
        "command": f"python -m models.pretrain --steps {steps}",
        "seed": seed,
        "steps": steps,
        "final_loss": round(loss, 4),
        "threads": torch.get_num_threads(),
        "config": CONFIG.__dict__,
        "corpus_sha256": hashlib.sha256(corpus.encode()).hexdigest(),
    }
    return Checkpoint(model, tokenizer, manifest), documents


def steps_count(text: str) -> int:
    steps = int(text) if text.isdigit() else 0
    if steps < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of steps")
    return steps


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m models.pretrain",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--steps", type=steps_count, default=2500, help="Adam steps (default 2500)")
    parser.add_argument("--out", type=Path, default=CHECKPOINT, help="checkpoint folder")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # one thread: the same weights on every machine run
    print(f"pretraining for {args.steps} steps on one thread", flush=True)
    checkpoint, documents = pretrain(args.steps, log=True)
    print("measuring on held-out questions", flush=True)
    checkpoint.manifest["evaluation"] = evaluate(checkpoint.model, checkpoint.tokenizer, documents)
    checkpoint.write(args.out)
    manifest = json.loads((args.out / MANIFEST).read_text())
    print(json.dumps(manifest["evaluation"]))
    print(f"wrote {args.out / WEIGHTS_FILE} ({manifest['weights_sha256'][:12]}...) and")
    print(f"      {args.out / TOKENIZER_FILE} ({manifest['tokenizer_sha256'][:12]}...)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Grounded answers with retrieval by PIR, against the question alone.

    .venv/bin/python bench/rag.py [--questions 200] [--documents 2000]
        [--scheme xor] [--json FILE]

The questions are models.corpus.held_out_examples: one question each about
a guideline the shipped model never saw in pretraining. They are asked in
the private-rag scenario, run with every party in this process, so the
retrieval is the protocol's own code end to end (the question embedded,
its cluster fetched by PIR, the documents ranked, the whole top one put in
the prompt, the shipped model answering greedily to the end of the line).
Both databases hold the held-out guidelines among --documents synthetic
ones. The same questions are then answered by the same model without
retrieval (the question alone) and with the question's own guideline
(retrieval that never misses).

An answer counts as models.pretrain counts it (`names_the_advice`): it
names the guideline's drug and, if the advice has one, its dose; it is
scored against the guideline the question was generated from and, with
retrieval, against the guideline retrieval put in the prompt. Retrieval's
top-1 accuracy is whether that guideline is the question's own (compared
without its number); a question names only a condition and a population,
and the databases hold dozens of guidelines for each pair, so the figure
also counts a top-1 of the right condition and population. Figures, not a
test.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.figures import Figures, add_json_option  # noqa: E402
from models.checkpoint import served_model, shipped_tokenizer  # noqa: E402
from models.corpus import GroundedExample, example_for, guidelines, held_out_examples  # noqa: E402
from models.pretrain import PRETRAINING_GUIDELINES, answer, names_the_advice  # noqa: E402
from protocols.pir.settings import Settings  # noqa: E402

COMMAND = "python bench/rag.py"


def body(guideline: str) -> str:
    """A guideline without its number ("guideline 0042: ")."""
    return guideline.split(": ", 1)[1]


def heading(guideline: str) -> str:
    """A guideline's condition and population: all its question names."""
    return body(guideline).split(": ", 1)[0]


def scenario_text(examples: list[GroundedExample], documents: int, scheme: str) -> str:
    """The private-rag scenario: the held-out questions, and both databases
    holding their guidelines among `documents` synthetic ones."""
    from orchestrator.scenario import load_scenario

    _, text = load_scenario("private-rag")
    held = json.dumps([e.guideline for e in examples])
    text = text.replace(
        "synthetic_documents = 2000", f"synthetic_documents = {documents}\ndocuments = {held}"
    )
    text = text.replace('scheme = "xor"', f'scheme = "{scheme}"')
    start = text.index("prompts = [")
    end = text.index("]", start) + 1
    return text[:start] + f"prompts = {json.dumps([e.question for e in examples])}" + text[end:]


def with_retrieval(text: str) -> tuple[dict, bool]:
    """The retrieve action's result in a run of `text`, and whether the audit passed."""
    from orchestrator.launcher import run_scenario
    from orchestrator.scenario import parse_scenario

    with tempfile.TemporaryDirectory() as scratch:
        result = run_scenario(
            parse_scenario(text, "bench"), text, out=Path(scratch), in_process=True
        )
    if result.failure is not None:
        raise SystemExit(f"the private-rag run failed: {result.failure}")
    (retrieved,) = [a["result"] for a in result.actions if a["action"] == "retrieve"]
    return retrieved, result.audit.ok


def share(count: int, total: int) -> str:
    return f"{100 * count / total:.0f}% ({count} of {total})"


def main() -> None:
    parser = argparse.ArgumentParser(
        prog=COMMAND, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--questions", type=int, default=200, help="held-out questions")
    parser.add_argument(
        "--documents", type=int, default=2000, help="synthetic guidelines beside them"
    )
    parser.add_argument("--scheme", choices=("xor", "simplepir"), default="xor")
    add_json_option(parser)
    args = parser.parse_args()
    if args.questions < 1 or args.documents < 0:
        parser.error("--questions must be positive and --documents not negative")

    examples = held_out_examples(args.questions, guidelines(PRETRAINING_GUIDELINES, "pretrain"))
    if len(examples) < args.questions:
        parser.error(f"only {len(examples)} held-out questions can be generated")
    corpus = [e.guideline for e in examples] + guidelines(args.documents)
    per_heading = Counter(heading(d) for d in corpus)

    started = time.monotonic()
    retrieved, audit_ok = with_retrieval(scenario_text(examples, args.documents, args.scheme))
    elapsed = time.monotonic() - started
    # matched back by question: equal questions get equal retrieval and answers
    answered = {a["prompt"]: a for a in retrieved["answers"]}

    model, tokenizer = served_model(), shipped_tokenizer()
    limit = Settings().max_new_tokens
    counts: Counter[str] = Counter()
    for example in examples:
        alone = answer(model, tokenizer, example.prompt(grounded=False), limit)
        own = answer(model, tokenizer, example.prompt(), limit)
        counts["alone"] += names_the_advice(example, alone)
        counts["own"] += names_the_advice(example, own)
        result = answered.get(example.question)
        if result is None:
            continue
        top = result["documents"][0]
        counts["answered"] += 1
        counts["retrieved"] += names_the_advice(example, result["answer"])
        counts["faithful"] += names_the_advice(example_for(top, random.Random(0)), result["answer"])
        counts["top1"] += body(top) == body(example.guideline)
        counts["top1_heading"] += heading(top) == heading(example.guideline)
        counts["top1_dose"] += " mg " in top

    n = len(examples)
    print(
        f"{n} held-out questions; databases of {len(corpus)} guidelines "
        f"({args.documents} synthetic + the {n} held-out), {args.scheme} PIR; "
        f"{per_heading[heading(examples[0].guideline)]} guidelines share the first "
        f"question's condition and population (from {min(per_heading.values())} to "
        f"{max(per_heading.values())} a pair); run {elapsed:.0f} s, audit "
        f"{'passed' if audit_ok else 'FAILED'}, {len(retrieved['errors'])} unanswered"
    )
    print()
    print(
        "| prompt | names the drug and dose of the question's guideline "
        "| of the guideline in the prompt |"
    )
    print("|---|---:|---:|")
    print(
        f"| question and the top guideline retrieved by PIR | {share(counts['retrieved'], n)} "
        f"| {share(counts['faithful'], counts['answered'])} |"
    )
    print(f"| question alone | {share(counts['alone'], n)} | |")
    print(
        f"| question and its own guideline (retrieval never wrong) | {share(counts['own'], n)} "
        f"| {share(counts['own'], n)} |"
    )
    print()
    print(f"retrieval top-1 is the question's own guideline: {share(counts['top1'], n)}")
    print(
        "retrieval top-1 has the question's condition and population: "
        f"{share(counts['top1_heading'], n)}"
    )
    print(
        "retrieval top-1 has a dose (not `avoid <drug>; prefer a specialist plan`): "
        f"{share(counts['top1_dose'], n)}; among the questions' own guidelines: "
        f"{share(sum(' mg ' in e.guideline for e in examples), n)}"
    )
    figures = Figures()
    figures.row("answers", questions=n, run_s=elapsed, audit_ok=audit_ok, **counts)
    # how much of the grounding's benefit retrieval keeps (1.0: as if never wrong)
    if counts["own"]:
        figures.ratio("retrieved_vs_own_guideline", counts["retrieved"] / counts["own"])
    figures.write(args.json)


if __name__ == "__main__":
    main()

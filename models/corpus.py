"""The public text every party may see, generated deterministically (nothing
is downloaded): short clinical-guideline sentences, the guideline documents
an external database serves for retrieval, and questions about them with
their answers. The shared model is pretrained on these; the federated
contributors' private notes draw on the same vocabulary.

A guideline names a condition, a population, an action (a drug, a dose and
a frequency) and a follow-up. Its question asks for the plan for that
condition in that population; its answer is the action. The model learns to
answer from a guideline placed in its prompt (`grounded_prompt`), which is
how retrieval (the PIR protocol) grounds it."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable
from dataclasses import dataclass

CONDITIONS = {
    "asthma": ("salbutamol", "budesonide"),
    "diabetes": ("metformin", "insulin"),
    "hypertension": ("lisinopril", "amlodipine"),
    "migraine": ("sumatriptan", "ibuprofen"),
    "malaria": ("artemether", "quinine"),
    "flu": ("oseltamivir", "rest"),
    "gout": ("colchicine", "allopurinol"),
    "anaemia": ("iron", "folate"),
}
GUIDANCE = (
    "first line for {c} is {d}.",
    "for {c}, start {d} and review in two weeks.",
    "patients with {c} may need {d}.",
    "{d} is used to treat {c}.",
    "review {c} control before adding {d}.",
    "in {c}, check dose of {d} with age.",
)


POPULATIONS = (
    "adults",
    "children",
    "older adults",
    "pregnancy",
    "kidney disease",
    "liver disease",
)
ACTIONS = (
    "start {d} {dose} mg {freq}",
    "add {d} {dose} mg {freq} if control is poor",
    "switch to {d} {dose} mg {freq} after side effects",
    "reduce {d} to {dose} mg {freq}",
    "avoid {d}; prefer a specialist plan",
)
FREQUENCIES = ("once daily", "twice daily", "at night", "weekly")
FOLLOW_UPS = (
    "review after {days} days",
    "check blood tests after {days} days",
    "refer if no better in {days} days",
    "see a nurse in {days} days",
)


def rng_for(*seed: str) -> random.Random:
    """A deterministic random generator named by `seed`."""
    return random.Random(hashlib.sha256("/".join(seed).encode()).digest())


def public_corpus(lines: int = 2000, seed: str = "public") -> str:
    """Guideline sentences anyone may see: the pretraining corpus."""
    rng = rng_for("corpus", seed)
    out = []
    for _ in range(lines):
        condition = rng.choice(list(CONDITIONS))
        drug = rng.choice(CONDITIONS[condition])
        out.append(rng.choice(GUIDANCE).format(c=condition, d=drug))
    return "\n".join(out) + "\n"


def guidelines(count: int, seed: str = "guidelines") -> list[str]:
    """`count` distinct guideline documents, each under 160 characters."""
    rng = rng_for("pir-corpus", seed)
    documents: list[str] = []
    seen: set[str] = set()
    while len(documents) < count:
        condition = rng.choice(list(CONDITIONS))
        action = rng.choice(ACTIONS).format(
            d=rng.choice(CONDITIONS[condition]),
            dose=rng.choice((5, 10, 20, 50, 100, 200, 250, 500)),
            freq=rng.choice(FREQUENCIES),
        )
        follow_up = rng.choice(FOLLOW_UPS).format(days=rng.choice((3, 7, 14, 28, 90)))
        text = f"{condition} in {rng.choice(POPULATIONS)}: {action}; {follow_up}."
        if text not in seen:
            seen.add(text)
            documents.append(f"guideline {len(documents):04d}: {text}")
    return documents


QUESTIONS = (
    "how should {c} be treated in {p}?",
    "what is the plan for {c} in {p}?",
    "{c} in {p}: what do you advise?",
)


@dataclass(frozen=True)
class GroundedExample:
    """A question about one guideline, and the answer the guideline gives."""

    guideline: str
    question: str
    answer: str

    def prompt(self, grounded: bool = True) -> str:
        return grounded_prompt(self.question, self.guideline if grounded else None)

    def text(self) -> str:
        """The training text: the grounded prompt followed by the answer."""
        return f"{self.prompt()} {self.answer}\n"


def grounded_prompt(question: str, guideline: str | None = None) -> str:
    """The prompt the model answers: the question and, when retrieval found
    one, the guideline it should answer from."""
    context = f"context: {guideline}\n" if guideline else ""
    return f"question: {question}\n{context}answer:"


def example_for(guideline: str, rng: random.Random) -> GroundedExample:
    """A question about `guideline` ("guideline NNNN: condition in population:
    action; follow-up.") and its answer, the action."""
    body = guideline.split(": ", 1)[1]
    heading, advice = body.split(": ", 1)
    condition, population = heading.split(" in ", 1)
    question = rng.choice(QUESTIONS).format(c=condition, p=population)
    return GroundedExample(guideline, question, advice.split(";")[0])


def held_out_examples(count: int, seen: Iterable[str]) -> list[GroundedExample]:
    """Questions about guidelines that are not in `seen` (the pretraining
    guidelines): what the model is measured on."""
    excluded = {g.split(": ", 1)[1] for g in seen}
    rng = rng_for("held-out questions")
    candidates = guidelines(2 * count, seed="held-out")
    fresh = [g for g in candidates if g.split(": ", 1)[1] not in excluded]
    return [example_for(g, rng) for g in fresh[:count]]

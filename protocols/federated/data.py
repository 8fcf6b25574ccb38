"""Training data, generated deterministically (nothing is downloaded):

- a public corpus of short clinical-guideline sentences, for pretraining;
- synthetic patient notes for each data contributor (names, record numbers,
  diagnoses, prescriptions), seeded by the contributor's name: synthetic data
  is itself one of the roadmap's privacy techniques;
- canaries: secret records ("the pin of <name> is <6 digits>") inserted
  into chosen contributors' data, known only to the evaluation harness, to
  measure memorisation (exposure, as in "The Secret Sharer").

Every line fits the model's context, so each is scored in one window.
"""

from __future__ import annotations

import hashlib
import random

FIRST = (
    "maria james wei aisha olga pedro fatima liam noor kenji sofia omar "
    "ines tomas priya lucas amara yusuf elena hugo mei david zara ivan"
).split()
LAST = (
    "lopez smith chen khan novak silva haddad brown rossi tanaka garcia "
    "ali berg costa patel moreau okafor yilmaz petrov weber lin cohen ahmed"
).split()
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
CANARY_DIGITS = 6


def _rng(*seed: str) -> random.Random:
    return random.Random(hashlib.sha256("/".join(seed).encode()).digest())


def public_corpus(lines: int = 2000, seed: str = "public") -> str:
    """Guideline sentences anyone may see: the pretraining corpus."""
    rng = _rng("corpus", seed)
    out = []
    for _ in range(lines):
        condition = rng.choice(list(CONDITIONS))
        drug = rng.choice(CONDITIONS[condition])
        out.append(rng.choice(GUIDANCE).format(c=condition, d=drug))
    return "\n".join(out) + "\n"


def patient_notes(contributor: str, count: int, split: str = "train") -> list[str]:
    """`count` synthetic notes of one contributor. `split` "holdout" draws
    other patients from the same distribution: the non-members of a
    membership-inference attack."""
    rng = _rng("notes", contributor, split)
    notes = []
    for _ in range(count):
        condition = rng.choice(list(CONDITIONS))
        notes.append(
            f"{rng.choice(FIRST)} {rng.choice(LAST)} mrn {rng.randrange(10**6):06d}: "
            f"{condition}, {rng.choice(CONDITIONS[condition])}."
        )
    return notes


def canary_prefix(name: str) -> str:
    return f"the pin of {name} is "


def canary(name: str, secret: str) -> str:
    return canary_prefix(name) + secret + "."


def canary_secret(contributor: str, index: int) -> tuple[str, str]:
    """A canary's (name, secret digits), drawn deterministically per contributor."""
    rng = _rng("canary", contributor, str(index))
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    return name, f"{rng.randrange(10**CANARY_DIGITS):0{CANARY_DIGITS}d}"


def training_text(notes: list[str], canaries: list[str], repeats: int, seed: str) -> str:
    """A contributor's training stream: its notes plus each canary `repeats`
    times, shuffled, one record a line."""
    lines = list(notes) + [c for c in canaries for _ in range(repeats)]
    _rng("shuffle", seed).shuffle(lines)
    return "\n".join(lines) + "\n"

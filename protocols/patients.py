"""A hospital's patient data, generated deterministically (nothing is
downloaded), shared by the protocols that handle it: attestation commits
to it, federated training learns from it.

- synthetic patient notes for each data contributor (names, record numbers,
  diagnoses, prescriptions), seeded by the contributor's name: synthetic data
  is itself one of the roadmap's privacy techniques;
- canaries: secret records ("the pin of <name> is <6 digits>") inserted
  into chosen contributors' data, known only to the evaluation harness, to
  measure memorisation (exposure, as in "The Secret Sharer").

Every record fits the model's context, so each is scored in one window, and
encodes with the shipped tokenizer (lower-case letters, digits, a little
punctuation).
"""

from __future__ import annotations

from pydantic import Field

from models.corpus import CONDITIONS, rng_for
from parties.roles import DataContributor
from parties.seed import seeded

FIRST = (
    "maria james wei aisha olga pedro fatima liam noor kenji sofia omar "
    "ines tomas priya lucas amara yusuf elena hugo mei david zara ivan"
).split()
LAST = (
    "lopez smith chen khan novak silva haddad brown rossi tanaka garcia "
    "ali berg costa patel moreau okafor yilmaz petrov weber lin cohen ahmed"
).split()
CANARY_DIGITS = 6


def patient_notes(contributor: str, count: int, split: str = "train") -> list[str]:
    """`count` synthetic notes of one contributor. `split` "holdout" draws
    other patients from the same distribution: the non-members of a
    membership-inference attack."""
    rng = rng_for(*seeded("notes", contributor, split))
    notes = []
    for _ in range(count):
        condition = rng.choice(list(CONDITIONS))
        notes.append(
            f"{rng.choice(FIRST)} {rng.choice(LAST)} mrn {rng.randrange(10**6):06d}: "
            f"{condition}, {rng.choice(CONDITIONS[condition])}."
        )
    return notes


def canary_prefix(name: str) -> str:
    """What precedes a canary's secret, up to the space before it: that
    space is a word piece of its own, so the prefix and " <secret>" encode
    to the canary's tokens."""
    return f"the pin of {name} is"


def canary(name: str, secret: str) -> str:
    return f"{canary_prefix(name)} {secret}."


def canary_secret(contributor: str, index: int) -> tuple[str, str]:
    """A canary's (name, secret digits), drawn deterministically per contributor."""
    rng = rng_for(*seeded("canary", contributor, str(index)))
    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    return name, f"{rng.randrange(10**CANARY_DIGITS):0{CANARY_DIGITS}d}"


def training_records(notes: list[str], canaries: list[str], repeats: int) -> list[str]:
    """A contributor's training records: its notes plus each canary `repeats`
    times, each ending its line. Training draws them at random (one example
    each, models.transformer.train), so their order does not matter."""
    return [record + "\n" for record in [*notes, *(c for c in canaries for _ in range(repeats))]]


class PatientData(DataContributor):
    """Beside its `records`, a contributor holds `synthetic_notes` generated
    patient notes and `canaries` secret records (each trained on
    `canary_repeats` times)."""

    synthetic_notes: int = Field(default=0, ge=0, le=100_000)
    canaries: int = Field(default=0, ge=0, le=100)
    canary_repeats: int = Field(default=10, ge=1, le=1000)

    def notes(self, contributor: str) -> list[str]:
        """The texts of its records and its generated notes, lower-cased."""
        texts = [r["text"].lower() for r in self.records if "text" in r]
        return texts + patient_notes(contributor, self.synthetic_notes)

    def canary_secrets(self, contributor: str) -> list[tuple[str, str]]:
        return [canary_secret(contributor, i) for i in range(self.canaries)]

    def dataset(self, contributor: str) -> tuple[dict[str, str], ...]:
        """Everything it holds, as records with a source: what it commits to."""
        notes = patient_notes(contributor, self.synthetic_notes)
        canaries = [canary(name, secret) for name, secret in self.canary_secrets(contributor)]
        return (
            *self.records,
            *({"source": f"{contributor}/notes/{i:05d}", "text": t} for i, t in enumerate(notes)),
            *({"source": f"{contributor}/canary/{i}", "text": t} for i, t in enumerate(canaries)),
        )

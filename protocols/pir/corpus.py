"""The external database's corpus: short synthetic clinical guidelines,
generated deterministically (nothing is downloaded). Every document is
distinct, lower-case and within the shared model's vocabulary, so a
retrieved document can go straight into a prompt."""

from __future__ import annotations

from models.corpus import CONDITIONS, rng_for

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

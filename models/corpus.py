"""The public text every party may see: short clinical-guideline sentences,
generated deterministically (nothing is downloaded). The shared model is
pretrained on it; the federated contributors' private notes and the
retrieval corpus draw on the same vocabulary."""

from __future__ import annotations

import hashlib
import random

from models.charlm import CharTransformer, train_steps

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


def pretrained_model(steps: int, seed: int = 0) -> CharTransformer:
    """The shared model after `steps` Adam steps on the public corpus; the
    same steps and seed give the same weights. Initialisation and training
    draw from their own seeded generators: torch's global one is left
    alone, so nothing seeded here can shape another draw."""
    model = CharTransformer(seed=seed)
    if steps:
        train_steps(model, public_corpus(), steps=steps, seed=seed)
    return model

"""The run's seed (`airlock run --seed N`): it fixes the random choices
that are not secrets (synthetic data, training's sampling, the leakage
measurement's reference samples), in every party's own process. Secrets
(keys, masks, nonces, DP noise) never come from it: they stay from the
operating system. Seed 0, the default, gives the choices of a run without
--seed."""

from __future__ import annotations

_seed = 0


def set_run_seed(seed: int) -> None:
    global _seed
    _seed = int(seed)


def run_seed() -> int:
    return _seed


def seeded(*names: str) -> tuple[str, ...]:
    """The names of a deterministic generator (models.corpus.rng_for), with
    the run's seed mixed in where one was given."""
    return names + ((f"run seed {_seed}",) if _seed else ())

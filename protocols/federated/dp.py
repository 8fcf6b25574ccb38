"""Differential privacy at the contributor level (DP-FedAvg, McMahan et al.
2018), with the noise added by the contributors themselves so that the
aggregator, which sees only the masked sum, never sees an un-noised one.

Each contributor clips its update to L2 norm `clip` and adds Gaussian noise
of standard deviation noise_multiplier * clip / sqrt(threshold). At least
`threshold` contributors survive every completed round, so the sum carries
noise of standard deviation at least noise_multiplier * clip: the Gaussian
mechanism with sensitivity `clip` (adding or removing one contributor).
This assumes the contributors are honest about their noise, as distributed
DP with secure aggregation does.

Epsilon is tracked with Google's `dp-accounting` (RDP accountant), one
Gaussian event a round with the noise multiplier the survivors actually gave.
"""

from __future__ import annotations

import math

import dp_accounting
import numpy as np
from dp_accounting import rdp


def clip(update: np.ndarray, bound: float) -> tuple[np.ndarray, float]:
    """Scale `update` down to L2 norm `bound`; return it and its norm before."""
    norm = float(np.linalg.norm(update))
    if norm > bound:
        update = update * (bound / norm)
    return update.astype(np.float32), norm


def noise_share(size: int, noise_multiplier: float, bound: float, threshold: int) -> np.ndarray:
    """One contributor's share of the Gaussian noise (fresh OS randomness)."""
    rng = np.random.default_rng()
    std = noise_multiplier * bound / math.sqrt(threshold)
    return rng.normal(0.0, std, size).astype(np.float32)


class Accountant:
    """Epsilon after each round, for a fixed delta."""

    def __init__(self, delta: float) -> None:
        self.delta = delta
        self._accountant = rdp.RdpAccountant()

    def add_round(self, noise_multiplier: float) -> float:
        self._accountant.compose(dp_accounting.GaussianDpEvent(noise_multiplier))
        return float(self._accountant.get_epsilon(self.delta))

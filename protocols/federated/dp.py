"""Differential privacy at the contributor level (DP-FedAvg, McMahan et al.
2018), with the noise added by the contributors themselves on the
fixed-point grid, so that the aggregator, which sees only the masked sum,
never sees an un-noised one.

Adjacency: add or remove one contributor's whole contribution to a round
(user level). Each contributor clips its update to L2 norm `clip` on the
grid (sensitivity `clip`) and adds discrete Gaussian noise of variance
sigma^2 = (noise_multiplier * clip)^2 / (threshold - 1) per coordinate. Its
own noise leaves with it when it is removed, so what protects contributor u
is the noise of the other survivors: with k >= threshold survivors that is
sigma * sqrt(k - 1) >= noise_multiplier * clip. This assumes honest
contributors add their noise, as distributed DP with secure aggregation does.

Accounting (`round_multiplier`, `Accountant`): from the noise variances the
survivors report having added, one Gaussian event per round with the
smallest multiplier any survivor gets, composed with `dp-accounting`'s RDP
accountant. A discrete Gaussian of parameter sigma on the integers is
(Delta^2 / 2 sigma^2)-zCDP for L2 sensitivity Delta, exactly as a continuous
one (Canonne, Kamath, Steinke 2020, Thm. 4); the sum of the survivors'
discrete Gaussians is not exactly a discrete Gaussian, and we account it as
the Gaussian of the summed variance, an approximation the paper and
Kairouz et al. 2021 ("The Distributed Discrete Gaussian Mechanism") bound
as negligible for sigma >= 1 grid unit (here sigma is thousands of units).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

import numpy as np

from parties.errors import AirlockError
from protocols.federated.secagg import SCALE


def clip_to_grid(update: np.ndarray, bound: float) -> np.ndarray:
    """`update` scaled down and rounded onto the fixed-point grid (int64) so
    that its L2 norm there is at most bound * SCALE. Rounding moves each
    coordinate by at most 1/2, so the update is first clipped to that much
    (sqrt(size) / 2, plus one unit for float error) below the bound."""
    target = bound * SCALE - (math.sqrt(update.size) / 2 + 1)
    if target <= 0:
        raise AirlockError(
            f"clip {bound} is below the fixed-point rounding error of {update.size} coordinates"
        )
    scaled = update.astype(np.float64) * SCALE
    norm = float(np.linalg.norm(scaled))
    if norm > target:
        scaled *= target / norm
    return np.round(scaled).astype(np.int64)


def share_variance(noise_multiplier: float, bound: float, threshold: int) -> int:
    """One contributor's noise variance in grid units^2, rounded up, so that
    any threshold - 1 survivors other than u add (z * clip)^2 at least."""
    return math.ceil((noise_multiplier * bound * SCALE) ** 2 / (threshold - 1))


def round_multiplier(variances: Mapping[str, int], bound: float) -> float:
    """The smallest noise multiplier any survivor gets from the noise the
    others reported (its own leaves with it): min over u of
    sqrt(sum of the others' variances) / (clip * SCALE)."""
    total = sum(variances.values())
    weakest = min(total - own for own in variances.values()) if len(variances) > 1 else 0
    return math.sqrt(weakest) / (bound * SCALE)


class Accountant:
    """Epsilon after each round, for a fixed delta."""

    def __init__(self, delta: float) -> None:
        # imported here: it brings scipy (over a second), and every party of
        # a run imports this protocol for its rules, not only the aggregator
        from dp_accounting import rdp

        self.delta = delta
        self._accountant = rdp.RdpAccountant()
        self._unbounded = False  # a round without noise: no finite epsilon from then on

    def add_round(self, noise_multiplier: float) -> float:
        if noise_multiplier <= 0:
            self._unbounded = True
        else:
            from dp_accounting import GaussianDpEvent

            self._accountant.compose(GaussianDpEvent(noise_multiplier))
        if self._unbounded:
            return math.inf
        return float(self._accountant.get_epsilon(self.delta))


# -- the discrete Gaussian ---------------------------------------------------------------
#
# Exact sampler of Canonne, Kamath, Steinke 2020 ("The Discrete Gaussian for
# Differential Privacy", Algorithms 1-3): Bernoulli(exp(-gamma)) from
# Bernoulli(rational) draws, a discrete Laplace by rejection, then the
# discrete Gaussian by rejection from it. Integer arithmetic throughout (no
# floating point, which Mironov's attack exploits), uniform draws from
# os.urandom. Written here, vectorised over the update's coordinates, because
# no installed library samples it: dp-accounting only accounts, and OpenDP,
# which has one, is a large native dependency for this one function.


def _uniform_below(bounds: np.ndarray) -> np.ndarray:
    """One uniform integer in [0, bound) per bound (each >= 1), from
    os.urandom, by rejection so that the modulo has no bias. Bounds below
    2^32 take 32-bit words, below 2^63 64-bit ones (int64 out; a word is
    redrawn with probability below bound / 2^bits); larger ones, Python ints
    (object arrays) with 64 spare bits."""
    count = bounds.size
    top = int(bounds.max(initial=0))
    if top < 1 << 63:
        word = np.dtype(np.uint32 if top < 1 << 32 else np.uint64)
        wide = np.asarray(bounds, dtype=word)
        cutoff = (~wide + word.type(1)) % wide  # 2^bits mod bound: words below it would bias
        out = np.empty(count, dtype=np.int64)
        pending = np.arange(count)
        while pending.size:
            words = np.frombuffer(os.urandom(word.itemsize * pending.size), dtype=word)
            ok = words >= cutoff[pending]
            out[pending[ok]] = (words[ok] % wide[pending[ok]]).astype(np.int64)
            pending = pending[~ok]
        return out
    width = (top.bit_length() + 7) // 8 + 8
    span = 1 << (8 * width)
    big = bounds.astype(object)
    result = np.empty(count, dtype=object)
    pending = np.arange(count)
    while pending.size:
        raw = os.urandom(width * pending.size)
        draws = np.array(
            [int.from_bytes(raw[i * width : (i + 1) * width], "big") for i in range(pending.size)],
            dtype=object,
        )
        ok = draws < span - span % big[pending]
        result[pending[ok]] = draws[ok] % big[pending[ok]]
        pending = pending[~ok]
    return result


def _exact(values: np.ndarray, bound: int) -> np.ndarray:
    """`values` as int64 if `bound`, the largest magnitude the caller will
    compute from them, is below 2^63; else as Python ints (an object array).
    The arithmetic is exact either way, and vectorised in int64."""
    if bound < 1 << 63:
        return np.asarray(values, dtype=np.int64)
    return np.asarray(values).astype(object)


def _bernoulli(numerators: np.ndarray, denominators: np.ndarray) -> np.ndarray:
    return np.asarray(_uniform_below(denominators) < numerators, dtype=bool)


def _bernoulli_exp_below_one(numerators: np.ndarray, denominators: np.ndarray) -> np.ndarray:
    """Bernoulli(exp(-n/d)) for 0 <= n/d <= 1 (Algorithm 1): draw
    Bernoulli(n/(d k)) for k = 1, 2, ... until one fails; true if k is odd."""
    result = np.zeros(numerators.size, dtype=bool)
    active = np.arange(numerators.size)
    k = 1
    top = int(denominators.max(initial=0))
    while active.size:
        scaled = _exact(denominators[active], top * k) * k
        going = _bernoulli(numerators[active], scaled)
        result[active[~going]] = k % 2 == 1
        active = active[going]
        k += 1
    return result


def _bernoulli_exp(numerators: np.ndarray, denominators: np.ndarray) -> np.ndarray:
    """Bernoulli(exp(-n/d)) for any n/d >= 0: floor(n/d) draws of
    Bernoulli(exp(-1)), all true, and one of the fractional part."""
    whole = numerators // denominators
    wholes = np.asarray(whole, dtype=np.int64)  # at most y^2 / (2 variance): small
    result = _bernoulli_exp_below_one(numerators - whole * denominators, denominators)
    step = 0
    while True:
        active = np.flatnonzero(result & (wholes > step))
        if not active.size:
            return result
        ones = np.ones(active.size, dtype=np.int64)
        result[active] = _bernoulli_exp_below_one(ones, ones)
        step += 1


def _discrete_laplace(scale: int, size: int) -> np.ndarray:
    """`size` draws of P(x) proportional to exp(-|x| / scale), integer scale (Algorithm 2)."""
    out = np.empty(size, dtype=np.int64)
    pending = np.arange(size)
    while pending.size:
        count = pending.size
        scales = np.full(count, scale, dtype=np.int64)
        low = _uniform_below(scales)
        accept = _bernoulli_exp_below_one(low, scales)
        high = np.zeros(count, dtype=np.int64)  # Geometric(1 - exp(-1))
        going = np.arange(count)
        while going.size:
            ones = np.ones(going.size, dtype=np.int64)
            more = _bernoulli_exp_below_one(ones, ones)
            high[going[more]] += 1
            going = going[more]
        magnitude = low + scale * high
        negative = _uniform_below(np.full(count, 2, dtype=np.int64)) == 1
        accept &= ~(negative & (magnitude == 0))  # +0 and -0 are one outcome
        out[pending[accept]] = np.where(negative, -magnitude, magnitude)[accept]
        pending = pending[~accept]
    return out


def discrete_gaussian(variance: int, size: int) -> np.ndarray:
    """`size` independent draws (int64) of the discrete Gaussian with
    P(x) proportional to exp(-x^2 / (2 variance)) (Algorithm 3): a discrete
    Laplace of scale floor(sigma) + 1, kept with probability
    exp(-(|y| - variance / scale)^2 / (2 variance))."""
    if variance <= 0:
        return np.zeros(size, dtype=np.int64)
    scale = math.isqrt(variance) + 1
    out = np.empty(size, dtype=np.int64)
    pending = np.arange(size)
    while pending.size:
        candidates = _discrete_laplace(scale, pending.size)
        # gamma = (|y| scale - variance)^2 / (2 variance scale^2), exactly
        largest = int(np.abs(candidates).max(initial=0)) * scale + variance
        offsets = _exact(np.abs(candidates), largest**2) * scale - variance
        denominator = 2 * variance * scale * scale
        denominators = _exact(np.full(pending.size, denominator, dtype=object), denominator)
        keep = _bernoulli_exp(offsets * offsets, denominators)
        out[pending[keep]] = candidates[keep]
        pending = pending[~keep]
    return out

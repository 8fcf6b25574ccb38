"""Clipping onto the grid, the discrete Gaussian, the noise that protects
each contributor and its accounting; the leakage measures on known cases,
and on the shipped checkpoint fine-tuned on a canary, with and without DP."""

from __future__ import annotations

import math
import os
import random
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from models.checkpoint import served_model, shipped_tokenizer
from models.transformer import Transformer, flat_parameters, set_flat_parameters, train
from parties.errors import AirlockError
from protocols import patients
from protocols.federated import dp, leakage
from protocols.federated.messages import Settings
from protocols.federated.secagg import SCALE
from tests.generators import assert_drawn_from_the_os


def test_clipping_bounds_the_l2_norm_on_the_grid_and_leaves_small_updates_alone() -> None:
    update = np.full(10_000, 0.05)  # norm 5
    clipped = dp.clip_to_grid(update, 1.0)
    assert clipped.dtype == np.int64
    # rounding onto the grid cannot push it past the bound: sensitivity is clip * SCALE
    assert 0.99 * SCALE < np.linalg.norm(clipped) <= SCALE
    small = update / 100  # norm 0.05
    np.testing.assert_array_equal(dp.clip_to_grid(small, 1.0), np.round(small * SCALE))
    with pytest.raises(AirlockError, match="below the fixed-point rounding error"):
        dp.clip_to_grid(np.zeros(10**8 // 4, dtype=np.float32), 1e-3)


@pytest.mark.parametrize("variance", [3, 2317**2])
def test_the_discrete_gaussian_is_integer_centred_and_of_its_variance(variance: int) -> None:
    samples = dp.discrete_gaussian(variance, 200_000)
    assert samples.dtype == np.int64
    sigma = math.sqrt(variance)
    # mean within 5 standard errors; variance within 2% (its standard error is 0.3%)
    assert abs(samples.mean()) < 5 * sigma / math.sqrt(samples.size)
    assert samples.var() == pytest.approx(variance, rel=0.02)
    assert len(np.unique(samples[:1000])) > (20 if variance > 100 else 5)  # not a constant
    np.testing.assert_array_equal(dp.discrete_gaussian(0, 5), np.zeros(5))


def test_the_discrete_gaussian_matches_its_probabilities() -> None:
    variance, count = 2, 200_000
    samples = dp.discrete_gaussian(variance, count)
    values = np.arange(-6, 7)
    expected = np.exp(-(values**2) / (2 * variance))
    expected *= count / expected.sum()
    observed = np.array([(samples == v).sum() for v in values])
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    assert chi2 < 40  # 12 degrees of freedom: p < 1e-4 past 40


def test_the_noise_is_drawn_from_the_operating_systems_csprng() -> None:
    """The sampler's uniform draws come from os.urandom: the noise is new
    under the same seeds of torch's, numpy's and `random`'s generators, and
    the same under the same os.urandom bytes (int64 bounds, and the Python
    ints of a variance whose rejection steps pass 2^63)."""
    assert_drawn_from_the_os(
        lambda: [dp.discrete_gaussian(variance, 256) for variance in (3, 2317**2, 10**13)]
    )


def test_the_noise_protecting_each_contributor_is_the_others_noise() -> None:
    # t shares of variance (z C)^2 / (t - 1): any t - 1 of them give z C
    variance = dp.share_variance(1.5, 0.1, 3)
    assert variance == math.ceil((1.5 * 0.1 * SCALE) ** 2 / 2)
    three = {"a": variance, "b": variance, "c": variance}
    assert dp.round_multiplier(three, 0.1) == pytest.approx(1.5, rel=1e-6)
    four = {**three, "d": variance}
    assert dp.round_multiplier(four, 0.1) == pytest.approx(1.5 * math.sqrt(3 / 2), rel=1e-6)
    # a survivor that added less protects the others less: the weakest one counts
    uneven = {**three, "c": 0}
    assert dp.round_multiplier(uneven, 0.1) == pytest.approx(1.5 / math.sqrt(2), rel=1e-6)
    assert dp.round_multiplier({"a": variance}, 0.1) == 0


def test_epsilon_grows_with_rounds_and_shrinks_with_noise() -> None:
    low_noise, high_noise = dp.Accountant(1e-5), dp.Accountant(1e-5)
    low = [low_noise.add_round(0.8) for _ in range(4)]
    high = [high_noise.add_round(2.0) for _ in range(4)]
    assert low == sorted(low) and high == sorted(high)
    assert all(h < lo for h, lo in zip(high, low, strict=True))
    # one Gaussian mechanism with multiplier 2 at delta 1e-5: between 1 and 3
    assert 1.0 < high[0] < 3.0
    # a round without noise leaves no finite epsilon, then or later
    unbounded = dp.Accountant(1e-5)
    assert [unbounded.add_round(m) for m in (2.0, 0.0, 2.0)][1:] == [math.inf, math.inf]


def test_auc_and_tpr_on_known_scores() -> None:
    separated = leakage._auc(np.array([3.0, 4.0]), np.array([1.0, 2.0]))
    assert separated == 1.0
    assert leakage._auc(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.5
    negatives = np.arange(100, dtype=float)
    assert leakage._tpr_at(np.array([99.5, 150.0, 10.0]), negatives, 0.01) == pytest.approx(2 / 3)


SAMPLES = 200  # exposure can show at most log2(201) = 7.65 bits


@dataclass(frozen=True)
class FineTuned:
    name: str
    secret: str
    update: np.ndarray  # what fine-tuning moved the checkpoint's weights by
    before: float  # the canary's exposure in the checkpoint


def with_update(update: np.ndarray) -> Transformer:
    model = served_model()
    set_flat_parameters(model, flat_parameters(model) + torch.tensor(update, dtype=torch.float32))
    return model


@pytest.fixture(scope="module")
def fine_tuned() -> FineTuned:
    """A few steps of fine-tuning the shipped checkpoint, a canary 10 times among 30 notes."""
    name, secret = patients.canary_secret("tester", 0)
    records = patients.training_records(
        patients.patient_notes("tester", 30), [patients.canary(name, secret)], 10
    )
    tokenizer = shipped_tokenizer()
    model = served_model()
    before = leakage.exposure(model, name, secret, SAMPLES)
    start = flat_parameters(model)
    train(model, [tokenizer.encode(r) for r in records], steps=10, learning_rate=5e-3, batch=8)
    update = (flat_parameters(model) - start).numpy().astype(np.float64)
    return FineTuned(name, secret, update, before)


def test_a_memorised_canary_is_exposed_and_an_unseen_one_is_not(fine_tuned: FineTuned) -> None:
    model = with_update(fine_tuned.update)
    inserted = leakage.exposure(model, fine_tuned.name, fine_tuned.secret, SAMPLES)
    control = leakage.exposure(model, *patients.canary_secret("tester", 1000), SAMPLES)
    assert fine_tuned.before < 5  # the checkpoint has never seen it
    assert inserted == pytest.approx(leakage.max_exposure(SAMPLES))  # ranked first
    assert control < inserted - 2
    assert leakage.max_exposure(SAMPLES) == pytest.approx(math.log2(SAMPLES + 1))


def test_dp_leaves_the_memorised_canary_at_the_baseline(
    fine_tuned: FineTuned, monkeypatch: pytest.MonkeyPatch
) -> None:
    # one secagg+dp round of 3 contributors at the default settings, as
    # update.local_update and aggregator.aggregate compute it: the update
    # that exposes the canary, clipped onto the grid, plus each
    # contributor's share of the noise, averaged. The noise's uniform draws
    # are seeded here so that the test is repeatable.
    monkeypatch.setattr(os, "urandom", random.Random(0).randbytes)
    s = Settings()
    variance = dp.share_variance(s.noise_multiplier, s.clip, s.threshold)
    size = fine_tuned.update.size
    total = dp.clip_to_grid(fine_tuned.update, s.clip)
    total += sum(dp.discrete_gaussian(variance, size) for _ in range(3))
    model = with_update(total / SCALE / 3)
    exposed = leakage.exposure(model, fine_tuned.name, fine_tuned.secret, SAMPLES)
    control = leakage.exposure(model, *patients.canary_secret("tester", 1000), SAMPLES)
    # an unseen canary's exposure is about 1.44 bits on average
    assert exposed < 3 and control < 3

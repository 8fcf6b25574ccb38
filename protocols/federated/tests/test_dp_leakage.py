"""Clipping, noise and accounting; the leakage measures on known cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from models.charlm import CharTransformer, train_steps
from protocols.federated import data, dp, leakage


def test_clip_bounds_the_l2_norm_and_leaves_small_updates_alone() -> None:
    update = np.full(100, 0.5, dtype=np.float32)  # norm 5
    clipped, norm = dp.clip(update, 1.0)
    assert norm == pytest.approx(5.0) and np.linalg.norm(clipped) == pytest.approx(1.0, rel=1e-5)
    small, _ = dp.clip(update / 10, 1.0)
    np.testing.assert_array_equal(small, update / 10)


def test_noise_shares_of_threshold_contributors_sum_to_the_mechanism_noise() -> None:
    # t shares of std z*C/sqrt(t) sum to std z*C
    total = sum(dp.noise_share(200_000, 1.5, 0.1, 4) for _ in range(4))
    assert np.std(total) == pytest.approx(0.15, rel=0.02)


def test_epsilon_grows_with_rounds_and_shrinks_with_noise() -> None:
    low_noise, high_noise = dp.Accountant(1e-5), dp.Accountant(1e-5)
    low = [low_noise.add_round(0.8) for _ in range(4)]
    high = [high_noise.add_round(2.0) for _ in range(4)]
    assert low == sorted(low) and high == sorted(high)
    assert all(h < lo for h, lo in zip(high, low, strict=True))
    # one Gaussian mechanism with multiplier 2 at delta 1e-5: between 1 and 3
    assert 1.0 < high[0] < 3.0


def test_auc_and_tpr_on_known_scores() -> None:
    separated = leakage._auc(np.array([3.0, 4.0]), np.array([1.0, 2.0]))
    assert separated == 1.0
    assert leakage._auc(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.5
    negatives = np.arange(100, dtype=float)
    assert leakage._tpr_at(np.array([99.5, 150.0, 10.0]), negatives, 0.01) == pytest.approx(2 / 3)


def test_a_memorised_canary_is_exposed_and_an_unseen_one_is_not() -> None:
    torch.manual_seed(0)
    name, secret = data.canary_secret("tester", 0)
    notes = data.patient_notes("tester", 30)
    text = data.training_text(notes, [data.canary(name, secret)], 40, "tester")
    model = CharTransformer(seed=0)
    train_steps(model, text, steps=150, learning_rate=1e-2)
    samples = 200
    inserted = leakage.exposure(model, name, secret, samples)
    control = leakage.exposure(model, *data.canary_secret("tester", 1000), samples)
    assert inserted == pytest.approx(leakage.max_exposure(samples))  # ranked first
    assert control < inserted - 2
    assert leakage.max_exposure(samples) == pytest.approx(math.log2(201))

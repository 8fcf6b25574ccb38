"""Inside a round, between real parties: the unmasked sum is the sum of
what the contributors masked; each refusal of the consistency and unmasking
steps is reached in the middle of a round, for its own reason; clipping and
noise are there at their magnitude, and epsilon is what the survivors'
reported noise gives."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from dp_accounting import GaussianDpEvent
from dp_accounting.rdp import RdpAccountant

from models.transformer import flat_parameters
from protocols.federated import dp
from protocols.federated.contributor import ContributorPhase
from protocols.federated.secagg import SCALE
from protocols.federated.tests.federation import (
    CREATOR,
    ROUND,
    aggregator_round,
    aggregator_state,
    contributor_names,
    contributor_state,
    federation,
    play,
    prepare,
    refusal,
    round_of,
    sent_sum,
)


def _weights(started) -> torch.Tensor:
    return flat_parameters(aggregator_state(started).trained("a test").model).clone()


def test_secure_aggregation_unmasks_exactly_the_sum_of_the_masked_updates(tmp_path: Path) -> None:
    with federation(tmp_path, 3, mode="secagg", threshold=2) as started:
        prepare(started)
        before = _weights(started)
        record = play(started, ROUND)
        names = contributor_names(started)
        assert record["survivors"] == names and record["discarded"] is None
        total = sent_sum(started, names, 8.0)
        assert np.linalg.norm(total) > 0.1  # the contributors trained: there is a sum
        delta = (_weights(started) - before).numpy().astype(np.float64)
        np.testing.assert_allclose(delta, total / len(names), atol=1e-6)


def test_consistency_and_unmasking_refusals_mid_round(tmp_path: Path) -> None:
    with federation(tmp_path, 3, mode="secagg", threshold=2) as started:
        prepare(started)
        play(started, ROUND[:3])  # masked updates collected; nothing signed yet
        survivors = ["hospital_1", "hospital_2", "hospital_3"]
        unmask = {"survivors": survivors, "dropped": [], "signatures": {}}
        # out of step: unmasking follows the consistency check
        assert "the unmask request needs the role to be signed, it is update_sent" in refusal(
            started, "hospital_1", "unmask_request", unmask, "OUT_OF_STEP"
        )
        # a survivor set must hold the contributor and be large enough
        for wrong, reason in (
            (["hospital_2", "hospital_3"], "must hold this contributor"),
            (["hospital_1", "model_creator"], "only its round's participants"),
            (["hospital_1"], "1 survivors cannot meet threshold 2"),
        ):
            detail = refusal(started, "hospital_1", "consistency_request", {"survivors": wrong})
            assert reason in detail
        play(started, ("check_consistency",))
        signatures = aggregator_round(started).signatures
        assert sorted(signatures) == survivors
        assert round_of(started, "hospital_1").signed == frozenset(survivors)
        # one set signed a round: a second request, for another set, is refused
        assert "the consistency request needs the role to be update_sent, it is signed" in (
            refusal(
                started,
                "hospital_1",
                "consistency_request",
                {"survivors": survivors[:2]},
                "OUT_OF_STEP",
            )
        )
        cases: list[tuple[dict[str, Any], str]] = [
            # the aggregator now says hospital_3 dropped: not the set hospital_1 signed
            (
                {"survivors": survivors[:2], "dropped": ["hospital_3"], "signatures": signatures},
                "the survivors differ from the set this contributor signed",
            ),
            (
                {"survivors": survivors, "dropped": ["hospital_9"], "signatures": signatures},
                "survivors and dropped do not partition",
            ),
            (
                {"survivors": survivors, "dropped": [], "signatures": {}},
                "0 survivor(s) signed this survivor set, 2 needed",
            ),
            (  # its own signature alone, and one moved to another name
                {
                    "survivors": survivors,
                    "dropped": [],
                    "signatures": {
                        "hospital_1": signatures["hospital_1"],
                        "hospital_2": signatures["hospital_3"],
                    },
                },
                "1 survivor(s) signed this survivor set, 2 needed",
            ),
        ]
        for meta, reason in cases:
            assert reason in refusal(started, "hospital_1", "unmask_request", meta)
        # not a map of signatures at all: the message definition's to refuse
        garbled = {"survivors": survivors, "dropped": [], "signatures": "all of them"}
        assert "signatures: Input should be an object" in refusal(
            started, "hospital_1", "unmask_request", garbled, "BAD_PAYLOAD"
        )
        assert contributor_state(started, "hospital_1").phase is ContributorPhase.SIGNED
        # the round goes on: all three reveal their shares, the sum unmasks
        record = play(started, ("aggregate",))
        assert record["survivors"] == survivors and record["discarded"] is None
        assert contributor_state(started, "hospital_1").phase is ContributorPhase.UNMASKED
        again = {"survivors": survivors, "dropped": [], "signatures": signatures}
        # unmasking shares are given once a round
        assert "the unmask request needs the role to be signed, it is unmasked" in refusal(
            started, "hospital_1", "unmask_request", again, "OUT_OF_STEP"
        )


def test_contributors_check_the_key_directory_against_their_own_settings(tmp_path: Path) -> None:
    with federation(tmp_path, 3, mode="secagg", threshold=2) as started:
        prepare(started)
        play(started, ROUND[:1])
        keys = aggregator_round(started).keys
        participants = {n: k.to_json() for n, k in keys.items() if k is not None}
        stated = {"threshold": 3, "participants": participants}
        assert "the aggregator states threshold 3, this contributor is configured with 2" in (
            refusal(started, "hospital_1", "key_directory", stated)
        )
        # the aggregator cannot enrol itself to be sent shares
        creator_keys = {**participants["hospital_2"], "party": CREATOR}
        stranger = {"threshold": 2, "participants": {**participants, CREATOR: creator_keys}}
        assert "parties that are not contributors: ['model_creator']" in refusal(
            started, "hospital_1", "key_directory", stranger
        )


def test_clipping_bounds_what_each_contributor_sends(tmp_path: Path) -> None:
    clip = 0.05
    with federation(
        tmp_path, 3, mode="secagg+dp", threshold=2, clip=clip, noise_multiplier=0.0
    ) as started:
        prepare(started)
        before = _weights(started)
        record = play(started, ROUND)
        names = contributor_names(started)
        for name in names:
            sent = sent_sum(started, [name], 8.0)
            # training moves the weights far more than the clip: each is clipped to
            # it, less the grid's rounding slack of its 0.8 M coordinates (clip_to_grid)
            slack = (math.sqrt(sent.size) / 2 + 1) / SCALE
            assert clip - 2 * slack < np.linalg.norm(sent) <= clip
        delta = (_weights(started) - before).numpy()
        assert np.linalg.norm(delta) <= clip + 1e-6
        assert record["epsilon"] == math.inf  # no noise, no finite epsilon


def test_noise_is_there_and_epsilon_is_what_the_survivors_noise_gives(tmp_path: Path) -> None:
    clip, multiplier, threshold = 0.05, 1.0, 2
    with federation(
        tmp_path, 3, mode="secagg+dp", threshold=threshold, clip=clip, noise_multiplier=multiplier
    ) as started:
        prepare(started)
        before = _weights(started)
        record = play(started, ROUND)
        names = contributor_names(started)
        variances = {n: round_of(started, n).noise_variance for n in names}
        expected = (multiplier * clip * SCALE) ** 2 / (threshold - 1)
        assert all(expected <= v < expected + 1 for v in variances.values())
        # each sent update is its noise (the clipped signal is ~1/900 of it per coordinate)
        for name in names:
            assert np.std(sent_sum(started, [name], 8.0)) == pytest.approx(
                math.sqrt(expected) / SCALE, rel=0.02
            )
        delta = (_weights(started) - before).numpy().astype(np.float64)
        sum_std = math.sqrt(3 * expected) / SCALE
        assert np.std(delta * 3) == pytest.approx(sum_std, rel=0.02)
        # epsilon, independently: each contributor is protected by the others' noise
        weakest = min(sum(variances.values()) - v for v in variances.values())
        effective = math.sqrt(weakest) / (clip * SCALE)
        assert effective == pytest.approx(multiplier * math.sqrt(2), rel=1e-6)
        accountant = RdpAccountant()
        accountant.compose(GaussianDpEvent(effective))
        assert record["noise_multiplier"] == round(effective, 4)
        assert record["epsilon"] == round(accountant.get_epsilon(1e-5), 3)
        # a second round composes
        play(started, ROUND, number=2)
        accountant.compose(
            GaussianDpEvent(
                dp.round_multiplier({n: round_of(started, n).noise_variance for n in names}, clip)
            )
        )
        assert aggregator_state(started).epsilon == pytest.approx(
            accountant.get_epsilon(1e-5), rel=1e-9
        )

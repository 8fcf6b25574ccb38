"""A malicious aggregator against honest contributors, between real parties:
lying about who dropped out to unmask one contributor (Bonawitz et al.'s
consistency check and a majority threshold stop it), and stating weaker
privacy settings than the scenario's (each contributor's own settings stop it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from parties.log_check import read_entries
from protocols.federated.contributor import ContributorPhase
from protocols.federated.scenario import federated_scenario
from protocols.federated.secagg import SecAggError
from protocols.federated.tests.federation import (
    CREATOR,
    FAST,
    act,
    contributor_names,
    contributor_state,
    federation,
    prepare,
)
from tests.helpers import failing, result_of, run_text, with_adversary


def _admitted_steps(directory: Path, party: str) -> list[str]:
    entries, problems = read_entries(directory, party)
    assert not problems
    return [e["step"] for e in entries if e["direction"] == "in" and e["outcome"] == "admitted"]


def test_a_threshold_of_half_the_contributors_is_refused_by_every_contributor(
    tmp_path: Path,
) -> None:
    # 4 contributors, t = 2: two disjoint pairs could each sign a different survivor set
    params = {"mode": "secagg", "rounds": 1, "threshold": 2, **FAST}
    run = run_text(federated_scenario(4, params, notes=10), tmp_path / "run")
    assert run.failure is not None
    assert "threshold 2 does not fit 4 contributors" in run.failure
    with federation(
        tmp_path / "parties", 4, aggregator="split_view", mode="secagg", threshold=2
    ) as started:
        for name in contributor_names(started):
            with pytest.raises(SecAggError, match="threshold 2 does not fit 4 contributors"):
                act(started, name, "prepare_data")
        act(started, CREATOR, "load_model")
        # an aggregator that pushes on anyway is refused at the round's start
        attack = act(started, CREATOR, "split_view_round")
        assert attack["recovered_sha256"] is None
        assert "0 contributor(s) remain" in attack["aborted"]
        assert attack["aborted"].count("threshold 2 does not fit 4 contributors") == 4
        assert "round_keys" not in _admitted_steps(tmp_path / "parties" / CREATOR, CREATOR)


def test_a_split_view_of_the_survivors_reveals_no_share(tmp_path: Path) -> None:
    with federation(tmp_path, 4, aggregator="split_view", mode="secagg", threshold=3) as started:
        prepare(started)
        attack = act(started, CREATOR, "split_view_round")
        target = attack["target"]
        assert target == "hospital_4" and attack["told_dropped"] == ["hospital_1", "hospital_2"]
        # each signed the one set it was told, then none saw t signatures over it
        assert attack["refused_to_sign"] == {}
        assert sorted(attack["refused_to_unmask"]) == contributor_names(started)
        for reason in attack["refused_to_unmask"].values():
            assert "2 survivor(s) signed this survivor set, 3 needed" in reason
            assert "the aggregator may have told contributors different survivor sets" in reason
        assert attack["revealed"] == {} and attack["recovered_sha256"] is None
        assert "unmask_shares" not in _admitted_steps(tmp_path / CREATOR, CREATOR)
        unmasked = ContributorPhase.UNMASKED
        phases = [contributor_state(started, n).phase for n in contributor_names(started)]
        assert unmasked not in phases


@pytest.mark.parametrize(
    ("adversary", "action", "stated"),
    [
        ("plain_mode_request", "plain_mode_round", "mode='plain'"),
        ("weaker_dp_request", "weaker_dp_round", "clip=0.2, noise_multiplier=0.25"),
    ],
)
def test_contributors_refuse_weaker_settings_than_their_own(
    tmp_path: Path, adversary: str, action: str, stated: str
) -> None:
    params = {"mode": "secagg+dp", "rounds": 1, "threshold": 2, "clip": 0.05, **FAST}
    text = with_adversary(federated_scenario(3, params, notes=10), CREATOR, adversary)
    run = run_text(text, tmp_path / "run")
    assert run.failure is None and run.audit.ok, failing(run.audit)
    attack = result_of(run, CREATOR, action)
    assert attack["outcome"].startswith(
        "round 2 aborted after key advertisement: 0 contributor(s) remain"
    )
    own = {
        "plain_mode_request": "mode='secagg+dp'",
        "weaker_dp_request": "clip=0.05, noise_multiplier=1.0",
    }[adversary]
    for reason in attack["dropped"].values():
        assert f"the aggregator states {stated} but this contributor is configured with {own}" in (
            reason
        )
    # round 1 (honest) sent masked updates; round 2 got nothing from anyone
    entries, _ = read_entries(tmp_path / "run" / "parties" / CREATOR, CREATOR)
    round_two = {e["step"] for e in entries if e.get("session") == "round-2"}
    assert round_two == {"round_start"}
    forms = {f for a, f in run.audit.visibility[CREATOR].items() if a.startswith("update:")}
    assert forms == {"masked"}

"""A malicious aggregator against honest contributors, between real parties:
lying about who dropped out to unmask one contributor (Bonawitz et al.'s
consistency check and a majority threshold stop it), and stating weaker
privacy settings than the scenario's (each contributor's own settings stop it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from parties.errors import Refused
from parties.labels import Form, Label
from parties.log_check import read_entries
from parties.payload import pack
from protocols.federated.contributor import ContributorPhase
from protocols.federated.messages import Aborted, settings
from protocols.federated.scenario import federated_scenario
from protocols.federated.secagg import SecAggError
from protocols.federated.tests.federation import (
    CONTROL,
    CREATOR,
    FAST,
    act,
    aggregator_state,
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


def test_contributors_refuse_a_rerun_round(tmp_path: Path) -> None:
    """The aggregator reruns round 1 from its model, under number 1 and then
    under 2 (rerun_round): every contributor refuses both, so no update
    from one model is masked twice. On the code before the contributors'
    round checks, all three joined both reruns."""
    params = {"mode": "secagg+dp", "rounds": 2, "threshold": 2}
    with federation(tmp_path, 3, aggregator="rerun_round", **params) as started:
        prepare(started)
        for action in ("start_round", "share_keys", "collect_updates"):
            act(started, CREATOR, action, round=1)
        act(started, CREATOR, "check_consistency", round=1)
        act(started, CREATOR, "aggregate", round=1)
        attack = act(started, CREATOR, "rerun_round")
        again, next_number = attack["rounds"]["1"], attack["rounds"]["2"]
        for played in (again, next_number):
            assert "0 contributor(s) remain" in played["outcome"]
            assert sorted(played["dropped"]) == contributor_names(started)
        for reason in again["dropped"].values():
            assert "round 1 is not a new round of this contributor's 2" in reason
        for reason in next_number["dropped"].values():
            assert "sent an update from this model in an earlier round" in reason
        for name in contributor_names(started):
            assert contributor_state(started, name).updates_sent == 1
            result = act(started, name, "evaluate_leakage")
            assert result["updates_sent"] == 1 and result["own_epsilon"] is not None


def test_a_contributor_joins_no_round_past_its_own_number_or_unbound_to_it(
    tmp_path: Path,
) -> None:
    with federation(tmp_path, 3, mode="secagg", threshold=2, rounds=1) as started:
        prepare(started)
        # its own settings allow one round: a second is refused, whatever its model
        with pytest.raises(Aborted, match="0 contributor"):
            act(started, CREATOR, "start_round", round=2)
        dropped = aggregator_state(started).round
        assert dropped is not None and len(dropped.dropped) == 3
        for reason in dropped.dropped.values():
            assert "round 2 is not a new round of this contributor's 1" in reason
        # a round whose context names another round is refused
        meta = {
            "round": 1,
            "context": "model_creator/2/00",
            "settings": settings(started["hospital_1"].settings["federated"]).model_dump(),
        }
        model = aggregator_state(started).trained("a test").model.to_bytes()
        labels = [*CONTROL, Label("weights:model_creator", Form.PLAINTEXT)]
        with pytest.raises(Refused, match="does not bind round 1"):
            started[CREATOR].deliver(
                "hospital_1", "federated", "round_start", labels, pack(meta, model), "round-1"
            )

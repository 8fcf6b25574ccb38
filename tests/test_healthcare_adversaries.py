"""The roadmap's adversaries against the healthcare pipeline, each a built-in
scenario `healthcare-<name>` with its documented outcome: prevented at a
boundary (and listed as blocked), refused by a party, or measured.

Each is a whole run on Ray (a minute or two on 2 cores): `pytest -m slow`."""

from __future__ import annotations

import statistics
from typing import Any

import pytest

from orchestrator.launcher import RunResult, run_scenario
from orchestrator.scenario import load_scenario, parse_scenario
from orchestrator.verify import verify_run
from protocols.attestation.verify import COUNTERSIGNED_CLAIM
from tests.helpers import failing, result_of

pytestmark = pytest.mark.slow


def run(name: str, tmp_path_factory: pytest.TempPathFactory, text: str | None = None) -> RunResult:
    scenario, builtin = load_scenario(name)
    if text is not None:
        scenario = parse_scenario(text, name)
    out = tmp_path_factory.mktemp(name) / "run"
    result = run_scenario(scenario, text or builtin, out=out)
    assert result.audit.ok, failing(result.audit)
    return result


def of(result: RunResult, protocol: str, party: str, action: str) -> dict[str, Any]:
    (found,) = [
        a["result"]
        for a in result.actions
        if (a["protocol"], a["party"], a["action"]) == (protocol, party, action)
    ]
    return dict(found)


def test_prompt_hungry_deployer_is_stopped_at_the_boundaries(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    result = run("healthcare-prompt-hungry", tmp_path_factory)
    assert result.failure is None
    hungry = result_of(result, "deployer", "exfiltrate_prompts")
    assert hungry["kept"] == 2 and hungry["opened"] == 0
    # no rule lets a deployer send the verifier a prompt, in any form: the
    # ciphertext is refused at the verifier's boundary, the "plaintext"
    # withheld by the deployer's own
    refusals = [attempt["refused"] for attempt in hungry["forwarded"]]
    assert refusals == ["RULE_NOT_PERMITTED"] * 4
    forwarded = [b for b in result.audit.blocked if b["from"] == "deployer"]
    assert sorted(b["withheld"] for b in forwarded) == [False, False, True, True]
    assert all(b["to"] == "verifier" for b in forwarded)
    seen = result.audit.visibility["deployer"]
    assert seen["prompt:alice"] == "ciphertext"
    assert len(result_of(result, "alice", "ask")["answers"]) == 2  # service went on


def test_curious_database_learns_nothing_beyond_pir_queries(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    result = run("healthcare-curious-db", tmp_path_factory)
    assert result.failure is None
    analysis = result_of(result, "guidelines_a", "analyse_queries")
    assert analysis["batches"] >= 2 and analysis["terms_searched"] > 10
    assert analysis["terms_found"] == []
    assert result.audit.visibility["guidelines_a"]["query:alice"] == "share"


def test_model_swap_gets_no_weights_and_no_prompt(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    result = run("healthcare-model-swap", tmp_path_factory)
    released = of(result, "tee", "model_creator", "release_weights")
    assert released["released"] is False and "measurement" in released["refused"]
    asked = result_of(result, "alice", "ask")
    assert asked["answers"] == [] and len(asked["refused"]) == 2
    assert "weights:model_creator" not in result.audit.visibility["enclave"]


def test_a_poisoned_dataset_is_refused_before_training(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    result = run("healthcare-poisoned-data", tmp_path_factory)
    assert result.failure is None
    poisoned = result_of(result, "hospital_3", "attest_dataset")
    assert poisoned["exclusions_proved"] == [] and poisoned["exclusions_unprovable"]
    committed = result_of(result, "model_creator", "commit_model")
    assert committed["datasets"] == ["train:hospital_1", "train:hospital_2"]
    published = of(result, "federated", "model_creator", "publish_model")
    assert all(r["survivors"] == ["hospital_1", "hospital_2"] for r in published["rounds"])
    assert result_of(result, "hospital_3", "evaluate_leakage")["evaluated"] is False


def test_a_creator_committing_another_model_than_it_trained_fails_verify(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The creator commits the shipped checkpoint plus a tweak, naming the
    three hospitals' datasets, and serves it; each surviving hospital
    countersigned (and logged) the final model it was sent, another root."""
    result = run("healthcare-swapped-training", tmp_path_factory)
    assert result.failure is None
    published = of(result, "federated", "model_creator", "publish_model")
    assert published["countersigned_by"] == ["hospital_1", "hospital_2"]  # hospital_3 was killed
    committed = result_of(result, "model_creator", "commit_model")
    assert committed["swapped"] and committed["countersigned_by"] == []
    assert committed["datasets"] == [f"train:hospital_{i}" for i in (1, 2, 3)]
    for hospital in ("hospital_1", "hospital_2"):
        logged = result_of(result, hospital, "log_countersignature")
        assert logged["countersignature_logged"] and logged["rounds"] == [1, 2]
        assert logged["model_root"] == published["model_root"]
    served = of(result, "tee", "model_creator", "publish_model")["model_root"]
    assert served != published["model_root"]  # the enclave serves the swapped model
    failed = failing(verify_run(result.run_dir))
    assert set(failed) == {COUNTERSIGNED_CLAIM}, failed
    assert any("countersigned by 0 of the surviving" in f for f in failed[COUNTERSIGNED_CLAIM])


def test_extraction_through_the_enclave_with_and_without_dp(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """The same attack on a model trained with DP and without (mode = secagg):
    the hospitals' own measurement of exposure is higher without DP."""
    _, text = load_scenario("healthcare-extraction")
    without_dp = text.replace('mode = "secagg+dp"', 'mode = "secagg"')
    exposure = {}
    for label, scenario_text in (("dp", text), ("no-dp", without_dp)):
        result = run("healthcare-extraction", tmp_path_factory, scenario_text)
        assert result.failure is None
        attack = result_of(result, "alice", "extract_canaries")
        assert set(attack["completions"]) == {"hospital_1", "hospital_2", "hospital_3"}
        if label == "dp":
            assert attack["extracted"] == []
        measured = [
            bits
            for hospital in ("hospital_1", "hospital_2", "hospital_3")
            for bits in result_of(result, hospital, "evaluate_leakage")["exposure_bits"]
        ]
        exposure[label] = statistics.mean(measured)
    assert exposure["no-dp"] > exposure["dp"] + 1.0, exposure

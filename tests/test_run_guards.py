"""`airlock run` never passes vacuously (issue 34): coverage gaps are notes,
or failures under --strict (the default for built-in scenarios)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from orchestrator.launcher import _coverage_warnings
from orchestrator.scenario import BUILTIN_DIR, parse_scenario
from parties.roles import Role
from protocols import get_protocol
from tests.helpers import airlock

WALKTHROUGH = (BUILTIN_DIR / "walkthrough.toml").read_text()


def _coverage(run_dir: Path, *args: str) -> dict:
    audited = airlock("audit", str(run_dir), "--format", "json", *args)
    claims = json.loads(audited.stdout)["claims"]
    return next(c for c in claims if c["claim"].startswith("coverage"))


def test_a_guarantee_matching_no_asset_is_a_note_or_a_strict_failure(tmp_path: Path) -> None:
    scenario = tmp_path / "typo.toml"
    scenario.write_text(
        WALKTHROUGH + '\n[[guarantees]]\nname = "updates masked"\nasset = "updates:*"\n'
        'viewers = ["model_creator"]\nmax_form = "masked"\n'
    )
    run_dir = tmp_path / "run"
    done = airlock("run", str(scenario), "--in-process", "--out", str(run_dir))
    assert done.returncode == 0, done.stdout + done.stderr  # a file of one's own: not strict
    coverage = _coverage(run_dir)
    assert coverage["ok"] and "'updates:*' matched no asset" in coverage["notes"][0]["detail"]
    assert "no protocol names an asset of kind 'updates'" in coverage["notes"][0]["detail"]
    strict = airlock("run", str(scenario), "--in-process", "--strict", "--out", str(tmp_path / "s"))
    assert strict.returncode == 1, strict.stdout
    assert "updates:*" in strict.stdout and "some claims fail" in strict.stdout
    assert not _coverage(tmp_path / "s")["ok"]
    # the audit follows the run's own strictness, or --strict/--no-strict
    assert airlock("audit", str(tmp_path / "s")).returncode == 1
    assert airlock("audit", str(tmp_path / "s"), "--no-strict").returncode == 0
    assert airlock("audit", str(run_dir), "--strict").returncode == 1


def test_a_stage_whose_role_has_no_party_fails_strict(tmp_path: Path) -> None:
    """Without its data contributors, the walkthrough's commit_dataset runs at no party."""
    blocks = re.split(r"(?m)^(?=\[)", WALKTHROUGH)
    kept = [
        b
        for b in blocks
        if not b.startswith("[parties.hospital") and not ("[[canaries]]" in b and "train:" in b)
    ]
    scenario = tmp_path / "no-contributors.toml"
    scenario.write_text("".join(kept))
    done = airlock("run", str(scenario), "--in-process", "--strict", "--out", str(tmp_path / "r"))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    coverage = _coverage(tmp_path / "r")
    assert [f["detail"] for f in coverage["findings"]] == [
        "stage walkthrough: walkthrough action commit_dataset of the data_contributor "
        "ran at no party"
    ]


def test_federated_without_its_model_creator_is_found_by_its_plan() -> None:
    """The issue's case: contributors trained, nobody aggregated."""
    text = (BUILTIN_DIR / "federated.toml").read_text()
    text = text.replace('[parties.model_creator]\nrole = "model_creator"\nsite = "training"\n', "")
    scenario = parse_scenario(text, "no-creator.toml")
    assert "model_creator" not in scenario.parties
    plan = get_protocol("federated").plan(scenario.stage_settings()["federated"])
    actions = [
        {"stage": "train", "party": n, "action": action, "round": number}
        for role, action, number in plan
        if role == Role.DATA_CONTRIBUTOR
        for n in scenario.parties
    ]
    warnings = _coverage_warnings(scenario, actions, {"train": 1.0})
    assert (
        "stage train: federated action aggregate of the model_creator ran at no party "
        "in round 1" in warnings
    ), warnings


def test_a_protocol_that_never_ran_its_final_step() -> None:
    scenario = parse_scenario(WALKTHROUGH, "walkthrough.toml")
    plan = get_protocol("walkthrough").plan({})
    actions = [
        {"stage": "walkthrough", "party": n, "action": action, "round": number}
        for role, action, number in plan[:-1]
        for n in scenario.parties
        if scenario.role_of(n) == role
    ]
    assert _coverage_warnings(scenario, actions, {"walkthrough": 1.0}) == [
        "stage walkthrough: walkthrough action send_prompt (its final step) of the end_user "
        "ran at no party"
    ]
    assert _coverage_warnings(scenario, [], {}) == []  # not reached: the audit says so


def test_builtin_scenarios_run_strict_by_default(tmp_path: Path) -> None:
    done = airlock("run", "walkthrough", "--in-process", "--out", str(tmp_path / "r"))
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["strict"] is True and manifest["warnings"] == []
    assert manifest["stages_not_reached"] == []
    assert _coverage(tmp_path / "r")["ok"]

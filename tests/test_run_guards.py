"""`airlock run` never passes vacuously (issue 34): coverage gaps are notes,
or failures under --strict (the default for built-in scenarios)."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import ray

from orchestrator import cli, launcher
from orchestrator.launcher import _coverage_warnings
from orchestrator.scenario import BUILTIN_DIR, parse_scenario
from parties.errors import AirlockError
from parties.roles import Role
from parties.seed import set_run_seed
from protocols import get_protocol
from protocols.patients import canary_secret, patient_notes
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


def _main(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """`airlock ARGS` in this process: its exit status."""
    monkeypatch.setattr(sys, "argv", ["airlock", *args])
    with pytest.raises(SystemExit) as ended:
        cli.main()
    return int(ended.value.code or 0)


def test_too_little_free_memory_is_refused_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with pytest.raises(AirlockError, match="not enough free memory for 14 parties"):
        launcher.check_memory(14, available=2048)
    launcher.check_memory(14, available=64 * 1024)
    monkeypatch.setattr(launcher, "available_memory_mib", lambda: 512)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert _main(monkeypatch, "run", "walkthrough", "--out", str(tmp_path / "r")) == 2
    err = capsys.readouterr().err
    assert "not enough free memory for 6 parties" in err and "--skip-memory-check" in err
    assert "Traceback" not in err and not (tmp_path / "r").exists()


def test_a_ray_that_does_not_start_says_what_to_try_and_writes_no_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def timed_out(*args: object, **kwargs: object) -> None:
        raise Exception(  # what Ray 2.x raises when its raylet does not come up
            "The current node timed out during startup. This could happen because some "
            "of the raylet failed to startup or the GCS has become overloaded."
        )

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", timed_out)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    run_dir = tmp_path / "runs" / "r"
    args = ("run", "walkthrough", "--out", str(run_dir), "--skip-memory-check")
    assert _main(monkeypatch, *args) == 2
    err = capsys.readouterr().err
    assert "could not start an embedded Ray" in err and "timed out during startup" in err
    assert "ray stop" in err and "--in-process" in err
    assert "bug in Airlock" not in err and "Traceback" not in err
    assert not run_dir.exists() and not run_dir.parent.exists()


def test_the_seed_fixes_synthetic_data_and_is_recorded(tmp_path: Path) -> None:
    default = patient_notes("hospital_1", 5), canary_secret("hospital_1", 0)
    try:
        set_run_seed(7)
        seven = patient_notes("hospital_1", 5), canary_secret("hospital_1", 0)
        assert seven != default
        assert (patient_notes("hospital_1", 5), canary_secret("hospital_1", 0)) == seven
    finally:
        set_run_seed(0)
    assert (patient_notes("hospital_1", 5), canary_secret("hospital_1", 0)) == default
    done = airlock(
        "run", "walkthrough", "--in-process", "--seed", "7", "--out", str(tmp_path / "r")
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads((tmp_path / "r" / "manifest.json").read_text())["seed"] == 7
    bad = airlock("run", "walkthrough", "--in-process", "--seed", "-1")
    assert bad.returncode == 2 and "--seed" in bad.stderr and "Traceback" not in bad.stderr
    worse = airlock("run", "walkthrough", "--in-process", "--seed", "many")
    assert worse.returncode == 2 and "--seed" in worse.stderr

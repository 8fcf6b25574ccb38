"""Issue 34's tools: `--set` overrides, `airlock new`, `runs`, `diff`,
`--force`, `--version`, `trace --out -`, the Python API, and the docs'
examples of them, run as written."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.overrides import load_scenario_with
from orchestrator.rundirs import diff_runs, read_run
from orchestrator.scenario import BUILTIN_DIR, load_scenario
from parties.errors import ConfigError
from tests.helpers import ROOT, airlock


def _in(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`airlock ARGS` run in `cwd` (where its relative paths land)."""
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200", "PYTHONPATH": str(ROOT)},
    )


# -- --set ------------------------------------------------------------------


def test_set_overrides_a_stage_param_and_stamps_contributors() -> None:
    scenario, text = load_scenario_with(
        "federated", ["stages.train.params.rounds=5", "contributors=6"]
    )
    assert scenario.stages[0].params["rounds"] == 5
    contributors = [n for n in scenario.parties if scenario.role_of(n) == "data_contributor"]
    assert contributors == [f"hospital_{i}" for i in range(1, 7)]
    template = scenario.parties["hospital_1"].holdings_values
    assert scenario.parties["hospital_6"].holdings_values == template
    # the run directory keeps the scenario as it ran
    assert "--set contributors=6" in text.splitlines()[0]
    assert 'name = "hospital_6"' not in text and "[parties.hospital_6]" in text
    # fewer than there are: the first ones are kept; a stage by its index
    fewer, _ = load_scenario_with("federated", ["contributors=2", "stages.0.params.rounds=1"])
    assert sorted(fewer.parties) == ["hospital_1", "hospital_2", "model_creator"]
    assert fewer.stages[0].params["rounds"] == 1


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("stages.training.params.rounds=5", "--set stages.training.params.rounds: no stage"),
        ("stages.train.params.roundz=5", "stages[0].params.roundz: Extra inputs"),
        ('stages.train.params.rounds="five"', "stages[0].params.rounds: Input should be"),
        ("contributors=0", "--set contributors: expected a whole number from 1 to 1000"),
        ("contributors=many", "--set contributors: expected a whole number"),
        ("users=2", "--set users: the scenario has no end_user to copy"),
        ("nope=1", "--set nope: no key 'nope' in a scenario"),
        ("parties.mallory.role=end_user", "--set parties.mallory.role: no party 'mallory'"),
        ("run.action_timeout_s=-1", "run.action_timeout_s: Input should be greater than 0"),
        ("run.action_timeout_s.x=1", "run.action_timeout_s: Input should be a valid number"),
        ("name.x=1", "--set name.x: name is a value, not a table"),
        ("rounds", "--set 'rounds': expected KEY=VALUE"),
        ("a..b=1", "--set a..b: not a dotted key"),
    ],
)
def test_set_errors_name_the_key(assignment: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_scenario_with("federated", [assignment])
    assert message in str(caught.value)


def test_set_on_the_command_line_is_checked_before_anything_runs(tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = airlock(
        "run", "federated", "--in-process", "--out", str(out),
        "--set", "stages.training.params.rounds=5",
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--set stages.training.params.rounds: no stage 'training'" in done.stderr
    assert "Traceback" not in done.stderr and not out.exists()


# -- new, scenarios, did you mean, --version ------------------------------------


def test_new_writes_an_editable_copy(tmp_path: Path) -> None:
    done = _in(tmp_path, "new", "my-care", "--from", "healthcare")
    assert done.returncode == 0, done.stderr
    path = Path(done.stdout.strip())
    assert path == tmp_path / "my-care.toml"
    scenario, _ = load_scenario(str(path))
    assert scenario.name == "my-care"
    assert "# " in path.read_text()  # the built-in's comments kept
    again = _in(tmp_path, "new", "my-care", "--from", "healthcare")
    assert again.returncode == 2 and "exists; give --force" in again.stderr
    assert _in(tmp_path, "new", "my-care", "--force").returncode == 0
    bad = _in(tmp_path, "new", "My Care")
    assert bad.returncode == 2 and "NAME: 'My Care' is not a scenario name" in bad.stderr
    unknown = _in(tmp_path, "new", "x", "--from", "helthcare")
    assert unknown.returncode == 2 and "did you mean 'healthcare'?" in unknown.stderr
    assert "Traceback" not in bad.stderr + unknown.stderr


def test_scenarios_show_their_files_and_names_are_suggested() -> None:
    listing = airlock("scenarios")
    assert listing.returncode == 0
    assert str(BUILTIN_DIR / "federated.toml") in listing.stdout
    wrong = airlock("run", "federatd")
    assert wrong.returncode == 2 and "did you mean 'federated'?" in wrong.stderr


def test_version_and_help() -> None:
    version = airlock("--version")
    assert version.returncode == 0 and re.fullmatch(r"airlock \S+\n", version.stdout)
    top = airlock("--help", env={"COLUMNS": "100"})
    # docstrings reflowed: no sentence broken where the source line ended
    assert "Exit 0 when the run completed and every audited claim holds." in " ".join(
        line.strip(" │") for line in top.stdout.splitlines()
    ).replace("  ", " ")
    run_help = airlock("run", "--help").stdout
    assert "KEY=VALUE" in run_help and "HOST:PORT" in run_help and "DIR" in run_help
    assert "<bool>" not in run_help and "<bool>" not in top.stdout


# -- runs, diff, --force, trace --out -, the API ----------------------------------


def test_runs_diff_force_and_trace_to_stdout(default_run: Path, tmp_path: Path) -> None:
    other = tmp_path / "runs" / "b"
    done = airlock(
        "run", "walkthrough", "--in-process", "--out", str(other), "--set", "guarantees=[]"
    )
    assert done.returncode in (0, 1), done.stderr
    refused = airlock("run", "walkthrough", "--in-process", "--out", str(other))
    assert refused.returncode == 2 and "give --force to replace it" in refused.stderr
    not_a_run = tmp_path / "notes"
    not_a_run.mkdir()
    (not_a_run / "keep.txt").write_text("mine")
    kept = airlock("run", "walkthrough", "--out", str(not_a_run), "--force")
    assert kept.returncode == 2 and "never emptied" in kept.stderr
    assert (not_a_run / "keep.txt").exists()

    listing = airlock("runs", "--dir", str(tmp_path / "runs"))
    assert (
        listing.returncode == 0 and "walkthrough" in listing.stdout and str(other) in listing.stdout
    )

    changed = diff_runs(read_run(default_run), read_run(other))
    gone = {claim for claim, _, after in changed.claims if after == "absent"}
    guarantees = {c["claim"] for c in read_run(default_run).audit["claims"]}
    guarantees = {claim for claim in guarantees if claim.startswith("guarantee: ")}
    assert guarantees and guarantees <= gone
    shown = airlock("diff", str(default_run), str(other))
    assert shown.returncode == 0 and "claims: " in shown.stdout and "absent" in shown.stdout
    same = airlock("diff", str(default_run), str(default_run))
    assert "no change in visibility, claims or figures" in same.stdout
    missing = airlock("diff", str(default_run), str(tmp_path))
    assert missing.returncode == 2 and "is not a run directory" in missing.stderr

    trace = airlock("trace", str(default_run), "--out", "-")
    assert trace.returncode == 0
    assert json.loads(trace.stdout)["traceEvents"] and "standard output" in trace.stderr


def test_python_api(tmp_path: Path) -> None:
    import airlock as api

    run = api.run("walkthrough", out=tmp_path / "run", in_process=True)
    assert run.ok and run.outcome == "completed" and run.scenario == "walkthrough"
    assert all(run.claims.values())
    assert run.visibility["deployer"]["prompt:alice"] == "ciphertext"
    assert run.figure("delivered") == 1.0 and run.audit().ok
    assert api.open(run.path).claims == run.claims
    with pytest.raises(api.ConfigError, match="give --force"):
        api.run("walkthrough", out=run.path, in_process=True)
    with pytest.raises(api.ConfigError, match="--set stages.x.params.a: no stage 'x'"):
        api.run("walkthrough", set={"stages.x.params.a": 1})
    with pytest.raises(KeyError, match="no figure 'nothing'"):
        run.figure("nothing")


# -- the docs' examples, as written ---------------------------------------------


def _blocks(doc: str, language: str) -> list[str]:
    text = (ROOT / doc).read_text()
    return re.findall(rf"```{language}\n(.*?)```", text, re.DOTALL)


def test_docs_scenarios_command_line_examples_run(tmp_path: Path) -> None:
    (block,) = [b for b in _blocks("docs/scenarios.md", "sh") if "airlock new" in b]
    for line in block.strip().splitlines():
        words = shlex.split(line, comments=True)
        assert words[0] == "airlock"
        redirect = words.index(">") if ">" in words else None
        args = words[1:redirect]
        done = _in(tmp_path, *args)
        assert done.returncode == 0, (line, done.stdout, done.stderr)
        if redirect is not None:
            (tmp_path / words[redirect + 1]).write_text(done.stdout)
    assert json.loads((tmp_path / "trace.json").read_text())["traceEvents"]


@pytest.mark.slow  # a sweep of runs: about a minute on 2 cores
def test_docs_python_api_example_runs(tmp_path: Path) -> None:
    (code,) = _blocks("docs/python-api.md", "python")
    done = subprocess.run(
        [sys.executable, "-c", "import matplotlib; matplotlib.use('Agg')\n" + code],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "epsilon.svg").exists() and "update:hospital_1" in done.stdout


def test_logs_fold_labels_at_their_boundaries() -> None:
    from orchestrator.cli.logs import fold

    assert fold("weights:model_creator@digest", 30) == ["weights:model_creator@digest"]
    assert fold("weights:model_creator@digest", 21) == ["weights:model_creator", "@digest"]
    assert fold("weights:model_creator@digest", 14) == ["weights:", "model_creator", "@digest"]
    assert fold("prompt_receipt", 10) == ["prompt_", "receipt"]
    assert fold("abcdefghij", 4) == ["abcd", "efgh", "ij"]


def test_readme_inspection_examples_run(run_copy: Path, tmp_path: Path) -> None:
    """The README's `inspect and verify` commands, on a walkthrough run (the
    `airlock run` lines need a file or a cluster: the scenarios.md example
    above runs a file)."""
    (block,) = [b for b in _blocks("README.md", "sh") if "airlock audit runs/<run>" in b]
    fingerprint = json.loads((run_copy / "audit.json").read_text())["ca_fingerprint"]
    ran = 0
    for line in block.strip().splitlines():
        words = shlex.split(line, comments=True)
        assert words[0] == ".venv/bin/airlock"
        if words[1] == "run":
            continue
        args = [
            w.replace("runs/<run>", str(run_copy)).replace("sha256:HEX", fingerprint)
            for w in words[1:]
        ]
        done = _in(tmp_path, *args)
        assert done.returncode == 0, (line, done.stdout, done.stderr)
        ran += 1
    assert ran >= 7 and (tmp_path / "run.json").exists() and (run_copy / "report.html").exists()


def test_runs_before_any_run(tmp_path: Path) -> None:
    first = _in(tmp_path, "runs")
    assert first.returncode == 0 and "no runs yet" in first.stdout
    missing = _in(tmp_path, "runs", "--dir", "elsewhere")
    assert missing.returncode == 2 and "--dir elsewhere: no such folder" in missing.stderr

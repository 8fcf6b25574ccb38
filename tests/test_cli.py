"""The `airlock logs` and `airlock scenarios` commands, on an in-process run."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import airlock


def test_logs_table_and_json_show_the_same_entries(default_run: Path) -> None:
    table = airlock("logs", str(default_run), "--party", "alice")
    assert table.returncode == 0
    assert "withheld" in table.stdout and "GUARANTEE_VIOLATED" in table.stdout
    assert "prompt:alice@plaintext" in table.stdout
    lines = airlock("logs", str(default_run), "--format", "json").stdout.splitlines()
    entries = [json.loads(line) for line in lines]
    assert {e["party"] for e in entries} == {
        "hospital_1",
        "hospital_2",
        "model_creator",
        "deployer",
        "alice",
        "guidelines_db",
    }
    deployer = [e for e in entries if e["party"] == "deployer"]
    assert [e["index"] for e in deployer] == list(range(len(deployer)))


def test_logs_of_an_unknown_party_is_a_clear_error(default_run: Path) -> None:
    done = airlock("logs", str(default_run), "--party", "mallory")
    assert done.returncode == 2
    assert "no log for party 'mallory'" in done.stderr and "Traceback" not in done.stderr


def test_run_in_process_and_scenarios(tmp_path: Path) -> None:
    done = airlock("run", "walkthrough", "--in-process", "--out", str(tmp_path / "run"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "every claim holds" in done.stdout
    assert (tmp_path / "run" / "audit.json").exists()
    listing = airlock("scenarios")
    assert listing.returncode == 0 and "walkthrough" in listing.stdout

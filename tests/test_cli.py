"""The `airlock logs` and `airlock scenarios` commands, on an in-process run."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import duckdb

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


def test_logs_table_reads_at_80_columns(default_run: Path) -> None:
    for view in ((), ("--wide",)):
        done = airlock("logs", str(default_run), *view, env={"COLUMNS": "80"})
        assert done.returncode == 0, done.stderr
        # folded, never cut: no ellipsis, no line past the terminal
        assert "…" not in done.stdout
        assert max(len(line) for line in done.stdout.splitlines()) <= 80
    narrow = airlock("logs", str(default_run), "--party", "guidelines_db", env={"COLUMNS": "80"})
    assert "RULE_NOT_PERMITTED" in narrow.stdout and "← deployer" in narrow.stdout


def test_logs_json_loads_into_duckdb_with_one_call(default_run: Path, tmp_path: Path) -> None:
    path = tmp_path / "logs.jsonl"
    path.write_text(airlock("logs", str(default_run), "--format", "json").stdout)
    logged = [
        json.loads(line)
        for party in (default_run / "parties").iterdir()
        for line in (party / "log.jsonl").read_text().splitlines()
    ]
    table = duckdb.read_json(str(path))
    assert table.shape[0] == len(logged)
    # the refusals of the run, as SQL: what each receiver refused, what each sender withheld
    refusals = duckdb.sql(
        f"""SELECT party, "index", refusal FROM read_json_auto('{path}')
        WHERE (direction = 'in' AND outcome = 'refused') OR outcome = 'withheld'
        ORDER BY party"""
    ).fetchall()
    blocked = json.loads((default_run / "audit.json").read_text())["blocked"]
    assert refusals == sorted((b["party"], b["entry"], b["refusal"]) for b in blocked)
    reasons = duckdb.sql(
        f"""SELECT refusal, count(*) FROM read_json_auto('{path}')
        WHERE refusal <> '' GROUP BY refusal ORDER BY refusal"""
    ).fetchall()
    by_reason = Counter(e["refusal"] for e in logged if e["refusal"])
    assert reasons == sorted(by_reason.items())
    # the walkthrough's two blocked attempts: one withheld, one refused (logged on both sides)
    assert by_reason == {"GUARANTEE_VIOLATED": 1, "RULE_NOT_PERMITTED": 2}

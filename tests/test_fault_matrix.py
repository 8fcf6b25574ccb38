"""The fault matrix (tests/fault_matrix.py): a fixed sample in `make test`,
the whole of it with `pytest -m faults`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fault_matrix import Case, cases, check_case, run_case, sample
from tests.helpers import airlock

SMALL = ["walkthrough", "tee-inference", "private-rag", "mpc-inference", "federated", "attest"]
ALL = cases()
SAMPLE = sample(cases(SMALL), 2)


def test_the_matrix_is_every_role_and_every_action_of_every_builtin_scenario() -> None:
    walkthrough = [c for c in ALL if c.scenario == "walkthrough"]
    # 5 roles x 4 actions x (before, during)
    assert len({c.role for c in walkthrough}) == 5 and len(walkthrough) == 5 * 4 * 2
    assert {c.scenario for c in ALL} >= set(SMALL) | {"healthcare"}
    contributors = [c for c in ALL if c.scenario == "federated" and c.role == "data_contributor"]
    assert contributors and all(c.survivable for c in contributors)
    assert not any(c.survivable for c in ALL if c.protocol != "federated")


@pytest.mark.ray
@pytest.mark.parametrize("case", SAMPLE, ids=[c.id for c in SAMPLE])
def test_a_sample_of_the_fault_matrix(case: Case, tmp_path: Path) -> None:
    check_case(case, run_case(case, tmp_path))


@pytest.mark.faults
@pytest.mark.timeout(1000)
@pytest.mark.parametrize("case", ALL, ids=[c.id for c in ALL])
def test_the_fault_matrix(case: Case, tmp_path: Path) -> None:
    check_case(case, run_case(case, tmp_path))


def test_a_signal_fault_needs_the_parties_on_this_machine(tmp_path: Path) -> None:
    case = SAMPLE[0]
    path = tmp_path / "case.toml"
    path.write_text(case.toml())
    for where in (("--in-process",), ("--address", "127.0.0.1:1")):
        done = airlock("run", str(path), *where, "--out", str(tmp_path / "run"))
        assert done.returncode != 0 and "Traceback" not in done.stdout + done.stderr
        assert "faults[].signal: signals go to the parties' processes on this machine" in (
            done.stdout + done.stderr
        )
    bad = case.toml().replace('"SIGKILL"', '"SIGTERM"')
    path.write_text(bad)
    done = airlock("run", str(path), "--in-process")
    assert done.returncode != 0 and "faults.0.signal" in done.stdout + done.stderr

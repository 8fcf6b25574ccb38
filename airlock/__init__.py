"""Airlock's Python API: run a scenario, then read what each party saw.

    import airlock

    run = airlock.run("federated", set={"stages.train.params.rounds": 2}, in_process=True)
    run.ok, run.claims, run.visibility["model_creator"], run.answers, run.figures

`airlock.run` is `airlock run` without the terminal: the same checks (an
error is a `ConfigError` naming the key), the same run directory. `airlock.open`
reads a run directory written earlier.
"""

from __future__ import annotations

from airlock._run import Run, open, run
from orchestrator.overrides import COUNTS
from parties.errors import AirlockError, ConfigError

__all__ = ["COUNTS", "AirlockError", "ConfigError", "Run", "open", "run"]

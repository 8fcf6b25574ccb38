"""`airlock scenarios`: list the built-in scenarios."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from orchestrator.scenario import builtin_names, load_scenario


def scenarios() -> None:
    """List built-in scenarios, runnable as `airlock run NAME`."""
    table = Table()
    table.add_column("name")
    table.add_column("parties", justify="right")
    table.add_column("description")
    for name in builtin_names():
        scenario, _ = load_scenario(name)
        table.add_row(name, str(len(scenario.parties)), scenario.description)
    Console().print(table)

"""`airlock runs`: the runs in the runs folder, oldest first."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestrator.rundirs import list_runs


def runs(
    folder: Annotated[
        Path | None,
        typer.Option(
            "--dir", metavar="DIR", help="The folder holding run directories (default: runs)."
        ),
    ] = None,
) -> None:
    """List the runs in a folder: scenario, outcome, claims that hold, when it started."""
    console = Console()
    if folder is None:
        folder = Path("runs")
        if not folder.exists():
            console.print("no runs yet: `airlock run` writes them to runs/", highlight=False)
            return
    found = list_runs(folder)
    if not found:
        console.print(f"no runs in {escape(str(folder))}", highlight=False)
        return
    table = Table()
    for column in ("run", "scenario", "outcome", "claims", "started"):
        table.add_column(column, overflow="fold")
    for run in found:
        claims = f"{run.claims_ok}/{run.claims} hold" if run.audit else "not audited"
        style = "green" if run.outcome == "completed" and run.claims_ok == run.claims else "red"
        table.add_row(
            escape(str(run.path)),
            escape(run.scenario),
            f"[{style}]{escape(run.outcome)}[/]",
            claims,
            run.started[:19].replace("T", " "),
        )
    console.print(table)

"""`airlock diff RUN_A RUN_B`: what changed between two runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestrator.rundirs import diff_runs, read_run


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def diff(
    run_a: Annotated[Path, typer.Argument(metavar="RUN_A", help="The earlier run directory.")],
    run_b: Annotated[Path, typer.Argument(metavar="RUN_B", help="The later run directory.")],
) -> None:
    """Show what changed from RUN_A to RUN_B: what each party saw of each
    asset (the visibility matrix), which claims hold, and the figures the
    actions recorded. Reads audit.json and the manifest of each."""
    a, b = read_run(run_a), read_run(run_b)
    changed = diff_runs(a, b)
    console = Console()
    console.print(
        f"{escape(str(run_a))} ({escape(a.scenario)}, {a.outcome}) -> "
        f"{escape(str(run_b))} ({escape(b.scenario)}, {b.outcome})",
        highlight=False,
    )
    if not (changed.visibility or changed.claims or changed.figures):
        console.print("no change in visibility, claims or figures")
        return
    sections: list[tuple[str, tuple[str, ...], list[tuple[str, ...]]]] = [
        (
            "visibility",
            ("party", "asset", "before", "after"),
            [(p, s, x or "-", y or "-") for p, s, x, y in changed.visibility],
        ),
        ("claims", ("claim", "before", "after"), list(changed.claims)),
        (
            "figures",
            ("figure", "before", "after"),
            [(k, _number(x), _number(y)) for k, x, y in changed.figures],
        ),
    ]
    for title, columns, rows in sections:
        if not rows:
            console.print(f"{title}: no change")
            continue
        table = Table(title=f"{title}: {len(rows)} changed", title_justify="left")
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*(escape(cell) for cell in row))
        console.print(table)

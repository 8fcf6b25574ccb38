"""`airlock logs RUN_DIR`: show what each party sent, received and refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestrator.cli.render import OutputFormat
from parties.errors import AirlockError
from parties.log import labels_text, read_entries


def logs(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `airlock run`.")],
    party: Annotated[str | None, typer.Option("--party", help="Only this party's log.")] = None,
    format: Annotated[
        OutputFormat,
        typer.Option("--format", help="table for people, json (one entry per line) for machines."),
    ] = OutputFormat.table,
) -> None:
    """List visibility-log entries (this reads logs; `airlock audit` verifies them)."""
    root = run_dir / "parties"
    if not root.is_dir():
        raise AirlockError(f"{run_dir} is not a run directory (no parties/ folder)")
    names = sorted(p.name for p in root.iterdir() if p.is_dir())
    if party is not None:
        if party not in names:
            raise AirlockError(f"no log for party {party!r} (parties: {', '.join(names)})")
        names = [party]
    console = Console()
    for name in names:
        entries, problems = read_entries(root / name, name)
        if format == OutputFormat.json:
            for entry in entries:
                typer.echo(json.dumps({"party": name, **entry}, sort_keys=True))
            continue
        table = Table(title=f"{name}", title_justify="left")
        for column in (
            "#",
            "time",
            "dir",
            "outcome",
            "peer",
            "step",
            "seq",
            "labels",
            "bytes",
            "refusal",
        ):
            table.add_column(column)
        for e in entries:
            labels = escape(labels_text(e.get("labels", [])))
            outcome = e.get("outcome", "?")
            style = "red" if outcome in ("refused", "undelivered") else ""
            table.add_row(
                str(e.get("index")),
                str(e.get("time", ""))[11:23],
                e.get("direction", ""),
                f"[{style}]{outcome}[/]" if style else outcome,
                e.get("peer", ""),
                f"{e.get('protocol', '')}.{e.get('step', '')}",
                str(e.get("sequence", "")),
                labels,
                str(e.get("size", "")),
                e.get("refusal", ""),
            )
        console.print(table)
        for problem in problems:
            console.print(f"[red]{problem}[/] (run `airlock audit` for a full check)")

"""`airlock audit RUN_DIR`: verify a run's logs and guarantees."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from orchestrator.audit import audit_run
from orchestrator.cli.render import OutputFormat, audit_tables


def audit(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `airlock run`.")],
    format: Annotated[
        OutputFormat, typer.Option("--format", help="table for people, json for machines.")
    ] = OutputFormat.table,
) -> None:
    """Verify every hash chain and signed head, that both sides of every
    delivery agree, each guarantee of the scenario, and scan received bytes for
    canaries. Exit 0 when everything holds, 1 listing each failure."""
    report = audit_run(run_dir)
    if format == OutputFormat.json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        audit_tables(report, Console())
    raise typer.Exit(0 if report.ok else 1)

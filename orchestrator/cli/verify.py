"""`airlock verify RUN_DIR`: re-check every attestation, proof and receipt."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from orchestrator.cli.render import OutputFormat, claims_table
from orchestrator.verify import verify_run


def verify(
    run_dir: Annotated[
        Path, typer.Argument(metavar="RUN_DIR", help="A run directory written by `airlock run`.")
    ],
    format: Annotated[
        OutputFormat, typer.Option("--format", help="table for people, json for machines.")
    ] = OutputFormat.table,
) -> None:
    """Check every statement, signature, ledger head, inclusion, consistency
    and exclusion proof, model commitment and inference receipt of a run.
    Exit 0 when all hold, 1 naming each broken claim."""
    report = verify_run(run_dir)
    if format == OutputFormat.json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        console = Console()
        claims_table(
            f"Verification of run {report.run_id} ({report.scenario})", report.claims, console
        )
        console.print(
            "[bold green]every claim holds[/]" if report.ok else "[bold red]some claims fail[/]"
        )
    raise typer.Exit(0 if report.ok else 1)

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
    run_dir: Annotated[
        Path, typer.Argument(metavar="RUN_DIR", help="A run directory written by `airlock run`.")
    ],
    format: Annotated[
        OutputFormat, typer.Option("--format", help="table for people, json for machines.")
    ] = OutputFormat.table,
    ca_fingerprint: Annotated[
        str | None,
        typer.Option(
            "--ca-fingerprint",
            metavar="sha256:HEX",
            help="The run CA's SHA-256 that `airlock run` printed (sha256:HEX or HEX): "
            "without it, someone who rewrites the whole run directory could re-sign it.",
        ),
    ] = None,
    strict: Annotated[
        bool | None,
        typer.Option(
            "--strict/--no-strict",
            help="Fail where the run checked less than it declares (coverage), or only "
            "note it. Default: as the run was made (`airlock run --strict`).",
        ),
    ] = None,
) -> None:
    """Verify every hash chain and signed head, that both sides of every
    delivery agree, each guarantee of the scenario, and scan received bytes for
    canaries. Exit 0 when everything holds, 1 listing each failure."""
    pinned = ca_fingerprint.removeprefix("sha256:") if ca_fingerprint else None
    report = audit_run(run_dir, pinned, strict)
    if format == OutputFormat.json:
        typer.echo(json.dumps(report.to_json(), indent=2))
    else:
        audit_tables(report, Console())
    raise typer.Exit(0 if report.ok else 1)

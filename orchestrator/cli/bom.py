"""`airlock bom RUN_DIR`: the run's AI bill of materials (CycloneDX 1.6)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.verify import build_bom


def bom(
    run_dir: Annotated[
        Path, typer.Argument(metavar="RUN_DIR", help="A run directory written by `airlock run`.")
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="FILE",
            help="File to write (default: RUN_DIR/bom.cdx.json); '-' for stdout.",
        ),
    ] = None,
) -> None:
    """Write a CycloneDX 1.6 JSON document for the run's model: the model and
    the datasets it was trained on, each with the digests of its attestation."""
    document = build_bom(run_dir)
    if out is not None and str(out) == "-":
        typer.echo(document)
        return
    target = out or run_dir / "bom.cdx.json"
    target.write_text(document + "\n")
    typer.echo(f"AI bill of materials: {target}")

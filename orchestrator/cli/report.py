"""`airlock report RUN_DIR`: the run as one self-contained HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.report import write_report


def report(
    run_dir: Annotated[
        Path, typer.Argument(metavar="RUN_DIR", help="A run directory written by `airlock run`.")
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", metavar="FILE", help="HTML file to write (default: RUN_DIR/report.html)."
        ),
    ] = None,
) -> None:
    """Write one HTML page about a run: the audit's claims (and verify's, for
    attestation stages), the visibility matrix with each guarantee's cap, a
    sequence diagram of every envelope (filter it; click an arrow for its
    header and both logs' entries), the protocols' figures, and a page per
    party. Everything is inline: open it from disk, no network needed. The
    audit runs again here; the page says which claims fail (exit 0 anyway)."""
    typer.echo(f"Report: {write_report(run_dir, out)}")

"""`airlock trace RUN_DIR --out FILE`: a run's timeline for trace viewers."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.trace import chrome_trace, load_timeline, otlp_trace
from parties.errors import AirlockError


class TraceFormat(StrEnum):
    chrome = "chrome"
    otlp = "otlp"


OPENS = {
    TraceFormat.chrome: "open it at ui.perfetto.dev (Open trace file) or chrome://tracing",
    TraceFormat.otlp: "feed it to an OpenTelemetry Collector (otlpjsonfile receiver) "
    "or upload it in Jaeger's UI",
}


def trace(
    run_dir: Annotated[
        Path, typer.Argument(metavar="RUN_DIR", help="A run directory written by `airlock run`.")
    ],
    out: Annotated[
        Path,
        typer.Option("--out", metavar="FILE", help="The file to write; - for standard output."),
    ],
    # a plain string, not a choice: an unknown format is our one-line error
    format: Annotated[
        str,
        typer.Option(
            "--format",
            metavar="chrome|otlp",
            help="chrome: Trace Event Format JSON, for Perfetto (ui.perfetto.dev, Open trace "
            "file; works offline once the page is loaded) and chrome://tracing: a process per "
            "party, a slice per action, send and handler, an arrow per envelope. "
            "otlp: OpenTelemetry spans as OTLP JSON, for an OpenTelemetry Collector "
            "(otlpjsonfile receiver) or Jaeger's UI: a service per party, a span per side of "
            "each envelope, the receiver's a child of the sender's.",
        ),
    ] = TraceFormat.chrome,
) -> None:
    """Export a run's timeline: what each party did and sent when, and each
    envelope from its sender to its receiver, refused ones included. Reads
    the logs without verifying them (`airlock audit` does)."""
    try:
        chosen = TraceFormat(format)
    except ValueError:
        known = ", ".join(f.value for f in TraceFormat)
        raise AirlockError(f"unknown trace format {format!r} (known: {known})") from None
    timeline = load_timeline(run_dir)
    text = (
        json.dumps(chrome_trace(timeline)) if chosen == TraceFormat.chrome else otlp_trace(timeline)
    )
    to_stdout = str(out) == "-"
    if to_stdout:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    else:
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text + "\n")
        except OSError as exc:
            raise AirlockError(f"cannot write {out}: {exc.strerror or exc}") from None
    crossed = sum(d.crossed for d in timeline.deliveries)
    blocked = sum(d.blocked for d in timeline.deliveries)
    typer.echo(
        f"{chosen} trace of run {timeline.run_id} ({timeline.scenario}): "
        f"{len(timeline.parties)} parties, {len(timeline.actions)} actions, "
        f"{crossed} envelopes across parties, {blocked} refused, withheld or undelivered "
        f"-> {'standard output' if to_stdout else out}",
        err=to_stdout,
    )
    if timeline.untimed_actions:
        typer.echo(
            f"note: {timeline.untimed_actions} actions have no recorded times (a run made "
            "before the manifest kept them) and are not drawn",
            err=to_stdout,
        )
    typer.echo(OPENS[chosen], err=to_stdout)

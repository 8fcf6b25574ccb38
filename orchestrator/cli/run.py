"""`airlock run [NAME_OR_PATH]`: run a scenario and audit it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from orchestrator.cli.render import audit_tables
from orchestrator.launcher import REPORT, run_scenario
from orchestrator.overrides import load_scenario_with
from orchestrator.report import REPORT_HTML
from orchestrator.rundirs import prepare_out
from orchestrator.scenario import BUILTIN_DIR


def is_builtin(name_or_path: str) -> bool:
    """Whether `airlock run NAME_OR_PATH` runs a built-in scenario (as
    load_scenario resolves it: a file of that name comes first)."""
    path = Path(name_or_path)
    if not path.exists():
        return (BUILTIN_DIR / f"{name_or_path}.toml").exists()
    return path.resolve().parent == BUILTIN_DIR.resolve()


def run(
    scenario: Annotated[
        str,
        typer.Argument(help="A built-in scenario name (see `airlock scenarios`) or a TOML file."),
    ] = "healthcare",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="DIR",
            help="Run directory to write (default: runs/<time>-<scenario>-<id>); "
            "an existing run is replaced only with --force.",
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace the run already in --out DIR.")
    ] = False,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Override a key of the scenario by its dotted path, checked as the file is "
            "(repeatable), e.g. stages.train.params.rounds=5 (a stage by name or index); "
            "contributors=N makes N data contributors from the first one.",
        ),
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            metavar="HOST:PORT",
            help="Ray cluster to use (default: $RAY_ADDRESS, else an embedded local Ray).",
        ),
    ] = None,
    in_process: Annotated[
        bool,
        typer.Option(
            "--in-process", help="Run every party in this process, without Ray (debugging)."
        ),
    ] = False,
    strict: Annotated[
        bool | None,
        typer.Option(
            "--strict/--no-strict",
            help="Fail the run where it checked less than it declares (a guarantee that "
            "matched no asset, a stage action that ran at no party, a stage that made "
            "nothing it declares); without it these are notes. Default: strict for "
            "built-in scenarios, not for your own files.",
        ),
    ] = None,
    seed: Annotated[
        int,
        typer.Option(
            "--seed",
            min=0,
            metavar="N",
            help="Fix every random choice that is not a secret (synthetic data, training's "
            "sampling, the leakage measurement's samples), recorded in the manifest; keys, "
            "masks and DP noise still come from the OS (docs/scenarios.md, Reproducible runs).",
        ),
    ] = 0,
    skip_memory_check: Annotated[
        bool,
        typer.Option(
            "--skip-memory-check",
            help="Start the parties even if this machine's free memory (MemAvailable) "
            "looks too small for them (see README, What a run needs).",
        ),
    ] = False,
) -> None:
    """Start each party as a gRPC server in its own Ray actor, run the
    scenario's stages, collect the logs, write the run directory and audit it.
    Exit 0 when the run completed and every audited claim holds."""
    parsed, text = load_scenario_with(scenario, overrides or [])
    prepare_out(out, force)
    if strict is None:
        strict = is_builtin(scenario)
    console = Console()
    began = time.monotonic()
    with console.status("starting", spinner="dots") as status:

        def progress(message: str) -> None:
            console.print(f"[dim]{time.monotonic() - began:6.1f}s[/] {message}", highlight=False)
            status.update(message)

        try:
            result = run_scenario(
                parsed,
                text,
                out=out,
                address=address,
                in_process=in_process,
                progress=progress,
                strict=strict,
                memory_check=not skip_memory_check,
                seed=seed,
            )
        except KeyboardInterrupt:
            # before any party started: run_scenario made no run directory
            Console(stderr=True).print(
                "[bold red]interrupted[/] (Ctrl-C) before the parties started: no run was written"
            )
            raise typer.Exit(130) from None
    audit_tables(result.audit, console)
    if result.interrupted:
        Console(stderr=True).print(
            f"[bold red]run {result.failure}[/]; the logs were sealed and collected "
            f"and the audit covers what ran (`airlock audit {result.run_dir}`)",
            highlight=False,
        )
    elif result.failure:
        console.print(f"[bold red]run failed:[/] {result.failure}", highlight=False)
    for report in (result.run_dir / REPORT, result.run_dir / REPORT_HTML):
        if report.exists():
            console.print(f"Report: [bold]{report}[/]", highlight=False)
    console.print(f"Run directory: [bold]{result.run_dir}[/]", highlight=False)
    if result.interrupted:
        raise typer.Exit(130)
    raise typer.Exit(0 if result.failure is None and result.audit.ok else 1)

"""The `airlock` command line: one module per subcommand.

Only AirlockError is caught here; it is shown as one line, never a traceback.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperOption

from parties.errors import AirlockError

app = typer.Typer(
    name="airlock",
    help="Airlock: run a generative-AI supply chain as separate parties, "
    "enforce each protocol at the party boundary, and audit what every party saw.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
stderr = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        from importlib import metadata

        try:
            version = metadata.version("airlock")
        except metadata.PackageNotFoundError:
            version = "unknown (not installed)"
        typer.echo(f"airlock {version}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Airlock: run a generative-AI supply chain as separate parties, enforce
    each protocol at the party boundary, and audit what every party saw."""


def _reflowed(text: str | None) -> str | None:
    """A docstring as help: its paragraphs kept, each one line (the terminal folds it)."""
    if not text:
        return text
    return "\n\n".join(" ".join(p.split()) for p in inspect.cleandoc(text).split("\n\n"))


def _add(name: str, function: Callable[..., Any]) -> None:
    app.command(name, help=_reflowed(function.__doc__))(function)


def _register() -> None:
    from orchestrator.cli import (
        audit,
        bom,
        diff,
        logs,
        new,
        report,
        run,
        runs,
        scenarios,
        trace,
        verify,
    )

    _add("run", run.run)
    _add("audit", audit.audit)
    _add("verify", verify.verify)
    _add("bom", bom.bom)
    _add("logs", logs.logs)
    _add("report", report.report)
    _add("scenarios", scenarios.scenarios)
    _add("trace", trace.trace)
    _add("new", new.new)
    _add("runs", runs.runs)
    _add("diff", diff.diff)


_register()


def command() -> Callable[..., Any]:
    """The click command behind `app`, its flags shown without a value
    (`--force`, not `--force <bool>`)."""
    group = typer.main.get_command(app)
    commands = getattr(group, "commands", {})
    for each in [group, *commands.values()]:
        for param in each.params:
            _flag_without_value(param)
        each.get_help_option = _help_option(each.get_help_option)
    return group


def _flag_without_value(param: Any) -> Any:
    if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
        param.metavar = ""
    return param


def _help_option(make: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`--help`, made by click when help is shown, without `<bool>` too."""
    return lambda context: _flag_without_value(make(context))


def main() -> None:
    try:
        command()()
    except AirlockError as error:
        stderr.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except Exception as error:  # noqa: BLE001 - a traceback reaching the user is a bug
        if os.environ.get("AIRLOCK_DEBUG"):
            raise
        stderr.print(
            f"[bold red]internal error:[/] {escape(type(error).__name__)}: {escape(str(error))}\n"
            "This is a bug in Airlock; run again with AIRLOCK_DEBUG=1 for the traceback.",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(3)
    except KeyboardInterrupt:
        stderr.print("[bold red]interrupted[/]")
        sys.exit(130)

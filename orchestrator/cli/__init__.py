"""The `airlock` command line: one module per subcommand.

Only AirlockError is caught here; it is shown as one line, never a traceback.
"""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console
from rich.markup import escape

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


def _register() -> None:
    from orchestrator.cli import audit, bom, logs, report, run, scenarios, trace, verify

    app.command("run")(run.run)
    app.command("audit")(audit.audit)
    app.command("verify")(verify.verify)
    app.command("bom")(bom.bom)
    app.command("logs")(logs.logs)
    app.command("report")(report.report)
    app.command("scenarios")(scenarios.scenarios)
    app.command("trace")(trace.trace)


_register()


def main() -> None:
    try:
        app()
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

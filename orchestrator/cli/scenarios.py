"""`airlock scenarios`: list the built-in scenarios and their files."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestrator.scenario import BUILTIN_DIR, builtin_names, load_scenario


def scenarios() -> None:
    """List built-in scenarios, runnable as `airlock run NAME`, with the file
    each is read from; copy one to edit with `airlock new NAME --from BUILT_IN`."""
    table = Table()
    table.add_column("name", no_wrap=True)
    table.add_column("parties", justify="right")
    table.add_column("description")
    table.add_column("file", overflow="fold")
    for name in builtin_names():
        scenario, _ = load_scenario(name)
        table.add_row(
            name,
            str(len(scenario.parties)),
            escape(scenario.description),
            escape(str(BUILTIN_DIR / f"{name}.toml")),
        )
    Console().print(table)

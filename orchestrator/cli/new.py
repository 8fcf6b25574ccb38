"""`airlock new NAME --from BUILT_IN`: an editable copy of a built-in scenario."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.scenario import BUILTIN_DIR, load_scenario, parse_scenario
from parties.errors import ConfigError

NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_NAME_LINE = re.compile(r'^name\s*=\s*"[^"]*"\s*$', re.MULTILINE)


def new(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="The new scenario's name (a-z, 0-9, _ and -).")
    ],
    base: Annotated[
        str,
        typer.Option("--from", metavar="BUILT_IN", help="The built-in scenario to copy."),
    ] = "healthcare",
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="FILE", help="The file to write (default: ./NAME.toml)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace FILE if it exists.")] = False,
) -> None:
    """Write an editable scenario, a copy of a built-in with its comments,
    and print its path; run it with `airlock run PATH`."""
    if not NAME.match(name):
        raise ConfigError(f"NAME: {name!r} is not a scenario name (a-z, 0-9, _ and -)")
    source = BUILTIN_DIR / f"{base}.toml"
    if not source.is_file():
        load_scenario(base)  # the one error for an unknown name, with its suggestion
        raise ConfigError(f"--from: {base!r} is a file, not a built-in scenario")
    path = out or Path(f"{name}.toml")
    if path.exists() and not force:
        raise ConfigError(f"--out {path}: exists; give --force to replace it")
    text, count = _NAME_LINE.subn(f'name = "{name}"', source.read_text(encoding="utf-8"), 1)
    if not count:
        text = f'name = "{name}"\n' + text
    text = f"# {name}: made by `airlock new {name} --from {base}`; edit freely\n" + text
    parse_scenario(text, str(path))  # what is written runs as it is
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--out {path}: cannot write: {exc.strerror or exc}") from None
    typer.echo(path.resolve())

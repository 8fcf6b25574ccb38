"""`airlock logs RUN_DIR`: show what each party sent, received and refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from orchestrator.cli.render import OutputFormat
from parties.errors import AirlockError
from parties.log import labels_text
from parties.log_check import LogProblem, read_entries

# The default view: what a reader needs to follow a party's traffic, in five
# columns that read at 80 (the peer and any refusal sit under the outcome,
# one label a line). `--wide` shows every field in a column of its own.
NARROW = ("#", "time", "event", "step", "labels")
WIDE = (
    "#",
    "time",
    "dir",
    "outcome",
    "peer",
    "step",
    "seq",
    "labels",
    "bytes",
    "refusal",
    "detail",
)


def logs(
    run_dir: Annotated[
        Path, typer.Argument(metavar="RUN_DIR", help="A run directory written by `airlock run`.")
    ],
    party: Annotated[
        str | None, typer.Option("--party", metavar="PARTY", help="Only this party's log.")
    ] = None,
    format: Annotated[
        OutputFormat,
        typer.Option(
            "--format",
            help="table for people; json for machines: one entry per line, every line with "
            "the same keys (loads with one call in DuckDB or pandas, see docs/inspecting.md).",
        ),
    ] = OutputFormat.table,
    wide: Annotated[
        bool,
        typer.Option(
            "--wide",
            help="Every column (protocol, sequence, size, refusal detail); the default "
            "shows fewer so that it reads at 80 columns.",
        ),
    ] = False,
) -> None:
    """List visibility-log entries (this reads logs; `airlock audit` verifies them)."""
    root = run_dir / "parties"
    if not root.is_dir():
        raise AirlockError(f"{run_dir} is not a run directory (no parties/ folder)")
    names = sorted(p.name for p in root.iterdir() if p.is_dir())
    if party is not None:
        if party not in names:
            raise AirlockError(f"no log for party {party!r} (parties: {', '.join(names)})")
        names = [party]
    read = {name: read_entries(root / name, name) for name in names}
    if format == OutputFormat.json:
        _print_json({name: entries for name, (entries, _) in read.items()})
        return
    console = Console()
    for name, (entries, problems) in read.items():
        console.print(_table(name, entries, wide, console.width))
        _print_problems(problems, console)


def _print_json(entries: dict[str, list[dict[str, Any]]]) -> None:
    """One object per line, each with every key any entry has (null where an
    entry lacks it, e.g. the header fields of a refusal before the header
    parsed): a reader that infers its schema from a sample (DuckDB,
    pandas) then sees every column, whichever lines it sampled."""
    keys = sorted({"party"}.union(*(entry.keys() for rows in entries.values() for entry in rows)))
    for name, rows in entries.items():
        for entry in rows:
            line = {key: None for key in keys} | entry | {"party": name}
            typer.echo(json.dumps(line, sort_keys=True))


def _table(name: str, entries: list[dict[str, Any]], wide: bool, width: int = 80) -> Table:
    columns = WIDE if wide else NARROW
    table = Table(title=escape(name), title_justify="left", box=box.SIMPLE_HEAD)
    rows = [_cells(entry, wide) for entry in entries]
    widths = {} if wide else _narrow_widths(entries, rows, width)
    for column in columns:
        # fold, never cut: a narrow terminal gets taller cells, not "outco…"
        table.add_column(
            column,
            overflow="fold",
            no_wrap=False,
            width=widths.get(column),
            justify="right" if column == "#" else "left",
        )
    for entry, cells in zip(entries, rows, strict=True):
        if widths:
            # at word boundaries: "weights:" / "model_creator" / "@digest", not "creat|or"
            labels = [labels_text([label]) for label in entry.get("labels") or []]
            cells["labels"] = "\n".join(
                escape(piece) for label in labels for piece in fold(label, widths["labels"])
            )
            cells["step"] = "\n".join(
                escape(piece) for piece in fold(str(entry.get("step", "")), widths["step"])
            )
        table.add_row(*(cells[column] for column in columns))
    return table


def _cuts(word: str, width: int, after: str, before: str) -> list[int]:
    return [i + 1 for i, ch in enumerate(word[:width]) if ch in after] + [
        i for i, ch in enumerate(word[: width + 1]) if ch in before and i > 0
    ]


def fold(word: str, width: int) -> list[str]:
    """`word` in pieces of at most `width`, each broken at the last boundary
    that fits: a label's own first (before its `@form`, after its `kind:`),
    then after `_`, `.`, `/` or `-`; a piece with none is cut at `width`."""
    pieces = []
    while len(word) > width > 0:
        cuts = _cuts(word, width, ":", "@") or _cuts(word, width, "_./-", "")
        cut = max(cuts, default=width)
        pieces.append(word[:cut])
        word = word[cut:]
    return [*pieces, word]


def _narrow_widths(
    entries: list[dict[str, Any]], rows: list[dict[str, str]], width: int
) -> dict[str, int]:
    """Column widths for the narrow view when its longest words do not fit
    `width`: the labels column gets what the others leave ({} when all fit)."""

    def longest(column: str) -> int:
        # the event column's lines ("← model_creator") are kept whole where they fit
        plain = (Text.from_markup(row[column]).plain for row in rows)
        parts = (
            p for text in plain for p in (text.splitlines() if column == "event" else text.split())
        )
        return max((len(part) for part in parts), default=0)

    need = {column: max(len(column), longest(column)) for column in NARROW}
    room = width - (3 * len(NARROW) + 1)  # a column's padding and separator, and the edge
    if sum(need.values()) <= room:
        return {}
    left = room - need["#"] - need["time"]
    event, step = min(need["event"], 18), min(need["step"], 14)
    short = min(need["labels"], 20) - (left - event - step)
    if short > 0:  # a very narrow terminal: the event and step columns give way too
        event, step = max(6, event - short // 2), max(6, step - (short - short // 2))
    labels = max(6, left - event - step)
    return {"#": need["#"], "time": need["time"], "event": event, "step": step, "labels": labels}


def _cells(e: dict[str, Any], wide: bool) -> dict[str, str]:
    """Every column's markup for one entry (text from the log escaped)."""
    direction = escape(str(e.get("direction", "")))
    outcome = escape(str(e.get("outcome", "?")))
    if outcome in ("refused", "undelivered", "withheld"):
        outcome = f"[red]{outcome}[/]"
    peer = escape(str(e.get("peer", "")))
    refusal = escape(str(e.get("refusal") or ""))
    arrow = "←" if direction == "in" else "→"
    labels = [labels_text([label]) for label in e.get("labels") or []]
    step = str(e.get("step", ""))
    return {
        "#": str(e.get("index")),
        "time": str(e.get("time", ""))[11:23],
        "event": f"{direction} {outcome}\n{arrow} {peer}"
        + (f"\n[red]{refusal}[/]" if refusal else ""),
        "dir": direction,
        "outcome": outcome,
        "peer": peer,
        "step": escape(f"{e.get('protocol', '')}.{step}" if wide else step),
        "seq": str(e.get("sequence", "")),
        "labels": escape((", " if wide else "\n").join(labels)),
        "bytes": str(e.get("size", "")),
        "refusal": refusal,
        "detail": escape(str(e.get("detail") or "")),
    }


def _print_problems(problems: list[LogProblem], console: Console) -> None:
    for problem in problems:
        console.print(f"[red]{escape(str(problem))}[/] (run `airlock audit` for a full check)")

"""What a benchmark printed, kept for `--json FILE`: its tables as rows, and
a top-level `ratios` object whose keys name the goals in docs/benchmarks.md
(`vs_crypten`, `1KiB_vs_mtls`, ...), so that a run can be compared with a
goal by a program. Figures, not a test: nothing here passes or fails."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json",
        type=Path,
        metavar="FILE",
        help="also write the tables and the goal ratios here, as JSON",
    )


class Figures:
    def __init__(self) -> None:
        self.tables: dict[str, list[dict[str, Any]]] = {}
        self.ratios: dict[str, float] = {}

    def row(self, table: str, **columns: Any) -> None:
        self.tables.setdefault(table, []).append(columns)

    def ratio(self, goal: str, value: float) -> None:
        self.ratios[goal] = value

    def write(self, path: Path | None) -> None:
        """Writes nothing when no --json was given."""
        if path is None:
            return
        document = {
            "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": f"{platform.processor() or platform.machine()}, "
            f"{len(os.sched_getaffinity(0))} cores",
            "tables": self.tables,
            "ratios": self.ratios,
        }
        path.write_text(json.dumps(document, indent=2) + "\n")
        print(f"figures written to {path}")

"""`airlock.run` and `Run`: thin over the orchestrator (launcher, audit, run directories)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.audit import AuditReport, audit_record, load_run
from orchestrator.launcher import run_scenario
from orchestrator.overrides import load_scenario_with
from orchestrator.rundirs import RunSummary, answers, figures, prepare_out, read_run


@dataclass
class Run:
    """A run directory and what its manifest and audit.json record."""

    path: Path
    failure: str | None = None

    @property
    def _summary(self) -> RunSummary:
        return read_run(self.path)

    @property
    def scenario(self) -> str:
        return self._summary.scenario

    @property
    def outcome(self) -> str:
        """`completed`, `failed` (or what an interrupted run recorded)."""
        return self._summary.outcome

    @property
    def ok(self) -> bool:
        """The run completed and every audited claim holds (`airlock run`'s exit 0)."""
        summary = self._summary
        return summary.outcome == "completed" and summary.claims_ok == summary.claims

    @property
    def claims(self) -> dict[str, bool]:
        """Each audited claim: whether it holds."""
        return {c["claim"]: bool(c["ok"]) for c in self._summary.audit.get("claims", [])}

    @property
    def visibility(self) -> dict[str, dict[str, str]]:
        """party -> asset -> the most revealing form the party received it in."""
        return dict(self._summary.audit.get("visibility", {}))

    @property
    def answers(self) -> list[dict[str, Any]]:
        """Each question answered in the run: stage, party, prompt, what was
        retrieved and the answer or output."""
        return answers(self._summary.manifest)

    @property
    def figures(self) -> dict[str, float]:
        """The numbers the actions recorded, by `stage/party/action[/round]: key`."""
        return figures(self._summary.manifest)

    def figure(self, name: str) -> float:
        """One figure by its key, or by its last part when only one action
        recorded it (`run.figure("epsilon")`; several: the last one)."""
        found = self.figures
        if name in found:
            return found[name]
        matches = [value for key, value in found.items() if key.endswith(f": {name}")]
        if not matches:
            known = sorted({key.rpartition(": ")[2] for key in found})
            raise KeyError(f"no figure {name!r} in {self.path} (figures: {', '.join(known)})")
        return matches[-1]

    @property
    def manifest(self) -> dict[str, Any]:
        return self._summary.manifest

    def audit(self) -> AuditReport:
        """Audit the run directory again, from its logs (as `airlock audit`)."""
        return audit_record(load_run(self.path))


def run(
    scenario: str | Path,
    *,
    set: Mapping[str, Any] | None = None,  # noqa: A002 - as `airlock run --set`
    out: str | Path | None = None,
    force: bool = False,
    progress: Callable[[str], None] | None = None,
    **options: Any,
) -> Run:
    """Run a scenario (a built-in name or a TOML file) as `airlock run` does:
    `set` holds `--set` overrides as {dotted key: value}; `out` and `force`
    are `--out` and `--force`; other options (`in_process`, `address`, ...)
    go to the launcher as the command line's do."""
    parsed, text = load_scenario_with(str(scenario), list((set or {}).items()))
    target = Path(out) if out is not None else None
    prepare_out(target, force)
    result = run_scenario(
        parsed, text, out=target, progress=progress or (lambda message: None), **options
    )
    return Run(result.run_dir, result.failure)


def open(path: str | Path) -> Run:  # noqa: A001 - airlock.open(RUN_DIR)
    """A run directory written earlier (by `airlock run` or `airlock.run`)."""
    summary = read_run(Path(path))
    return Run(summary.path, summary.failure)

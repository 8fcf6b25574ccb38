"""`airlock report`: a run as one self-contained HTML page.

The page holds the audit's claims (and `airlock verify`'s, for a run with
attestation stages), the visibility matrix with each guarantee's cap, a
sequence diagram of every envelope (filterable, each arrow selectable for
its header and both logs' entries), the protocols' figures, and a page per
party of what it sent, received and refused. It needs no network: style,
script and pictures are inline, and the page forbids itself any load.

Files: answers.py (each question, what was retrieved, the answer, its
receipt and who saw what of it; also at the top of report.md),
deliveries.py (log entries paired into deliveries, stages, arrows),
diagram.py (the SVG sequence diagram), figures.py (matplotlib figures from
what the run recorded), page.py (the sections), report.css, report.js.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.audit import AuditReport, RunRecord, audit_record, load_run
from orchestrator.report.answers import with_answers
from orchestrator.report.page import build_page
from orchestrator.verify import offline_checks, verify_record
from parties.errors import AirlockError

REPORT_HTML = "report.html"

__all__ = ["REPORT_HTML", "build_report", "with_answers", "write_report"]


def build_report(run: RunRecord, audit: AuditReport) -> str:
    """The report of a loaded run and its audit, as HTML."""
    verified = None
    if offline_checks(run):
        # log integrity is the audit's first claim already
        verified = [c for c in verify_record(run).claims if c is not run.integrity]
    return build_page(run, audit, verified)


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """Load, audit and verify the run in `run_dir` and write its report to
    `out` (default RUN_DIR/report.html). AirlockError, in one line, for a
    directory that is no run or a file that cannot be written."""
    if not run_dir.is_dir():
        why = "a file" if run_dir.exists() else "no such directory"
        raise AirlockError(f"{run_dir} is not a run directory ({why})")
    run = load_run(run_dir)
    page = build_report(run, audit_record(run))
    target = out or run_dir / REPORT_HTML
    try:
        target.write_text(page, encoding="utf-8")
    except OSError as error:
        raise AirlockError(f"cannot write the report to {target}: {error.strerror}") from None
    return target

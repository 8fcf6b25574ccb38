"""The audit: proves or refutes each claim a run makes, from its logs alone.

Claims, checked in this order:

1. log integrity: every party's log parses, hashes, chains, and ends at the
   head the party signed with the key the run's CA certified;
2. sender signatures: every admitted envelope's header verifies with its
   sender's key, and the log entry says what the header says;
3. deliveries agree: both sides of every delivery or refusal logged the same
   header digest (a sender logs `sending` before an envelope leaves, so one
   killed mid-send still has the twin of what its receiver admitted);
4. guarantees: the visibility matrix (party x asset -> most revealing form
   that reached it) respects each guarantee of the scenario. What reached a
   party is what it admitted and also what it says it refused once the
   sender was authenticated, or what the sender's log shows leaving for it:
   the audit cannot tell an honest refusal from a receiver that kept the
   bytes and claims it refused them. Only a sender's `withheld` (its own
   boundary stopped it) shows that an envelope never left;
5. canaries: no party holds a canary string in what it admitted unless it may
   see that asset in plaintext (a scan of the payload bytes, independent of
   what the labels claim).

Blocked attempts (refused envelopes) are listed alongside.
"""

from __future__ import annotations

from pathlib import Path

from evidence.claims import Claim
from orchestrator.audit.checks import (
    check_agreement,
    check_guarantees,
    check_signatures,
    scan_canaries,
    visibility_matrix,
)
from orchestrator.audit.run import AuditError, AuditReport, ClaimsReport, RunRecord, load_run
from parties.log import Direction, Outcome

__all__ = [
    "AuditError",
    "AuditReport",
    "Claim",
    "ClaimsReport",
    "RunRecord",
    "audit_record",
    "audit_run",
    "load_run",
]


def audit_run(run_dir: Path, pinned_ca: str | None = None) -> AuditReport:
    return audit_record(load_run(run_dir, pinned_ca))


def audit_record(run: RunRecord) -> AuditReport:
    """The audit of a run already loaded (and its logs checked) by `load_run`."""
    scenario, logs, keys = run.scenario, run.logs, run.keys
    signatures = check_signatures(logs, keys)
    agreement = check_agreement(logs, frozenset(run.manifest.get("dropouts", [])))
    visibility, first_seen = visibility_matrix(logs)
    guarantees = check_guarantees(scenario, visibility, first_seen)
    canaries = scan_canaries(run, scenario, run.manifest, logs)
    # refused at a receiving boundary, or withheld by the sender's own
    blocked = [
        {
            "party": name,
            "entry": e["index"],
            "from": e.get("peer") if e.get("direction") == Direction.IN else name,
            "to": name if e.get("direction") == Direction.IN else e.get("peer"),
            "withheld": e.get("direction") == Direction.OUT,
            "step": e.get("step", ""),
            "labels": e.get("labels", []),
            "refusal": e.get("refusal"),
            "detail": e.get("detail"),
        }
        for name, entries in logs.items()
        for e in entries
        if (e.get("direction"), e.get("outcome"))
        in ((Direction.IN, Outcome.REFUSED), (Direction.OUT, Outcome.WITHHELD))
    ]
    shown = {p: {a: str(f) for a, f in assets.items()} for p, assets in visibility.items()}
    return AuditReport(
        run_id=run.run_id,
        scenario=scenario.name,
        claims=[run.integrity, signatures, agreement, *guarantees, *canaries],
        ca_fingerprint=run.ca_fingerprint,
        visibility=shown,
        blocked=blocked,
    )

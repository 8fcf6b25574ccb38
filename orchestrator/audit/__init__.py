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

A last claim, coverage, says where the run checked less than it declares:
stages not reached (an interrupted or failed run), a guarantee whose asset
pattern matched no asset in any log (so it checked nothing), an action of a
stage that ran at no party, a stage that made nothing it declares. These
are notes, or failures in a strict run (`--strict`, the default for
built-in scenarios), so that a run that checked nothing cannot pass.
"""

from __future__ import annotations

from pathlib import Path

from evidence.claims import Claim, Finding
from orchestrator.audit.checks import (
    check_agreement,
    check_guarantees,
    check_signatures,
    scan_canaries,
    visibility_matrix,
)
from orchestrator.audit.run import AuditError, AuditReport, ClaimsReport, RunRecord, load_run
from parties.labels import asset_matches
from parties.log import Direction, Outcome
from protocols import get_protocol, protocol_names

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


def audit_run(
    run_dir: Path, pinned_ca: str | None = None, strict: bool | None = None
) -> AuditReport:
    return audit_record(load_run(run_dir, pinned_ca), strict)


def check_coverage(run: RunRecord, strict: bool) -> Claim:
    """What the run declares but did not check (see the module's note):
    failures when `strict`, notes otherwise."""
    claim = Claim("coverage: the run checked what it declares" + (" (strict)" if strict else ""))
    manifest, scenario = run.manifest, run.scenario
    outcome = manifest.get("outcome", "")
    gaps: list[str] = []
    for stage in manifest.get("stages_not_reached") or []:
        gaps.append(f"stage {stage} not reached or not finished (run {outcome}): unchecked")
    gaps += [str(w) for w in manifest.get("warnings") or []]
    named = {
        str(label.get("asset"))
        for entries in run.logs.values()
        for entry in entries
        for label in entry.get("labels") or []
        if isinstance(label, dict)
    }
    named |= {canary.asset for canary in scenario.canaries}
    kinds = {asset.split(":", 1)[0] for asset in named} | _protocol_asset_kinds()
    claim.checked += len(scenario.stages)
    for guarantee in scenario.guarantees:
        claim.checked += 1
        if any(asset_matches(guarantee.asset, asset) for asset in named):
            continue
        kind, _, owner = guarantee.asset.partition(":")
        if not any(asset_matches(kind, k) for k in kinds):
            why = f"no protocol names an asset of kind {kind!r}"
        elif owner and not any(c in owner for c in "*?[") and owner not in scenario.parties:
            why = f"no party is called {owner!r}"
        else:
            continue  # a real asset that never crossed a boundary: nothing to see
        gaps.append(
            f"guarantee {guarantee.name!r}: its asset pattern {guarantee.asset!r} matched "
            f"no asset in any party's log and {why}, so it checked nothing"
        )
    for gap in gaps:
        if strict:
            claim.fail(None, None, gap)
        else:
            claim.notes.append(Finding(None, None, gap))
    return claim


def _protocol_asset_kinds() -> set[str]:
    """The asset kinds ("update" of "update:*") that some protocol's rules label."""
    return {
        label.asset.split(":", 1)[0]
        for name in protocol_names()
        for rule in get_protocol(name).rules
        for label in rule.labels
    }


def audit_record(run: RunRecord, strict: bool | None = None) -> AuditReport:
    """The audit of a run already loaded (and its logs checked) by `load_run`.
    `strict` (default: as the run was made) fails what coverage finds."""
    if strict is None:
        strict = bool(run.manifest.get("strict", False))
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
        claims=[
            run.integrity,
            signatures,
            agreement,
            *guarantees,
            *canaries,
            check_coverage(run, strict),
        ],
        ca_fingerprint=run.ca_fingerprint,
        visibility=shown,
        blocked=blocked,
    )

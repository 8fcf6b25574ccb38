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

import hashlib
import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature

from evidence.claims import Claim, Finding
from orchestrator.scenario import Scenario, parse_scenario
from parties.envelope import header_from_bytes, signed_message
from parties.errors import AirlockError, IdentityError, Refused
from parties.identity import ca_fingerprint, load_signing_certificate
from parties.labels import Form
from parties.log import (
    UNSEALED,
    Direction,
    Outcome,
    blob_path,
    header_fields,
    labels_text,
    verify_log,
)
from parties.policy import Policy
from parties.protocol import FINGERPRINTS
from parties.roles import Role
from parties.wire import airlock_pb2 as pb

# refusals that come after the sender's signature verified: the header is the
# sender's own, and its payload may have reached the receiver
_AUTHENTICATED_REFUSALS = frozenset(
    pb.RefusalReason.Name(r)
    for r in (
        pb.OVERSIZED,
        pb.REPLAYED,
        pb.UNKNOWN_PROTOCOL,
        pb.UNKNOWN_STEP,
        pb.RULE_NOT_PERMITTED,
        pb.GUARANTEE_VIOLATED,
        pb.DIGEST_MISMATCH,
        pb.OVERLOADED,
    )
)
# a sender's outcomes that mean the envelope left it and reached the peer
_LEFT = frozenset({Outcome.DELIVERED, Outcome.REFUSED, Outcome.REPLIED})


class AuditError(AirlockError):
    """The run directory cannot be audited at all (no manifest, no scenario)."""


@dataclass
class ClaimsReport:
    """Claims checked about one run; `airlock verify` reports these alone."""

    run_id: str
    scenario: str
    claims: list[Claim]
    ca_fingerprint: str = ""

    @property
    def ok(self) -> bool:
        return all(claim.ok for claim in self.claims)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "scenario": self.scenario,
            "ca_fingerprint": self.ca_fingerprint,
            "ok": self.ok,
            "claims": [
                {
                    "claim": c.name,
                    "ok": c.ok,
                    "checked": c.checked,
                    "findings": [asdict(f) for f in c.findings],
                    "notes": [asdict(f) for f in c.notes],
                }
                for c in self.claims
            ],
        }


@dataclass
class AuditReport(ClaimsReport):
    visibility: dict[str, dict[str, str]] = field(default_factory=dict)
    blocked: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "visibility": self.visibility, "blocked": self.blocked}


def _load_run(run_dir: Path) -> tuple[dict[str, Any], Scenario, str]:
    try:
        manifest = json.loads((run_dir / "manifest.json").read_text())
        scenario_bytes = (run_dir / "scenario.toml").read_bytes()
        scenario_text = scenario_bytes.decode("utf-8")
    except FileNotFoundError as exc:
        raise AuditError(
            f"{run_dir} is not a run directory: {Path(exc.filename).name} is missing"
        ) from None
    except ValueError as exc:
        raise AuditError(f"{run_dir}: manifest or scenario does not parse: {exc}") from None
    if not isinstance(manifest, dict):
        raise AuditError(f"{run_dir}/manifest.json is not a JSON object")
    scenario = parse_scenario(scenario_text, str(run_dir / "scenario.toml"))
    return manifest, scenario, hashlib.sha256(scenario_bytes).hexdigest()


@dataclass
class RunRecord:
    """A run directory, loaded: its manifest and scenario, each party's
    certified signing key, and each party's log entries (already checked:
    `integrity` holds what was wrong with them)."""

    run_dir: Path
    manifest: dict[str, Any]
    scenario: Scenario
    keys: dict[str, Any]
    logs: dict[str, list[dict[str, Any]]]
    integrity: Claim
    ca_fingerprint: str = ""

    @property
    def run_id(self) -> str:
        return str(self.manifest.get("run_id", ""))

    def received(self, party: str, protocol: str, step: str) -> list[tuple[dict[str, Any], bytes]]:
        """(entry, payload) of every admitted envelope of this step at `party`."""
        found = []
        for entry in self.logs.get(party, []):
            if (entry.get("direction"), entry.get("outcome")) != (Direction.IN, Outcome.ADMITTED):
                continue
            if (entry.get("protocol"), entry.get("step")) != (protocol, step):
                continue
            data = self.blob(party, entry)
            if data is not None:
                found.append((entry, data))
        return found

    def blob(self, party: str, entry: dict[str, Any]) -> bytes | None:
        """The payload an entry kept, if the log verified it (a regular file
        named by its digest, inside the party's blob store)."""
        if not entry.get("blob_verified"):
            return None
        path = blob_path(self.run_dir / "parties" / party, entry)
        return path.read_bytes() if path is not None else None


def load_run(run_dir: Path, pinned_ca: str | None = None) -> RunRecord:
    """Load and verify a run directory. `pinned_ca`: the CA fingerprint the
    run printed when it ended, checked against the manifest's CA (without
    it, whoever can rewrite the whole run directory can also re-sign it)."""
    manifest, scenario, scenario_sha256 = _load_run(run_dir)
    run_id = manifest.get("run_id", "")
    ca_pem = str(manifest.get("ca_pem", "")).encode()
    parties: dict[str, dict[str, Any]] = manifest.get("parties") or {}
    integrity = Claim("log integrity")
    try:
        bindings = {"scenario_sha256": scenario_sha256, "ca_sha256": ca_fingerprint(ca_pem)}
    except IdentityError as exc:
        integrity.fail(None, None, str(exc))
        bindings = {"scenario_sha256": scenario_sha256}
    if pinned_ca is not None and bindings.get("ca_sha256") != pinned_ca.lower():
        integrity.fail(None, None, "the run's CA is not the one pinned with --ca-fingerprint")
    logs: dict[str, list[dict[str, Any]]] = {}
    keys = {}
    for name in scenario.parties:
        integrity.checked += 1
        if name not in parties:
            integrity.fail(name, None, "party never started (not in the manifest)")
            continue
        try:
            keys[name] = load_signing_certificate(
                parties[name]["signing_cert_pem"].encode(), ca_pem, name
            )
        except (IdentityError, KeyError) as exc:
            integrity.fail(name, None, f"signing certificate: {exc}")
            continue
        directory = run_dir / "parties" / name
        if not directory.is_dir():
            integrity.fail(name, None, "log was not collected")
            continue
        entries, problems = verify_log(directory, name, run_id, keys[name], bindings)
        bad_blobs = {p.entry for p in problems if "blob" in p.problem}
        for entry in entries:
            entry["blob_verified"] = bool(entry.get("blob")) and entry.get("index") not in bad_blobs
        for problem in problems:
            if problem.problem == UNSEALED and name in manifest.get("dropouts", []):
                # a dropout the protocol is built to survive, killed on purpose
                integrity.notes.append(
                    Finding(
                        name,
                        None,
                        f"{UNSEALED}: it dropped out (injected fault); its entries verify, "
                        "but a truncated tail cannot be ruled out",
                    )
                )
                continue
            integrity.fail(problem.party, problem.entry, problem.problem)
        logs[name] = [e for e in entries if not e.get("unparsed")]
    return RunRecord(
        run_dir, manifest, scenario, keys, logs, integrity, bindings.get("ca_sha256", "")
    )


def audit_run(run_dir: Path, pinned_ca: str | None = None) -> AuditReport:
    run = load_run(run_dir, pinned_ca)
    scenario, logs, keys = run.scenario, run.logs, run.keys
    signatures = _check_signatures(logs, keys)
    agreement = _check_agreement(logs)
    visibility, first_seen = _visibility(logs)
    guarantees = _check_guarantees(scenario, visibility, first_seen)
    canaries = _scan_canaries(run, scenario, run.manifest, logs)
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


def _check_signatures(logs: dict[str, list[dict[str, Any]]], keys: dict[str, Any]) -> Claim:
    claim = Claim("sender signatures")
    for name, entries in logs.items():
        for entry in entries:
            if entry.get("direction") != Direction.IN or entry.get("outcome") != Outcome.ADMITTED:
                continue
            claim.checked += 1
            index = entry.get("index")
            try:
                header_bytes = bytes.fromhex(entry.get("header", ""))
                header = header_from_bytes(header_bytes)
                keys[header.sender].verify(
                    bytes.fromhex(entry.get("signature", "")), signed_message(header_bytes)
                )
            except (ValueError, KeyError, Refused, InvalidSignature):
                claim.fail(name, index, "admitted envelope's signature does not verify")
                continue
            recorded = {k: entry.get(k) for k in header_fields(header)}
            if recorded != header_fields(header) or entry.get("peer") != header.sender:
                claim.fail(name, index, "log entry disagrees with the signed header")
    return claim


def _check_agreement(logs: dict[str, list[dict[str, Any]]]) -> Claim:
    claim = Claim("deliveries agree")
    seen: dict[tuple[str, str, str], str] = {}
    for name, entries in logs.items():
        for entry in entries:
            if entry.get("header_sha256"):
                seen[(name, entry["direction"], entry["header_sha256"])] = entry.get("outcome", "")
    expected_at_receiver = {
        Outcome.DELIVERED: {Outcome.ADMITTED},
        Outcome.REFUSED: {Outcome.REFUSED},
        Outcome.REPLIED: {Outcome.ADMITTED, Outcome.REFUSED},
    }
    for name, entries in logs.items():
        for entry in entries:
            peer, digest, outcome = (
                entry.get("peer", ""),
                entry.get("header_sha256", ""),
                entry.get("outcome"),
            )
            if peer not in logs or not digest:
                continue
            if entry["direction"] == Direction.OUT and outcome in expected_at_receiver:
                claim.checked += 1
                theirs = seen.get((peer, Direction.IN, digest))
                if theirs not in expected_at_receiver[Outcome(outcome)]:
                    claim.fail(
                        name,
                        entry["index"],
                        f"{outcome} to {peer}, but {peer}'s log has {theirs or 'no entry'} for it",
                    )
            elif entry["direction"] == Direction.OUT and outcome == Outcome.WITHHELD:
                claim.checked += 1
                theirs = seen.get((peer, Direction.IN, digest))
                if theirs is not None:
                    claim.fail(
                        name,
                        entry["index"],
                        f"withheld from {peer}, but {peer}'s log has {theirs} for it",
                    )
            elif entry["direction"] == Direction.IN and outcome == Outcome.ADMITTED:
                claim.checked += 1
                theirs = seen.get((peer, Direction.OUT, digest))
                # `sending` alone: the sender died after the envelope left
                if theirs not in (Outcome.DELIVERED, Outcome.REPLIED, Outcome.SENDING):
                    claim.fail(
                        name,
                        entry["index"],
                        f"admitted from {peer}, but {peer}'s log has {theirs or 'no entry'} for it",
                    )
    return claim


def _reached(entry: dict[str, Any], settled: set[str]) -> bool:
    """Whether this entry shows an envelope reaching its receiver (the log's
    owner for an incoming entry, its peer for an outgoing one). `settled`:
    the header digests whose outcome the same log records after `sending`;
    a `sending` entry with none (the sender died mid-send) may have left."""
    direction, outcome = entry.get("direction"), entry.get("outcome")
    if direction == Direction.IN:
        return outcome == Outcome.ADMITTED or (
            outcome == Outcome.REFUSED and entry.get("refusal") in _AUTHENTICATED_REFUSALS
        )
    if outcome == Outcome.SENDING:
        return entry.get("header_sha256") not in settled
    return direction == Direction.OUT and outcome in _LEFT


Seen = dict[tuple[str, str], tuple[str, int]]  # (party, asset) -> (log owner, entry)


def _visibility(logs: dict[str, list[dict[str, Any]]]) -> tuple[dict[str, dict[str, Form]], Seen]:
    """party -> asset -> most revealing form that reached it, and the log
    entry that first showed it (the receiver's, or the sender's)."""
    matrix: dict[str, dict[str, Form]] = defaultdict(dict)
    first_seen: Seen = {}
    for name, entries in logs.items():
        matrix[name]
        settled = {
            e.get("header_sha256", "")
            for e in entries
            if e.get("direction") == Direction.OUT and e.get("outcome") != Outcome.SENDING
        }
        for entry in entries:
            if not _reached(entry, settled):
                continue
            receiver = name if entry.get("direction") == Direction.IN else entry.get("peer", "")
            if receiver not in logs:
                continue
            for label in entry.get("labels", []):
                form, asset = Form.parse(label["form"]), label["asset"]
                current = matrix[receiver].get(asset)
                if current is None or form < current:
                    matrix[receiver][asset] = form
                    first_seen[(receiver, asset)] = (name, entry["index"])
    return dict(matrix), first_seen


def _check_guarantees(
    scenario: Scenario,
    visibility: dict[str, dict[str, Form]],
    first_seen: Seen,
) -> list[Claim]:
    claims = []
    for guarantee in scenario.policy_guarantees():
        claim = Claim(f"guarantee: {guarantee.name}")
        for party, assets in visibility.items():
            role = scenario.role_of(party)
            for asset, form in assets.items():
                if guarantee.covers(party, role, asset):
                    claim.checked += 1
                    if not form.reveals_at_most(guarantee.max_form):
                        owner, index = first_seen[(party, asset)]
                        where = "" if owner == party else f" (sent to it: {owner} entry {index})"
                        claim.fail(
                            party,
                            index if owner == party else None,
                            f"saw {asset} as {form}; allowed at most {guarantee.max_form}{where}",
                        )
        claims.append(claim)
    return claims


def _needles(
    scenario: Scenario, manifest: dict[str, Any]
) -> dict[tuple[str, str, str], list[bytes]]:
    """What the content scan looks for, by (claim name, asset): the scenario's
    canaries, and the fingerprints (hex) that actions reported to the
    harness, e.g. a contributor's canaries and windows of its raw updates."""
    needles: dict[tuple[str, str, str], list[bytes]] = defaultdict(list)
    for canary in scenario.canaries:
        needles[(f"canary {canary.asset}", canary.asset, "the canary")].append(
            canary.value.encode()
        )
    for action in manifest.get("actions", []):
        result = action.get("result")
        reported = result.get(FINGERPRINTS, {}) if isinstance(result, dict) else {}
        for asset, values in reported.items():
            title = f"content scan: {asset} (fingerprints from {action.get('party')})"
            key = (title, asset, "a fingerprint")
            needles[key] += [bytes.fromhex(v) for v in values]
    return needles


def _scan_canaries(
    run: RunRecord,
    scenario: Scenario,
    manifest: dict[str, Any],
    logs: dict[str, list[dict[str, Any]]],
) -> list[Claim]:
    """Search every party's received bytes for each canary and fingerprint of
    an asset it may not see in plaintext, whatever the labels claim."""
    policy = Policy(protocols={}, guarantees=tuple(scenario.policy_guarantees()))
    claims = []
    for (title, asset, what), values in _needles(scenario, manifest).items():
        claim = Claim(title)
        for name, entries in logs.items():
            role: Role = scenario.role_of(name)
            if policy.entitled_to_plaintext(name, role, asset):
                continue
            for entry in entries:
                if entry.get("direction") != Direction.IN or not entry.get("blob"):
                    continue
                claim.checked += 1
                data = run.blob(name, entry) or b""
                if any(value in data for value in values):
                    claim.fail(
                        name,
                        entry["index"],
                        f"received bytes contain {what} of {asset} "
                        f"(labelled {labels_text(entry.get('labels', []))})",
                    )
        claims.append(claim)
    return claims

"""Loading a run directory for the audit: the manifest, the scenario, each
party's certified key and its log, checked (the log-integrity claim)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from evidence.claims import Claim, Finding
from orchestrator.scenario import Scenario, parse_scenario
from parties.directory import setup_fingerprint
from parties.errors import AirlockError, IdentityError
from parties.identity import ca_fingerprint, load_signing_certificate
from parties.log import Direction, Outcome
from parties.log_check import UNSEALED, blob_path, verify_log


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

    def received(
        self, party: str, protocol: str | None, step: str
    ) -> list[tuple[dict[str, Any], bytes]]:
        """(entry, payload) of every admitted envelope of this step at `party`
        (of this protocol; None: of any)."""
        found = []
        for entry in self.logs.get(party, []):
            if (entry.get("direction"), entry.get("outcome")) != (Direction.IN, Outcome.ADMITTED):
                continue
            if entry.get("step") != step or protocol not in (None, entry.get("protocol")):
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
    bindings["setup_sha256"] = setup_fingerprint(manifest.get("provisioned") or {})
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
            if problem.note:  # cannot be confirmed, which is not shown wrong
                integrity.notes.append(Finding(name, problem.entry, problem.problem))
                continue
            if problem.problem == UNSEALED and name in manifest.get("dropouts", []):
                # a dropout the protocol is built to survive: killed on purpose,
                # or lost (its process died, or it missed a deadline)
                why = manifest.get("lost", {}).get(name, "injected fault")
                integrity.notes.append(
                    Finding(
                        name,
                        None,
                        f"{UNSEALED}: it dropped out ({why}); its entries verify, "
                        "but a truncated tail cannot be ruled out",
                    )
                )
                continue
            integrity.fail(problem.party, problem.entry, problem.problem)
        logs[name] = [e for e in entries if not e.get("unparsed")]
    return RunRecord(
        run_dir, manifest, scenario, keys, logs, integrity, bindings.get("ca_sha256", "")
    )

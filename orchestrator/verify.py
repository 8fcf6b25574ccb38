"""`airlock verify` and `airlock bom`: load a run directory, check its logs
(as the audit does), then run the offline checks of each protocol of its
stages (`Protocol.verify`), which read the run through `ProtocolRun`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from evidence.claims import Claim, LogEntry, OfflineChecks
from orchestrator.audit import ClaimsReport, RunRecord, load_run
from parties.errors import AirlockError
from protocols import get_protocol

# what a run says when none of its stages has offline checks (only
# attestation has them, and only it logs a model a BOM could describe)
NOTHING_TO_VERIFY = "no attestation stage in this run: nothing further to verify"
NOTHING_TO_DESCRIBE = "the run has no ledger, so no logged model to describe"


@dataclass(frozen=True)
class ProtocolRun:
    """A loaded run as one protocol's offline checks read it (`RunEvidence`)."""

    run: RunRecord
    protocol: str

    @property
    def completed(self) -> bool:
        return self.run.manifest.get("outcome") == "completed"

    def parties(self, role: str | None = None) -> list[str]:
        scenario = self.run.scenario
        return [n for n in scenario.parties if role is None or scenario.role_of(n) == role]

    def role_of(self, party: str) -> str:
        return self.run.scenario.role_of(party)

    @property
    def run_id(self) -> str:
        return self.run.run_id

    def settings(self, protocol: str) -> dict[str, Any] | None:
        given = self.run.scenario.stage_settings().get(protocol)
        if given is None:
            return None
        params = get_protocol(protocol).params
        return dict(given) if params is None else params.model_validate(given).model_dump()

    def key(self, party: str) -> ed25519.Ed25519PublicKey:
        key: ed25519.Ed25519PublicKey = self.run.keys[party]
        return key

    def entries(self, party: str) -> Sequence[LogEntry]:
        return self.run.logs.get(party, [])

    def received(
        self, party: str, step: str, *, any_protocol: bool = False
    ) -> list[tuple[LogEntry, bytes]]:
        return self.run.received(party, None if any_protocol else self.protocol, step)

    def holdings(self, party: str) -> object:
        return self.run.scenario.holdings_of(party, self.protocol)

    @property
    def directory(self) -> Path:
        return self.run.run_dir

    @property
    def provisioned(self) -> dict[str, Any]:
        published = self.run.manifest.get("provisioned")
        found = published.get(self.protocol) if isinstance(published, dict) else None
        return found if isinstance(found, dict) else {}


def offline_checks(run: RunRecord) -> list[tuple[ProtocolRun, OfflineChecks]]:
    """Each protocol of the run's stages that has offline checks, with its view."""
    found = []
    for name in run.scenario.protocol_names:
        checks = get_protocol(name).verify
        if checks is not None:
            found.append((ProtocolRun(run, name), checks))
    return found


def verify_run(run_dir: Path) -> ClaimsReport:
    return verify_record(load_run(run_dir))


def verify_record(run: RunRecord) -> ClaimsReport:
    """`airlock verify`'s claims about a run already loaded by `load_run`."""
    claims = [run.integrity]
    checks = offline_checks(run)
    if not checks:
        claims.append(Claim(NOTHING_TO_VERIFY))
    for view, check in checks:
        claims += check.claims(view)
    return ClaimsReport(run.run_id, run.scenario.name, claims)


def build_bom(run_dir: Path) -> str:
    """The run's AI bill of materials (CycloneDX 1.6 JSON), written by the
    first of its protocols that describes a model."""
    run = load_run(run_dir)
    writers = [(view, check.bom) for view, check in offline_checks(run) if check.bom]
    if not writers:
        raise AirlockError(f"{run_dir}: {NOTHING_TO_DESCRIBE}")
    view, write = writers[0]
    try:
        return write(view)
    except AirlockError as error:
        raise AirlockError(f"{run_dir}: {error}") from None

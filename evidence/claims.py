"""Claims about a finished run, and what a protocol's offline checks read.

A `Claim` is one property checked (log integrity, "receipts name the
committed model"), with what was checked and every finding against it.
The audit makes them; so does each protocol's `OfflineChecks` (the checks
`airlock verify` and `airlock bom` run), from a `RunEvidence`: the run's
parties, certified keys and logs, which the orchestrator loads and checks
first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric import ed25519


@dataclass
class Finding:
    party: str | None
    entry: int | None
    detail: str

    def __str__(self) -> str:
        where = self.party or "run"
        if self.entry is not None:
            where += f" entry {self.entry}"
        return f"{where}: {self.detail}"


@dataclass
class Claim:
    name: str
    findings: list[Finding] = field(default_factory=list)
    checked: int = 0
    notes: list[Finding] = field(default_factory=list)  # worth knowing, not failures

    @property
    def ok(self) -> bool:
        return not self.findings

    def fail(self, party: str | None, entry: int | None, detail: str) -> None:
        self.findings.append(Finding(party, entry, detail))


LogEntry = dict[str, Any]


class RunEvidence(Protocol):
    """One protocol's view of a finished run whose logs were checked."""

    def parties(self, role: str | None = None) -> list[str]:
        """The parties of `role` (default: all), in the scenario's order."""
        ...

    def role_of(self, party: str) -> str: ...

    @property
    def run_id(self) -> str:
        """The run's id, as every envelope of it names it."""
        ...

    def settings(self, protocol: str) -> dict[str, Any] | None:
        """The params the run's stages of `protocol` share, as configured in
        the scenario, its defaults filled in; None if no stage runs it."""
        ...

    @property
    def completed(self) -> bool:
        """Whether the run finished every stage: a failed run may end before
        a claim had anything to check (not reached, rather than broken)."""
        ...

    def key(self, party: str) -> ed25519.Ed25519PublicKey:
        """The party's signing key, as the run's CA certified it."""
        ...

    @property
    def directory(self) -> Path:
        """The run directory: what parties published lies at its top level."""
        ...

    def entries(self, party: str) -> Sequence[LogEntry]:
        """The party's log entries, in order."""
        ...

    def received(
        self, party: str, step: str, *, any_protocol: bool = False
    ) -> list[tuple[LogEntry, bytes]]:
        """(entry, payload) of each envelope of this protocol's `step` (or,
        with `any_protocol`, of every protocol's step of that name: a ledger
        logs for several) that `party` admitted and kept."""
        ...

    def holdings(self, party: str) -> object:
        """What `party` holds, as this protocol declares it."""
        ...

    @property
    def provisioned(self) -> dict[str, Any]:
        """What this protocol's trusted setup published (the manifest's
        `provisioned`, e.g. a simulated vendor's root); empty if nothing."""
        ...


@dataclass(frozen=True)
class OfflineChecks:
    """What a protocol checks of a run from its logs alone: `claims` for
    `airlock verify`; `bom`, if set, writes `airlock bom`'s document (raising
    AirlockError when the run has nothing to describe)."""

    claims: Callable[[RunEvidence], list[Claim]]
    bom: Callable[[RunEvidence], str] | None = None

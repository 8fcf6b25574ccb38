"""The directory of a run's parties: name, role, address and signing key.

Built by the orchestrator from what each party published (public material
only) and given to every party before the first delivery.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from evidence.canonical import canonical_json
from parties.errors import ConfigError
from parties.identity import ca_fingerprint, load_signing_certificate
from parties.roles import Role


@dataclass(frozen=True)
class PartyEntry:
    name: str
    role: Role
    address: str  # host:port of its gRPC server
    signing_cert_pem: bytes


def setup_fingerprint(published: Mapping[str, Any]) -> str:
    """SHA-256 of what the run's trusted setups published (the manifest's
    `provisioned`, e.g. the simulated TEE vendor's root): every party binds
    it into its signed log head, so a root swapped in the run directory
    afterwards is caught by the audit."""
    return hashlib.sha256(canonical_json(dict(published))).hexdigest()


class Directory:
    def __init__(
        self, entries: list[PartyEntry], ca_pem: bytes, published: Mapping[str, Any] | None = None
    ) -> None:
        self.ca_fingerprint = ca_fingerprint(ca_pem)
        self.setup_fingerprint = setup_fingerprint(published or {})
        self._entries = {entry.name: entry for entry in entries}
        self._keys: dict[str, ed25519.Ed25519PublicKey] = {
            entry.name: load_signing_certificate(entry.signing_cert_pem, ca_pem, entry.name)
            for entry in entries
        }

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def entry(self, name: str) -> PartyEntry:
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(f"no party named {name!r} in this run") from None

    def role_of(self, name: str) -> Role:
        return self.entry(name).role

    def public_key(self, name: str) -> ed25519.Ed25519PublicKey:
        return self._keys[name]

    def with_role(self, role: Role) -> list[str]:
        return sorted(name for name, entry in self._entries.items() if entry.role == role)

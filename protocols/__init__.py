"""Airlock's protocols, one folder each. `get_protocol(name)` is the registry.

Protocols are imported on first use: the federated one brings in torch,
which a run of the other protocols need not pay for.
"""

from __future__ import annotations

import importlib

from parties.errors import ConfigError
from parties.protocol import Protocol

MODULES = {
    "walkthrough": "protocols.walkthrough",
    "attestation": "protocols.attestation",
    "federated": "protocols.federated",
    "tee": "protocols.tee",
    "pir": "protocols.pir",
    "mpc": "protocols.mpc",
}


def protocol_names() -> list[str]:
    return sorted(MODULES)


def get_protocol(name: str) -> Protocol:
    if name not in MODULES:
        raise ConfigError(f"unknown protocol {name!r} (one of: {', '.join(sorted(MODULES))})")
    protocol: Protocol = importlib.import_module(MODULES[name]).PROTOCOL
    return protocol

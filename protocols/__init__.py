"""Airlock's protocols, one folder each. `get_protocol(name)` is the registry."""

from __future__ import annotations

from parties.errors import ConfigError
from parties.protocol import Protocol


def _registry() -> dict[str, Protocol]:
    from protocols import attestation, walkthrough

    return {p.name: p for p in (walkthrough.PROTOCOL, attestation.PROTOCOL)}


def protocol_names() -> list[str]:
    return sorted(_registry())


def get_protocol(name: str) -> Protocol:
    registry = _registry()
    if name not in registry:
        raise ConfigError(f"unknown protocol {name!r} (one of: {', '.join(sorted(registry))})")
    return registry[name]

"""The roles a party can play, and what each role holds.

The five roles of the roadmap, plus helper roles that protocols add (a dealer
for MPC randomness, a ledger for the transparency log, an enclave inside the
deployer, a verifier appraising attestation evidence). A role class declares
the private inputs a party of that role holds; their protocol behaviour lives
in `protocols/<name>/`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from parties.errors import ConfigError


class Role(enum.StrEnum):
    DATA_CONTRIBUTOR = "data_contributor"
    MODEL_CREATOR = "model_creator"
    DEPLOYER = "deployer"
    END_USER = "end_user"
    EXTERNAL_DATABASE = "external_database"
    # helper roles
    DEALER = "dealer"
    LEDGER = "ledger"
    ENCLAVE = "enclave"
    COMPUTE = "compute"
    VERIFIER = "verifier"


class Holdings(BaseModel):
    """What a party of a role holds privately. Unknown keys are errors.

    These models keep only what every protocol shares (records, prompts,
    documents, the model's name); a protocol that needs more declares its
    own model extending one of these (`Protocol.holdings`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DataContributor(Holdings):
    """Holds a private training set: records of named text fields."""

    records: tuple[dict[str, str], ...] = ()


class ModelCreator(Holdings):
    """Holds the model; `model` names it (weights arrive with the training
    protocols)."""

    model: str = "airlock-tiny"


class Deployer(Holdings):
    """Holds the serving infrastructure; no private data of its own."""


class EndUser(Holdings):
    """Holds prompts."""

    prompts: tuple[str, ...] = ()


class ExternalDatabase(Holdings):
    """Holds a document store for retrieval: `documents`."""

    documents: tuple[str, ...] = ()


class Helper(Holdings):
    """A helper role (dealer, ledger, enclave, compute, verifier) holds nothing at start."""


HOLDINGS: dict[Role, type[Holdings]] = {
    Role.DATA_CONTRIBUTOR: DataContributor,
    Role.MODEL_CREATOR: ModelCreator,
    Role.DEPLOYER: Deployer,
    Role.END_USER: EndUser,
    Role.EXTERNAL_DATABASE: ExternalDatabase,
    Role.DEALER: Helper,
    Role.LEDGER: Helper,
    Role.ENCLAVE: Helper,
    Role.COMPUTE: Helper,
    Role.VERIFIER: Helper,
}


def parse_role(text: str) -> Role:
    try:
        return Role(text)
    except ValueError:
        raise ConfigError(
            f"unknown role {text!r} (one of: {', '.join(r.value for r in Role)})"
        ) from None


def holdings_for(
    role: Role,
    values: Mapping[str, Any],
    where: str,
    schemas: Mapping[str, type[Holdings]] | None = None,
) -> dict[str, Holdings]:
    """Validate a party's private inputs for its role, once per protocol:
    `schemas` maps each active protocol to the holdings model it declares
    for the role (a subclass of the role's own), and the result maps each
    protocol to what its role logic sees. A key no schema knows is an
    error; errors name `where`.key."""
    base = HOLDINGS[role]
    schemas = dict(schemas or {"": base})
    known = {key for schema in (base, *schemas.values()) for key in schema.model_fields}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"{where}.{unknown[0]}: Extra inputs are not permitted: role {role} holds"
            f" {', '.join(sorted(known)) or 'nothing'} in this scenario's protocols"
        )
    held = {}
    for protocol, schema in schemas.items():
        try:
            held[protocol] = schema.model_validate(
                {k: v for k, v in values.items() if k in schema.model_fields}
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            key = "".join(f".{p}" for p in first["loc"])
            raise ConfigError(f"{where}{key}: {first['msg']} (role {role})") from None
    return held

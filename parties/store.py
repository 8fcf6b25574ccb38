"""A party's own store: what it keeps from one stage for a later one.

The model creator's trained weights, a contributor's accepted attestation, a
database's index: each is written by the protocol that made it and read by
another protocol's stage, in the same party. Nothing travels through the
orchestrator or Ray: the store is a folder in the party's own workdir, next
to its log, and nobody else reads it.

Each kept thing is declared once, by the protocol that writes it, as a
`Kept(name, kind)`: the name is its file, the kind its type (a pydantic
model, stored as JSON, or raw bytes). A reader gets the declared type back
or a clear error, never a half-written file (writes go through a rename).
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar, cast

from pydantic import BaseModel, ValidationError

from parties.errors import AirlockError

STORE_DIR = "store"
NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")

T = TypeVar("T", bound=BaseModel | bytes)


class NotKept(AirlockError):
    """What a stage asked its party's store for is not there (or not readable)."""


@dataclass(frozen=True)
class Kept(Generic[T]):
    """The name and type of one thing a party keeps between stages."""

    name: str
    kind: type[T]

    def __post_init__(self) -> None:
        if not NAME_RE.fullmatch(self.name) or ".." in self.name:
            raise ValueError(f"a kept name is lowercase letters, digits, _ . - : {self.name!r}")


class PartyStore:
    def __init__(self, root: Path, party: str) -> None:
        self.root = root / STORE_DIR
        self.party = party

    def put(self, key: Kept[T], value: T) -> None:
        if not isinstance(value, key.kind):
            raise TypeError(f"{key.name} keeps a {key.kind.__name__}, not {type(value).__name__}")
        data = value if isinstance(value, bytes) else value.model_dump_json().encode()
        self.root.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.root, prefix=f".{key.name}.")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            os.replace(temporary, self.root / key.name)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def has(self, key: Kept[T]) -> bool:
        return (self.root / key.name).is_file()

    def get(self, key: Kept[T]) -> T:
        path = self.root / key.name
        if not path.is_file():
            raise NotKept(f"{self.party} keeps no {key.name} (no earlier stage made it)")
        data = path.read_bytes()
        if not issubclass(key.kind, BaseModel):
            return cast(T, data)
        try:
            return cast(T, key.kind.model_validate_json(data))
        except ValidationError as exc:
            kind = key.kind.__name__
            raise NotKept(f"{self.party}'s {key.name} is not a {kind}: {exc}") from None

    def names(self) -> list[str]:
        """What this party keeps (for its report; the contents stay here)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if not p.name.startswith("."))

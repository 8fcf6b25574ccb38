"""Labels say what a payload reveals: an asset in a form.

Forms are ordered from most to least revealing; the wire enum's numeric
order is that order, so "at most as revealing as" is a comparison.
"""

from __future__ import annotations

import enum
import fnmatch
import re
from dataclasses import dataclass

from parties.errors import ConfigError
from parties.wire import airlock_pb2 as pb


class Form(enum.IntEnum):
    PLAINTEXT = pb.PLAINTEXT
    AGGREGATE = pb.AGGREGATE
    NOISED = pb.NOISED
    MASKED = pb.MASKED
    SHARE = pb.SHARE
    CIPHERTEXT = pb.CIPHERTEXT
    DIGEST = pb.DIGEST
    PUBLIC = pb.PUBLIC

    @classmethod
    def parse(cls, text: str) -> Form:
        try:
            return cls[text.upper()]
        except KeyError:
            choices = ", ".join(f.name.lower() for f in cls)
            raise ConfigError(f"unknown form {text!r} (one of: {choices})") from None

    def reveals_at_most(self, limit: Form) -> bool:
        """True when this form reveals no more than `limit`."""
        return self.value >= limit.value

    def __str__(self) -> str:
        return self.name.lower()


# "kind:owner", e.g. "prompt:alice", "weights:model", "train:hospital_1". No
# glob characters: rules and guarantees match assets with globs, so a label
# such as "prompt:*" would match (and escape) a guarantee about "prompt:alice".
ASSET_RE = re.compile(r"^[a-z][a-z0-9_-]*:[A-Za-z0-9_.-]+$")


@dataclass(frozen=True, order=True)
class Label:
    asset: str
    form: Form

    def __post_init__(self) -> None:
        if not ASSET_RE.match(self.asset):
            raise ValueError(f"malformed asset name {self.asset!r} (expected kind:owner)")

    def __str__(self) -> str:
        return f"{self.asset}@{self.form}"


def asset_matches(pattern: str, asset: str) -> bool:
    """Glob match of an asset name, e.g. "prompt:*" matches "prompt:alice"."""
    return fnmatch.fnmatchcase(asset, pattern)

"""The errors Airlock raises. Every error a user can see derives from AirlockError.

A refusal told to an untrusted peer says *that* a check failed and which one;
the local log and the audit may say more.
"""

from __future__ import annotations

# defined below the runtime (the evidence layer and the model raise them too)
from evidence.errors import AirlockError as AirlockError
from evidence.errors import ClaimFailed as ClaimFailed
from parties.wire import airlock_pb2 as pb


class ConfigError(AirlockError):
    """A scenario or setting is invalid; the message names the file and key."""


class IdentityError(AirlockError):
    """A certificate or signature does not verify against the run's authority."""


class Refused(AirlockError):
    """A boundary refused an envelope. `reason` is a RefusalReason value."""

    def __init__(self, reason: pb.RefusalReason, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{pb.RefusalReason.Name(reason)}: {detail}")

    @property
    def reason_name(self) -> str:
        return pb.RefusalReason.Name(self.reason)

    def __reduce__(self) -> tuple[type, tuple[int, str]]:  # survives pickling (Ray's errors)
        return (type(self), (self.reason, self.detail))


class Undelivered(AirlockError):
    """An envelope could not reach its receiver (peer down, unreachable, timed out)."""


class PartyFailed(AirlockError):
    """A party stopped or failed during a run; the message names the party."""

    def __init__(self, party: str, detail: str) -> None:
        self.party = party
        self.detail = detail
        super().__init__(f"party {party!r}: {detail}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        return (type(self), (self.party, self.detail))


class PartiesLost(AirlockError):
    """Parties whose process died or that missed a deadline, where the
    protocol cannot go on without them; the message names each and why."""

    def __init__(self, lost: dict[str, str]) -> None:
        self.lost = dict(lost)
        super().__init__(
            "lost " + "; ".join(f"{party} ({why})" for party, why in sorted(self.lost.items()))
        )

    def __reduce__(self) -> tuple[type, tuple[dict[str, str]]]:
        return (type(self), (self.lost,))


class BadQuery(AirlockError):
    """A retrieval query that a database refuses: wrong length, dtype or range,
    or made for another version of the database (a stale hint)."""


class OutOfStep(AirlockError):
    """A message or action that the role's state does not expect now (a
    share before the keys, a second unmask request): refused as OUT_OF_STEP,
    never a KeyError."""

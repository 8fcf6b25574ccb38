"""The errors every layer shares, defined at the bottom so that the evidence
layer and the model need nothing above them. `parties.errors` re-exports
both and adds the runtime's own."""

from __future__ import annotations


class AirlockError(Exception):
    """Base of every error Airlock reports to a user; the CLI catches only this."""


class ClaimFailed(AirlockError):
    """A verifiable claim (a proof, a signature, a statement) does not hold.
    `claim` names it, e.g. "inclusion of record 17 in dataset:hospital_1"."""

    def __init__(self, claim: str, detail: str) -> None:
        self.claim = claim
        self.detail = detail
        super().__init__(f"{claim}: {detail}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        return (type(self), (self.claim, self.detail))

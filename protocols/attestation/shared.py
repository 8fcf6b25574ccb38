"""What every attesting party shares: the stage's params, the state each
keeps (its rejections, the last ledger head it saw), submitting a statement
to the ledger and checking the answer, and auditing the ledger later.

A party that finds a claim broken does not stop the run: it records the
rejection (returned in its action's summary) and `airlock verify` reports it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from evidence.statements import json_or_none
from parties.errors import ClaimFailed, Refused
from parties.labels import Form, Label
from parties.protocol import PartyContext, RoleState
from parties.roles import Role
from protocols.artifacts import LEDGER_HEAD, LedgerHead
from protocols.attestation.ledger import TreeHead, check_answer, entry_bytes
from protocols.attestation.rules import Step

Summary = dict[str, Any]


class Settings(BaseModel):
    """The stage's params (see docs/attestation.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    training_protocol: str = "none"
    training: dict[str, Any] = {}
    # what the creator commits to: deterministic stand-in weights named by
    # its `model` holding, or the model it trained in an earlier stage
    # (served by the tee and mpc stages, not by this protocol's deployer)
    model: Literal["placeholder", "trained"] = "placeholder"
    # the deployers the model creator deploys to, and so endorses to sign
    # receipts for its model (default: every deployer of the run)
    deploy_to: tuple[str, ...] | None = None


@dataclass
class Checking(RoleState):
    """What every party of this protocol keeps: the claims it rejected."""

    rejected: list[str] = field(default_factory=list)

    def reject(self, error: ClaimFailed) -> str:
        self.rejected.append(str(error))
        return str(error)


def ledger_of(ctx: PartyContext) -> str:
    return ctx.peers(Role.LEDGER)[0]


def last_head(ctx: PartyContext) -> TreeHead | None:
    """The last ledger head this party was shown, in any stage."""
    if not ctx.store.has(LEDGER_HEAD):
        return None
    return TreeHead.from_json(ctx.store.get(LEDGER_HEAD).model_dump(), "ledger head kept")


def keep_head(ctx: PartyContext, head: TreeHead) -> None:
    ctx.store.put(LEDGER_HEAD, LedgerHead.model_validate(head.to_json()))


def submit(
    ctx: PartyContext,
    statement: dict[str, Any],
    labels: list[Label],
    *,
    since: int | None = None,
) -> dict[str, Any]:
    """Log a statement; check the ledger's answer (it includes the statement
    and extends the last head this party saw); return it. Any protocol with
    a `submit` rule to the ledger logs through this. `since`: the last head
    size of whom the entry is logged for (an enclave logs a receipt for its
    end user, who checks the consistency proof); then only inclusion is
    checked here."""
    ledger = ledger_of(ctx)
    last = last_head(ctx) if since is None else None
    asked = since if since is not None else last.size if last else 0
    payload = json.dumps({"statement": statement, "since": asked}).encode()
    # the session names the entry, so an answer can be matched to its statement
    session = hashlib.sha256(entry_bytes(statement)).hexdigest()
    claim = f"ledger entry of {ctx.name}"
    try:
        reply = ctx.deliver(ledger, Step.SUBMIT, labels, payload, session)
    except Refused as refusal:
        raise ClaimFailed(claim, f"the ledger refused the statement ({refusal})") from None
    if reply is None:
        raise ClaimFailed(claim, "the ledger did not answer")
    answer = json_or_none(reply.payload)
    keep_head(
        ctx, check_answer(answer, ctx.public_key(ledger), entry_bytes(statement), last, claim)
    )
    return answer


def audit_ledger(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    """Ask the ledger for its latest head and check it extends the last one
    this party saw (in this protocol's stages or another's)."""
    last = last_head(ctx)
    if last is None:
        return {"checked": False}
    ledger = ledger_of(ctx)
    payload = json.dumps({"since": last.size}).encode()
    reply = ctx.deliver(
        ledger, Step.HEAD_REQUEST, [Label(f"ledger:{ledger}", Form.PUBLIC)], payload
    )
    claim = f"ledger history seen by {ctx.name}"
    try:
        if reply is None:
            raise ClaimFailed(claim, "the ledger did not answer")
        head = check_answer(json_or_none(reply.payload), ctx.public_key(ledger), None, last, claim)
    except ClaimFailed as error:
        if isinstance(ctx.state, Checking):
            ctx.state.reject(error)
        return {"consistent": False, "rejected": str(error)}
    keep_head(ctx, head)
    return {"consistent": True, "from": last.size, "to": head.size}

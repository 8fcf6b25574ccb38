"""The ledger party: logs each statement its sender signed, and answers
every submission and head request with a signed head and proofs.

A ledger keeps one log whichever protocol's stage appends to it (the
attestation statements, and the tee protocol's deployments and enclave
receipts): it lives in the ledger's process, keyed by its store."""

from __future__ import annotations

import enum
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evidence.statements import open_statement
from parties.envelope import Envelope
from parties.labels import Form, Label
from parties.protocol import PartyContext, Reply, RoleState, state_of
from parties.store import PartyStore
from protocols.attestation.ledger import TransparencyLog, entry_bytes
from protocols.attestation.rules import SIGNED_BY_SENDER, Step


class LedgerPhase(enum.Enum):
    SERVING = 1  # from the start: a ledger answers whoever asks


_LOGS: dict[Path, TransparencyLog] = {}
_LOGS_LOCK = threading.Lock()


def party_log(ctx: PartyContext) -> TransparencyLog:
    """This ledger's one log, made on its first submission in any protocol."""
    with _LOGS_LOCK:  # concurrent first submissions share one log
        log = _LOGS.get(ctx.store.root)
        if log is None:
            log = _LOGS[ctx.store.root] = TransparencyLog(
                ctx.name, ctx.public_key(ctx.name), ctx.sign
            )
        return log


def logged_entries(store: PartyStore) -> list[bytes]:
    """What the ledger with this store has logged so far (for tests)."""
    log = _LOGS.get(store.root)
    return list(log.entries) if log else []


@dataclass
class LedgerState(RoleState):
    phase: LedgerPhase = LedgerPhase.SERVING

    def log_for(self, ctx: PartyContext, asker: str) -> TransparencyLog:
        """The log that answers `asker`: one log, whoever asks."""
        return party_log(ctx)


def submission(envelope: Envelope) -> tuple[dict[str, Any], int]:
    """The statement and the asker's last seen head size (a malformed
    submission fails the handler: refused as HANDLER_FAILED)."""
    request = json.loads(envelope.payload)
    return request["statement"], int(request.get("since", 0))


def check_signed(ctx: PartyContext, envelope: Envelope, statement: dict[str, Any]) -> None:
    """The statement is signed by its sender, of the kind its role signs."""
    sender = envelope.header.sender
    open_statement(
        statement,
        ctx.public_key(sender),
        SIGNED_BY_SENDER[ctx.role_of(sender)],
        f"statement submitted by {sender}",
    )


def logged(ctx: PartyContext, answer: dict[str, Any]) -> Reply:
    return Reply(
        Step.LOGGED, (Label(f"ledger:{ctx.name}", Form.PUBLIC),), json.dumps(answer).encode()
    )


def append(ctx: PartyContext, envelope: Envelope, statement: dict[str, Any], since: int) -> Reply:
    log = state_of(ctx, LedgerState).log_for(ctx, envelope.header.sender)
    return logged(ctx, log.submit(entry_bytes(statement), since))


def on_submit(ctx: PartyContext, envelope: Envelope) -> Reply:
    """Log a statement signed by its sender; answer with head and proofs."""
    statement, since = submission(envelope)
    check_signed(ctx, envelope, statement)
    return append(ctx, envelope, statement, since)


def on_head_request(ctx: PartyContext, envelope: Envelope) -> Reply:
    since = int(json.loads(envelope.payload).get("since", 0))
    log = state_of(ctx, LedgerState).log_for(ctx, envelope.header.sender)
    return logged(ctx, log.answer(None, since))

"""The ledger in the tee protocol: it logs a model creator's deployment
statement (signed with the creator's party key), then receipts an enclave
signs with the receipt key the latest such statement names for it; nothing
else. It is the ledger's one log (protocols/attestation/ledger_server.py),
so the attestation protocol's ledger audit covers these entries too."""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ed25519

from evidence.receipts import open_deployment, open_receipt
from parties.envelope import Envelope
from parties.errors import ClaimFailed
from parties.protocol import PartyContext, Reply, RoleState, state_of
from protocols.attestation.ledger import entry_bytes
from protocols.attestation.ledger_server import logged, party_log, submission
from protocols.tee.rules import CREATOR


@dataclass
class LedgerState(RoleState):
    # by enclave: the receipt key a logged deployment statement names
    receipt_keys: dict[str, ed25519.Ed25519PublicKey] = field(default_factory=dict)


def on_submit(ctx: PartyContext, envelope: Envelope) -> Reply:
    """Log a creator's deployment, or a receipt signed under a logged one."""
    statement, since = submission(envelope)
    sender = envelope.header.sender
    state = state_of(ctx, LedgerState)
    if ctx.role_of(sender) == CREATOR:
        deployment = open_deployment(statement, sender, ctx.public_key(sender))
        answer = party_log(ctx).submit(entry_bytes(statement), since)
        state.receipt_keys[deployment.enclave] = deployment.receipt_key
        return logged(ctx, answer)
    key = state.receipt_keys.get(sender)  # the rules let only enclaves send the rest
    if key is None:
        raise ClaimFailed("enclave receipt", f"no logged deployment names a key of {sender}")
    open_receipt(statement, key)
    return logged(ctx, party_log(ctx).submit(entry_bytes(statement), since))

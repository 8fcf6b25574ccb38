"""The ledger in a serving protocol's stage (tee, mpc): it logs a model
creator's deployment statement (signed with the creator's party key), then
receipts a server (an enclave, a compute party) signs with the receipt key
the latest such statement names for it; nothing else. It is the ledger's one
log (ledger_server.py), so the attestation protocol's ledger audit and
`airlock verify` cover these entries too."""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ed25519

from evidence.receipts import open_deployment, open_receipt
from parties.envelope import Envelope
from parties.errors import ClaimFailed
from parties.protocol import PartyContext, Reply, RoleState, state_of
from parties.roles import Role
from protocols.attestation.ledger import entry_bytes
from protocols.attestation.ledger_server import logged, party_log, submission


@dataclass
class ServingLogState(RoleState):
    # by server: the receipt key a logged deployment statement names
    receipt_keys: dict[str, ed25519.Ed25519PublicKey] = field(default_factory=dict)


def on_submit(ctx: PartyContext, envelope: Envelope) -> Reply:
    """Log a creator's deployment, or a server's receipt signed under the
    key a logged one names."""
    statement, since = submission(envelope)
    sender = envelope.header.sender
    state = state_of(ctx, ServingLogState)
    if ctx.role_of(sender) == Role.MODEL_CREATOR:
        deployment = open_deployment(statement, sender, ctx.public_key(sender))
        answer = party_log(ctx).submit(entry_bytes(statement), since)
        state.receipt_keys[deployment.server] = deployment.receipt_key
        return logged(ctx, answer)
    key = state.receipt_keys.get(sender)  # the rules let only servers send the rest
    if key is None:
        raise ClaimFailed("inference receipt", f"no logged deployment names a key of {sender}")
    open_receipt(statement, key)
    return logged(ctx, party_log(ctx).submit(entry_bytes(statement), since))

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
from parties.labels import Form
from parties.protocol import PartyContext, Reply, RoleState, Rule, label_rule, state_of
from parties.roles import Role
from protocols.attestation.ledger import entry_bytes
from protocols.attestation.ledger_server import logged, party_log, submission
from protocols.attestation.rules import Step


def serving_log_rules(servers: tuple[Role, ...]) -> tuple[Rule, ...]:
    """A serving protocol's rules to and from the ledger (its steps named as
    the attestation protocol's): the creator's deployments (a digest of the
    weights names the model), the servers' receipts (digests only), and the
    ledger's answers."""
    creator, ledger = Role.MODEL_CREATOR, Role.LEDGER
    receipt = (label_rule("prompt:*", Form.DIGEST), label_rule("output:*", Form.DIGEST))
    answer = (label_rule("ledger:{sender}", Form.PUBLIC),)
    return (
        Rule(Step.SUBMIT, creator, ledger, (label_rule("weights:{sender}", Form.DIGEST),)),
        *(Rule(Step.SUBMIT, server, ledger, receipt) for server in servers),
        *(
            Rule(Step.LOGGED, ledger, role, answer, reply_to=(Step.SUBMIT,))
            for role in (creator, *servers)
        ),
    )


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

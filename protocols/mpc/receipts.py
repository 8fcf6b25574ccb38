"""Receipts in the mpc protocol (`log_receipts`): each compute party signs,
with its party key, a receipt for every logit share it returns, naming the
root of the weights the model creator shared with it, the end user's salted
commitment to the prompt, the request's nonce and a digest of the share.
It logs the receipt in the ledger before it replies; the ledger logs it only
under the key the creator's logged deployment names for that party.

The end user accepts a token only if both parties' receipts hold: signed by
the party, for this request and share, naming the committed model, and
logged (the ledger's proof, under a head that extends the last it saw).
A share is uniformly random on its own, so its digest says nothing of the
answer; the prompt's commitment is salted, and the salt stays with the user.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch

from evidence.receipts import issue_receipt, new_salt, open_receipt, salted_sha256, sha256_hex
from evidence.statements import PartySigner
from parties.errors import ClaimFailed
from parties.labels import Form, Label
from parties.protocol import PartyContext, sole_peer
from parties.roles import Role
from protocols.attestation.ledger import TreeHead, check_answer, entry_bytes
from protocols.attestation.shared import last_head, submit

CLAIM = "mpc receipt"


def share_bytes(share: torch.Tensor) -> bytes:
    """What a receipt names (by SHA-256) of a logit share: its raw bytes."""
    return share.contiguous().numpy().tobytes()


def sign_and_log(
    ctx: PartyContext, user: str, request: dict[str, Any], model_root: bytes, share: torch.Tensor
) -> dict[str, Any]:
    """A compute party's receipt for one reply, and the ledger's answer (or
    why it was not logged), for the reply's header."""
    try:
        nonce, commitment = bytes.fromhex(request["nonce"]), bytes.fromhex(request["input_sha256"])
        since = int(request.get("since", 0))
    except (KeyError, TypeError, ValueError):
        raise ClaimFailed(CLAIM, "the prompt share comes without a nonce and commitment") from None
    # their lengths are the message's (messages.ReceiptRequest)
    receipt = issue_receipt(
        model_root,
        b"",  # the prompt: only the user's commitment to it is named
        share_bytes(share),
        nonce,
        ctx.name,
        PartySigner.of(ctx),
        input_sha256=commitment.hex(),
    )
    labels = [Label(f"prompt:{user}", Form.DIGEST), Label(f"output:{user}", Form.DIGEST)]
    try:
        return {"receipt": receipt, "ledger": submit(ctx, receipt, labels, since=since)}
    except ClaimFailed as error:  # the user refuses a share whose receipt is not logged
        return {"receipt": receipt, "unlogged": str(error)}


@dataclass(frozen=True)
class Expected:
    """What the end user expects of both receipts for one token's request."""

    model_root: bytes
    input_sha256: str
    nonce: bytes
    last_head: TreeHead | None

    def request(self) -> dict[str, Any]:
        """The header of the prompt shares: what the receipts must name."""
        since = self.last_head.size if self.last_head else 0
        return {"nonce": self.nonce.hex(), "input_sha256": self.input_sha256, "since": since}


@dataclass(frozen=True)
class PromptReceipts:
    """For one prompt: the committed root its receipts must name, and the
    salted commitment to the prompt (the salt never leaves the user)."""

    model_root: bytes
    input_sha256: str

    @classmethod
    def of(cls, model_root: bytes, prompt: str) -> PromptReceipts:
        return cls(model_root, salted_sha256(new_salt(), prompt.encode()))

    def expect(self, ctx: PartyContext) -> Expected:
        """For the next token: a fresh nonce, from the last ledger head seen."""
        return Expected(self.model_root, self.input_sha256, os.urandom(16), last_head(ctx))


def check_reply(
    ctx: PartyContext, party: str, meta: dict[str, Any], share: torch.Tensor, expected: Expected
) -> TreeHead:
    """The end user's check of one party's reply; returns the ledger head it was shown."""
    receipt = open_receipt(meta.get("receipt"), ctx.public_key(party))
    receipt.check(
        model_root=expected.model_root,
        input_sha256=expected.input_sha256,
        output_sha256=sha256_hex(share_bytes(share)),
        nonce=expected.nonce,
    )
    if "ledger" not in meta:
        raise ClaimFailed(
            CLAIM, f"{party}'s receipt not logged: {meta.get('unlogged', 'no proof')}"
        )
    ledger_key = ctx.public_key(sole_peer(ctx, Role.LEDGER))
    claim = f"{party}'s receipt in the ledger"
    return check_answer(
        meta["ledger"], ledger_key, entry_bytes(meta["receipt"]), expected.last_head, claim
    )

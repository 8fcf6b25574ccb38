"""The end user's check of a compute party's reply (`log_receipts`): the
receipt is signed by that party, for this request (nonce, prompt
commitment) and this logit share, names the committed model, and the ledger
proves it logged it. Every other reply is refused, naming why."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import pytest
import torch
from cryptography.hazmat.primitives.asymmetric import ed25519

from evidence.receipts import issue_receipt
from evidence.statements import PartySigner
from parties.errors import ClaimFailed
from parties.roles import Role
from protocols.attestation.ledger import TransparencyLog, entry_bytes
from protocols.mpc.receipts import Expected, PromptReceipts, check_reply, share_bytes

KEYS = {name: ed25519.Ed25519PrivateKey.generate() for name in ("compute_a", "ledger", "other")}
ROOT = os.urandom(32)


class UserView:
    """What check_reply asks of the end user's context: keys and the ledger's name."""

    def public_key(self, party: str) -> ed25519.Ed25519PublicKey:
        return KEYS[party].public_key()

    def peers(self, role: Role) -> list[str]:
        return ["ledger"] if role == Role.LEDGER else []


def reply(
    expected: Expected,
    share: torch.Tensor,
    *,
    root: bytes = ROOT,
    signer: str = "compute_a",
    logged: bool = True,
) -> dict[str, Any]:
    """A compute party's reply header, as an honest one (or not) makes it."""
    key = KEYS[signer]
    receipt = issue_receipt(
        root,
        b"",
        share_bytes(share),
        expected.nonce,
        "compute_a",
        PartySigner(key.public_key(), key.sign),
        input_sha256=expected.input_sha256,
    )
    if not logged:
        return {"receipt": receipt, "unlogged": "ledger answer: the ledger refused"}
    log = TransparencyLog("ledger", KEYS["ledger"].public_key(), KEYS["ledger"].sign)
    return {"receipt": receipt, "ledger": log.submit(entry_bytes(receipt), 0)}


@pytest.fixture
def expected() -> Expected:
    prompt = PromptReceipts.of(ROOT, "question: ...")
    return Expected(ROOT, prompt.input_sha256, os.urandom(16), None)


SHARE = torch.randint(-(2**40), 2**40, (1, 512))


def test_an_honest_reply_is_accepted(expected: Expected) -> None:
    head = check_reply(UserView(), "compute_a", reply(expected, SHARE), SHARE, expected)  # type: ignore[arg-type]
    assert head.size == 1


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda e, s: (reply(e, s, root=os.urandom(32)), s, e), "not the committed"),
        (lambda e, s: (reply(e, s), s + 1, e), "another input or output"),
        (lambda e, s: (reply(e, s), s, replace(e, nonce=os.urandom(16))), "another request"),
        (
            lambda e, s: (reply(e, s), s, replace(e, input_sha256="00" * 32)),
            "another input or output",
        ),
        (lambda e, s: (reply(e, s, signer="other"), s, e), "signature does not verify"),
        (lambda e, s: (reply(e, s, logged=False), s, e), "not logged: ledger answer"),
    ],
    ids=["other model", "other share", "replayed", "other prompt", "other key", "unlogged"],
)
def test_a_reply_whose_receipt_does_not_hold_is_refused(
    expected: Expected, tamper: Any, reason: str
) -> None:
    meta, share, asked = tamper(expected, SHARE)
    with pytest.raises(ClaimFailed) as refused:
        check_reply(UserView(), "compute_a", meta, share, asked)  # type: ignore[arg-type]
    assert reason in str(refused.value)


def test_a_proof_from_another_ledger_is_refused(expected: Expected) -> None:
    meta = reply(expected, SHARE)
    forged = TransparencyLog("ledger", KEYS["other"].public_key(), KEYS["other"].sign)
    meta["ledger"] = forged.submit(entry_bytes(meta["receipt"]), 0)
    with pytest.raises(ClaimFailed, match="not signed by ledger"):
        check_reply(UserView(), "compute_a", meta, SHARE, expected)  # type: ignore[arg-type]

"""Inference receipts: whoever serves inference signs (model commitment,
SHA-256 of the input, SHA-256 of the output, time, the user's nonce). The end
user checks the receipt against the committed model it expects."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ed25519
from securesystemslib.signer import Signer

from parties.errors import ClaimFailed
from protocols.attestation.statements import RECEIPT_PREDICATE, open_statement, sign_statement


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def issue_receipt(
    model_root: bytes,
    prompt: bytes,
    output: bytes,
    nonce: bytes,
    server: str,
    signer: Signer,
) -> dict:
    """The server's signed receipt, as a DSSE envelope (subject: the output)."""
    predicate = {
        "server": server,
        "model_sha256": model_root.hex(),
        "input_sha256": sha256_hex(prompt),
        "nonce": nonce.hex(),
        "time_unix": time.time(),
    }
    return sign_statement(
        f"output:{server}", sha256_hex(output), RECEIPT_PREDICATE, predicate, signer
    )


@dataclass(frozen=True)
class Receipt:
    server: str
    model_sha256: str
    input_sha256: str
    output_sha256: str
    nonce: str


def check_receipt(
    envelope: object,
    server_key: ed25519.Ed25519PublicKey,
    *,
    model_root: bytes,
    prompt: bytes,
    output: bytes,
    nonce: bytes,
) -> Receipt:
    """The end user's check: signed by the server, for this prompt, output and
    nonce, and naming the committed model. Raises ClaimFailed otherwise."""
    claim = "inference receipt"
    statement = open_statement(envelope, server_key, RECEIPT_PREDICATE, claim)
    predicate = statement.predicate
    try:
        receipt = Receipt(
            str(predicate["server"]),
            str(predicate["model_sha256"]),
            str(predicate["input_sha256"]),
            statement.sha256,
            str(predicate["nonce"]),
        )
    except KeyError as missing:
        raise ClaimFailed(claim, f"receipt lacks {missing}") from None
    if receipt.nonce != nonce.hex():
        raise ClaimFailed(claim, "receipt answers another request (nonce differs)")
    if receipt.input_sha256 != sha256_hex(prompt) or receipt.output_sha256 != sha256_hex(output):
        raise ClaimFailed(claim, "receipt is for another input or output")
    if receipt.model_sha256 != model_root.hex():
        raise ClaimFailed(
            claim,
            f"served by model {receipt.model_sha256[:16]}..., "
            f"not the committed {model_root.hex()[:16]}...",
        )
    return receipt

"""Inference receipts: whoever serves inference signs (model commitment,
digest of the input, digest of the output, time, the user's nonce). The end
user checks the receipt against the committed model it expects.

The digests are salted, `SHA-256(salt || data)` with a 32-byte salt, so that
whoever reads a logged receipt (the ledger, anyone auditing it) cannot
recover a guessable prompt or answer by hashing candidates. The end user
draws the prompt's salt and keeps it (it opens the commitment later, to
whomever it chooses); the server only ever sees the commitment. The server
draws the output's salt and returns it to the user alone, beside the
receipt. With empty salts (the TEE protocol, whose receipts travel only
sealed to the user) the digests are plain SHA-256.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from securesystemslib.signer import Signer

from evidence.errors import ClaimFailed
from evidence.statements import open_statement, sign_statement

RECEIPT_PREDICATE = "urn:airlock:predicate:inference-receipt:v1"
# a model creator's statement that it released a model to a server (an
# appraised enclave, a compute party), naming the key the server signs
# receipts with (the enclave's attested key, the compute party's own)
DEPLOYMENT_PREDICATE = "urn:airlock:predicate:model-deployment:v1"
SALT_BYTES = 32
CLAIM = "inference receipt"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def new_salt() -> bytes:
    return os.urandom(SALT_BYTES)


def salted_sha256(salt: bytes, data: bytes) -> str:
    """The commitment to `data` under `salt` (a fixed-length salt, so unambiguous)."""
    return sha256_hex(salt + data)


def issue_receipt(
    model_root: bytes,
    prompt: bytes,
    output: bytes,
    nonce: bytes,
    server: str,
    signer: Signer,
    *,
    input_sha256: str | None = None,
    output_salt: bytes = b"",
) -> dict:
    """The server's signed receipt, as a DSSE envelope (subject: the output).
    `input_sha256`: the user's salted commitment to the prompt, if it sent
    one (default: SHA-256 of the prompt); `output_salt`: the server's salt
    for the output digest."""
    predicate = {
        "server": server,
        "model_sha256": model_root.hex(),
        "input_sha256": sha256_hex(prompt) if input_sha256 is None else input_sha256,
        "nonce": nonce.hex(),
        "time_unix": time.time(),
    }
    return sign_statement(
        f"output:{server}",
        salted_sha256(output_salt, output),
        RECEIPT_PREDICATE,
        predicate,
        signer,
    )


@dataclass(frozen=True)
class Receipt:
    server: str
    model_sha256: str
    input_sha256: str
    output_sha256: str
    nonce: str

    def check(
        self, *, model_root: bytes, input_sha256: str, output_sha256: str, nonce: bytes
    ) -> None:
        """For this request (nonce), input and output, naming the committed model."""
        if self.nonce != nonce.hex():
            raise ClaimFailed(CLAIM, "receipt answers another request (nonce differs)")
        if self.input_sha256 != input_sha256 or self.output_sha256 != output_sha256:
            raise ClaimFailed(CLAIM, "receipt is for another input or output")
        if self.model_sha256 != model_root.hex():
            raise ClaimFailed(
                CLAIM,
                f"served by model {self.model_sha256[:16]}..., "
                f"not the committed {model_root.hex()[:16]}...",
            )


def open_receipt(envelope: object, server_key: ed25519.Ed25519PublicKey) -> Receipt:
    """A receipt signed by `server_key`, its fields read. Raises ClaimFailed."""
    statement = open_statement(envelope, server_key, RECEIPT_PREDICATE, CLAIM)
    predicate = statement.predicate
    try:
        return Receipt(
            str(predicate["server"]),
            str(predicate["model_sha256"]),
            str(predicate["input_sha256"]),
            statement.sha256,
            str(predicate["nonce"]),
        )
    except KeyError as missing:
        raise ClaimFailed(CLAIM, f"receipt lacks {missing}") from None


def check_receipt(
    envelope: object,
    server_key: ed25519.Ed25519PublicKey,
    *,
    model_root: bytes,
    prompt: bytes,
    output: bytes,
    nonce: bytes,
    prompt_salt: bytes = b"",
    output_salt: bytes = b"",
) -> Receipt:
    """The end user's check: signed by the server, for this prompt, output and
    nonce, and naming the committed model. Raises ClaimFailed otherwise."""
    receipt = open_receipt(envelope, server_key)
    receipt.check(
        model_root=model_root,
        input_sha256=salted_sha256(prompt_salt, prompt),
        output_sha256=salted_sha256(output_salt, output),
        nonce=nonce,
    )
    return receipt


@dataclass(frozen=True)
class Deployment:
    """What a logged deployment statement says: `creator` released the model
    with this root to `server`, which signs receipts with `receipt_key`."""

    creator: str
    server: str
    model_sha256: str
    receipt_key: ed25519.Ed25519PublicKey

    def statement(self, signer: Signer, *, appraised_by: str | None = None) -> dict:
        """Signed by the creator; `appraised_by`: the verifier that appraised
        the server (an enclave), whose result named the key."""
        raw = self.receipt_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        predicate = {"server": self.server, "ed25519_receipt_key": raw.hex()}
        if appraised_by is not None:
            predicate["appraised_by"] = appraised_by
        return sign_statement(
            f"weights:{self.creator}", self.model_sha256, DEPLOYMENT_PREDICATE, predicate, signer
        )


def open_deployment(
    envelope: object, creator: str, creator_key: ed25519.Ed25519PublicKey
) -> Deployment:
    """A deployment statement signed by `creator`, its fields read. Raises ClaimFailed."""
    claim = f"deployment by {creator}"
    statement = open_statement(envelope, creator_key, DEPLOYMENT_PREDICATE, claim)
    try:
        key = bytes.fromhex(str(statement.predicate["ed25519_receipt_key"]))
        return Deployment(
            creator,
            str(statement.predicate["server"]),
            statement.sha256,
            ed25519.Ed25519PublicKey.from_public_bytes(key),
        )
    except (KeyError, ValueError):
        raise ClaimFailed(claim, "malformed deployment statement") from None

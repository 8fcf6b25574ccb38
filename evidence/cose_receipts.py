"""An inference receipt as a COSE_Sign1 object (RFC 9052) whose payload is
a CWT claims set (RFC 8392), after the attested inference receipt draft
(draft-tsyrulnikov-rats-attested-inference-receipt-02, "AIR") where it fits,
so that COSE tooling can check a receipt without Airlock.

The envelope is the draft's: a tagged COSE_Sign1 (tag 18), protected header
{alg: EdDSA (-8), content type: application/cwt (61)}, an empty unprotected
header, an Ed25519 signature, no external data. The claims:

| label | claim | what Airlock puts there |
|---|---|---|
| 1 | iss | the server that answered (its party name) |
| 6 | iat | when it answered (seconds) |
| 7 | cti | 16 random bytes |
| 10 | eat_nonce | the end user's request nonce |
| 265 | eat_profile | `urn:airlock:receipt:cose:v1` (not AIR's: the claims below are a subset) |
| -65539 | model_hash | the committed model's weights root (RFC 6962 Merkle root) |
| -65540 | request_hash | the user's salted commitment to the prompt |
| -65541 | response_hash | the output's digest under the server's salt |
| -65548 | security_mode | `evaluation`: the enclave's root of trust is simulated |

Signed around a securesystemslib `Signer` (the enclave's key never leaves
it), the way the DSSE receipt beside it is; read with pycose.
"""

from __future__ import annotations

import os
import time

import cbor2
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pycose.algorithms import EdDSA
from pycose.exceptions import CoseException
from pycose.headers import Algorithm, ContentType
from pycose.keys import OKPKey
from pycose.keys.curves import Ed25519
from pycose.messages import Sign1Message
from securesystemslib.signer import Signer

from evidence.errors import ClaimFailed
from evidence.receipts import Receipt

PROFILE = "urn:airlock:receipt:cose:v1"
CWT_CONTENT_TYPE, SIGN1_TAG = 61, 18
ISS, IAT, CTI, NONCE, EAT_PROFILE = 1, 6, 7, 10, 265
MODEL_HASH, REQUEST_HASH, RESPONSE_HASH, SECURITY_MODE = -65539, -65540, -65541, -65548
CLAIM = "COSE inference receipt"
# where end users publish the COSE receipts they accepted: RUN/receipts/<user>/
RECEIPTS_DIR = "receipts"


def issue_cose_receipt(
    server: str,
    model_root: bytes,
    input_sha256: str,
    output_sha256: str,
    nonce: bytes,
    signer: Signer,
) -> bytes:
    """The tagged COSE_Sign1 receipt, signed by `signer` (Ed25519)."""
    protected = cbor2.dumps({1: EdDSA.identifier, 3: CWT_CONTENT_TYPE})
    claims = {
        ISS: server,
        IAT: int(time.time()),
        CTI: os.urandom(16),
        NONCE: nonce,
        EAT_PROFILE: PROFILE,
        MODEL_HASH: model_root,
        REQUEST_HASH: bytes.fromhex(input_sha256),
        RESPONSE_HASH: bytes.fromhex(output_sha256),
        SECURITY_MODE: "evaluation",
    }
    payload = cbor2.dumps(claims, canonical=True)
    to_sign = cbor2.dumps(["Signature1", protected, b"", payload])
    signature = bytes.fromhex(signer.sign(to_sign).signature)
    return cbor2.dumps(cbor2.CBORTag(SIGN1_TAG, [protected, {}, payload, signature]))


def open_cose_receipt(data: bytes, server_key: ed25519.Ed25519PublicKey) -> Receipt:
    """A COSE receipt signed by `server_key`, checked with pycose and read as
    the DSSE receipt's fields. Raises ClaimFailed."""
    try:
        message = Sign1Message.decode(data)
    except (CoseException, ValueError, TypeError, AttributeError, cbor2.CBORDecodeError) as exc:
        raise ClaimFailed(CLAIM, f"not a COSE_Sign1 object: {exc}") from None
    if not data.startswith(b"\xd2"):  # tag 18: the draft refuses an untagged receipt
        raise ClaimFailed(CLAIM, "not a tagged COSE_Sign1 object")
    if dict(message.phdr) != {Algorithm: EdDSA, ContentType: CWT_CONTENT_TYPE}:
        raise ClaimFailed(CLAIM, "protected header is not {alg: EdDSA, content type: CWT}")
    if message.uhdr:
        raise ClaimFailed(CLAIM, "the unprotected header is not empty")
    raw = server_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    message.key = OKPKey(crv=Ed25519, x=raw)
    try:
        valid = message.verify_signature()
    except (CoseException, ValueError, TypeError) as exc:
        raise ClaimFailed(CLAIM, f"signature does not verify: {exc}") from None
    if not valid:
        raise ClaimFailed(CLAIM, "signature does not verify")
    try:
        claims = cbor2.loads(message.payload or b"")
    except (ValueError, cbor2.CBORDecodeError):
        raise ClaimFailed(CLAIM, "malformed receipt claims") from None
    if not isinstance(claims, dict) or claims.get(EAT_PROFILE) != PROFILE:
        raise ClaimFailed(CLAIM, f"not a claims set of profile {PROFILE!r}")
    digests = []
    for label in (MODEL_HASH, REQUEST_HASH, RESPONSE_HASH):
        digest = claims.get(label)
        if not isinstance(digest, bytes) or len(digest) != 32:
            raise ClaimFailed(CLAIM, "malformed receipt claims: a digest is not 32 bytes")
        digests.append(digest.hex())
    nonce, server = claims.get(NONCE), claims.get(ISS)
    if not isinstance(nonce, bytes) or not isinstance(server, str):
        raise ClaimFailed(CLAIM, "malformed receipt claims: no nonce or issuer")
    model, request, response = digests
    return Receipt(server, model, request, response, nonce.hex())

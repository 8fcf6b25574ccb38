"""Inference receipts as COSE_Sign1 (evidence/cose_receipts.py): read by an
independent COSE library (python-cwt), and every forged, altered or
malformed receipt refused by the end user's check (pycose); `airlock
verify` refuses a published receipt no attested enclave signed."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import cbor2
import cwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from evidence.cose_receipts import (
    MODEL_HASH,
    PROFILE,
    RECEIPTS_DIR,
    issue_cose_receipt,
    open_cose_receipt,
)
from evidence.receipts import Receipt
from evidence.statements import PartySigner
from parties.errors import ClaimFailed
from protocols.tee import verify
from protocols.tee.tests.appraised_run import AppraisedRun

KEY = ed25519.Ed25519PrivateKey.generate()
ROOT, INPUT, OUTPUT, NONCE = b"\x01" * 32, "ab" * 32, "cd" * 32, os.urandom(16)


def receipt(key: ed25519.Ed25519PrivateKey = KEY) -> bytes:
    signer = PartySigner(key.public_key(), key.sign)
    return issue_cose_receipt("enclave", ROOT, INPUT, OUTPUT, NONCE, signer)


def resigned(
    data: bytes, protected: Any = None, unprotected: Any = None, claims: Any = None
) -> bytes:
    """`data` with parts replaced, signed again by KEY as COSE_Sign1."""
    tag = cbor2.loads(data)
    old_protected, old_unprotected, payload, _ = tag.value
    new_protected = cbor2.dumps(protected) if protected is not None else old_protected
    if claims is not None:
        payload = cbor2.dumps(claims(cbor2.loads(payload)))
    to_sign = cbor2.dumps(["Signature1", new_protected, b"", payload])
    value = [new_protected, unprotected or old_unprotected, payload, KEY.sign(to_sign)]
    return cbor2.dumps(cbor2.CBORTag(18, value))


def test_a_receipt_is_cose_sign1_any_cose_library_checks() -> None:
    data = receipt()
    pem = KEY.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    claims = cbor2.loads(cwt.COSE.new().decode(data, cwt.COSEKey.from_pem(pem, alg="EdDSA")))
    assert claims[1] == "enclave" and claims[10] == NONCE and claims[265] == PROFILE
    assert (claims[-65539], claims[-65540].hex(), claims[-65541].hex()) == (ROOT, INPUT, OUTPUT)
    assert claims[-65548] == "evaluation" and len(claims[7]) == 16
    assert open_cose_receipt(data, KEY.public_key()) == Receipt(
        "enclave", ROOT.hex(), INPUT, OUTPUT, NONCE.hex()
    )


def _with(label: int, value: Any) -> Any:
    return lambda claims: {**claims, label: value}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"protected": {1: -7, 3: 61}}, "signature does not verify|protected header"),
        ({"protected": {1: -8}}, "protected header"),
        ({"unprotected": {4: b"kid"}}, "unprotected header"),
        ({"claims": _with(265, "https://spec.cyntrisec.com/air/v1")}, "profile"),
        ({"claims": lambda c: [c]}, "profile"),
        ({"claims": lambda c: {k: v for k, v in c.items() if k != MODEL_HASH}}, "digest"),
        ({"claims": _with(MODEL_HASH, 32)}, "digest"),
        ({"claims": _with(MODEL_HASH, b"\x01" * 31)}, "digest"),
        ({"claims": lambda c: {k: v for k, v in c.items() if k != 10}}, "no nonce"),
    ],
)
def test_a_receipt_not_as_the_draft_says_is_refused(change: dict[str, Any], expected: str) -> None:
    with pytest.raises(ClaimFailed, match=expected):
        open_cose_receipt(resigned(receipt(), **change), KEY.public_key())


def test_a_forged_altered_untagged_or_garbled_receipt_is_refused() -> None:
    with pytest.raises(ClaimFailed, match="signature does not verify"):
        open_cose_receipt(receipt(ed25519.Ed25519PrivateKey.generate()), KEY.public_key())
    altered = bytearray(receipt())
    altered[-70] ^= 1  # inside the payload
    with pytest.raises(ClaimFailed):
        open_cose_receipt(bytes(altered), KEY.public_key())
    untagged = cbor2.dumps(cbor2.loads(receipt()).value)
    with pytest.raises(ClaimFailed, match="tagged"):
        open_cose_receipt(untagged, KEY.public_key())
    for garbage in (b"", b"\xd2", os.urandom(64), json.dumps({"receipt": 1}).encode()):
        with pytest.raises(ClaimFailed):
            open_cose_receipt(garbage, KEY.public_key())


def published(directory: Path, receipt: bytes) -> AppraisedRun:
    """A run in which alice published `receipt`, after an affirming EAR that
    named KEY as the enclave's receipt key and ROOT as its model."""
    (directory / RECEIPTS_DIR / "alice").mkdir(parents=True)
    (directory / RECEIPTS_DIR / "alice" / "request.cose").write_bytes(receipt)
    nonce = os.urandom(32)
    return AppraisedRun(KEY, nonce, nonce, KEY.public_key(), ROOT, directory)


def test_verify_refuses_a_published_receipt_no_attested_enclave_signed(tmp_path: Path) -> None:
    run: Any = published(tmp_path / "honest", receipt())
    assert all(claim.ok and claim.checked == 1 for claim in verify.verify_claims(run))
    run = published(tmp_path / "forged", receipt(ed25519.Ed25519PrivateKey.generate()))
    _, _, cose = verify.verify_claims(run)
    assert [str(f) for f in cose.findings] == [
        "alice: request.cose: signed by no enclave an affirming EAR attests"
    ]
    run = published(
        tmp_path / "other-model", resigned(receipt(), claims=_with(MODEL_HASH, b"\x02" * 32))
    )
    _, _, cose = verify.verify_claims(run)
    assert "names model 0202020202020202..., not the attested one" in str(cose.findings)

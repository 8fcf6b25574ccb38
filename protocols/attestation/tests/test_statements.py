"""Signed in-toto statements in DSSE envelopes: the spec's PAE vector, and
every way an envelope can be wrong."""

from __future__ import annotations

import base64
import copy

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from securesystemslib.dsse import Envelope
from securesystemslib.signer import CryptoSigner

from evidence.statements import open_statement, sign_statement
from parties.errors import ClaimFailed
from protocols.attestation.rules import DATASET_PREDICATE, MODEL_PREDICATE

KEY = ed25519.Ed25519PrivateKey.generate()
DIGEST = "ab" * 32


def signed() -> dict:
    return sign_statement(
        "dataset:h1", DIGEST, DATASET_PREDICATE, {"record_count": 3}, CryptoSigner(KEY)
    )


def test_pae_matches_the_dsse_specification_vector() -> None:
    envelope = Envelope(
        payload=b"hello world", payload_type="http://example.com/HelloWorld", signatures={}
    )
    assert envelope.pae() == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"


def test_round_trip() -> None:
    opened = open_statement(signed(), KEY.public_key(), DATASET_PREDICATE, "dataset")
    assert (opened.subject, opened.sha256, opened.predicate["record_count"]) == (
        "dataset:h1",
        DIGEST,
        3,
    )


def _payload(envelope: dict, payload: bytes) -> dict:
    changed = copy.deepcopy(envelope)
    changed["payload"] = base64.b64encode(payload).decode()
    return changed


BAD = {
    "signed by another key": (
        lambda e: sign_statement(
            "dataset:h1",
            DIGEST,
            DATASET_PREDICATE,
            {"n": 1},
            CryptoSigner(ed25519.Ed25519PrivateKey.generate()),
        ),
        "signature does not verify",
    ),
    "payload changed after signing": (
        lambda e: _payload(e, base64.b64decode(e["payload"]).replace(b"h1", b"h2")),
        "signature does not verify",
    ),
    "signature removed": (lambda e: {**e, "signatures": []}, "signature does not verify"),
    "not a DSSE envelope": (lambda e: {"hello": "world"}, "malformed DSSE envelope"),
    "not even an object": (lambda e: "envelope", "malformed DSSE envelope"),
    "payload not base64": (lambda e: {**e, "payload": "***"}, "malformed DSSE envelope"),
    "other payload type": (lambda e: {**e, "payloadType": "text/plain"}, "is not in-toto"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_envelopes_fail_naming_the_claim(case: str) -> None:
    make, message = BAD[case]
    with pytest.raises(ClaimFailed) as caught:
        open_statement(make(signed()), KEY.public_key(), DATASET_PREDICATE, "dataset of h1")
    assert caught.value.claim == "dataset of h1"
    assert message in caught.value.detail


def test_wrong_predicate_type_fails() -> None:
    with pytest.raises(ClaimFailed, match="predicate type"):
        open_statement(signed(), KEY.public_key(), MODEL_PREDICATE, "model")


def test_a_validly_signed_malformed_statement_fails() -> None:
    envelope = Envelope(
        payload=b'{"_type": "https://in-toto.io/Statement/v1"}',
        payload_type="application/vnd.in-toto+json",
        signatures={},
    )
    from securesystemslib.signer import CryptoSigner

    envelope.sign(CryptoSigner(KEY))
    with pytest.raises(ClaimFailed, match="malformed statement"):
        open_statement(envelope.to_dict(), KEY.public_key(), DATASET_PREDICATE, "dataset")

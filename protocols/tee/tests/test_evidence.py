"""Evidence and its appraisal; the HPKE channel."""

from __future__ import annotations

import copy
import json
import os

import pytest

from protocols.tee import channel
from protocols.tee.evidence import (
    ENCLAVE_IMAGE,
    AttestationRefused,
    ReferenceValues,
    SimulatedHardware,
    SimulatedVendor,
    appraise,
    measure,
    trusted_vendor_certificate,
)

ROOT = bytes(32)
REFERENCE = ReferenceValues(measure(ENCLAVE_IMAGE, ROOT), ROOT.hex(), "")
KEY = bytes(range(32))


def quote(nonce: bytes, hardware: SimulatedHardware | None = None, image: bytes = ENCLAVE_IMAGE):
    return (hardware or SimulatedHardware()).quote("enclave", measure(image, ROOT), nonce, KEY)


def test_honest_evidence_appraises() -> None:
    nonce = os.urandom(32)
    claims = appraise(quote(nonce), nonce, REFERENCE, trusted_vendor_certificate())
    assert claims["hpke_public_key"] == KEY.hex() and "simulated" in claims["root_of_trust"]


def test_the_measurement_covers_code_and_weights() -> None:
    assert measure(ENCLAVE_IMAGE + b"\n# patch", ROOT) != REFERENCE.measurement
    assert measure(ENCLAVE_IMAGE, bytes([1]) * 32) != REFERENCE.measurement
    nonce = os.urandom(32)
    with pytest.raises(AttestationRefused, match="measurement does not match"):
        appraise(
            quote(nonce, image=ENCLAVE_IMAGE + b"#"), nonce, REFERENCE, trusted_vendor_certificate()
        )


def test_a_replayed_quote_is_refused() -> None:
    old = quote(os.urandom(32))
    with pytest.raises(AttestationRefused, match="replayed quote"):
        appraise(old, os.urandom(32), REFERENCE, trusted_vendor_certificate())


def test_evidence_from_an_unknown_vendor_is_refused() -> None:
    nonce = os.urandom(32)
    rogue = SimulatedHardware(SimulatedVendor(b"another vendor"))
    with pytest.raises(AttestationRefused, match="unknown vendor key"):
        appraise(quote(nonce, rogue), nonce, REFERENCE, trusted_vendor_certificate())


def test_edited_claims_break_the_signature() -> None:
    nonce = os.urandom(32)
    evidence = quote(nonce)
    evidence["claims"]["hpke_public_key"] = bytes(32).hex()  # the host's key instead
    with pytest.raises(AttestationRefused, match="signature does not verify"):
        appraise(evidence, nonce, REFERENCE, trusted_vendor_certificate())


@pytest.mark.parametrize(
    "edit",
    [
        lambda e: None,
        lambda e: "evidence",
        lambda e: {k: v for k, v in e.items() if k != "signature"},
        lambda e: {**e, "signature": "zz"},
        lambda e: {**e, "device_certificate": "not a certificate"},
        lambda e: {**e, "claims": {**e["claims"], "nonce": 7}},
        lambda e: {**e, "claims": {**e["claims"], "hpke_public_key": "00"}},
    ],
)
def test_malformed_evidence_is_refused(edit) -> None:
    nonce = os.urandom(32)
    with pytest.raises(AttestationRefused, match="malformed evidence"):
        appraise(edit(copy.deepcopy(quote(nonce))), nonce, REFERENCE, trusted_vendor_certificate())


def test_the_simulated_vendor_certificate_is_stable() -> None:
    assert SimulatedVendor().certificate == trusted_vendor_certificate()
    assert SimulatedVendor(b"x").certificate != trusted_vendor_certificate()


def test_hpke_request_and_answer_round_trip_and_refuse_tampering() -> None:
    keys = channel.new_key_pair()
    aad = b"alice/1"
    sealed, user_context = channel.seal_request(channel.public_bytes(keys), b"prompt", aad)
    opened, enclave_context = channel.open_request(keys, sealed, aad)
    assert opened == b"prompt" and b"prompt" not in sealed
    answer = channel.seal_answer(enclave_context, b"answer", aad)
    assert channel.open_answer(user_context, answer, aad) == b"answer"
    with pytest.raises(channel.ChannelError):
        channel.open_request(keys, sealed, b"bob/1")  # bound to its user and request
    with pytest.raises(channel.ChannelError):
        channel.open_request(keys, sealed[:-1] + bytes([sealed[-1] ^ 1]), aad)
    with pytest.raises(channel.ChannelError):
        channel.open_request(keys, b"short", aad)
    with pytest.raises(channel.ChannelError):
        channel.open_request(channel.new_key_pair(), sealed, aad)  # another enclave
    with pytest.raises(channel.ChannelError):
        channel.open_answer(user_context, answer[:-1], aad)
    assert json.dumps(channel.public_bytes(keys).hex())

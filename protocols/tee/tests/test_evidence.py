"""Evidence and its appraisal, the per-run trusted setup; the HPKE channel."""

from __future__ import annotations

import copy
import json
import os

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from parties.errors import AirlockError
from parties.protocol import Provisioned
from parties.roles import Role
from protocols.tee import channel
from protocols.tee.evidence import (
    ENCLAVE_IMAGE,
    AttestationRefused,
    DeviceKeyRequest,
    DeviceProvision,
    ReferenceValues,
    SimulatedHardware,
    SimulatedVendor,
    VendorRoot,
    appraise,
    measure,
    provision,
    provision_request,
    root_published,
)

ROOT = bytes(32)
REFERENCE = ReferenceValues(measure(ENCLAVE_IMAGE, ROOT), ROOT.hex(), "")
KEY = bytes(range(32))
RECEIPT_KEY = ed25519.Ed25519PrivateKey.generate().public_key()
VENDOR = SimulatedVendor()
TRUSTED = VENDOR.root.certificate
ROLES = {
    "model_creator": Role.MODEL_CREATOR,
    "deployer": Role.DEPLOYER,
    "enclave": Role.ENCLAVE,
    "verifier": Role.VERIFIER,
    "alice": Role.END_USER,
}


def quote(nonce: bytes, device: DeviceProvision | None = None, image: bytes = ENCLAVE_IMAGE):
    hardware = SimulatedHardware(device or VENDOR.device())
    return hardware.quote("enclave", measure(image, ROOT), nonce, KEY, RECEIPT_KEY)


def test_honest_evidence_appraises_and_binds_both_enclave_keys() -> None:
    nonce = os.urandom(32)
    claims = appraise(quote(nonce), nonce, REFERENCE, TRUSTED)
    assert claims["hpke_public_key"] == KEY.hex() and "simulated" in claims["root_of_trust"]
    assert (
        ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(claims["receipt_public_key"]))
        == RECEIPT_KEY
    )


def test_the_measurement_covers_code_and_weights() -> None:
    assert measure(ENCLAVE_IMAGE + b"\n# patch", ROOT) != REFERENCE.measurement
    assert measure(ENCLAVE_IMAGE, bytes([1]) * 32) != REFERENCE.measurement
    nonce = os.urandom(32)
    with pytest.raises(AttestationRefused, match="measurement does not match"):
        appraise(quote(nonce, image=ENCLAVE_IMAGE + b"#"), nonce, REFERENCE, TRUSTED)


def test_a_replayed_quote_is_refused() -> None:
    old = quote(os.urandom(32))
    with pytest.raises(AttestationRefused, match="replayed quote"):
        appraise(old, os.urandom(32), REFERENCE, TRUSTED)


def test_evidence_from_any_other_vendor_is_refused() -> None:
    """Anyone can make a SimulatedVendor; only the run's own is trusted."""
    nonce = os.urandom(32)
    with pytest.raises(AttestationRefused, match="unknown vendor key"):
        appraise(quote(nonce, SimulatedVendor().device()), nonce, REFERENCE, TRUSTED)


@pytest.mark.parametrize("claim", ["hpke_public_key", "receipt_public_key"])
def test_a_swapped_enclave_key_breaks_the_signature(claim: str) -> None:
    nonce = os.urandom(32)
    evidence = quote(nonce)
    evidence["claims"][claim] = bytes(32).hex()  # the host's key instead
    with pytest.raises(AttestationRefused, match="signature does not verify"):
        appraise(evidence, nonce, REFERENCE, TRUSTED)


@pytest.mark.parametrize(
    "edit",
    [
        lambda e: None,
        lambda e: "evidence",
        lambda e: {k: v for k, v in e.items() if k != "signature"},
        lambda e: {**e, "claims": "claims"},
        lambda e: {**e, "signature": "zz"},
        lambda e: {**e, "device_certificate": "not a certificate"},
        lambda e: {**e, "claims": {**e["claims"], "nonce": 7}},
        lambda e: {**e, "claims": {**e["claims"], "hpke_public_key": "00"}},
        lambda e: {**e, "claims": {**e["claims"], "receipt_public_key": "00"}},
        lambda e: {**e, "claims": {k: v for k, v in e["claims"].items() if k != "enclave"}},
    ],
)
def test_malformed_evidence_is_refused(edit) -> None:
    nonce = os.urandom(32)
    with pytest.raises(AttestationRefused, match="malformed evidence"):
        appraise(edit(copy.deepcopy(quote(nonce))), nonce, REFERENCE, TRUSTED)


def setup(roles: dict[str, Role]) -> tuple[Provisioned, dict[str, DeviceKeyRequest]]:
    """The trusted setup as a run makes it: each enclave makes its device
    key (in its own process, in a run), the vendor endorses the public half."""
    made = {n: r for n, role in roles.items() if (r := provision_request(role)) is not None}
    return provision(roles, {}, {n: r.public for n, r in made.items()}), made


def test_the_trusted_setup_endorses_the_key_each_enclave_made_and_sends_no_secret() -> None:
    """Each enclave makes its device key and hands out its public half; the
    vendor endorses it and sends back only the certificate. The verifier
    and each relying party get the vendor's root, which the vendor also
    publishes (public, named simulated); the deployer nothing. Before, the
    setup made the device key itself and sent it to the enclave's actor as
    an argument, through Ray."""
    provisioned, made = setup(ROLES)
    assert set(made) == {"enclave"}
    material = provisioned.parties
    assert set(material) == {"enclave", "verifier", "model_creator", "alice"}
    endorsed, root = material["enclave"], material["verifier"]
    assert isinstance(endorsed, bytes) and b"PRIVATE" not in endorsed  # a certificate only
    assert isinstance(root, VendorRoot) and material["model_creator"] == material["alice"] == root
    device = made["enclave"].complete(endorsed)
    assert isinstance(device, DeviceProvision)
    assert device.private_key.hex() not in repr(device) + repr(made["enclave"])
    assert root_published(provisioned.public) == root
    assert provisioned.public["root_sha256"] == root.sha256
    assert "SIMULATED" in provisioned.public["vendor"]
    with pytest.raises(ValueError, match="no vendor root"):
        root_published({})
    nonce = os.urandom(32)
    claims = appraise(quote(nonce, device), nonce, REFERENCE, root.certificate)
    assert claims["nonce"] == nonce.hex()


def test_an_enclave_takes_only_the_endorsement_of_its_own_key() -> None:
    provisioned, made = setup(ROLES)
    with pytest.raises(AirlockError, match="another device key"):
        DeviceKeyRequest().complete(provisioned.parties["enclave"])
    with pytest.raises(AirlockError, match="not a certificate"):
        made["enclave"].complete(b"not a certificate")
    with pytest.raises(AirlockError, match="made no device key"):
        provision(ROLES, {}, {})
    with pytest.raises(AirlockError, match="raw Ed25519 public key"):
        provision(ROLES, {}, {"enclave": b"short"})


def test_each_run_has_its_own_vendor_root_and_a_device_of_another_run_is_refused() -> None:
    (first, made), (second, _) = setup(ROLES), setup(ROLES)
    assert first.parties["verifier"].sha256 != second.parties["verifier"].sha256
    # a device of one run (a leaked key, say) is worth nothing in another
    nonce = os.urandom(32)
    device = made["enclave"].complete(first.parties["enclave"])
    with pytest.raises(AttestationRefused, match="unknown vendor key"):
        appraise(quote(nonce, device), nonce, REFERENCE, second.parties["verifier"].certificate)


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


def test_a_weights_release_opens_only_as_weights_for_its_enclave() -> None:
    """Key release has its own HPKE info: sealed weights never open as a
    prompt, nor a prompt as weights, nor either with another key or aad."""
    keys = channel.new_key_pair()
    public, aad = channel.public_bytes(keys), b"enclave/root"
    sealed = channel.seal_weights(public, b"weights", aad)
    assert channel.open_weights(keys, sealed, aad) == b"weights" and b"weights" not in sealed
    with pytest.raises(channel.ChannelError, match="sealed request does not open"):
        channel.open_request(keys, sealed, aad)
    prompt, _ = channel.seal_request(public, b"prompt", aad)
    with pytest.raises(channel.ChannelError, match="sealed weights release does not open"):
        channel.open_weights(keys, prompt, aad)
    with pytest.raises(channel.ChannelError):
        channel.open_weights(keys, sealed, b"enclave_2/root")
    with pytest.raises(channel.ChannelError):
        channel.open_weights(channel.new_key_pair(), sealed, aad)

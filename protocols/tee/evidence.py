"""Remote-attestation evidence, and its appraisal (RFC 9334 roles).

SIMULATED HARDWARE ROOT OF TRUST. No TEE hardware exists here, so
`SimulatedVendor` plays the chip vendor. Its root key is derived from a
constant in this file, so anyone who reads the file can forge evidence. On
real hardware the key is fused into the chip and the vendor publishes only
its certificate. Everything above the root is real:

- the vendor's X.509 certificate endorses a per-boot device attestation key;
- that key signs the evidence: measurement, the relying party's nonce, and
  the enclave's ephemeral HPKE public key;
- the verifier checks the endorsement chain, the signature, the measurement
  against reference values signed by the model creator, and the nonce.

The measurement is SHA-256 over the enclave's code image and the Merkle root
of the model's weights (the attestation protocol's model commitment).
"""

from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID

from parties.errors import AirlockError

SIMULATED_VENDOR_SEED = b"airlock SIMULATED tee vendor root v1"
SIMULATED = "simulated hardware root of trust (no TEE hardware here)"
ENCLAVE_IMAGE = (Path(__file__).parent / "enclave.py").read_bytes()
_EPOCH = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)


class AttestationRefused(AirlockError):
    """Evidence or an attestation result that does not appraise."""


def measure(image: bytes, weights_root: bytes) -> str:
    """The enclave's measurement: what was loaded, code and model."""
    digest = hashlib.sha256(b"airlock tee measurement v1\n")
    digest.update(hashlib.sha256(image).digest() + weights_root)
    return digest.hexdigest()


def canonical(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class SimulatedVendor:
    """SIMULATED: the chip vendor, its root key derived from a public seed."""

    def __init__(self, seed: bytes = SIMULATED_VENDOR_SEED) -> None:
        self._key = ed25519.Ed25519PrivateKey.from_private_bytes(hashlib.sha256(seed).digest())
        name = _name(f"Simulated TEE vendor root {hashlib.sha256(seed).hexdigest()[:8]}")
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(1)
            .not_valid_before(_EPOCH)
            .not_valid_after(_EPOCH + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self._key, None)
        )

    def endorse(self, device_key: ed25519.Ed25519PublicKey) -> x509.Certificate:
        """The certificate that binds a device's attestation key to this vendor."""
        now = datetime.datetime.now(datetime.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(_name("Simulated TEE device attestation key"))
            .issuer_name(self.certificate.subject)
            .public_key(device_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self._key, None)
        )


def trusted_vendor_certificate() -> x509.Certificate:
    """The endorsement the verifier trusts (the simulated vendor's root)."""
    return SimulatedVendor().certificate


class SimulatedHardware:
    """SIMULATED: the chip inside one enclave: a per-boot attestation key,
    endorsed by the vendor, that signs quotes of what was loaded."""

    def __init__(self, vendor: SimulatedVendor | None = None) -> None:
        self._key = ed25519.Ed25519PrivateKey.generate()
        self.certificate = (vendor or SimulatedVendor()).endorse(self._key.public_key())

    def quote(self, enclave: str, measurement: str, nonce: bytes, hpke_public: bytes) -> dict:
        claims = {
            "enclave": enclave,
            "measurement": measurement,
            "nonce": nonce.hex(),
            "hpke_public_key": hpke_public.hex(),
            "issued_at": datetime.datetime.now(datetime.UTC).isoformat(),
            "root_of_trust": SIMULATED,
        }
        return {
            "claims": claims,
            "signature": self._key.sign(canonical(claims)).hex(),
            "device_certificate": self.certificate.public_bytes(
                serialization.Encoding.PEM
            ).decode(),
        }


@dataclass(frozen=True)
class ReferenceValues:
    """What the reference value provider (the model creator) says should run."""

    measurement: str
    model_root: str
    code_sha256: str


def appraise(
    evidence: object,
    nonce: bytes,
    reference: ReferenceValues,
    vendor: x509.Certificate,
) -> dict[str, Any]:
    """The verifier's checks, in order: well-formed, endorsed by the trusted
    vendor, signed by the endorsed key, fresh (our nonce), and measuring what
    the reference values say. Returns the claims; raises AttestationRefused."""
    try:
        assert isinstance(evidence, dict)
        claims = evidence["claims"]
        signature = bytes.fromhex(evidence["signature"])
        device = x509.load_pem_x509_certificate(str(evidence["device_certificate"]).encode())
        assert isinstance(claims, dict)
        fields = ("enclave", "measurement", "nonce", "hpke_public_key", "root_of_trust")
        assert all(isinstance(claims.get(k), str) for k in fields)
        bytes.fromhex(claims["nonce"])
        assert len(bytes.fromhex(claims["hpke_public_key"])) == 32
    except (AssertionError, KeyError, TypeError, ValueError):
        raise AttestationRefused("malformed evidence") from None
    try:
        device.verify_directly_issued_by(vendor)
    except (ValueError, TypeError, InvalidSignature):
        raise AttestationRefused(
            "the attestation key is not endorsed by a trusted vendor (unknown vendor key)"
        ) from None
    now = datetime.datetime.now(datetime.UTC)
    if not device.not_valid_before_utc <= now <= device.not_valid_after_utc:
        raise AttestationRefused("the device certificate is not valid now")
    device_key = device.public_key()
    if not isinstance(device_key, ed25519.Ed25519PublicKey):
        raise AttestationRefused("the device key is not Ed25519")
    try:
        device_key.verify(signature, canonical(claims))
    except InvalidSignature:
        raise AttestationRefused("the evidence signature does not verify") from None
    if claims["nonce"] != nonce.hex():
        raise AttestationRefused("stale evidence: it answers another nonce (a replayed quote)")
    if claims["measurement"] != reference.measurement:
        raise AttestationRefused(
            "the measurement does not match the reference value: other code or another "
            "model is loaded"
        )
    return claims

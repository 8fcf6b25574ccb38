"""Remote-attestation evidence, and its appraisal (RFC 9334 roles).

SIMULATED HARDWARE ROOT OF TRUST. No TEE hardware exists here, so
`SimulatedVendor` plays the chip vendor: a fresh random Ed25519 root key,
minted once per run inside the orchestrator (`provision`) and never sent
anywhere. Each enclave makes its device attestation key in its own process
(`DeviceKeyRequest`, as a chip holds its fused key) and hands out only the
public half; the vendor endorses it, and the certificate goes back to that
enclave (`provision`): no private key passes through Ray. The
vendor's root certificate is public: the vendor publishes it (the run's
manifest keeps it, `provisioned.tee`), and the verifier and every relying
party (the model creator, each end user) receive it from the vendor's
setup, never from each other. On real hardware the device key is fused
into the chip and the host cannot read it; here it lives in the enclave
party's process (its own Ray actor), not in silicon. Everything above the
root is real:

- the vendor's X.509 certificate endorses the device attestation key;
- that key signs the evidence: the measurement, the relying party's nonce,
  the enclave's per-boot HPKE public key and its per-boot receipt-signing
  key (so answers and receipts are bound to the attested enclave);
- `appraise` checks the endorsement chain, the signature, the measurement
  against reference values signed by the model creator, and the nonce. The
  verifier runs it, and so does each relying party on the same evidence
  before it acts on the verifier's result, and so does `airlock verify`
  afterwards: no party's word that evidence appraised is taken alone.

The measurement is SHA-256 over the enclave's code image and the Merkle root
of the model's weights (the attestation protocol's model commitment): the
root the enclave is booted with, the only one whose weights it installs.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID

from evidence.canonical import canonical_json
from evidence.statements import open_statement
from parties.errors import AirlockError, ClaimFailed
from parties.protocol import Provisioned
from parties.roles import Role

SIMULATED = "simulated hardware root of trust (no TEE hardware here)"
SIMULATED_VENDOR = "SIMULATED TEE vendor (airlock; no TEE hardware here)"
# the in-toto predicate types of the creator's reference values and the verifier's result
REFERENCE_PREDICATE = "urn:airlock:predicate:tee-reference-values:v1"
ENCLAVE_IMAGE = (Path(__file__).parent / "enclave.py").read_bytes()
MALFORMED = "malformed evidence"
CLAIM_FIELDS = (
    "enclave",
    "measurement",
    "nonce",
    "hpke_public_key",
    "receipt_public_key",
    "root_of_trust",
)


class AttestationRefused(AirlockError):
    """Evidence or an attestation result that does not appraise. `trust_claim`
    is the AR4SI trustworthiness claim the refusal contradicts (protocols/tee/ear.py)."""

    def __init__(self, reason: str, trust_claim: str = "instance-identity") -> None:
        super().__init__(reason)
        self.trust_claim = trust_claim


def measure(image: bytes, weights_root: bytes) -> str:
    """The enclave's measurement: what was loaded, code and model."""
    digest = hashlib.sha256(b"airlock tee measurement v1\n")
    digest.update(hashlib.sha256(image).digest() + weights_root)
    return digest.hexdigest()


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _raw_private(key: ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


@dataclass(frozen=True)
class DeviceProvision:
    """SIMULATED: what the vendor fuses into one chip, handed to the enclave
    party alone: the device attestation key (raw Ed25519) and the vendor's
    certificate endorsing it (PEM)."""

    private_key: bytes
    certificate_pem: bytes

    def __repr__(self) -> str:  # never print the key
        return "DeviceProvision(<simulated device attestation key>)"


@dataclass(frozen=True)
class VendorRoot:
    """The vendor's root certificate (PEM), public: all a verifier or a
    relying party is given, and what the vendor publishes."""

    certificate_pem: bytes

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.certificate_pem)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.certificate_pem).hexdigest()


class SimulatedVendor:
    """SIMULATED: a chip vendor with a fresh random root key (from the OS
    CSPRNG); whoever creates one holds its key, so only the orchestrator's
    vendor (see `provision`) is trusted in a run."""

    def __init__(self) -> None:
        self._key = ed25519.Ed25519PrivateKey.generate()
        public = self._key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        name = _name(f"SIMULATED TEE vendor root {hashlib.sha256(public).hexdigest()[:16]}")
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self._key, None)
        )
        self.root = VendorRoot(_pem(certificate))
        self._subject = name

    def endorse(self, device_public: bytes) -> bytes:
        """The vendor's certificate (PEM) endorsing one chip's device key
        (raw Ed25519 public key): the setup exchange, in the orchestrator."""
        try:
            key = ed25519.Ed25519PublicKey.from_public_bytes(device_public)
        except ValueError:
            raise AirlockError("a device key to endorse is a raw Ed25519 public key") from None
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name("SIMULATED TEE device attestation key"))
            .issuer_name(self._subject)
            .public_key(key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self._key, None)
        )
        return _pem(certificate)

    def device(self) -> DeviceProvision:
        """A chip made and endorsed here, in this process: for tests, the
        benchmark and an adversary's own chip (a run's enclaves make theirs)."""
        request = DeviceKeyRequest()
        return request.complete(self.endorse(request.public))


class DeviceKeyRequest:
    """SIMULATED: a chip's device attestation key, made in the enclave
    party's own process; only `public` leaves it, for the vendor to endorse."""

    def __init__(self) -> None:
        self._key = ed25519.Ed25519PrivateKey.generate()
        self.public = self._key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    def complete(self, certificate_pem: Any) -> DeviceProvision:
        """The chip, with the vendor's certificate of its key: refused unless
        the certificate names this very key."""
        try:
            certificate = x509.load_pem_x509_certificate(certificate_pem)
            endorsed = certificate.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
        except (TypeError, ValueError):
            raise AirlockError("the vendor's endorsement is not a certificate") from None
        if endorsed != self.public:
            raise AirlockError("the vendor endorsed another device key than this chip's")
        return DeviceProvision(_raw_private(self._key), certificate_pem)

    def __repr__(self) -> str:  # never print the key
        return "DeviceKeyRequest(<simulated device attestation key>)"


def provision_request(role: Role) -> DeviceKeyRequest | None:
    """What a party of `role` makes for the setup: an enclave, its chip's key."""
    return DeviceKeyRequest() if role == Role.ENCLAVE else None


# the roles that appraise evidence against the vendor's root: the verifier,
# and the relying parties, which appraise it themselves too
APPRAISERS = (Role.VERIFIER, Role.MODEL_CREATOR, Role.END_USER)


def provision(
    roles: Mapping[str, Role], params: Mapping[str, Any], requests: Mapping[str, bytes]
) -> Provisioned:
    """The run's trusted setup, in the orchestrator: one fresh simulated
    vendor; each enclave gets the vendor's certificate of the device key it
    made (`requests`: its public half, by party); the verifier and
    each relying party the vendor's root certificate (public), which the
    vendor also publishes for `airlock verify` (the run's manifest); the
    deployer nothing. The vendor's key is dropped on return."""
    vendor = SimulatedVendor()
    material: dict[str, Any] = {}
    for party, role in roles.items():
        if role == Role.ENCLAVE:
            if party not in requests:
                raise AirlockError(f"enclave {party} made no device key to endorse")
            material[party] = vendor.endorse(requests[party])
        elif role in APPRAISERS:
            material[party] = vendor.root
    return Provisioned(material, published_root(vendor.root))


def published_root(root: VendorRoot) -> dict[str, str]:
    """What the simulated vendor publishes of its root."""
    return {
        "vendor": SIMULATED_VENDOR,
        "root_certificate_pem": root.certificate_pem.decode(),
        "root_sha256": root.sha256,
    }


def root_published(published: Mapping[str, Any]) -> VendorRoot:
    """The vendor root a run published (`published_root`); ValueError if none."""
    pem = published.get("root_certificate_pem")
    if not isinstance(pem, str):
        raise ValueError("the run publishes no vendor root")
    root = VendorRoot(pem.encode())
    x509.load_pem_x509_certificate(root.certificate_pem)  # it parses, or ValueError
    return root


class SimulatedHardware:
    """SIMULATED: the chip inside one enclave. Its endorsed device key signs
    quotes of what was loaded, and of the enclave's per-boot keys."""

    def __init__(self, device: DeviceProvision) -> None:
        self._key = ed25519.Ed25519PrivateKey.from_private_bytes(device.private_key)
        self._certificate_pem = device.certificate_pem.decode()

    def quote(
        self,
        enclave: str,
        measurement: str,
        nonce: bytes,
        hpke_public: bytes,
        receipt_public: ed25519.Ed25519PublicKey,
    ) -> dict[str, Any]:
        claims = {
            "enclave": enclave,
            "measurement": measurement,
            "nonce": nonce.hex(),
            "hpke_public_key": hpke_public.hex(),
            "receipt_public_key": receipt_public.public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            ).hex(),
            "issued_at": datetime.datetime.now(datetime.UTC).isoformat(),
            "root_of_trust": SIMULATED,
        }
        return {
            "claims": claims,
            "signature": self._key.sign(canonical_json(claims)).hex(),
            "device_certificate": self._certificate_pem,
        }


@dataclass(frozen=True)
class ReferenceValues:
    """What the reference value provider (the model creator) says should run."""

    measurement: str
    model_root: str
    code_sha256: str


def open_reference_values(statement: object, creator: ed25519.Ed25519PublicKey) -> ReferenceValues:
    """The model creator's signed reference values (an in-toto statement in
    DSSE), read; raises ClaimFailed."""
    claim = "reference values"
    predicate = open_statement(statement, creator, REFERENCE_PREDICATE, claim).predicate
    try:
        return ReferenceValues(
            str(predicate["measurement"]),
            str(predicate["model_root"]),
            str(predicate["code_sha256"]),
        )
    except KeyError as missing:
        raise ClaimFailed(claim, f"the reference values name no {missing}") from None


def appraise(
    evidence: object,
    nonce: bytes,
    reference: ReferenceValues,
    vendor: x509.Certificate,
    at: datetime.datetime | None = None,
) -> dict[str, Any]:
    """The appraisal, in order: well-formed, endorsed by the trusted vendor,
    signed by the endorsed key, fresh (our nonce), and measuring what the
    reference values say. `at`: when the device certificate must be valid
    (default now; `airlock verify` gives the time the relying party took the
    evidence). Returns the claims; raises AttestationRefused."""
    if not isinstance(evidence, dict) or not isinstance(evidence.get("claims"), dict):
        raise AttestationRefused(MALFORMED)
    claims = evidence["claims"]
    if not all(isinstance(claims.get(k), str) for k in CLAIM_FIELDS):
        raise AttestationRefused(MALFORMED)
    try:
        signature = bytes.fromhex(evidence["signature"])
        device = x509.load_pem_x509_certificate(str(evidence["device_certificate"]).encode())
        bytes.fromhex(claims["nonce"])
        if len(bytes.fromhex(claims["hpke_public_key"])) != 32:
            raise AttestationRefused(MALFORMED)
        ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(claims["receipt_public_key"]))
    except (KeyError, TypeError, ValueError):
        raise AttestationRefused(MALFORMED) from None
    try:
        device.verify_directly_issued_by(vendor)
    except (ValueError, TypeError, InvalidSignature):
        raise AttestationRefused(
            "the attestation key is not endorsed by a trusted vendor (unknown vendor key)"
        ) from None
    now = at or datetime.datetime.now(datetime.UTC)
    if not device.not_valid_before_utc <= now <= device.not_valid_after_utc:
        raise AttestationRefused("the device certificate is not valid now")
    device_key = device.public_key()
    if not isinstance(device_key, ed25519.Ed25519PublicKey):
        raise AttestationRefused("the device key is not Ed25519")
    try:
        device_key.verify(signature, canonical_json(claims))
    except InvalidSignature:
        raise AttestationRefused("the evidence signature does not verify") from None
    if claims["nonce"] != nonce.hex():
        raise AttestationRefused("stale evidence: it answers another nonce (a replayed quote)")
    if claims["measurement"] != reference.measurement:
        raise AttestationRefused(
            "the measurement does not match the reference value: other code or another "
            "model is loaded",
            "executables",
        )
    return claims

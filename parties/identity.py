"""Per-run identities: a certificate authority, and for each party a TLS
certificate and an Ed25519 signing certificate, both bound to the party name.

Each party generates its own keys and sends only certificate signing requests
to the run's authority; private keys never leave the party.

Two keys per party because gRPC's TLS stack refuses Ed25519 certificates
(NO_COMMON_SIGNATURE_ALGORITHMS), so TLS uses ECDSA P-256 while envelopes and
log heads are signed with Ed25519.
"""

from __future__ import annotations

import datetime
import hashlib
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from parties.errors import ConfigError, IdentityError

PARTY_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_VALIDITY = datetime.timedelta(days=2)
_PEM = serialization.Encoding.PEM


def check_party_name(name: str) -> str:
    if not PARTY_NAME_RE.match(name):
        raise ConfigError(
            f"party name {name!r} must be lower case letters, digits and '_', "
            "starting with a letter"
        )
    return name


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def common_name(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


class RunAuthority:
    """The certificate authority of one run. Lives in the orchestrator."""

    def __init__(self, run_id: str) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        subject = _name(f"airlock run {run_id} CA")
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(_PEM)

    def issue(self, party: str, csr_pem: bytes, *, tls: bool) -> bytes:
        """Sign a party's request. The subject is set from `party`, not the request."""
        csr = x509.load_pem_x509_csr(csr_pem)
        if not csr.is_signature_valid:
            raise IdentityError(f"certificate request of {party!r} has a bad signature")
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(party))
            .issuer_name(self.certificate.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if tls:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(party)]), critical=False
            ).add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        else:
            builder = builder.add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                critical=True,
            )
        return builder.sign(self._key, hashes.SHA256()).public_bytes(_PEM)


def ca_fingerprint(ca_pem: bytes) -> str:
    """SHA-256 of the run CA's certificate (DER), hex: what the signed log
    heads bind and `airlock audit --ca-fingerprint` pins."""
    try:
        der = x509.load_pem_x509_certificate(ca_pem).public_bytes(serialization.Encoding.DER)
    except ValueError as exc:
        raise IdentityError(f"the run's CA certificate does not parse: {exc}") from None
    return hashlib.sha256(der).hexdigest()


def load_signing_certificate(
    cert_pem: bytes, ca_pem: bytes, party: str
) -> ed25519.Ed25519PublicKey:
    """Check that `cert_pem` is `party`'s Ed25519 certificate from this run's CA."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        ca = x509.load_pem_x509_certificate(ca_pem)
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise IdentityError(f"signing certificate of {party!r} does not verify: {exc}") from None
    if common_name(cert) != party:
        raise IdentityError(f"signing certificate names {common_name(cert)!r}, not {party!r}")
    key = cert.public_key()
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise IdentityError(f"signing certificate of {party!r} is not an Ed25519 key")
    return key


@dataclass
class PartyKeys:
    """A party's private keys; created inside the party and never exported."""

    name: str
    tls_key: ec.EllipticCurvePrivateKey
    signing_key: ed25519.Ed25519PrivateKey

    @classmethod
    def generate(cls, name: str) -> PartyKeys:
        check_party_name(name)
        return cls(
            name, ec.generate_private_key(ec.SECP256R1()), ed25519.Ed25519PrivateKey.generate()
        )

    def _csr(self, key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
        algorithm = hashes.SHA256() if isinstance(key, ec.EllipticCurvePrivateKey) else None
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(_name(self.name))
            .sign(key, algorithm)
        )
        return csr.public_bytes(_PEM)

    def certificate_requests(self) -> tuple[bytes, bytes]:
        """(TLS request, signing request), PEM."""
        return self._csr(self.tls_key), self._csr(self.signing_key)

    def tls_key_pem(self) -> bytes:
        return self.tls_key.private_bytes(
            _PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def sign(self, message: bytes) -> bytes:
        return self.signing_key.sign(message)


@dataclass(frozen=True)
class PartyCredentials:
    """What the authority hands back: the party's two certificates and the CA's."""

    ca_pem: bytes
    tls_cert_pem: bytes
    signing_cert_pem: bytes


def issue_credentials(
    authority: RunAuthority, party: str, requests: tuple[bytes, bytes]
) -> PartyCredentials:
    tls_csr, signing_csr = requests
    return PartyCredentials(
        ca_pem=authority.certificate_pem,
        tls_cert_pem=authority.issue(party, tls_csr, tls=True),
        signing_cert_pem=authority.issue(party, signing_csr, tls=False),
    )

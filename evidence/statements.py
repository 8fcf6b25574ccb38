"""Signed statements: in-toto Statement v1 inside a DSSE envelope, Ed25519.

`in-toto-attestation` builds and validates the statement; `securesystemslib`
computes DSSE's pre-authentication encoding, signs and verifies. Opening a
statement checks, in order: the envelope parses; its payload type is in-toto;
a signature verifies with the expected key; the statement validates; the
predicate type is the expected one. Each failure is a ClaimFailed naming the
claim.
"""

from __future__ import annotations

import copy
import datetime
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric import ed25519
from google.protobuf import json_format
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
from in_toto_attestation.v1.statement import Statement
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import Signature, Signer, SSlibKey

from evidence.errors import ClaimFailed

PAYLOAD_TYPE = "application/vnd.in-toto+json"


class SigningParty(Protocol):
    """A party that signs with a key only it holds (a role's context)."""

    @property
    def name(self) -> str: ...

    def public_key(self, party: str) -> ed25519.Ed25519PublicKey: ...

    def sign(self, message: bytes) -> bytes: ...


class PartySigner(Signer):
    """A DSSE signer for a party whose key stays inside its runtime: it is
    given the public key and a signing function, never the private key.
    (securesystemslib's CryptoSigner needs the private key object.)"""

    def __init__(
        self, public_key: ed25519.Ed25519PublicKey, sign: Callable[[bytes], bytes]
    ) -> None:
        self._public_key = SSlibKey.from_crypto(public_key)
        self._sign = sign

    @classmethod
    def of(cls, party: SigningParty) -> PartySigner:
        """The signer of `party` (a role's context)."""
        return cls(party.public_key(party.name), party.sign)

    @property
    def public_key(self) -> SSlibKey:
        return self._public_key

    def sign(self, payload: bytes) -> Signature:
        return Signature(self._public_key.keyid, self._sign(payload).hex())

    @classmethod
    def from_priv_key_uri(
        cls, priv_key_uri: str, public_key: Any, secrets_handler: Any = None
    ) -> Signer:
        raise NotImplementedError("a PartySigner is made from a party, not a key URI")


@dataclass(frozen=True)
class OpenedStatement:
    """A statement whose signature and form have been checked."""

    subject: str
    sha256: str
    predicate_type: str
    predicate: dict[str, Any]


def sign_statement(
    subject: str,
    sha256: str,
    predicate_type: str,
    predicate: dict[str, Any],
    signer: Signer,
) -> dict[str, Any]:
    """Build, validate and sign a statement; returns the DSSE envelope as JSON-able dict."""
    statement = Statement(
        [ResourceDescriptor(name=subject, digest={"sha256": sha256}).pb], predicate_type, predicate
    )
    statement.validate()
    payload = json_format.MessageToJson(statement.pb, sort_keys=True).encode()
    envelope = Envelope(payload=payload, payload_type=PAYLOAD_TYPE, signatures={})
    envelope.sign(signer)
    return envelope.to_dict()


def open_statement(
    envelope_json: Any,
    key: ed25519.Ed25519PublicKey,
    predicate_type: str | tuple[str, ...],
    claim: str,
) -> OpenedStatement:
    """Verify a DSSE envelope signed by `key` and return its statement, whose
    predicate type must be `predicate_type` (or one of them)."""
    expected = (predicate_type,) if isinstance(predicate_type, str) else predicate_type
    try:
        # from_dict consumes the dict it is given; keep the caller's intact
        envelope = Envelope.from_dict(copy.deepcopy(envelope_json))
    except (KeyError, TypeError, ValueError, AttributeError):
        raise ClaimFailed(claim, "malformed DSSE envelope") from None
    if envelope.payload_type != PAYLOAD_TYPE:
        raise ClaimFailed(claim, f"payload type {envelope.payload_type!r} is not in-toto")
    try:
        envelope.verify([SSlibKey.from_crypto(key)], 1)
    except VerificationError:
        raise ClaimFailed(claim, "signature does not verify") from None
    try:
        message = json_format.Parse(envelope.payload, statement_pb2.Statement())
        statement = Statement.copy_from_pb(message)
        statement.validate()
    except (json_format.ParseError, ValueError, UnicodeDecodeError) as exc:
        raise ClaimFailed(claim, f"malformed statement: {exc}") from None
    if statement.pb.predicate_type not in expected:
        raise ClaimFailed(
            claim,
            f"predicate type {statement.pb.predicate_type!r}, "
            f"expected {' or '.join(repr(e) for e in expected)}",
        )
    if len(statement.pb.subject) != 1 or "sha256" not in statement.pb.subject[0].digest:
        raise ClaimFailed(claim, "statement must name one subject with a sha256 digest")
    subject = statement.pb.subject[0]
    return OpenedStatement(
        subject=subject.name,
        sha256=subject.digest["sha256"],
        predicate_type=statement.pb.predicate_type,
        predicate=json.loads(json_format.MessageToJson(statement.pb.predicate)),
    )


def rfc3339_now() -> str:
    """The time now as RFC 3339 (UTC, seconds): how SLSA and in-toto write times."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def json_or_none(payload: bytes) -> Any:
    """Parsed JSON, or None for bytes that are not JSON (checks then fail as malformed)."""
    try:
        return json.loads(payload)
    except ValueError:
        return None


def integer(predicate: dict[str, Any], key: str, claim: str) -> int:
    """A whole number from a predicate (protobuf Struct keeps numbers as floats)."""
    value = predicate.get(key)
    if not isinstance(value, int | float) or value != int(value) or value < 0:
        raise ClaimFailed(claim, f"predicate field {key!r} is not a count")
    return int(value)

"""What each tee step carries (parties.message).

The creator's reference values and the verifier's results are signed
statements, and the ledger's steps are the attestation protocol's
(protocols.attestation.messages). Evidence is the simulated hardware's
quote (evidence.py); whether it is endorsed, signed, fresh and measures
the approved image is the verifier's to judge. Weights and prompts travel
sealed (channel.py): opaque to all but the enclave (and, for an answer,
the user), each prompt and answer behind a header naming its request."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from parties.message import (
    Body,
    Exactly,
    Fields,
    Message,
    Name,
    framed,
    hex_bytes,
    json_message,
    opaque,
)
from protocols.attestation.messages import LEDGER_MESSAGES, SignedStatement, Text
from protocols.tee.channel import ENC_SIZE
from protocols.tee.evidence import SIMULATED
from protocols.tee.rules import Step

# an AES-GCM tag: what a sealed message holds beyond its HPKE `enc` at least
TAG_SIZE = 16
# an enclave image, hex (the enclave's code: a few tens of kilobytes)
Image = Annotated[str, StringConstraints(pattern="^([0-9a-f]{2})+$", max_length=1 << 20)]
# datetime.isoformat() of a UTC time, as the simulated hardware stamps a quote
IssuedAt = Annotated[
    str, StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?\+00:00$")
]
# one PEM certificate (the device's, endorsed by the vendor)
Certificate = Annotated[
    str,
    StringConstraints(
        pattern=r"^-----BEGIN CERTIFICATE-----\n[A-Za-z0-9+/=\n]+-----END CERTIFICATE-----\n$",
        max_length=16 << 10,
    ),
]
Hex32 = hex_bytes(32)


class ModelRoot(Fields):
    model_root: Hex32  # type: ignore[valid-type]


class EnclaveLoad(Fields):
    image: Image
    model_root: Hex32  # type: ignore[valid-type]


class Nonce(Fields):
    nonce: Hex32  # type: ignore[valid-type]  # a relying party's fresh 32 bytes


class Claims(Fields):
    enclave: Name
    measurement: Hex32  # type: ignore[valid-type]
    nonce: Hex32  # type: ignore[valid-type]
    hpke_public_key: Hex32  # type: ignore[valid-type]  # X25519
    receipt_public_key: Hex32  # type: ignore[valid-type]  # Ed25519
    issued_at: IssuedAt
    root_of_trust: Exactly(SIMULATED)  # type: ignore[valid-type]


class Evidence(Fields):
    claims: Claims
    signature: hex_bytes(64)  # type: ignore[valid-type]  # Ed25519, by the device key
    device_certificate: Certificate


class AppraisalRequest(Fields):
    evidence: Evidence
    nonce: Hex32  # type: ignore[valid-type]


class Request(Fields):
    """The header of a sealed prompt or answer: the user's request id."""

    request: hex_bytes(16)  # type: ignore[valid-type]


class RelayedPrompt(Fields):
    user: Name
    request: hex_bytes(16)  # type: ignore[valid-type]


class PlainPrompt(Fields):
    prompt: Text
    max_new_tokens: int = Field(ge=1, le=256)  # as Settings bounds it


class PlainAnswer(Fields):
    output: Text


# weights sealed to the enclave: an HPKE `enc`, then the AES-GCM ciphertext
SEALED_WEIGHTS = opaque(min_bytes=ENC_SIZE + TAG_SIZE)


class AttestationResult(Fields):
    """The verifier's EAR: a compact JWT (header, claims, signature)."""

    ear: str = Field(
        pattern=r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$", max_length=1 << 14
    )


MESSAGES: dict[str, Message] = {
    Step.REFERENCE_VALUES: json_message(SignedStatement),
    Step.MODEL_ROOT: json_message(ModelRoot),
    Step.ENCLAVE_LOAD: json_message(EnclaveLoad),
    Step.ATTESTATION_REQUEST: json_message(Nonce),
    Step.EVIDENCE_REQUEST: json_message(Nonce),
    Step.EVIDENCE: json_message(Evidence),
    Step.APPRAISAL_REQUEST: json_message(AppraisalRequest),
    Step.ATTESTATION_RESULT: json_message(AttestationResult),
    Step.MODEL_RELEASE: SEALED_WEIGHTS,
    Step.ENCLAVE_WEIGHTS: SEALED_WEIGHTS,
    # HPKE `enc || ciphertext`; an answer: AES-GCM nonce || ciphertext. The
    # plaintext inside is padded to the scenario's size buckets (padding.py),
    # which only the enclave and the user can check: these definitions are
    # the same in every scenario and leave the ciphertext's size to them
    Step.SEALED_PROMPT: framed(Request, Body.BYTES),
    Step.ENCLAVE_PROMPT: framed(RelayedPrompt, Body.BYTES),
    Step.ENCLAVE_ANSWER: framed(Request, Body.BYTES),
    Step.SEALED_ANSWER: framed(Request, Body.BYTES),
    # the plaintext baseline: the weights file, a prompt, its answer
    Step.PLAIN_WEIGHTS: opaque(),
    Step.PLAIN_PROMPT: json_message(PlainPrompt),
    Step.PLAIN_ANSWER: json_message(PlainAnswer),
    **LEDGER_MESSAGES,
}

"""Fixed payloads of each tee step that the protocol says its receiver must
refuse, and honest ones (tests/payload_examples.py explains why they are
written by hand; tests/test_negative_examples.py checks them). What each
message is: evidence.py (the simulated hardware's quote: Ed25519 device
signature, X25519 HPKE key, Ed25519 receipt key, 32-byte nonce, a UTC
time), ear.py (the verifier's EAR, a compact JWT), channel.py (HPKE: a
32-byte `enc`, then AES-GCM with its 16-byte tag; an answer: a 12-byte
nonce, then AES-GCM) and padding.py (every sealed plaintext padded to a
bucket of at least 16 bytes)."""

from typing import Any

from protocols.attestation.tests.negative_examples import (
    LEDGER_EXAMPLES,
    STATEMENT,
    STATEMENT_REFUSED,
)
from tests.payload_examples import Examples, as_json, b64, changed, framed, hexed, without

H16, H32, H64 = hexed(16), hexed(32), hexed(64)
ENC, TAG, NONCE = 32, 16, 12
SEALED_PROMPT = bytes(ENC + 512 + TAG)  # sealed to the enclave: its first request bucket
SEALED_ANSWER = bytes(NONCE + 4096 + TAG)  # sealed to the user: its first answer bucket
SEALED_WEIGHTS = bytes(ENC + 4096 + TAG)

SIMULATED = "simulated hardware root of trust (no TEE hardware here)"
CERTIFICATE = (
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBLTCB4KADAgECAhQx\nMAUGAytlcDAeFw0yNTAx\n"
    "-----END CERTIFICATE-----\n"
)
CLAIMS = {
    "enclave": "enclave",
    "measurement": H32,
    "nonce": hexed(32, 0x01),
    "hpke_public_key": hexed(32, 0x02),
    "receipt_public_key": hexed(32, 0x03),
    "issued_at": "2025-06-01T12:00:00.123456+00:00",
    "root_of_trust": SIMULATED,
}
EVIDENCE = {"claims": CLAIMS, "signature": H64, "device_certificate": CERTIFICATE}
APPRAISAL = {"evidence": EVIDENCE, "nonce": hexed(32, 0x01)}
EAR = (
    b64(b'{"alg":"EdDSA","typ":"JWT"}').rstrip("=")
    + "."
    + b64(b'{"ear_status":"affirming"}').rstrip("=").replace("+", "-")
    + "."
    + "c2lnbmF0dXJlIG9mIDY0IGJ5dGVz"
)


def _claims(**fields: Any) -> dict[str, Any]:
    return changed(EVIDENCE, claims=changed(CLAIMS, **fields))


def _evidence_refused(wrap: Any) -> dict[str, bytes]:
    """What a quote must not be, wherever it travels (as evidence, or in an
    appraisal request)."""
    table = {
        "a device signature one byte short": changed(EVIDENCE, signature=hexed(63)),
        "a device signature one byte long": changed(EVIDENCE, signature=hexed(65)),
        "a device signature in base64": changed(EVIDENCE, signature=b64(bytes(64))),
        "no device signature": without(EVIDENCE, "signature"),
        "a nonce of 16 bytes": _claims(nonce=H16),
        "an HPKE key one byte short": _claims(hpke_public_key=hexed(31)),
        "a receipt key one byte long": _claims(receipt_public_key=hexed(33)),
        "a measurement that is not hex": _claims(measurement="m" * 64),
        "a measurement of 48 bytes": _claims(measurement=hexed(48)),
        "an issue time in words": _claims(issued_at="yesterday"),
        "an issue time that is not UTC": _claims(issued_at="2025-06-01T14:00:00+02:00"),
        "an issue time as a number": _claims(issued_at=1748779200),
        "another root of trust": _claims(root_of_trust="genuine hardware, trust me"),
        "an enclave named by a path": _claims(enclave="../enclave"),
        "no HPKE key": changed(EVIDENCE, claims=without(CLAIMS, "hpke_public_key")),
        "a claim the hardware does not make": _claims(debug=True),
        "a certificate that is not PEM": changed(EVIDENCE, device_certificate="MIIBLTCB4KADAgEC"),
        "a private key in place of the certificate": changed(
            EVIDENCE,
            device_certificate=CERTIFICATE.replace("CERTIFICATE", "PRIVATE KEY"),
        ),
        "no certificate": without(EVIDENCE, "device_certificate"),
        "no claims": without(EVIDENCE, "claims"),
        "the claims as a string": changed(EVIDENCE, claims=as_json(CLAIMS).decode()),
        "the device's private key beside its quote": changed(EVIDENCE, device_key=H32),
    }
    return {why: as_json(wrap(bad)) for why, bad in table.items()}


def _nonce_request() -> Examples:
    return Examples(
        valid={"a fresh 32-byte nonce": as_json({"nonce": H32})},
        refused={
            "a nonce of 16 bytes": as_json({"nonce": H16}),
            "a nonce one byte long": as_json({"nonce": hexed(33)}),
            "an empty nonce": as_json({"nonce": ""}),
            "a nonce as a number": as_json({"nonce": 7}),
            "no nonce": b"{}",
            "the measurement the enclave should report": as_json(
                {"nonce": H32, "measurement": H32}
            ),
        },
    )


def _sealed(header: dict[str, Any], body: bytes, request: str = "request") -> Examples:
    """A sealed prompt or answer behind its header: `request` names the
    user's request id (16 bytes) in it."""
    return Examples(
        valid={"a sealed message behind its request id": framed(header, body)},
        refused={
            "a request id of 32 bytes": framed(changed(header, **{request: H32}), body),
            "a request id of 8 bytes": framed(changed(header, **{request: hexed(8)}), body),
            "a request id that is not hex": framed(changed(header, **{request: "r" * 32}), body),
            "no request id": framed(without(header, request), body),
            "the prompt in the clear beside its seal": framed(
                changed(header, prompt="What is asthma?"), body
            ),
            "nothing sealed": framed(header),
            "a header that is not JSON": framed(b"request", body),
        },
        left_to_role={"a sealed body of 8 bytes (less than its tag)": framed(header, bytes(8))},
    )


def _weights() -> Examples:
    return Examples(
        valid={"weights sealed to the enclave": SEALED_WEIGHTS},
        refused={
            "nothing": b"",
            "an HPKE enc alone": bytes(ENC),
            "an enc and a tag one byte short": bytes(ENC + TAG - 1),
        },
    )


PROMPT = {"prompt": "What is asthma?", "max_new_tokens": 24}
RELAYED = {"user": "alice", "request": H16}

EXAMPLES: dict[str, Examples] = {
    "reference_values": Examples(
        valid={"the creator's signed reference values": as_json(STATEMENT)},
        refused={why: as_json(bad) for why, bad in STATEMENT_REFUSED.items()},
    ),
    "model_root": Examples(
        valid={"the weights root": as_json({"model_root": H32})},
        refused={
            "a root one byte short": as_json({"model_root": hexed(31)}),
            "a root in base64": as_json({"model_root": b64(bytes(32))}),
            "no root": b"{}",
            "the weights beside their root": as_json({"model_root": H32, "weights": H64}),
        },
    ),
    "enclave_load": Examples(
        valid={"an image and the weights root": as_json({"image": hexed(300), "model_root": H32})},
        refused={
            "an empty image": as_json({"image": "", "model_root": H32}),
            "an image that is not hex": as_json({"image": "print('hi')", "model_root": H32}),
            "an image of an odd number of hex digits": as_json(
                {"image": hexed(300)[1:], "model_root": H32}
            ),
            "an image over 512 KiB": as_json({"image": hexed(600 << 10), "model_root": H32}),
            "a weights root one byte short": as_json(
                {"image": hexed(300), "model_root": hexed(31)}
            ),
            "no weights root": as_json({"image": hexed(300)}),
            "no image": as_json({"model_root": H32}),
            "the measurement to report, beside the image": as_json(
                {"image": hexed(300), "model_root": H32, "measurement": H32}
            ),
        },
    ),
    "attestation_request": _nonce_request(),
    "evidence_request": _nonce_request(),
    "evidence": Examples(
        valid={"a quote": as_json(EVIDENCE)},
        refused=_evidence_refused(lambda evidence: evidence),
    ),
    "appraisal_request": Examples(
        valid={"a quote and the relying party's nonce": as_json(APPRAISAL)},
        refused={
            **_evidence_refused(lambda evidence: changed(APPRAISAL, evidence=evidence)),
            "a nonce of 16 bytes": as_json(changed(APPRAISAL, nonce=H16)),
            "no nonce": as_json(without(APPRAISAL, "nonce")),
            "no evidence": as_json(without(APPRAISAL, "evidence")),
            "the reference values to appraise against": as_json(
                changed(APPRAISAL, measurement=H32)
            ),
        },
    ),
    "attestation_result": Examples(
        valid={"an EAR": as_json({"ear": EAR})},
        refused={
            "a JWT of two parts": as_json({"ear": EAR.rsplit(".", 1)[0]}),
            "a JWT of four parts": as_json({"ear": EAR + ".e30"}),
            "padded base64": as_json({"ear": EAR + "=="}),
            "standard base64's alphabet": as_json({"ear": EAR.replace("-", "+") + "+/"}),
            "a space in the JWT": as_json({"ear": EAR.replace(".", ". ", 1)}),
            "the claims as JSON, unsigned": as_json({"ear": {"ear_status": "affirming"}}),
            "an EAR of 64 KiB": as_json({"ear": "a" * (32 << 10) + ".b." + "c" * (32 << 10)}),
            "no EAR": b"{}",
            "the status beside the EAR": as_json({"ear": EAR, "status": "affirming"}),
        },
    ),
    "model_release": _weights(),
    "enclave_weights": _weights(),
    "sealed_prompt": _sealed({"request": H16}, SEALED_PROMPT),
    "enclave_prompt": Examples(
        valid={"a sealed prompt and whose it is": framed(RELAYED, SEALED_PROMPT)},
        refused={
            **_sealed(RELAYED, SEALED_PROMPT).refused,
            "no user": framed(without(RELAYED, "user"), SEALED_PROMPT),
            "a user named by a path": framed(changed(RELAYED, user="../alice"), SEALED_PROMPT),
            "a user as a number": framed(changed(RELAYED, user=7), SEALED_PROMPT),
        },
        left_to_role=_sealed(RELAYED, SEALED_PROMPT).left_to_role,
    ),
    "enclave_answer": _sealed({"request": H16}, SEALED_ANSWER),
    "sealed_answer": _sealed({"request": H16}, SEALED_ANSWER),
    "plain_weights": Examples(
        valid={"the weights file": bytes(4096)},
        refused={"nothing": b""},
    ),
    "plain_prompt": Examples(
        valid={"a prompt and its token budget": as_json(PROMPT)},
        refused={
            "no token to generate": as_json(changed(PROMPT, max_new_tokens=0)),
            "more tokens than the settings allow (256)": as_json(
                changed(PROMPT, max_new_tokens=257)
            ),
            "a negative token budget": as_json(changed(PROMPT, max_new_tokens=-1)),
            "the token budget as a string": as_json(changed(PROMPT, max_new_tokens="24")),
            "a fractional token budget": as_json(changed(PROMPT, max_new_tokens=2.5)),
            "no token budget": as_json(without(PROMPT, "max_new_tokens")),
            "no prompt": as_json(without(PROMPT, "prompt")),
            "the prompt as a list": as_json(changed(PROMPT, prompt=["What", "is"])),
            "a prompt of 100 000 characters": as_json(changed(PROMPT, prompt="a" * 100_000)),
            "a field the prompt does not have": as_json(changed(PROMPT, temperature=0.7)),
        },
    ),
    "plain_answer": Examples(
        valid={"an answer": as_json({"output": "Asthma is a chronic disease."})},
        refused={
            "no output": b"{}",
            "the output as a number": as_json({"output": 42}),
            "an output of 100 000 characters": as_json({"output": "a" * 100_000}),
            "the prompt beside the answer": as_json({"output": "x", "prompt": "What is asthma?"}),
        },
    ),
    **LEDGER_EXAMPLES,
}

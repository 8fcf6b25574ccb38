"""A relying party's side of remote attestation (RFC 9334), shared by the
end user (before it seals a prompt) and the model creator (before it
releases the weights): a fresh nonce, evidence through the host, and the
verifier's signed appraisal of it. Only an affirming result for that nonce
counts, and only the keys it names are used: never a key the host or the
directory hands over."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ed25519

from evidence.statements import json_or_none
from parties.errors import ClaimFailed
from parties.labels import Form, Label
from parties.protocol import PartyContext
from protocols.tee.ear import open_ear
from protocols.tee.rules import Step

CLAIM = "enclave attestation"


@dataclass(frozen=True)
class AttestedEnclave:
    """What an affirming attestation result vouches for."""

    enclave: str
    hpke_public_key: bytes
    receipt_key: ed25519.Ed25519PublicKey
    model_root: bytes
    vendor_root_sha256: str


def attest(ctx: PartyContext, deployer: str, verifier: str) -> AttestedEnclave:
    """Fresh evidence, appraised; what the affirming result vouches for, or ClaimFailed."""
    nonce = os.urandom(32)
    request = json.dumps({"nonce": nonce.hex()}).encode()
    nonce_label = Label(f"nonce:{ctx.name}", Form.PUBLIC)
    reply = ctx.deliver(deployer, Step.ATTESTATION_REQUEST, [nonce_label], request)
    if reply is None:
        raise ClaimFailed(CLAIM, "the deployer sent no evidence")
    evidence = json_or_none(reply.payload)
    asked = json.dumps({"evidence": evidence, "nonce": nonce.hex()}).encode()
    labels = [Label(reply.header.labels[0].asset, Form.PUBLIC), nonce_label]
    answer = ctx.deliver(verifier, Step.APPRAISAL_REQUEST, labels, asked)
    if answer is None:
        raise ClaimFailed(CLAIM, "the verifier sent no result")
    appraisal = open_ear(json.loads(answer.payload)["ear"], ctx.public_key(verifier), CLAIM)
    if not appraisal.answers(nonce):
        raise ClaimFailed(CLAIM, "the result answers another nonce")
    result = appraisal.claims
    if appraisal.status != "affirming":
        raise ClaimFailed(CLAIM, f"{appraisal.status}: {result.get('reason', 'not affirming')}")
    try:
        return AttestedEnclave(
            str(result["enclave"]),
            bytes.fromhex(result["hpke_public_key"]),
            ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(result["receipt_public_key"])),
            bytes.fromhex(result["model_root"]),
            str(result["vendor_root_sha256"]),
        )
    except (KeyError, TypeError, ValueError):
        raise ClaimFailed(CLAIM, "the affirming result is malformed") from None

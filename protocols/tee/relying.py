"""A relying party's side of remote attestation (RFC 9334), shared by the
end user (before it seals a prompt) and the model creator (before it
releases the weights): a fresh nonce, evidence through the host, and the
verifier's signed appraisal of it (an EAR, protocols/tee/ear.py).

The verifier is not trusted alone. The relying party goes on only if the
verifier's result is affirming for its nonce AND its own appraisal of the
same evidence is: against the vendor's published root (the simulated
vendor's setup hands it to every appraiser; never the verifier's report of
it) and the reference values the relying party itself holds (the model
creator's own; the end user's, signed by the creator and sent to it
directly). The verifier's result must name what the evidence binds. Only the
keys of the evidence it appraised itself are used: never a key the host,
the directory or the verifier hands over.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from evidence.statements import json_or_none
from parties.errors import ClaimFailed
from parties.labels import Form, Label
from parties.protocol import PartyContext
from protocols.tee.ear import Appraisal, open_ear
from protocols.tee.evidence import AttestationRefused, ReferenceValues, VendorRoot, appraise
from protocols.tee.rules import Step

CLAIM = "enclave attestation"
# what the verifier's affirming result must say as the evidence (or the
# relying party's own appraisal) does
AGREED = ("enclave", "measurement", "hpke_public_key", "receipt_public_key")


@dataclass(frozen=True)
class AttestedEnclave:
    """What an affirming attestation result, and the relying party's own
    appraisal of its evidence, vouch for."""

    enclave: str
    hpke_public_key: bytes
    receipt_key: ed25519.Ed25519PublicKey
    model_root: bytes
    vendor_root_sha256: str


@dataclass(frozen=True)
class Appraised:
    """Fresh evidence and the verifier's affirming result for it, for `nonce`."""

    nonce: bytes
    evidence: object
    result: Appraisal


def appraised(ctx: PartyContext, deployer: str, verifier: str) -> Appraised:
    """Fresh evidence, and the verifier's affirming EAR for it (checked: its
    signature, profile, nonce and status); ClaimFailed otherwise."""
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
    if appraisal.status != "affirming":
        reason = appraisal.claims.get("reason", "not affirming")
        raise ClaimFailed(CLAIM, f"{appraisal.status}: {reason}")
    return Appraised(nonce, evidence, appraisal)


def disagreement(
    result: dict[str, Any], claims: dict[str, Any], reference: ReferenceValues, vendor: VendorRoot
) -> str | None:
    """What an affirming result says other than the evidence it affirms, the
    reference values and the vendor root; None if nothing."""
    expected = {k: claims.get(k) for k in AGREED}
    expected.update(model_root=reference.model_root, vendor_root_sha256=vendor.sha256)
    wrong = sorted(k for k, v in expected.items() if result.get(k) != v)
    return f"the verifier's result names another {', '.join(wrong)}" if wrong else None


def attest(
    ctx: PartyContext, deployer: str, verifier: str, reference: ReferenceValues | None
) -> AttestedEnclave:
    """Fresh evidence that the verifier affirms and this party's own
    appraisal affirms too, against the vendor's published root and
    `reference`; what both vouch for, or ClaimFailed."""
    vendor = ctx.provision
    if not isinstance(vendor, VendorRoot):  # refused before anything is asked
        raise ClaimFailed(CLAIM, "no vendor root: this party cannot appraise evidence itself")
    if reference is None:
        raise ClaimFailed(CLAIM, "no reference values from the model creator")
    got = appraised(ctx, deployer, verifier)
    try:
        claims = appraise(got.evidence, got.nonce, reference, vendor.certificate)
    except AttestationRefused as refusal:
        raise ClaimFailed(CLAIM, f"own appraisal (the verifier affirmed): {refusal}") from None
    wrong = disagreement(got.result.claims, claims, reference, vendor)
    if wrong is not None:
        raise ClaimFailed(CLAIM, wrong)
    return AttestedEnclave(
        claims["enclave"],
        bytes.fromhex(claims["hpke_public_key"]),
        ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(claims["receipt_public_key"])),
        bytes.fromhex(reference.model_root),
        vendor.sha256,
    )

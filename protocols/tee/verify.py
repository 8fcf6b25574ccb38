"""What `airlock verify` checks of a tee stage from its run directory:

- every attestation result a relying party admitted is an EAR
  (protocols/tee/ear.py) that the verifier signed, checked with PyJWT, for a
  nonce that relying party sent the verifier;
- every COSE receipt an end user published (RUN/receipts/<user>/,
  evidence/cose_receipts.py) verifies, with pycose, under a receipt key an
  affirming EAR that user admitted attests, and names that EAR's model root.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from evidence.claims import Claim, Finding, RunEvidence
from evidence.cose_receipts import RECEIPTS_DIR, open_cose_receipt
from parties.errors import ClaimFailed
from protocols.tee.ear import open_ear
from protocols.tee.rules import CREATOR, USER, VERIFIER, Step

EAR_CLAIM = "attestation results are EARs the verifier signed, for nonces the relying party sent"
COSE_CLAIM = "published COSE receipts are signed by attested enclaves and name the attested model"


def verify_claims(run: RunEvidence) -> list[Claim]:
    ears, attested = _attestation_results(run)
    return [ears, _cose_receipts(run, attested)]


def _attestation_results(run: RunEvidence) -> tuple[Claim, dict[str, list[dict[str, Any]]]]:
    """The EAR claim, and what each relying party's affirming results attest."""
    claim = Claim(EAR_CLAIM)
    attested: dict[str, list[dict[str, Any]]] = {}
    asked: dict[str, set[bytes]] = {}  # relying party -> the nonces it sent a verifier
    for verifier in run.parties(VERIFIER):
        for entry, payload in run.received(verifier, Step.APPRAISAL_REQUEST):
            try:
                nonce = bytes.fromhex(json.loads(payload)["nonce"])
            except (ValueError, KeyError, TypeError):
                continue  # admitted only if its definition held: not reached
            asked.setdefault(entry["sender"], set()).add(nonce)
    for party in run.parties(USER) + run.parties(CREATOR):
        for entry, payload in run.received(party, Step.ATTESTATION_RESULT):
            claim.checked += 1
            sender = entry["sender"]
            try:
                appraisal = open_ear(json.loads(payload)["ear"], run.key(sender), EAR_CLAIM)
                if not any(appraisal.answers(nonce) for nonce in asked.get(party, ())):
                    raise ClaimFailed(EAR_CLAIM, f"answers no nonce {party} sent {sender}")
                if appraisal.status == "affirming":
                    attested.setdefault(party, []).append(appraisal.claims)
            except ClaimFailed as failed:
                claim.fail(party, entry.get("index"), failed.detail)
            except (ValueError, KeyError, TypeError):
                claim.fail(party, entry.get("index"), "not an attestation result")
    return claim, attested


def _cose_receipts(run: RunEvidence, attested: dict[str, list[dict[str, Any]]]) -> Claim:
    claim = Claim(COSE_CLAIM)
    for user in run.parties(USER):
        receipts = sorted((run.directory / RECEIPTS_DIR / user).glob("*.cose"))
        if not receipts and attested.get(user):  # refused every answer, or files removed
            note = "admitted an affirming EAR but published no COSE receipt"
            claim.notes.append(Finding(user, None, note))
        for path in receipts:
            claim.checked += 1
            try:
                if not any(_names(path.read_bytes(), result) for result in attested.get(user, [])):
                    raise ClaimFailed(COSE_CLAIM, "signed by no enclave an affirming EAR attests")
            except ClaimFailed as failed:
                claim.fail(user, None, f"{path.name}: {failed.detail}")
    return claim


def _names(receipt: bytes, attested: dict[str, Any]) -> bool:
    """Whether `receipt` is signed with the receipt key an affirming EAR
    attests, and names the model root it attests. Raises ClaimFailed for a
    receipt signed with that key that names another model."""
    try:
        key = ed25519.Ed25519PublicKey.from_public_bytes(
            bytes.fromhex(str(attested["receipt_public_key"]))
        )
    except (KeyError, ValueError):
        return False
    try:
        opened = open_cose_receipt(receipt, key)
    except ClaimFailed:
        return False
    if opened.model_sha256 != attested.get("model_root"):
        raise ClaimFailed(
            COSE_CLAIM, f"names model {opened.model_sha256[:16]}..., not the attested one"
        )
    return True

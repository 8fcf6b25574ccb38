"""What `airlock verify` checks of a tee stage from its run directory:

- every attestation result a relying party admitted is an EAR
  (protocols/tee/ear.py) that the verifier signed, checked with PyJWT, for a
  nonce that relying party sent the verifier;
- every affirming one is re-appraised, not taken on the verifier's word:
  the evidence behind it (the evidence for its nonce, in the relying
  party's own log) must appraise against the vendor root the run published
  (the simulated vendor's, in the manifest's `provisioned.tee`; never the
  verifier's report of it) and the model creator's signed reference values
  (those the relying party held: the creator's own, an end user's as it
  received them), and the result must name what that evidence binds. A
  finding says whether the relying party then acted on it (released the
  weights, sent a prompt) before its next attestation;
- every COSE receipt an end user published (RUN/receipts/<user>/,
  evidence/cose_receipts.py) verifies, with pycose, under a receipt key that
  re-appraised evidence behind an affirming EAR that user admitted binds, and
  names the model root of that EAR.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from evidence.claims import Claim, Finding, LogEntry, RunEvidence
from evidence.cose_receipts import RECEIPTS_DIR, open_cose_receipt
from evidence.statements import json_or_none
from parties.errors import ClaimFailed
from protocols.tee.ear import Appraisal, open_ear
from protocols.tee.evidence import (
    AttestationRefused,
    ReferenceValues,
    VendorRoot,
    appraise,
    open_reference_values,
    root_published,
)
from protocols.tee.relying import disagreement
from protocols.tee.rules import CREATOR, USER, VERIFIER, Step

EAR_CLAIM = "attestation results are EARs the verifier signed, for nonces the relying party sent"
REAPPRAISED_CLAIM = (
    "the evidence behind every affirming attestation result a relying party admitted "
    "appraises against the vendor's published root and the creator's reference values"
)
COSE_CLAIM = "published COSE receipts are signed by attested enclaves and name the attested model"
# what a relying party does on an affirming result: the weights, a prompt
ACTS = (Step.MODEL_RELEASE, Step.SEALED_PROMPT)
REACHED = ("delivered", "refused")  # out entries whose envelope reached the peer


def verify_claims(run: RunEvidence) -> list[Claim]:
    ears, affirming = _attestation_results(run)
    reappraised, attested = _reappraise(run, affirming)
    return [ears, reappraised, _cose_receipts(run, attested)]


# (relying party, its log entry of the result, the result)
Affirming = list[tuple[str, LogEntry, Appraisal]]


def _attestation_results(run: RunEvidence) -> tuple[Claim, Affirming]:
    """The EAR claim, and each affirming result a relying party admitted."""
    claim = Claim(EAR_CLAIM)
    affirming: Affirming = []
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
                    affirming.append((party, entry, appraisal))
            except ClaimFailed as failed:
                claim.fail(party, entry.get("index"), failed.detail)
            except (ValueError, KeyError, TypeError):
                claim.fail(party, entry.get("index"), "not an attestation result")
    return claim, affirming


def _references(run: RunEvidence) -> dict[str, list[ReferenceValues]]:
    """party -> the model creator's signed reference values it held: a
    creator, those it signed (as any party received them); an end user,
    those it received. Each checked under its creator's certified key."""
    held: dict[str, list[ReferenceValues]] = {}
    creators = set(run.parties(CREATOR))
    for party in run.parties():
        for entry, payload in run.received(party, Step.REFERENCE_VALUES):
            creator = entry.get("sender")
            if creator not in creators:
                continue
            try:
                reference = open_reference_values(json_or_none(payload), run.key(creator))
            except ClaimFailed:
                continue  # not the creator's: no party appraises against it
            for holder in (party, creator):
                if reference not in held.setdefault(holder, []):
                    held[holder].append(reference)
    return held


def _evidence_by_nonce(run: RunEvidence, party: str) -> dict[str, tuple[LogEntry, Any]]:
    """The evidence `party` took from the host, by the nonce it quotes (hex)."""
    found: dict[str, tuple[LogEntry, Any]] = {}
    for entry, payload in run.received(party, Step.EVIDENCE):
        evidence = json_or_none(payload)
        claims = evidence.get("claims") if isinstance(evidence, dict) else None
        if isinstance(claims, dict) and isinstance(claims.get("nonce"), str):
            found.setdefault(claims["nonce"], (entry, evidence))
    return found


def _when(entry: LogEntry) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(str(entry["time"]))
    except (KeyError, ValueError):
        return None


def _acted_on(entries: Sequence[LogEntry], after: int | None) -> list[str]:
    """What a relying party did with a result (logged at index `after`) before
    its next attestation request: the steps of ACTS that reached their peer."""
    if after is None:
        return []
    acted: list[str] = []
    for entry in entries:
        if not isinstance(entry.get("index"), int) or entry["index"] <= after:
            continue
        if entry.get("direction") != "out":
            continue
        if entry.get("step") == Step.ATTESTATION_REQUEST:
            break
        if entry.get("step") in ACTS and entry.get("outcome") in REACHED:
            acted.append(str(entry["step"]))
    return sorted(set(acted))


def _reappraise(run: RunEvidence, affirming: Affirming) -> tuple[Claim, dict[str, list[dict]]]:
    """The re-appraisal claim, and what each relying party's re-appraised
    affirming results attest (the EAR's claims, which name what its evidence binds)."""
    claim = Claim(REAPPRAISED_CLAIM)
    attested: dict[str, list[dict[str, Any]]] = {}
    if not affirming:
        return claim, attested
    try:
        vendor = root_published(run.provisioned)
    except ValueError as error:
        claim.checked = len(affirming)
        claim.fail(None, None, f"{error}: no affirming result can be re-appraised")
        return claim, attested
    references = _references(run)
    for party, entry, appraisal in affirming:
        claim.checked += 1
        try:
            _reappraised(run, party, appraisal, vendor, references.get(party, []))
            attested.setdefault(party, []).append(appraisal.claims)
        except AttestationRefused as refusal:
            acted = _acted_on(run.entries(party), entry.get("index"))
            then = f"; {party} then sent {', '.join(acted)}" if acted else ""
            claim.fail(party, entry.get("index"), f"{entry['sender']} affirmed: {refusal}{then}")
    return claim, attested


def _reappraised(
    run: RunEvidence,
    party: str,
    appraisal: Appraisal,
    vendor: VendorRoot,
    references: list[ReferenceValues],
) -> None:
    """Re-appraise the evidence behind one affirming result; AttestationRefused if it fails."""
    behind = [
        found
        for nonce, found in _evidence_by_nonce(run, party).items()
        if _is_hex(nonce) and appraisal.answers(bytes.fromhex(nonce))
    ]
    if not behind:
        raise AttestationRefused(f"no evidence {party} took answers the result's nonce")
    if not references:
        raise AttestationRefused(f"{party} held no reference values signed by a model creator")
    (evidence_entry, evidence), *_ = behind
    nonce = bytes.fromhex(evidence["claims"]["nonce"])
    refusals = []
    for reference in references:
        try:
            claims = appraise(evidence, nonce, reference, vendor.certificate, _when(evidence_entry))
        except AttestationRefused as refusal:
            refusals.append(str(refusal))
            continue
        wrong = disagreement(appraisal.claims, claims, reference, vendor)
        if wrong is None:
            return
        refusals.append(wrong)
    raise AttestationRefused(f"the evidence does not appraise: {'; '.join(refusals)}")


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


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

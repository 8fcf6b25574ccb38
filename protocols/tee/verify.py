"""What `airlock verify` checks of a tee stage from the logs alone: every
attestation result a relying party admitted is an EAR (protocols/tee/ear.py)
that the verifier signed, checked with PyJWT, for a nonce that relying
party sent the verifier."""

from __future__ import annotations

import json

from evidence.claims import Claim, RunEvidence
from parties.errors import ClaimFailed
from protocols.tee.ear import open_ear
from protocols.tee.rules import CREATOR, USER, VERIFIER, Step

EAR_CLAIM = "attestation results are EARs the verifier signed, for nonces the relying party sent"


def verify_claims(run: RunEvidence) -> list[Claim]:
    claim = Claim(EAR_CLAIM)
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
            except ClaimFailed as failed:
                claim.fail(party, entry.get("index"), failed.detail)
            except (ValueError, KeyError, TypeError):
                claim.fail(party, entry.get("index"), "not an attestation result")
    return [claim]

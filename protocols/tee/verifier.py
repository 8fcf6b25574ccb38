"""The verifier in the tee protocol (RATS Verifier): it appraises evidence
against the run's simulated vendor root (the vendor's public root, which
the relying parties hold too), the model creator's reference values and the
relying party's nonce, and signs the result as an EAR
(protocols/tee/ear.py), affirming or contraindicated with the reason. No
relying party acts on its word alone: each appraises the same evidence
itself (relying.py), and `airlock verify` again (verify.py)."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

from evidence.statements import json_or_none
from parties.envelope import Envelope
from parties.labels import Form, Label
from parties.protocol import PartyContext, Reply, RoleState, state_of
from protocols.tee.ear import AFFIRMING_VECTOR, CONTRAINDICATED, issue_ear
from protocols.tee.evidence import (
    SIMULATED,
    AttestationRefused,
    ReferenceValues,
    VendorRoot,
    appraise,
    open_reference_values,
)
from protocols.tee.rules import Step


class VerifierPhase(enum.Enum):
    AWAITING_REFERENCE = 1  # every appraisal is contraindicated until the values come
    APPRAISING = 2  # the creator's one set of reference values of the run is in hand


@dataclass
class VerifierState(RoleState):
    phase: VerifierPhase = VerifierPhase.AWAITING_REFERENCE
    reference: ReferenceValues | None = None


def on_reference_values(ctx: PartyContext, envelope: Envelope) -> None:
    state = state_of(ctx, VerifierState)
    state.expect(VerifierPhase.AWAITING_REFERENCE, doing="reference values")
    creator = ctx.public_key(envelope.header.sender)
    state.reference = open_reference_values(json_or_none(envelope.payload), creator)
    state.phase = VerifierPhase.APPRAISING


def on_appraisal_request(ctx: PartyContext, envelope: Envelope) -> Reply:
    request = json.loads(envelope.payload)
    nonce = bytes.fromhex(str(request["nonce"]))
    reference = state_of(ctx, VerifierState).reference
    result: dict[str, Any] = {"root_of_trust": SIMULATED}
    vector = dict(AFFIRMING_VECTOR)
    try:
        # the vendor root comes from the run's trusted setup, never from a peer
        if not isinstance(ctx.provision, VendorRoot):
            raise AttestationRefused("no vendor root was provisioned to this verifier", "hardware")
        if reference is None:  # a signed reason for the relying party, not a refusal
            raise AttestationRefused("no reference values received", "configuration")
        vendor = ctx.provision
        claims = appraise(request.get("evidence"), nonce, reference, vendor.certificate)
        result.update(
            enclave=claims["enclave"],
            measurement=claims["measurement"],
            model_root=reference.model_root,
            hpke_public_key=claims["hpke_public_key"],
            receipt_public_key=claims["receipt_public_key"],
            vendor_root_sha256=vendor.sha256,
        )
    except AttestationRefused as refusal:
        vector[refusal.trust_claim] = CONTRAINDICATED
        result.update(reason=str(refusal))
    ear = issue_ear(nonce, vector, result, ctx.sign)
    label = (Label(f"attestation_result:{ctx.name}", Form.PUBLIC),)
    return Reply(Step.ATTESTATION_RESULT, label, json.dumps({"ear": ear}).encode())

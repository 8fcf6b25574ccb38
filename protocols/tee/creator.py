"""The model creator in the tee protocol (RATS Reference Value Provider, and
a relying party before key release). It publishes what should run: signed
reference values for the verifier and the end users (the measurement of the
approved enclave image booted with this model's root) and the root for the
deployer to boot the enclave with. Then it releases the weights to that
enclave alone: it has the enclave's fresh evidence appraised by the
verifier, appraises it itself too (relying.py), and seals the weights to
the HPKE key the evidence binds. The deployer relays ciphertext only."""

from __future__ import annotations

import enum
import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from evidence.receipts import Deployment
from evidence.statements import PartySigner, sign_statement
from evidence.weights import float32_weights_root
from models.transformer import Transformer
from parties.errors import AirlockError, ClaimFailed
from parties.labels import Form, Label
from parties.protocol import FINGERPRINTS, PartyContext, RoleState, sole_peer, state_of
from protocols.artifacts import model_to_serve
from protocols.attestation.shared import submit
from protocols.tee import channel
from protocols.tee.enclave import weights_aad
from protocols.tee.evidence import (
    ENCLAVE_IMAGE,
    REFERENCE_PREDICATE,
    SIMULATED,
    ReferenceValues,
    measure,
)
from protocols.tee.relying import attest
from protocols.tee.rules import DEPLOYER, USER, VERIFIER, Step
from protocols.tee.settings import Settings

# tensors whose raw bytes the audit's content scan looks for (trained, so
# never a run of zeros that any blob could hold)
FINGERPRINTED = ("token_embedding.weight", "blocks.0.attention.qkv.weight")


class CreatorPhase(enum.Enum):
    UNPUBLISHED = 1
    PUBLISHED = 2  # reference values and the root are out: the weights await an enclave
    RELEASED = 3  # the run's one key release went to an appraised enclave


@dataclass
class CreatorState(RoleState):
    phase: CreatorPhase = CreatorPhase.UNPUBLISHED
    model: Transformer | None = None
    root: bytes = b""
    reference: ReferenceValues | None = None  # what it signed: its own appraisal's


def creator_model(ctx: PartyContext, settings: Settings) -> Transformer:
    """The model this creator releases: the shipped checkpoint, or the model
    it trained in an earlier stage. The one place the creator's side loads it."""
    return model_to_serve(ctx, settings.model)


def _fingerprints(model: Transformer) -> list[str]:
    state = model.state_dict()
    return [state[name].detach().numpy().tobytes()[:32].hex() for name in FINGERPRINTED]


def publish_model(ctx: PartyContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """Signed reference values to the verifier and to each end user (a
    relying party that appraises evidence itself); the root to the deployer."""
    state = state_of(ctx, CreatorState)
    state.expect(CreatorPhase.UNPUBLISHED, doing="publishing the model")
    settings = Settings.model_validate(params)
    model = creator_model(ctx, settings)
    root = float32_weights_root(model.state_dict())
    reference = {
        "measurement": measure(ENCLAVE_IMAGE, root),
        "model_root": root.hex(),
        "code_sha256": hashlib.sha256(ENCLAVE_IMAGE).hexdigest(),
        "root_of_trust": SIMULATED,
    }
    statement = sign_statement(
        f"enclave:{ctx.name}",
        reference["measurement"],
        REFERENCE_PREDICATE,
        reference,
        PartySigner.of(ctx),
    )
    label = [Label(f"reference:{ctx.name}", Form.PUBLIC)]
    payload = json.dumps(statement).encode()
    for receiver in (sole_peer(ctx, VERIFIER), *ctx.peers(USER)):
        ctx.deliver(receiver, Step.REFERENCE_VALUES, label, payload)
    deployer = sole_peer(ctx, DEPLOYER)
    digest = [Label(f"weights:{ctx.name}", Form.DIGEST)]
    ctx.deliver(deployer, Step.MODEL_ROOT, digest, json.dumps({"model_root": root.hex()}).encode())
    if settings.baseline:  # refused by the scenario's guarantees
        plain = [Label(f"weights:{ctx.name}", Form.PLAINTEXT)]
        ctx.deliver(deployer, Step.PLAIN_WEIGHTS, plain, model.to_bytes())
    state.model, state.root, state.phase = model, root, CreatorPhase.PUBLISHED
    state.reference = ReferenceValues(
        reference["measurement"], reference["model_root"], reference["code_sha256"]
    )
    return {
        "model_root": root.hex(),
        "measurement": reference["measurement"],
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def release_weights(ctx: PartyContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """Key release: appraise the deployer's enclave (fresh evidence, the
    verifier's affirming result for this creator's reference values, and
    this creator's own appraisal of that evidence against the vendor's root),
    then seal the weights to the HPKE key the evidence binds. An enclave
    that does not appraise gets nothing, and the summary says why."""
    state = state_of(ctx, CreatorState)
    state.expect(CreatorPhase.PUBLISHED, doing="a weights release")
    model = cast(Transformer, state.model)  # PUBLISHED comes with the model
    summary: dict[str, Any] = {FINGERPRINTS: {f"weights:{ctx.name}": _fingerprints(model)}}
    deployer = sole_peer(ctx, DEPLOYER)
    started = time.perf_counter()
    try:
        enclave = attest(ctx, deployer, sole_peer(ctx, VERIFIER), state.reference)
        if enclave.model_root != state.root:
            raise AirlockError("the affirming result names another model root")
        sealed = channel.seal_weights(
            enclave.hpke_public_key, model.to_bytes(), weights_aad(enclave.enclave, state.root)
        )
        label = [Label(f"weights:{ctx.name}", Form.CIPHERTEXT)]
        ctx.deliver(deployer, Step.MODEL_RELEASE, label, sealed)
    except AirlockError as refusal:  # a refused appraisal, or a refused delivery
        return {**summary, "released": False, "refused": str(refusal)}
    state.phase = CreatorPhase.RELEASED
    summary.update(
        released=True,
        enclave=enclave.enclave,
        sealed_bytes=len(sealed),
        release_ms=round(1000 * (time.perf_counter() - started), 2),
    )
    if Settings.model_validate(params).log_receipts:
        deployment = Deployment(ctx.name, enclave.enclave, state.root.hex(), enclave.receipt_key)
        verifier = sole_peer(ctx, VERIFIER)
        statement = deployment.statement(PartySigner.of(ctx), appraised_by=verifier)
        try:
            logged = submit(ctx, statement, [Label(f"weights:{ctx.name}", Form.DIGEST)])
            summary["deployment_logged_at"] = logged["index"]
        except ClaimFailed as error:  # the enclave's receipts will be refused; the user sees why
            summary["deployment_refused"] = str(error)
    return summary

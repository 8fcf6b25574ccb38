"""The model creator in the tee protocol (RATS Reference Value Provider):
it pretrains the model, releases it to the deployer, and gives the verifier
signed reference values (the measurement of the approved enclave image with
this model)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from evidence.statements import PartySigner, sign_statement
from evidence.weights import float32_weights_root
from models.corpus import pretrained_model
from parties.labels import Form, Label
from parties.protocol import PartyContext, sole_peer
from protocols.tee.evidence import ENCLAVE_IMAGE, SIMULATED, measure
from protocols.tee.rules import DEPLOYER, VERIFIER, Step
from protocols.tee.settings import Settings

REFERENCE_PREDICATE = "urn:airlock:predicate:tee-reference-values:v1"


def release_model(ctx: PartyContext, params: Mapping[str, Any]) -> dict[str, Any]:
    s = Settings.model_validate(params)
    model = pretrained_model(s.pretrain_steps, s.seed)
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
    ctx.deliver(sole_peer(ctx, VERIFIER), Step.REFERENCE_VALUES, label, payload)
    weights = [Label(f"weights:{ctx.name}", Form.PLAINTEXT)]
    ctx.deliver(sole_peer(ctx, DEPLOYER), Step.MODEL_RELEASE, weights, model.to_bytes())
    return {"model_root": root.hex(), "measurement": reference["measurement"]}

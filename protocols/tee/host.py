"""The deployer: it hosts the enclave, loads it with an image and a model,
and relays nonces, evidence, sealed prompts and sealed answers, which it
cannot open. It holds no key of the enclave's: the device attestation key
goes to the enclave party alone, and the per-boot keys never leave it."""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from models.transformer import Transformer, generate
from parties.envelope import Envelope
from parties.errors import AirlockError
from parties.labels import Form, Label
from parties.payload import pack, unpack
from parties.protocol import PartyContext, Reply, RoleState, sole_peer, state_of
from protocols.tee.evidence import ENCLAVE_IMAGE
from protocols.tee.rules import ENCLAVE, Step


class HostPhase(enum.Enum):
    AWAITING_MODEL = 1
    HOLDING_MODEL = 2  # the creator's one release of the run is in hand


@dataclass
class HostState(RoleState):
    phase: HostPhase = HostPhase.AWAITING_MODEL
    model: Transformer | None = None


def on_model_release(ctx: PartyContext, envelope: Envelope) -> None:
    state = state_of(ctx, HostState)
    state.expect(HostPhase.AWAITING_MODEL, doing="a model release")
    state.model = Transformer.from_bytes(envelope.payload)
    state.phase = HostPhase.HOLDING_MODEL


def released_model(ctx: PartyContext, doing: str) -> Transformer:
    state = state_of(ctx, HostState)
    state.expect(HostPhase.HOLDING_MODEL, doing=doing)
    return cast(Transformer, state.model)  # HOLDING_MODEL comes with the model


def load_enclave(ctx: PartyContext, image: bytes, model: Transformer) -> dict[str, Any]:
    labels = [
        Label(f"enclave_image:{ctx.name}", Form.PUBLIC),
        Label("weights:model_creator", Form.PLAINTEXT),
    ]
    enclave = sole_peer(ctx, ENCLAVE)
    ctx.deliver(enclave, Step.ENCLAVE_LOAD, labels, pack({"image": image.hex()}, model.to_bytes()))
    return {"enclave": enclave, "parameters": sum(p.numel() for p in model.parameters())}


def launch_enclave(ctx: PartyContext, params: Mapping[str, Any]) -> dict[str, Any]:
    return load_enclave(ctx, ENCLAVE_IMAGE, released_model(ctx, "launching the enclave"))


def evidence_reply(ctx: PartyContext, evidence: bytes) -> Reply:
    return Reply(
        Step.EVIDENCE, (Label(f"evidence:{sole_peer(ctx, ENCLAVE)}", Form.PUBLIC),), evidence
    )


def enclave_evidence(ctx: PartyContext, user: str, request: bytes) -> bytes:
    """The enclave's evidence for a user's attestation request (its nonce)."""
    label = [Label(f"nonce:{user}", Form.PUBLIC)]
    reply = ctx.deliver(sole_peer(ctx, ENCLAVE), Step.EVIDENCE_REQUEST, label, request)
    if reply is None:
        raise AirlockError("the enclave gave no evidence")
    return reply.payload


def on_attestation_request(ctx: PartyContext, envelope: Envelope) -> Reply:
    return evidence_reply(ctx, enclave_evidence(ctx, envelope.header.sender, envelope.payload))


def on_sealed_prompt(ctx: PartyContext, envelope: Envelope) -> Reply:
    user = envelope.header.sender
    meta, sealed = unpack(envelope.payload)
    relay = pack({"user": user, "request": str(meta["request"])}, sealed)
    label = [Label(f"prompt:{user}", Form.CIPHERTEXT)]
    reply = ctx.deliver(sole_peer(ctx, ENCLAVE), Step.ENCLAVE_PROMPT, label, relay)
    if reply is None:
        raise AirlockError("the enclave gave no answer")
    return Reply(Step.SEALED_ANSWER, (Label(f"output:{user}", Form.CIPHERTEXT),), reply.payload)


def on_plain_prompt(ctx: PartyContext, envelope: Envelope) -> Reply:
    """The baseline: the same model served in plaintext by the host."""
    request = json.loads(envelope.payload)
    prompt = str(request["prompt"])
    model = released_model(ctx, "a plaintext prompt")
    output = generate(model, prompt, int(request["max_new_tokens"]))[len(prompt) :]
    label = (Label(f"output:{envelope.header.sender}", Form.PLAINTEXT),)
    return Reply(Step.PLAIN_ANSWER, label, json.dumps({"output": output}).encode())

"""The deployer: it hosts the enclave, loads it with an image and a model,
and relays nonces, evidence, sealed prompts and sealed answers, which it
cannot open. It holds no key of the enclave's: the device attestation key
goes to the enclave party alone, and the per-boot keys never leave it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from models.charlm import CharTransformer, generate
from parties.envelope import Envelope
from parties.errors import AirlockError
from parties.labels import Form, Label
from parties.payload import pack, unpack
from parties.protocol import PartyContext, Reply, sole_peer
from protocols.tee.evidence import ENCLAVE_IMAGE
from protocols.tee.rules import ENCLAVE


def on_model_release(ctx: PartyContext, envelope: Envelope) -> None:
    ctx.state["model"] = CharTransformer.from_bytes(envelope.payload)


def released_model(ctx: PartyContext) -> CharTransformer:
    model: CharTransformer | None = ctx.state.get("model")
    if model is None:
        raise AirlockError("the deployer has no model to load")
    return model


def load_enclave(ctx: PartyContext, image: bytes, model: CharTransformer) -> dict[str, Any]:
    labels = [
        Label(f"enclave_image:{ctx.name}", Form.PUBLIC),
        Label("weights:model_creator", Form.PLAINTEXT),
    ]
    enclave = sole_peer(ctx, ENCLAVE)
    ctx.deliver(enclave, "enclave_load", labels, pack({"image": image.hex()}, model.to_bytes()))
    return {"enclave": enclave, "parameters": sum(p.numel() for p in model.parameters())}


def launch_enclave(ctx: PartyContext, params: Mapping[str, Any]) -> dict[str, Any]:
    return load_enclave(ctx, ENCLAVE_IMAGE, released_model(ctx))


def evidence_reply(ctx: PartyContext, evidence: bytes) -> Reply:
    return Reply("evidence", (Label(f"evidence:{sole_peer(ctx, ENCLAVE)}", Form.PUBLIC),), evidence)


def enclave_evidence(ctx: PartyContext, user: str, request: bytes) -> bytes:
    """The enclave's evidence for a user's attestation request (its nonce)."""
    label = [Label(f"nonce:{user}", Form.PUBLIC)]
    reply = ctx.deliver(sole_peer(ctx, ENCLAVE), "evidence_request", label, request)
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
    reply = ctx.deliver(sole_peer(ctx, ENCLAVE), "enclave_prompt", label, relay)
    if reply is None:
        raise AirlockError("the enclave gave no answer")
    return Reply("sealed_answer", (Label(f"output:{user}", Form.CIPHERTEXT),), reply.payload)


def on_plain_prompt(ctx: PartyContext, envelope: Envelope) -> Reply:
    """The baseline: the same model served in plaintext by the host."""
    request = json.loads(envelope.payload)
    prompt = str(request["prompt"])
    output = generate(released_model(ctx), prompt, int(request["max_new_tokens"]))[len(prompt) :]
    label = (Label(f"output:{envelope.header.sender}", Form.PLAINTEXT),)
    return Reply("plain_answer", label, json.dumps({"output": output}).encode())

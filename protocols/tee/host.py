"""The deployer: it hosts the enclave, boots it with an image and the root
of the weights it is to serve, and relays nonces, evidence, the model
creator's sealed weights, sealed prompts and sealed answers, none of which
it can open. It holds no key of the enclave's: the device attestation key
goes to the enclave party alone, and the per-boot keys never leave it."""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from models.checkpoint import shipped_tokenizer
from models.transformer import Transformer
from parties.envelope import Envelope
from parties.errors import AirlockError, OutOfStep
from parties.labels import Form, Label
from parties.payload import pack, unpack
from parties.protocol import PartyContext, Reply, RoleState, sole_peer, state_of
from protocols.tee.enclave import completion
from protocols.tee.evidence import ENCLAVE_IMAGE
from protocols.tee.rules import ENCLAVE, Step


class HostPhase(enum.Enum):
    AWAITING_ROOT = 1
    HOLDING_ROOT = 2  # the creator's one model root of the run is in hand
    LAUNCHED = 3  # the enclave is booted; it awaits the creator's weights
    RELAYED = 4  # the creator's one weights release of the run went to the enclave


@dataclass
class HostState(RoleState):
    phase: HostPhase = HostPhase.AWAITING_ROOT
    model_root: bytes = b""
    creator: str = ""  # whose weights the root commits to
    plain_model: Transformer | None = None  # the benchmark's baseline only


def on_model_root(ctx: PartyContext, envelope: Envelope) -> None:
    state = state_of(ctx, HostState)
    state.expect(HostPhase.AWAITING_ROOT, doing="a model root")
    root = bytes.fromhex(str(json.loads(envelope.payload)["model_root"]))
    if len(root) != 32:
        raise AirlockError("a model root is 32 bytes")
    state.model_root, state.creator = root, envelope.header.sender
    state.phase = HostPhase.HOLDING_ROOT


def model_root(ctx: PartyContext, doing: str) -> tuple[bytes, str]:
    """The root the creator announced, and the creator."""
    state = state_of(ctx, HostState)
    state.expect(HostPhase.HOLDING_ROOT, doing=doing)
    return state.model_root, state.creator


def load_enclave(ctx: PartyContext, image: bytes, root: bytes, owner: str) -> dict[str, Any]:
    """Boot the enclave with `image` and the root of `owner`'s weights."""
    labels = [
        Label(f"enclave_image:{ctx.name}", Form.PUBLIC),
        Label(f"weights:{owner}", Form.DIGEST),
    ]
    enclave = sole_peer(ctx, ENCLAVE)
    request = json.dumps({"image": image.hex(), "model_root": root.hex()}).encode()
    ctx.deliver(enclave, Step.ENCLAVE_LOAD, labels, request)
    state_of(ctx, HostState).phase = HostPhase.LAUNCHED
    return {"enclave": enclave, "model_root": root.hex()}


def launch_enclave(ctx: PartyContext, params: Mapping[str, Any]) -> dict[str, Any]:
    return load_enclave(ctx, ENCLAVE_IMAGE, *model_root(ctx, "launching the enclave"))


def on_model_release(ctx: PartyContext, envelope: Envelope) -> None:
    """Key release: weights sealed to the enclave's attested key, relayed as they came."""
    state = state_of(ctx, HostState)
    state.expect(HostPhase.LAUNCHED, doing="a model release")
    labels = [Label(envelope.header.labels[0].asset, Form.CIPHERTEXT)]
    ctx.deliver(sole_peer(ctx, ENCLAVE), Step.ENCLAVE_WEIGHTS, labels, envelope.payload)
    state.phase = HostPhase.RELAYED


def evidence_reply(ctx: PartyContext, evidence: bytes) -> Reply:
    return Reply(
        Step.EVIDENCE, (Label(f"evidence:{sole_peer(ctx, ENCLAVE)}", Form.PUBLIC),), evidence
    )


def enclave_evidence(ctx: PartyContext, asker: str, request: bytes) -> bytes:
    """The enclave's evidence for a relying party's attestation request (its nonce)."""
    label = [Label(f"nonce:{asker}", Form.PUBLIC)]
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


def on_plain_weights(ctx: PartyContext, envelope: Envelope) -> None:
    """The baseline: the creator's weights in the clear, for the benchmark only."""
    state = state_of(ctx, HostState)
    if state.plain_model is not None:
        raise OutOfStep("the baseline's plaintext weights come once per run")
    state.plain_model = Transformer.from_bytes(envelope.payload)


def on_plain_prompt(ctx: PartyContext, envelope: Envelope) -> Reply:
    """The baseline: the same model served in plaintext by the host."""
    model = state_of(ctx, HostState).plain_model
    if model is None:
        raise OutOfStep("a plaintext prompt needs the baseline's plaintext weights")
    request = json.loads(envelope.payload)
    prompt, tokens = str(request["prompt"]), int(request["max_new_tokens"])
    output = completion(model, shipped_tokenizer(), prompt, tokens)
    label = (Label(f"output:{envelope.header.sender}", Form.PLAINTEXT),)
    return Reply(Step.PLAIN_ANSWER, label, json.dumps({"output": output}).encode())

"""The enclave: the code image a TEE measures, and the logic it runs.

This file's bytes are the enclave's code image (`evidence.ENCLAVE_IMAGE`):
its measurement is SHA-256 over them and the model's weights root. The host
(the deployer) loads the enclave with an image and a model. The SIMULATED
hardware measures what was loaded, but always runs this file's logic, so a
modified image changes the measurement as it would on real hardware.

Inside: a per-boot HPKE key pair, whose public half goes into the evidence;
prompts are opened, answered by the loaded model, sealed back to the user,
and receipted with the enclave's own signature.
"""

from __future__ import annotations

import json
from typing import Any

from models.charlm import CharTransformer, generate
from parties.envelope import Envelope
from parties.errors import AirlockError
from parties.labels import Form, Label
from parties.payload import pack, unpack
from parties.protocol import PartyContext, Reply
from protocols.attestation.receipts import issue_receipt
from protocols.attestation.statements import PartySigner
from protocols.tee import channel
from protocols.tee.evidence import SimulatedHardware, measure


def request_aad(user: str, request: str) -> bytes:
    """Binds a sealed prompt and its answer to one user and one request."""
    return f"airlock tee\n{user}\n{request}".encode()


def _loaded(ctx: PartyContext) -> dict[str, Any]:
    loaded = ctx.state.get("loaded")
    if loaded is None:
        raise AirlockError("no model is loaded in the enclave")
    return loaded


def on_enclave_load(ctx: PartyContext, envelope: Envelope) -> None:
    meta, weights = unpack(envelope.payload)
    image = bytes.fromhex(str(meta["image"]))
    model = CharTransformer.from_bytes(weights)
    root = model.commitment_root()
    ctx.state.setdefault("hardware", SimulatedHardware())
    ctx.state["loaded"] = {
        "model": model,
        "model_root": root,
        "measurement": measure(image, root),
        "keys": channel.new_key_pair(),  # per boot: a reload makes a new one
        "max_new_tokens": int(meta.get("max_new_tokens", 24)),
    }


def on_evidence_request(ctx: PartyContext, envelope: Envelope) -> Reply:
    loaded = _loaded(ctx)
    nonce = bytes.fromhex(str(json.loads(envelope.payload)["nonce"]))
    if not 16 <= len(nonce) <= 64:
        raise AirlockError("a nonce must be 16 to 64 bytes")
    hardware: SimulatedHardware = ctx.state["hardware"]
    quote = hardware.quote(
        ctx.name, loaded["measurement"], nonce, channel.public_bytes(loaded["keys"])
    )
    return Reply(
        "evidence", (Label(f"evidence:{ctx.name}", Form.PUBLIC),), json.dumps(quote).encode()
    )


def on_enclave_prompt(ctx: PartyContext, envelope: Envelope) -> Reply:
    """Open the user's sealed prompt, answer it, seal the answer back."""
    loaded = _loaded(ctx)
    meta, sealed = unpack(envelope.payload)
    user, request = str(meta["user"]), str(meta["request"])
    aad = request_aad(user, request)
    opened, context = channel.open_request(loaded["keys"], sealed, aad)
    try:
        asked = json.loads(opened)
        prompt, nonce = str(asked["prompt"]), bytes.fromhex(asked["nonce"])
    except (ValueError, KeyError, TypeError):
        raise AirlockError("the opened request is not a prompt") from None
    text = generate(loaded["model"], prompt, loaded["max_new_tokens"])
    output = text[len(prompt) :]
    receipt = issue_receipt(
        loaded["model_root"],
        prompt.encode(),
        output.encode(),
        nonce,
        ctx.name,
        PartySigner.of(ctx),
    )
    answer = json.dumps({"output": output, "receipt": receipt}).encode()
    labels = (Label(f"output:{user}", Form.CIPHERTEXT),)
    return Reply(
        "enclave_answer",
        labels,
        pack({"request": request}, channel.seal_answer(context, answer, aad)),
    )

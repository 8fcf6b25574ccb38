"""The enclave: the code image a TEE measures, and the logic it runs.

This file's bytes are the enclave's code image (`evidence.ENCLAVE_IMAGE`):
its measurement is SHA-256 over them and the model's weights root. The host
(the deployer) loads the enclave with an image and a model. The SIMULATED
hardware measures what was loaded, but always runs this file's logic, so a
modified image changes the measurement as it would on real hardware.

The hardware is the device attestation key the orchestrator provisioned to
this party alone (`ctx.provision`). Inside, per boot: an HPKE key pair and a
receipt-signing key, both public halves quoted in the evidence. Prompts are
opened, answered by the loaded model, sealed back to the user, and
receipted with the attested receipt key.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric import ed25519
from pyhpke import KEMKeyPair
from securesystemslib.signer import Signer

from evidence.receipts import issue_receipt
from evidence.statements import PartySigner
from evidence.weights import float32_weights_root
from models.transformer import Transformer, generate
from parties.envelope import Envelope
from parties.errors import AirlockError
from parties.labels import Form, Label
from parties.payload import pack, unpack
from parties.protocol import PartyContext, Reply, RoleState, state_of
from protocols.tee import channel
from protocols.tee.evidence import DeviceProvision, SimulatedHardware, measure
from protocols.tee.rules import Step
from protocols.tee.settings import Settings


def request_aad(user: str, request: str) -> bytes:
    """Binds a sealed prompt and its answer to one user and one request."""
    return f"airlock tee\n{user}\n{request}".encode()


@dataclass(frozen=True)
class Answered:
    """A prompt answered inside the enclave; `sealed` is all that leaves."""

    user: str
    request: str
    prompt: str
    output: str
    sealed: bytes

    def reply(self, step: Step = Step.ENCLAVE_ANSWER) -> Reply:
        labels = (Label(f"output:{self.user}", Form.CIPHERTEXT),)
        return Reply(step, labels, pack({"request": self.request}, self.sealed))


@dataclass(frozen=True)
class LoadedEnclave:
    """One boot of the enclave: what was loaded, and its per-boot keys."""

    hardware: SimulatedHardware
    model: Transformer
    model_root: bytes
    measurement: str
    hpke_keys: KEMKeyPair
    receipt_key: ed25519.Ed25519PrivateKey
    max_new_tokens: int

    @classmethod
    def boot(
        cls, device: DeviceProvision, image: bytes, model: Transformer, max_new_tokens: int
    ) -> LoadedEnclave:
        root = float32_weights_root(model.state_dict())
        return cls(
            SimulatedHardware(device),
            model,
            root,
            measure(image, root),
            channel.new_key_pair(),
            ed25519.Ed25519PrivateKey.generate(),
            max_new_tokens,
        )

    @property
    def receipt_signer(self) -> Signer:
        return PartySigner(self.receipt_key.public_key(), self.receipt_key.sign)

    def evidence(self, enclave: str, nonce: bytes) -> dict[str, Any]:
        return self.hardware.quote(
            enclave,
            self.measurement,
            nonce,
            channel.public_bytes(self.hpke_keys),
            self.receipt_key.public_key(),
        )

    def answer(
        self, server: str, user: str, request: str, sealed: bytes, signer: Signer
    ) -> Answered:
        """Open `user`'s sealed prompt, answer it, and seal the answer (with a
        receipt signed by `signer`) back to the sender of the prompt."""
        aad = request_aad(user, request)
        opened, context = channel.open_request(self.hpke_keys, sealed, aad)
        try:
            asked = json.loads(opened)
            prompt, nonce = str(asked["prompt"]), bytes.fromhex(asked["nonce"])
        except (ValueError, KeyError, TypeError):
            raise AirlockError("the opened request is not a prompt") from None
        output = generate(self.model, prompt, self.max_new_tokens)[len(prompt) :]
        receipt = issue_receipt(
            self.model_root, prompt.encode(), output.encode(), nonce, server, signer
        )
        answer = json.dumps({"output": output, "receipt": receipt}).encode()
        return Answered(user, request, prompt, output, channel.seal_answer(context, answer, aad))


class EnclavePhase(enum.Enum):
    AWAITING_LOAD = 1
    LOADED = 2  # booted with an image and a model: it quotes and answers


@dataclass
class EnclaveState(RoleState):
    phase: EnclavePhase = EnclavePhase.AWAITING_LOAD
    loaded: LoadedEnclave | None = None

    def boot(self, enclave: LoadedEnclave) -> None:
        self.loaded, self.phase = enclave, EnclavePhase.LOADED


def booted(ctx: PartyContext, doing: str) -> LoadedEnclave:
    """The loaded enclave; OutOfStep before the host has loaded it."""
    state = state_of(ctx, EnclaveState)
    state.expect(EnclavePhase.LOADED, doing=doing)
    return cast(LoadedEnclave, state.loaded)  # LOADED comes with a boot


def relayed(envelope: Envelope) -> tuple[str, str, bytes]:
    """(user, request id, sealed prompt) of a prompt the host relayed."""
    meta, sealed = unpack(envelope.payload)
    return str(meta["user"]), str(meta["request"]), sealed


def on_enclave_load(ctx: PartyContext, envelope: Envelope) -> None:
    if not isinstance(ctx.provision, DeviceProvision):
        raise AirlockError(
            "this enclave has no device attestation key (the orchestrator provisions one per run)"
        )
    meta, weights = unpack(envelope.payload)
    image = bytes.fromhex(str(meta["image"]))
    model = Transformer.from_bytes(weights)
    # the answer length is the scenario's, never the host's word; a reload
    # is a new boot: new HPKE and receipt keys
    tokens = Settings.model_validate(ctx.settings).max_new_tokens
    state_of(ctx, EnclaveState).boot(LoadedEnclave.boot(ctx.provision, image, model, tokens))


def on_evidence_request(ctx: PartyContext, envelope: Envelope) -> Reply:
    enclave = booted(ctx, "an evidence request")
    nonce = bytes.fromhex(str(json.loads(envelope.payload)["nonce"]))
    if not 16 <= len(nonce) <= 64:
        raise AirlockError("a nonce must be 16 to 64 bytes")
    return Reply(
        Step.EVIDENCE,
        (Label(f"evidence:{ctx.name}", Form.PUBLIC),),
        json.dumps(enclave.evidence(ctx.name, nonce)).encode(),
    )


def on_enclave_prompt(ctx: PartyContext, envelope: Envelope) -> Reply:
    """Open the user's sealed prompt, answer it, seal the answer back."""
    enclave = booted(ctx, "a prompt")
    return enclave.answer(ctx.name, *relayed(envelope), enclave.receipt_signer).reply()

"""The enclave: the code image a TEE measures, and the logic it runs.

This file's bytes are the enclave's code image (`evidence.ENCLAVE_IMAGE`).
The host (the deployer) boots the enclave with an image and the root of the
weights it is to serve (the model creator's Merkle commitment), never with
the weights: its measurement is SHA-256 over the image and that root. The
SIMULATED hardware measures what was loaded, but always runs this file's
logic, so a modified image changes the measurement as it would on real
hardware.

The hardware is the device attestation key the orchestrator provisioned to
this party alone (`ctx.provision`). Inside, per boot: an HPKE key pair and a
receipt-signing key, both public halves quoted in the evidence. Key release:
the model creator appraises that evidence and seals the weights to the
quoted HPKE key; the host relays the ciphertext, and the enclave installs
the weights only if their root is the one it was booted (and measured)
with. Then prompts are opened, answered by that model, sealed back to the
user, and receipted with the attested receipt key. The receipt names the
user's salted commitment to the prompt and the answer under a fresh salt
that only the user is given; with `log_receipts` the enclave logs it in the
ledger before it answers, and the ledger's proof goes back with the answer.
Prompts and answers are padded inside the seal to the scenario's size
buckets (padding.py): the enclave refuses a request not padded to one of
its request buckets and pads each answer to its answer buckets, so the
host sees bucket sizes only.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from cryptography.hazmat.primitives.asymmetric import ed25519
from pyhpke import KEMKeyPair
from securesystemslib.signer import Signer

from evidence.cose_receipts import issue_cose_receipt
from evidence.receipts import issue_receipt, new_salt, salted_sha256
from evidence.statements import PartySigner
from evidence.weights import float32_weights_root
from models.checkpoint import shipped_tokenizer
from models.transformer import Codec, Transformer, generate
from parties.envelope import Envelope
from parties.errors import AirlockError, ClaimFailed
from parties.labels import Form, Label
from parties.payload import pack, unpack
from parties.protocol import PartyContext, Reply, RoleState, state_of
from protocols.attestation.shared import submit
from protocols.tee import channel
from protocols.tee.evidence import DeviceProvision, SimulatedHardware, measure
from protocols.tee.padding import ANSWER_BUCKETS, REQUEST_BUCKETS
from protocols.tee.rules import Step
from protocols.tee.settings import Settings

# logs a receipt for (user, the size of the last ledger head the user saw);
# returns the ledger's answer, or raises ClaimFailed
ReceiptLog = Callable[[str, int, dict[str, Any]], dict[str, Any]]

# an answer is one line: the prompt format's ("question: ...\ncontext: ...\nanswer:")
STOP = "\n"


def request_aad(user: str, request: str) -> bytes:
    """Binds a sealed prompt and its answer to one user and one request."""
    return f"airlock tee\n{user}\n{request}".encode()


def weights_aad(enclave: str, model_root: bytes) -> bytes:
    """Binds a weights release to one enclave and the root it was booted with."""
    return f"airlock tee weights\n{enclave}\n{model_root.hex()}".encode()


def completion(
    model: Transformer, tokenizer: Codec, prompt: str, tokens: int, stop: str | None = STOP
) -> str:
    """The model's answer to `prompt`: greedy decoding, at most `tokens` word
    pieces, up to the end of its line (`stop`, left out)."""
    text = generate(model, tokenizer, prompt, tokens, stop)[len(prompt) :]
    return (text.split(stop)[0] if stop else text).strip()


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


@dataclass
class BootedEnclave:
    """One boot of the enclave: what it was booted with, its per-boot keys,
    and (after key release) the model it serves."""

    hardware: SimulatedHardware
    model_root: bytes
    measurement: str
    hpke_keys: KEMKeyPair
    receipt_key: ed25519.Ed25519PrivateKey
    max_new_tokens: int
    tokenizer: Codec
    stop: str | None = STOP
    # the sizes requests and answers are padded to (the scenario's, as max_new_tokens)
    request_buckets: tuple[int, ...] = REQUEST_BUCKETS
    answer_buckets: tuple[int, ...] = ANSWER_BUCKETS
    model: Transformer | None = None

    @classmethod
    def boot(
        cls,
        device: DeviceProvision,
        image: bytes,
        model_root: bytes,
        max_new_tokens: int,
        tokenizer: Codec,
        stop: str | None = STOP,
        *,
        request_buckets: tuple[int, ...] = REQUEST_BUCKETS,
        answer_buckets: tuple[int, ...] = ANSWER_BUCKETS,
    ) -> BootedEnclave:
        return cls(
            SimulatedHardware(device),
            model_root,
            measure(image, model_root),
            channel.new_key_pair(),
            ed25519.Ed25519PrivateKey.generate(),
            max_new_tokens,
            tokenizer,
            stop,
            request_buckets,
            answer_buckets,
        )

    @property
    def hpke_public_key(self) -> bytes:
        return channel.public_bytes(self.hpke_keys)

    @property
    def receipt_signer(self) -> Signer:
        return PartySigner(self.receipt_key.public_key(), self.receipt_key.sign)

    def evidence(self, enclave: str, nonce: bytes) -> dict[str, Any]:
        return self.hardware.quote(
            enclave, self.measurement, nonce, self.hpke_public_key, self.receipt_key.public_key()
        )

    def install(self, enclave: str, sealed: bytes) -> None:
        """Key release: open weights sealed to this boot's HPKE key, and serve
        them only if their root is the one this enclave was booted and
        measured with (so the evidence names the model that answers)."""
        aad = weights_aad(enclave, self.model_root)
        model = Transformer.from_bytes(channel.open_weights(self.hpke_keys, sealed, aad))
        root = float32_weights_root(model.state_dict())
        if root != self.model_root:
            raise AirlockError(
                f"the released weights have root {root.hex()[:16]}..., not the root "
                f"{self.model_root.hex()[:16]}... this enclave was booted and measured with"
            )
        self.model = model

    def answer(
        self,
        server: str,
        user: str,
        request: str,
        sealed: bytes,
        signer: Signer,
        log: ReceiptLog | None = None,
    ) -> Answered:
        """Open `user`'s sealed prompt (refused unless padded to a request
        bucket), answer it, and seal the answer (with a receipt signed by
        `signer`, logged by `log` if given), padded to an answer bucket, back
        to the sender of the prompt."""
        if self.model is None:
            raise AirlockError("no weights were released to this enclave")
        aad = request_aad(user, request)
        opened, context = channel.open_request(self.hpke_keys, sealed, aad, self.request_buckets)
        try:
            asked = json.loads(opened)
            prompt, nonce = str(asked["prompt"]), bytes.fromhex(asked["nonce"])
            commitment = bytes.fromhex(asked["input_sha256"])
            since = int(asked.get("since", 0))
        except (ValueError, KeyError, TypeError):
            raise AirlockError("the opened request is not a prompt") from None
        if len(commitment) != 32:
            raise AirlockError("the prompt commitment is not a SHA-256 digest")
        output = completion(self.model, self.tokenizer, prompt, self.max_new_tokens, self.stop)
        output_salt = new_salt()
        receipt = issue_receipt(
            self.model_root,
            prompt.encode(),
            output.encode(),
            nonce,
            server,
            signer,
            input_sha256=commitment.hex(),
            output_salt=output_salt,
        )
        # the same receipt as COSE_Sign1 (evidence/cose_receipts.py), for COSE tooling
        cose = issue_cose_receipt(
            server,
            self.model_root,
            commitment.hex(),
            salted_sha256(output_salt, output.encode()),
            nonce,
            signer,
        )
        answer: dict[str, Any] = {
            "output": output,
            "output_salt": output_salt.hex(),
            "receipt": receipt,
            "cose_receipt": cose.hex(),
        }
        if log is not None:
            try:
                answer["ledger"] = log(user, since, receipt)
            except ClaimFailed as error:  # the user refuses an answer whose receipt is not logged
                answer["unlogged"] = str(error)
        sealed_answer = channel.seal_answer(
            context, json.dumps(answer).encode(), aad, self.answer_buckets
        )
        return Answered(user, request, prompt, output, sealed_answer)


class EnclavePhase(enum.Enum):
    AWAITING_LOAD = 1
    AWAITING_WEIGHTS = 2  # booted with an image and a model root: it quotes
    SERVING = 3  # the released weights are installed: it answers


@dataclass
class EnclaveState(RoleState):
    phase: EnclavePhase = EnclavePhase.AWAITING_LOAD
    booted: BootedEnclave | None = None


def booted(ctx: PartyContext, doing: str, *phases: EnclavePhase) -> BootedEnclave:
    """The booted enclave, at one of `phases` (by default: serving); OutOfStep otherwise."""
    state = state_of(ctx, EnclaveState)
    state.expect(*(phases or (EnclavePhase.SERVING,)), doing=doing)
    return cast(BootedEnclave, state.booted)  # past AWAITING_LOAD comes with a boot


def relayed(envelope: Envelope) -> tuple[str, str, bytes]:
    """(user, request id, sealed prompt) of a prompt the host relayed."""
    meta, sealed = unpack(envelope.payload)
    return str(meta["user"]), str(meta["request"]), sealed


def on_enclave_load(ctx: PartyContext, envelope: Envelope) -> None:
    """Boot with an image and the root of the weights to serve; a reload is
    a new boot: new HPKE and receipt keys, and no weights until released."""
    if not isinstance(ctx.provision, DeviceProvision):
        raise AirlockError(
            "this enclave has no device attestation key (the orchestrator provisions one per run)"
        )
    meta = json.loads(envelope.payload)
    image, root = bytes.fromhex(str(meta["image"])), bytes.fromhex(str(meta["model_root"]))
    if len(root) != 32:
        raise AirlockError("a model root is 32 bytes")
    # the answer length and the padding buckets are the scenario's, never the host's word
    s = Settings.model_validate(ctx.settings)
    state = state_of(ctx, EnclaveState)
    state.booted = BootedEnclave.boot(
        ctx.provision,
        image,
        root,
        s.max_new_tokens,
        shipped_tokenizer(),
        request_buckets=s.request_buckets,
        answer_buckets=s.answer_buckets,
    )
    state.phase = EnclavePhase.AWAITING_WEIGHTS


def on_enclave_weights(ctx: PartyContext, envelope: Envelope) -> None:
    """The model creator's weights, sealed to this boot's key, relayed by the host."""
    enclave = booted(ctx, "a weights release", EnclavePhase.AWAITING_WEIGHTS)
    enclave.install(ctx.name, envelope.payload)
    state_of(ctx, EnclaveState).phase = EnclavePhase.SERVING


def on_evidence_request(ctx: PartyContext, envelope: Envelope) -> Reply:
    enclave = booted(
        ctx, "an evidence request", EnclavePhase.AWAITING_WEIGHTS, EnclavePhase.SERVING
    )
    nonce = bytes.fromhex(str(json.loads(envelope.payload)["nonce"]))  # 32 bytes (messages.py)
    return Reply(
        Step.EVIDENCE,
        (Label(f"evidence:{ctx.name}", Form.PUBLIC),),
        json.dumps(enclave.evidence(ctx.name, nonce)).encode(),
    )


def receipt_log(ctx: PartyContext) -> ReceiptLog | None:
    """How this enclave logs its receipts: in the ledger, if the scenario says so."""
    if not Settings.model_validate(ctx.settings).log_receipts:
        return None

    def log(user: str, since: int, receipt: dict[str, Any]) -> dict[str, Any]:
        labels = [Label(f"prompt:{user}", Form.DIGEST), Label(f"output:{user}", Form.DIGEST)]
        return submit(ctx, receipt, labels, since=since)

    return log


def on_enclave_prompt(ctx: PartyContext, envelope: Envelope) -> Reply:
    """Open the user's sealed prompt, answer it, log its receipt, seal the answer back."""
    enclave = booted(ctx, "a prompt")
    signer = enclave.receipt_signer
    return enclave.answer(ctx.name, *relayed(envelope), signer, receipt_log(ctx)).reply()

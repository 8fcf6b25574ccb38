"""The adversaries the tee protocol knows, apart from the honest roles.

Played by the deployer (the host):
  swap_model     loads a smaller model than the one released;
  modified_code  loads a patched enclave image;
  replay_quote   answers every attestation request with the first evidence;
  rogue_vendor   plays the enclave itself: it makes its own simulated vendor
                 and chip (anyone can; the run's vendor key stays in the
                 orchestrator) and quotes its own keys with the right
                 measurement; a prompt sealed to it, it opens and answers.
                 Its action `show_opened_prompts` reports what it opened.
Played by the enclave, standing for an image the reference values approved
but which is flawed (the simulated hardware always runs enclave.py, so a
misbehaving enclave is played here, with the measurement unchanged):
  unattested_receipt_key  signs receipts with its party key, which the host's
                          runtime holds, not the receipt key its evidence binds;
  mislabeled_answer       also hands the host each answer in the clear, in a
                          reply labelled ciphertext.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from evidence.statements import PartySigner
from models.transformer import Transformer, ModelConfig
from parties.envelope import Envelope
from parties.payload import pack, unpack
from parties.protocol import Adversary, PartyContext, Reply, sole_peer, state_of
from protocols.tee.enclave import LoadedEnclave, booted, relayed
from protocols.tee.evidence import ENCLAVE_IMAGE, SimulatedVendor
from protocols.tee.host import (
    HostState,
    enclave_evidence,
    evidence_reply,
    load_enclave,
    released_model,
)
from protocols.tee.rules import DEPLOYER, ENCLAVE, Step
from protocols.tee.settings import Settings


class Name(enum.StrEnum):
    SWAP_MODEL = "swap_model"
    MODIFIED_CODE = "modified_code"
    REPLAY_QUOTE = "replay_quote"
    ROGUE_VENDOR = "rogue_vendor"
    UNATTESTED_RECEIPT_KEY = "unattested_receipt_key"
    MISLABELED_ANSWER = "mislabeled_answer"


# -- the deployer ----------------------------------------------------------------------


def launch_swapped_model(ctx: PartyContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """swap_model: a cheaper model than the one released."""
    cheaper = Transformer(ModelConfig(width=32, hidden=96), seed=1)
    return load_enclave(ctx, ENCLAVE_IMAGE, cheaper)


def launch_modified_code(ctx: PartyContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """modified_code: the enclave image, patched."""
    patch = b"\n# patched by the host: copy every prompt to the host's disk\n"
    return load_enclave(ctx, ENCLAVE_IMAGE + patch, released_model(ctx, "launching the enclave"))


@dataclass
class ReplayingHost(HostState):
    first_evidence: bytes | None = None


def replayed_evidence(ctx: PartyContext, envelope: Envelope) -> Reply:
    """replay_quote: the first evidence the enclave gave, for every request."""
    state = state_of(ctx, ReplayingHost)
    if state.first_evidence is None:
        state.first_evidence = enclave_evidence(ctx, envelope.header.sender, envelope.payload)
    return evidence_reply(ctx, state.first_evidence)


@dataclass
class RogueHost(HostState):
    forged: LoadedEnclave | None = None
    opened_prompts: list[str] = field(default_factory=list)


def _host_enclave(ctx: PartyContext) -> LoadedEnclave:
    """rogue_vendor: the enclave's own code, run by the host outside any
    enclave, on a chip of a vendor the host made."""
    state = state_of(ctx, RogueHost)
    if state.forged is None:
        tokens = Settings.model_validate(ctx.settings).max_new_tokens
        device = SimulatedVendor().device()
        model = released_model(ctx, "playing the enclave")
        state.forged = LoadedEnclave.boot(device, ENCLAVE_IMAGE, model, tokens)
    return state.forged


def rogue_evidence(ctx: PartyContext, envelope: Envelope) -> Reply:
    nonce = bytes.fromhex(str(json.loads(envelope.payload)["nonce"]))
    quote = _host_enclave(ctx).evidence(sole_peer(ctx, ENCLAVE), nonce)
    return evidence_reply(ctx, json.dumps(quote).encode())


def open_sealed_prompt(ctx: PartyContext, envelope: Envelope) -> Reply:
    meta, sealed = unpack(envelope.payload)
    host = _host_enclave(ctx)
    user, request = envelope.header.sender, str(meta["request"])
    answered = host.answer(sole_peer(ctx, ENCLAVE), user, request, sealed, host.receipt_signer)
    state_of(ctx, RogueHost).opened_prompts.append(answered.prompt)
    return answered.reply(Step.SEALED_ANSWER)


def show_opened_prompts(ctx: PartyContext, params: Mapping[str, Any]) -> dict[str, Any]:
    return {"opened_prompts": list(state_of(ctx, RogueHost).opened_prompts)}


# -- the enclave ---------------------------------------------------------------------------


def answer_with_party_key(ctx: PartyContext, envelope: Envelope) -> Reply:
    """unattested_receipt_key: receipts signed outside the attested key."""
    enclave = booted(ctx, "a prompt")
    return enclave.answer(ctx.name, *relayed(envelope), PartySigner.of(ctx)).reply()


def answer_leaking_to_host(ctx: PartyContext, envelope: Envelope) -> Reply:
    """mislabeled_answer: the sealed answer, and the output in the clear."""
    enclave = booted(ctx, "a prompt")
    answered = enclave.answer(ctx.name, *relayed(envelope), enclave.receipt_signer)
    honest = answered.reply()
    meta, sealed = unpack(honest.payload)
    return Reply(honest.step, honest.labels, pack({**meta, "output": answered.output}, sealed))


ADVERSARIES: dict[str, Adversary] = {
    Name.SWAP_MODEL: Adversary(DEPLOYER, actions={"launch_enclave": launch_swapped_model}),
    Name.MODIFIED_CODE: Adversary(DEPLOYER, actions={"launch_enclave": launch_modified_code}),
    Name.REPLAY_QUOTE: Adversary(
        DEPLOYER, handlers={Step.ATTESTATION_REQUEST: replayed_evidence}, state=ReplayingHost
    ),
    Name.ROGUE_VENDOR: Adversary(
        DEPLOYER,
        handlers={
            Step.ATTESTATION_REQUEST: rogue_evidence,
            Step.SEALED_PROMPT: open_sealed_prompt,
        },
        actions={"show_opened_prompts": show_opened_prompts},
        after_stage="show_opened_prompts",
        state=RogueHost,
    ),
    Name.UNATTESTED_RECEIPT_KEY: Adversary(
        ENCLAVE, handlers={Step.ENCLAVE_PROMPT: answer_with_party_key}
    ),
    Name.MISLABELED_ANSWER: Adversary(
        ENCLAVE, handlers={Step.ENCLAVE_PROMPT: answer_leaking_to_host}
    ),
}

"""Deployers and end users: both accept the model commitment the creator
shows them; a deployer serves that model and signs and logs a receipt per
answer; an end user accepts an answer only with a receipt that names the
committed model and is signed by a server the commitment endorses."""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from evidence.receipts import check_receipt, issue_receipt, new_salt, salted_sha256
from evidence.statements import PartySigner, json_or_none
from evidence.weights import Tensor, weights_root
from parties.envelope import Envelope
from parties.errors import ClaimFailed
from parties.labels import Form, Label
from parties.protocol import PartyContext, Reply, holdings_as, state_of
from parties.roles import EndUser, Role
from protocols.artifacts import COMMITTED_MODEL, CommittedModel
from protocols.attestation.ledger import open_logged
from protocols.attestation.model import ModelCommitment
from protocols.attestation.placeholder import placeholder_answer, placeholder_weights
from protocols.attestation.rules import MODEL_PREDICATE, Step
from protocols.attestation.shared import Checking, Summary, ledger_of, submit


class ServingPhase(enum.Enum):
    WAITING = 1  # no model commitment accepted yet
    READY = 2  # a commitment accepted: the deployer serves it, the user asks it


@dataclass
class AwaitingModel(Checking):
    phase: ServingPhase = ServingPhase.WAITING
    model: ModelCommitment | None = None

    def accept(self, model: ModelCommitment) -> None:
        self.model, self.phase = model, ServingPhase.READY

    def committed(self, doing: str) -> ModelCommitment:
        """The accepted commitment; OutOfStep before one is accepted."""
        self.expect(ServingPhase.READY, doing=doing)
        return cast(ModelCommitment, self.model)  # accept() sets both together


@dataclass
class DeployerState(AwaitingModel):
    pass


@dataclass(frozen=True)
class PromptOpening:
    """What opens an end user's salted prompt commitment; never leaves the user."""

    prompt: str
    salt: bytes


@dataclass
class UserState(AwaitingModel):
    openings: dict[str, PromptOpening] = field(default_factory=dict)  # by request nonce


def on_model_attestation(ctx: PartyContext, envelope: Envelope) -> None:
    state = state_of(ctx, AwaitingModel)
    creator = envelope.header.sender
    claim = f"model commitment of {creator}"
    try:
        statement = open_logged(
            json_or_none(envelope.payload),
            ctx.public_key(creator),
            ctx.public_key(ledger_of(ctx)),
            MODEL_PREDICATE,
            claim,
        )
        model = ModelCommitment.from_statement(statement, claim)
    except ClaimFailed as error:
        state.reject(error)
        return
    state.accept(model)
    # for a later stage serving this model (the tee's end user checks its answers against it)
    kept = CommittedModel(creator=creator, model=model.model, root_sha256=model.root.hex())
    ctx.store.put(COMMITTED_MODEL, kept)


def on_inference_request(ctx: PartyContext, envelope: Envelope) -> Reply:
    committed = state_of(ctx, DeployerState).committed(doing="an inference request")
    return serve(ctx, envelope, placeholder_weights(committed.model))


def serve(ctx: PartyContext, envelope: Envelope, weights: Mapping[str, Tensor]) -> Reply:
    """Answer with `weights`, and sign and log a receipt naming them. The
    receipt carries the user's salted commitment to the prompt, and a digest
    of the output under a fresh salt that only the user is given."""
    try:
        request = json.loads(envelope.payload)
        prompt, nonce = str(request["prompt"]), bytes.fromhex(request["nonce"])
        input_sha256 = bytes.fromhex(request["input_sha256"]).hex()
    except (ValueError, KeyError, TypeError):
        raise ClaimFailed("inference request", "malformed request") from None
    if len(input_sha256) != 64:
        raise ClaimFailed("inference request", "the prompt commitment is not a SHA-256 digest")
    root = weights_root(weights)
    output = placeholder_answer(root, prompt)
    output_salt = new_salt()
    receipt = issue_receipt(
        root,
        prompt.encode(),
        output.encode(),
        nonce,
        ctx.name,
        PartySigner.of(ctx),
        input_sha256=input_sha256,
        output_salt=output_salt,
    )
    user = envelope.header.sender
    state = state_of(ctx, DeployerState)
    try:
        submit(
            ctx,
            receipt,
            [Label(f"prompt:{user}", Form.DIGEST), Label(f"output:{user}", Form.DIGEST)],
        )
    except ClaimFailed as error:
        state.reject(error)
    labels = (Label(f"output:{user}", Form.PUBLIC), Label(f"prompt:{user}", Form.DIGEST))
    answer = {"output": output, "output_salt": output_salt.hex(), "receipt": receipt}
    return Reply(Step.INFERENCE_RESPONSE, labels, json.dumps(answer).encode())


def query(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    """Ask each prompt, sending only a salted commitment to it for the receipt
    (the salt stays here, in `openings`); accept an answer only with a receipt
    signed by a server the model commitment endorses, naming the committed model."""
    state = state_of(ctx, UserState)
    prompts = holdings_as(ctx, EndUser).prompts
    if state.model is None:
        return {
            "accepted": 0,
            "rejected": [state.reject(ClaimFailed("model commitment", "none received"))],
        }
    accepted, rejected = 0, []
    for deployer in ctx.peers(Role.DEPLOYER):
        for prompt in prompts:
            try:
                ask(ctx, state.model, deployer, prompt)
                accepted += 1
            except ClaimFailed as error:
                rejected.append(state.reject(error))
    return {"accepted": accepted, "rejected": rejected}


def ask(ctx: PartyContext, commitment: ModelCommitment, deployer: str, prompt: str) -> None:
    """One prompt to `deployer`; raises ClaimFailed unless its receipt holds."""
    nonce, salt = os.urandom(16), new_salt()
    state_of(ctx, UserState).openings[nonce.hex()] = PromptOpening(prompt, salt)
    request = {
        "prompt": prompt,
        "nonce": nonce.hex(),
        "input_sha256": salted_sha256(salt, prompt.encode()),
    }
    reply = ctx.deliver(
        deployer,
        Step.INFERENCE_REQUEST,
        [Label(f"prompt:{ctx.name}", Form.PUBLIC)],
        json.dumps(request).encode(),
    )
    if reply is None:
        raise ClaimFailed("inference receipt", f"{deployer} sent no answer")
    try:
        answer = json.loads(reply.payload)
        check_receipt(
            answer["receipt"],
            commitment.receipt_key(deployer, "inference receipt"),
            model_root=commitment.root,
            prompt=prompt.encode(),
            output=str(answer["output"]).encode(),
            nonce=nonce,
            prompt_salt=salt,
            output_salt=bytes.fromhex(answer["output_salt"]),
        )
    except (ValueError, KeyError, TypeError):
        raise ClaimFailed("inference receipt", "malformed answer") from None

"""What each role does in the walkthrough protocol: honest code only (the
adversaries are in adversaries.py)."""

from __future__ import annotations

import enum
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from parties.envelope import Envelope
from parties.errors import AirlockError
from parties.labels import Form, Label
from parties.protocol import PartyContext, Reply, RoleState, holdings_as, state_of
from parties.roles import DataContributor, EndUser, ExternalDatabase, ModelCreator, Role
from protocols.walkthrough.rules import Step

Summary = dict[str, Any]


class CreatorPhase(enum.Enum):
    COLLECTING = 1  # dataset commitments are coming in
    PUBLISHED = 2  # the card is out: a later commitment would not be in it


@dataclass
class CreatorState(RoleState):
    phase: CreatorPhase = CreatorPhase.COLLECTING
    datasets: dict[str, Any] = field(default_factory=dict)  # contributor -> its commitment


class DeployerPhase(enum.Enum):
    WAITING = 1  # no prompt yet
    SERVING = 2  # holding sealed prompts


@dataclass
class DeployerState(RoleState):
    phase: DeployerPhase = DeployerPhase.WAITING
    model_card: dict[str, Any] | None = None
    prompts: list[tuple[str, bytes]] = field(default_factory=list)  # (owner, sealed prompt)


def _records_digest(records: tuple[dict[str, str], ...]) -> bytes:
    lines = sorted(json.dumps(record, sort_keys=True) for record in records)
    return hashlib.sha256("\n".join(lines).encode()).digest()


def _send_all(
    ctx: PartyContext, receivers: list[str], step: Step, labels: list[Label], payload: bytes
) -> Summary:
    for receiver in receivers:
        ctx.deliver(receiver, step, labels, payload)
    return {"delivered": len(receivers)}


# -- data contributor -------------------------------------------------------


def commit_dataset(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    records = holdings_as(ctx, DataContributor).records
    payload = json.dumps(
        {"records": len(records), "sha256": _records_digest(records).hex()}
    ).encode()
    labels = [Label(f"train:{ctx.name}", Form.DIGEST)]
    return _send_all(ctx, ctx.peers(Role.MODEL_CREATOR), Step.DATASET_COMMITMENT, labels, payload)


# -- model creator ----------------------------------------------------------


def on_dataset_commitment(ctx: PartyContext, envelope: Envelope) -> None:
    state = state_of(ctx, CreatorState)
    state.expect(CreatorPhase.COLLECTING, doing="a dataset commitment")
    state.datasets[envelope.header.sender] = json.loads(envelope.payload)


def publish_model_card(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    state = state_of(ctx, CreatorState)
    state.expect(CreatorPhase.COLLECTING, doing="publishing the model card")
    state.phase = CreatorPhase.PUBLISHED
    model = holdings_as(ctx, ModelCreator).model
    card = {"model": model, "trained_on": sorted(state.datasets)}
    weights_digest = hashlib.sha256(f"weights of {model}".encode()).hexdigest()
    payload = json.dumps({"card": card, "weights_sha256": weights_digest}).encode()
    labels = [
        Label(f"weights:{ctx.name}", Form.DIGEST),
        Label(f"model_card:{ctx.name}", Form.PUBLIC),
    ]
    return _send_all(ctx, ctx.peers(Role.DEPLOYER), Step.MODEL_CARD, labels, payload)


# -- end user ---------------------------------------------------------------


def fetch_catalog(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    titles = 0
    for database in ctx.peers(Role.EXTERNAL_DATABASE):
        reply = ctx.deliver(
            database, Step.CATALOG_REQUEST, [Label(f"catalog:{database}", Form.PUBLIC)], b"{}"
        )
        if reply is not None:
            titles += len(json.loads(reply.payload)["titles"])
    return {"titles": titles}


def send_prompt(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    """Seal each prompt under a key only the end user holds (an enclave will
    hold it in the tee protocol) and send the ciphertext to each deployer."""
    key = AESGCM.generate_key(bit_length=256)  # from the OS CSPRNG, never leaves this action
    receipts = 0
    for deployer in ctx.peers(Role.DEPLOYER):
        for prompt in holdings_as(ctx, EndUser).prompts:
            nonce = os.urandom(12)
            sealed = nonce + AESGCM(key).encrypt(nonce, prompt.encode(), ctx.name.encode())
            label = [Label(f"prompt:{ctx.name}", Form.CIPHERTEXT)]
            reply = ctx.deliver(deployer, Step.SEALED_PROMPT, label, sealed)
            if reply is None or reply.payload != hashlib.sha256(sealed).digest():
                raise AirlockError(f"{deployer} returned no valid receipt for a prompt")
            receipts += 1
    return {"receipts": receipts}


# -- deployer ---------------------------------------------------------------


def on_model_card(ctx: PartyContext, envelope: Envelope) -> None:
    state_of(ctx, DeployerState).model_card = json.loads(envelope.payload)


def on_sealed_prompt(ctx: PartyContext, envelope: Envelope) -> Reply:
    state = state_of(ctx, DeployerState)
    state.prompts.append((envelope.header.sender, envelope.payload))
    state.phase = DeployerPhase.SERVING
    receipt = hashlib.sha256(envelope.payload).digest()
    return Reply(
        Step.PROMPT_RECEIPT, (Label(f"prompt:{envelope.header.sender}", Form.DIGEST),), receipt
    )


# -- external database ------------------------------------------------------


def catalog_titles(ctx: PartyContext) -> list[str]:
    return [doc.split("\n", 1)[0] for doc in holdings_as(ctx, ExternalDatabase).documents]


def on_catalog_request(ctx: PartyContext, envelope: Envelope) -> Reply:
    return Reply(
        Step.CATALOG,
        (Label(f"catalog:{ctx.name}", Form.PUBLIC),),
        json.dumps({"titles": catalog_titles(ctx)}).encode(),
    )

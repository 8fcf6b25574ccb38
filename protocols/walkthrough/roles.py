"""What each role does in the walkthrough protocol."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from parties.envelope import Envelope
from parties.labels import Form, Label
from parties.protocol import Adversary, PartyContext, Protocol, Reply, attempt
from parties.roles import DataContributor, EndUser, ExternalDatabase, ModelCreator, Role
from protocols.walkthrough.rules import NAME, RULES

Summary = dict[str, Any]


def _records_digest(records: tuple[dict[str, str], ...]) -> bytes:
    lines = sorted(json.dumps(record, sort_keys=True) for record in records)
    return hashlib.sha256("\n".join(lines).encode()).digest()


def _send_all(
    ctx: PartyContext, receivers: list[str], step: str, labels: list[Label], payload: bytes
) -> Summary:
    for receiver in receivers:
        ctx.deliver(receiver, step, labels, payload)
    return {"delivered": len(receivers)}


# -- data contributor -------------------------------------------------------


def commit_dataset(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    assert isinstance(ctx.holdings, DataContributor)
    payload = json.dumps(
        {
            "records": len(ctx.holdings.records),
            "sha256": _records_digest(ctx.holdings.records).hex(),
        }
    ).encode()
    labels = [Label(f"train:{ctx.name}", Form.DIGEST)]
    return _send_all(ctx, ctx.peers(Role.MODEL_CREATOR), "dataset_commitment", labels, payload)


# -- model creator ----------------------------------------------------------


def on_dataset_commitment(ctx: PartyContext, envelope: Envelope) -> None:
    ctx.state.setdefault("datasets", {})[envelope.header.sender] = json.loads(envelope.payload)


def publish_model_card(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    assert isinstance(ctx.holdings, ModelCreator)
    datasets = ctx.state.get("datasets", {})
    card = {"model": ctx.holdings.model, "trained_on": sorted(datasets)}
    weights_digest = hashlib.sha256(f"weights of {ctx.holdings.model}".encode()).hexdigest()
    payload = json.dumps({"card": card, "weights_sha256": weights_digest}).encode()
    labels = [
        Label(f"weights:{ctx.name}", Form.DIGEST),
        Label(f"model_card:{ctx.name}", Form.PUBLIC),
    ]
    return _send_all(ctx, ctx.peers(Role.DEPLOYER), "model_card", labels, payload)


# -- end user ---------------------------------------------------------------


def fetch_catalog(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    titles = 0
    for database in ctx.peers(Role.EXTERNAL_DATABASE):
        reply = ctx.deliver(
            database, "catalog_request", [Label(f"catalog:{database}", Form.PUBLIC)], b"{}"
        )
        if reply is not None:
            titles += len(json.loads(reply.payload)["titles"])
    return {"titles": titles}


def send_prompt(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    """Seal each prompt under a key only the end user holds (an enclave will
    hold it in the tee protocol) and send the ciphertext to each deployer."""
    assert isinstance(ctx.holdings, EndUser)
    key = ctx.state.setdefault("prompt_key", AESGCM.generate_key(bit_length=256))
    receipts = 0
    for deployer in ctx.peers(Role.DEPLOYER):
        for prompt in ctx.holdings.prompts:
            nonce = os.urandom(12)
            sealed = nonce + AESGCM(key).encrypt(nonce, prompt.encode(), ctx.name.encode())
            reply = ctx.deliver(
                deployer, "sealed_prompt", [Label(f"prompt:{ctx.name}", Form.CIPHERTEXT)], sealed
            )
            if reply is None or reply.payload != hashlib.sha256(sealed).digest():
                raise RuntimeError(f"{deployer} returned no valid receipt for a prompt")
            receipts += 1
    return {"receipts": receipts}


def send_prompt_in_clear(ctx: PartyContext, form: Form, *, bypass_own_boundary: bool) -> Summary:
    """Adversarial: the first prompt, unsealed, labelled `form`. A
    misconfigured client goes through its own boundary, which withholds it;
    a compromised one bypasses it, and the bytes reach the deployer."""
    assert isinstance(ctx.holdings, EndUser)
    deployer = ctx.peers(Role.DEPLOYER)[0]
    prompt = ctx.holdings.prompts[0].encode()
    label = [Label(f"prompt:{ctx.name}", form)]
    return attempt(
        ctx, deployer, "sealed_prompt", label, prompt, bypass_own_boundary=bypass_own_boundary
    )


# -- deployer ---------------------------------------------------------------


def on_model_card(ctx: PartyContext, envelope: Envelope) -> None:
    ctx.state["model_card"] = json.loads(envelope.payload)


def on_sealed_prompt(ctx: PartyContext, envelope: Envelope) -> Reply:
    ctx.state.setdefault("prompts", []).append((envelope.header.sender, envelope.payload))
    receipt = hashlib.sha256(envelope.payload).digest()
    return Reply(
        "prompt_receipt", (Label(f"prompt:{envelope.header.sender}", Form.DIGEST),), receipt
    )


def forward_prompt(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    """Adversarial: pass a received prompt on to the external database."""
    owner, sealed = ctx.state["prompts"][0]
    database = ctx.peers(Role.EXTERNAL_DATABASE)[0]
    return attempt(
        ctx, database, "sealed_prompt", [Label(f"prompt:{owner}", Form.CIPHERTEXT)], sealed
    )


# -- external database ------------------------------------------------------


def on_catalog_request(ctx: PartyContext, envelope: Envelope) -> Reply:
    assert isinstance(ctx.holdings, ExternalDatabase)
    titles = [doc.split("\n", 1)[0] for doc in ctx.holdings.documents]
    if ctx.adversary == "tainted_catalog":
        return tainted_catalog(titles)
    return Reply(
        "catalog",
        (Label(f"catalog:{ctx.name}", Form.PUBLIC),),
        json.dumps({"titles": titles}).encode(),
    )


def tainted_catalog(titles: list[str]) -> Reply:
    """Adversarial: a database answers with a record of a contributor's
    training data (labelled as such). The caller's boundary refuses the
    reply, but the bytes reached it: the audit counts them as seen."""
    record = "Jane Roe, type 2 diabetes, MRN 48-1193 AIRLOCK-CANARY-TRAIN-hospital_1-3b9d"
    payload = json.dumps({"titles": titles, "record": record}).encode()
    return Reply("catalog", (Label("train:hospital_1", Form.PLAINTEXT),), payload)


PROTOCOL = Protocol(
    name=NAME,
    rules=RULES,
    handlers={
        (Role.MODEL_CREATOR, "dataset_commitment"): on_dataset_commitment,
        (Role.DEPLOYER, "model_card"): on_model_card,
        (Role.DEPLOYER, "sealed_prompt"): on_sealed_prompt,
        (Role.EXTERNAL_DATABASE, "catalog_request"): on_catalog_request,
    },
    actions={
        (Role.DATA_CONTRIBUTOR, "commit_dataset"): commit_dataset,
        (Role.MODEL_CREATOR, "publish_model_card"): publish_model_card,
        (Role.END_USER, "fetch_catalog"): fetch_catalog,
        (Role.END_USER, "send_prompt"): send_prompt,
        (Role.END_USER, "plaintext_prompt"): lambda ctx, p: send_prompt_in_clear(
            ctx, Form.PLAINTEXT, bypass_own_boundary=False
        ),
        (Role.END_USER, "leaked_prompt"): lambda ctx, p: send_prompt_in_clear(
            ctx, Form.PLAINTEXT, bypass_own_boundary=True
        ),
        (Role.END_USER, "mislabeled_prompt"): lambda ctx, p: send_prompt_in_clear(
            ctx, Form.CIPHERTEXT, bypass_own_boundary=True
        ),
        (Role.DEPLOYER, "forward_prompt"): forward_prompt,
    },
    stage=(
        (Role.DATA_CONTRIBUTOR, "commit_dataset"),
        (Role.MODEL_CREATOR, "publish_model_card"),
        (Role.END_USER, "fetch_catalog"),
        (Role.END_USER, "send_prompt"),
    ),
    adversaries={
        "plaintext_prompt": Adversary(Role.END_USER, after_stage="plaintext_prompt"),
        "leaked_prompt": Adversary(Role.END_USER, after_stage="leaked_prompt"),
        "mislabeled_prompt": Adversary(Role.END_USER, after_stage="mislabeled_prompt"),
        "forward_prompt": Adversary(Role.DEPLOYER, after_stage="forward_prompt"),
        "tainted_catalog": Adversary(Role.EXTERNAL_DATABASE),
    },
)

"""What each role does in the tee protocol (confidential-computing inference).

model creator: pretrains the model, releases it to the deployer, and gives
    the verifier signed reference values (the measurement of the approved
    enclave image with this model).
deployer (host): loads the enclave with an image and a model, and relays
    nonces, evidence, sealed prompts and sealed answers, which it cannot open.
enclave (enclave.py): measured by the simulated hardware; quotes, decrypts,
    answers, seals and receipts.
verifier (RATS Verifier): appraises evidence against the vendor endorsement,
    the reference values and the relying party's nonce; signs a result.
end user (RATS Relying Party): per prompt, a fresh nonce, evidence via the
    deployer, a result from the verifier; only on an affirming result does it
    seal its prompt (HPKE) to the key in the evidence.

Adversaries, all played by the deployer: `swap_model` (loads a smaller
model), `modified_code` (loads a patched enclave image), `replay_quote`
(answers every attestation request with the first evidence it saw),
`rogue_vendor` (answers with evidence from hardware of an unknown vendor,
with a key of its own).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from models.charlm import CharTransformer, ModelConfig, generate
from models.corpus import pretrained_model
from parties.envelope import Envelope
from parties.errors import AirlockError, ClaimFailed
from parties.labels import Form, Label
from parties.payload import pack, unpack
from parties.protocol import PartyContext, Protocol, Reply, sole_peer
from protocols.attestation.receipts import check_receipt
from protocols.attestation.statements import (
    PartySigner,
    json_or_none,
    open_statement,
    sign_statement,
)
from protocols.tee import channel
from protocols.tee.enclave import (
    on_enclave_load,
    on_enclave_prompt,
    on_evidence_request,
    request_aad,
)
from protocols.tee.evidence import (
    ENCLAVE_IMAGE,
    SIMULATED,
    AttestationRefused,
    ReferenceValues,
    SimulatedHardware,
    SimulatedVendor,
    appraise,
    measure,
    trusted_vendor_certificate,
)
from protocols.tee.rules import CREATOR, DEPLOYER, ENCLAVE, NAME, RULES, USER, VERIFIER

REFERENCE_PREDICATE = "urn:airlock:predicate:tee-reference-values:v1"
RESULT_PREDICATE = "urn:airlock:predicate:attestation-result:v1"
Summary = dict[str, Any]


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    pretrain_steps: int = Field(default=150, ge=0)
    max_new_tokens: int = Field(default=24, ge=1, le=256)
    baseline: bool = False  # also serve each prompt in plaintext, for the benchmark
    repeat: int = Field(default=1, ge=1, le=100)
    seed: int = 0


# -- model creator (reference value provider) ---------------------------------------


def release_model(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    s = Settings.model_validate(params)
    model = pretrained_model(s.pretrain_steps, s.seed)
    root = model.commitment_root()
    reference = {
        "measurement": measure(ENCLAVE_IMAGE, root),
        "model_root": root.hex(),
        "code_sha256": hashlib.sha256(ENCLAVE_IMAGE).hexdigest(),
        "root_of_trust": SIMULATED,
    }
    statement = sign_statement(
        f"enclave:{ctx.name}",
        reference["measurement"],
        REFERENCE_PREDICATE,
        reference,
        PartySigner.of(ctx),
    )
    label = [Label(f"reference:{ctx.name}", Form.PUBLIC)]
    ctx.deliver(sole_peer(ctx, VERIFIER), "reference_values", label, json.dumps(statement).encode())
    weights = [Label(f"weights:{ctx.name}", Form.PLAINTEXT)]
    ctx.deliver(sole_peer(ctx, DEPLOYER), "model_release", weights, model.to_bytes())
    return {"model_root": root.hex(), "measurement": reference["measurement"]}


# -- deployer (host and relay) ---------------------------------------------------------


def on_model_release(ctx: PartyContext, envelope: Envelope) -> None:
    ctx.state["model"] = CharTransformer.from_bytes(envelope.payload)


def launch_enclave(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    s = Settings.model_validate(params)
    model: CharTransformer | None = ctx.state.get("model")
    if model is None:
        raise AirlockError("the deployer has no model to load")
    image = ENCLAVE_IMAGE
    if ctx.adversary == "swap_model":  # a cheaper model than the one released
        model = CharTransformer(ModelConfig(width=32, hidden=96), seed=1)
    if ctx.adversary == "modified_code":
        image += b"\n# patched by the host: copy every prompt to the host's disk\n"
    meta = {"image": image.hex(), "max_new_tokens": s.max_new_tokens}
    labels = [
        Label(f"enclave_image:{ctx.name}", Form.PUBLIC),
        Label("weights:model_creator", Form.PLAINTEXT),
    ]
    enclave = sole_peer(ctx, ENCLAVE)
    ctx.deliver(enclave, "enclave_load", labels, pack(meta, model.to_bytes()))
    return {"enclave": enclave, "parameters": sum(p.numel() for p in model.parameters())}


def on_attestation_request(ctx: PartyContext, envelope: Envelope) -> Reply:
    evidence = _evidence_for(ctx, envelope.header.sender, envelope.payload)
    return Reply("evidence", (Label(f"evidence:{sole_peer(ctx, ENCLAVE)}", Form.PUBLIC),), evidence)


def _evidence_for(ctx: PartyContext, user: str, request: bytes) -> bytes:
    if ctx.adversary == "rogue_vendor":
        # the host fakes an enclave: the right measurement, its own key, a rogue chip
        model: CharTransformer = ctx.state["model"]
        nonce = bytes.fromhex(str(json.loads(request)["nonce"]))
        rogue = ctx.state.setdefault("rogue", SimulatedHardware(SimulatedVendor(b"rogue vendor")))
        keys = ctx.state.setdefault("rogue_keys", channel.new_key_pair())
        quote = rogue.quote(
            sole_peer(ctx, ENCLAVE),
            measure(ENCLAVE_IMAGE, model.commitment_root()),
            nonce,
            channel.public_bytes(keys),
        )
        return json.dumps(quote).encode()
    if ctx.adversary == "replay_quote" and "first_evidence" in ctx.state:
        return bytes(ctx.state["first_evidence"])
    label = [Label(f"nonce:{user}", Form.PUBLIC)]
    reply = ctx.deliver(sole_peer(ctx, ENCLAVE), "evidence_request", label, request)
    if reply is None:
        raise AirlockError("the enclave gave no evidence")
    ctx.state.setdefault("first_evidence", reply.payload)
    return reply.payload


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
    output = generate(ctx.state["model"], prompt, int(request["max_new_tokens"]))[len(prompt) :]
    label = (Label(f"output:{envelope.header.sender}", Form.PLAINTEXT),)
    return Reply("plain_answer", label, json.dumps({"output": output}).encode())


# -- verifier ------------------------------------------------------------------------------


def on_reference_values(ctx: PartyContext, envelope: Envelope) -> None:
    creator = envelope.header.sender
    statement = open_statement(
        json_or_none(envelope.payload),
        ctx.public_key(creator),
        REFERENCE_PREDICATE,
        f"reference values of {creator}",
    )
    predicate = statement.predicate
    ctx.state["reference"] = ReferenceValues(
        str(predicate["measurement"]), str(predicate["model_root"]), str(predicate["code_sha256"])
    )


def on_appraisal_request(ctx: PartyContext, envelope: Envelope) -> Reply:
    request = json.loads(envelope.payload)
    nonce = bytes.fromhex(str(request["nonce"]))
    reference: ReferenceValues | None = ctx.state.get("reference")
    result: dict[str, Any] = {"nonce": nonce.hex(), "root_of_trust": SIMULATED}
    try:
        if reference is None:
            raise AttestationRefused("no reference values received")
        claims = appraise(request.get("evidence"), nonce, reference, trusted_vendor_certificate())
        result.update(
            status="affirming",
            enclave=claims["enclave"],
            measurement=claims["measurement"],
            model_root=reference.model_root,
            hpke_public_key=claims["hpke_public_key"],
        )
    except AttestationRefused as refusal:
        result.update(status="contraindicated", reason=str(refusal))
    statement = sign_statement(
        f"attestation-result:{nonce.hex()}", "0" * 64, RESULT_PREDICATE, result, PartySigner.of(ctx)
    )
    label = (Label(f"attestation_result:{ctx.name}", Form.PUBLIC),)
    return Reply("attestation_result", label, json.dumps(statement).encode())


# -- end user (relying party) -----------------------------------------------------------


def _attest(ctx: PartyContext, deployer: str, verifier: str) -> dict[str, Any]:
    """Fresh evidence, appraised; the affirming result's claims, or ClaimFailed."""
    nonce = os.urandom(32)
    request = json.dumps({"nonce": nonce.hex()}).encode()
    nonce_label = Label(f"nonce:{ctx.name}", Form.PUBLIC)
    reply = ctx.deliver(deployer, "attestation_request", [nonce_label], request)
    if reply is None:
        raise ClaimFailed("enclave attestation", "the deployer sent no evidence")
    evidence = json_or_none(reply.payload)
    appraisal = json.dumps({"evidence": evidence, "nonce": nonce.hex()}).encode()
    labels = [Label(reply.header.labels[0].asset, Form.PUBLIC), nonce_label]
    answer = ctx.deliver(verifier, "appraisal_request", labels, appraisal)
    if answer is None:
        raise ClaimFailed("enclave attestation", "the verifier sent no result")
    result = open_statement(
        json_or_none(answer.payload),
        ctx.public_key(verifier),
        RESULT_PREDICATE,
        "attestation result",
    ).predicate
    if result.get("nonce") != nonce.hex():
        raise ClaimFailed("enclave attestation", "the result answers another nonce")
    if result.get("status") != "affirming":
        raise ClaimFailed("enclave attestation", str(result.get("reason", "not affirming")))
    return result


def _ask_enclave(
    ctx: PartyContext, deployer: str, enclave_key: bytes, prompt: str, model_root: bytes
) -> tuple[str, bytes]:
    """Seal a prompt to the attested enclave; open and check its answer."""
    request, nonce = os.urandom(16).hex(), os.urandom(16)
    aad = request_aad(ctx.name, request)
    message = json.dumps({"prompt": prompt, "nonce": nonce.hex()}).encode()
    sealed, context = channel.seal_request(enclave_key, message, aad)
    label = [Label(f"prompt:{ctx.name}", Form.CIPHERTEXT)]
    reply = ctx.deliver(deployer, "sealed_prompt", label, pack({"request": request}, sealed))
    if reply is None:
        raise ClaimFailed("enclave answer", "no answer")
    meta, sealed_answer = unpack(reply.payload)
    answer = json.loads(channel.open_answer(context, sealed_answer, aad))
    output = str(answer["output"])
    enclave = sole_peer(ctx, ENCLAVE)
    check_receipt(
        answer["receipt"],
        ctx.public_key(enclave),
        model_root=model_root,
        prompt=prompt.encode(),
        output=output.encode(),
        nonce=nonce,
    )
    return output, sealed_answer


def ask(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    """Per prompt: attest, then (only if affirming) ask through the enclave.
    With `baseline`, also ask the host in plaintext and time both."""
    s = Settings.model_validate(params)
    prompts = getattr(ctx.holdings, "prompts", ())
    deployer, verifier = sole_peer(ctx, DEPLOYER), sole_peer(ctx, VERIFIER)
    answers, refused = [], []
    handshake, enclave_times, plain_times = [], [], []
    for prompt in prompts:
        for _ in range(s.repeat):
            try:
                started = time.perf_counter()
                result = _attest(ctx, deployer, verifier)
                handshake.append(time.perf_counter() - started)
                key = bytes.fromhex(result["hpke_public_key"])
                root = bytes.fromhex(result["model_root"])
                started = time.perf_counter()
                output, _ = _ask_enclave(ctx, deployer, key, prompt, root)
                enclave_times.append(time.perf_counter() - started)
            except (ClaimFailed, AirlockError) as error:
                refused.append(f"{prompt!r}: not sent: {error}")
                break
            if s.baseline:
                started = time.perf_counter()
                request = {"prompt": prompt, "max_new_tokens": s.max_new_tokens}
                label = [Label(f"prompt:{ctx.name}", Form.PLAINTEXT)]
                ctx.deliver(deployer, "plain_prompt", label, json.dumps(request).encode())
                plain_times.append(time.perf_counter() - started)
        else:
            answers.append({"prompt": prompt, "output": output})
    summary: Summary = {"answers": answers, "refused": refused, "root_of_trust": SIMULATED}
    if handshake:
        summary["handshake_ms"] = round(1000 * min(handshake), 2)
        summary["enclave_ms"] = round(1000 * min(enclave_times), 2)
    if plain_times:
        summary["plain_ms"] = round(1000 * min(plain_times), 2)
    return summary


PROTOCOL = Protocol(
    name=NAME,
    rules=RULES,
    handlers={
        (DEPLOYER, "model_release"): on_model_release,
        (DEPLOYER, "attestation_request"): on_attestation_request,
        (DEPLOYER, "sealed_prompt"): on_sealed_prompt,
        (DEPLOYER, "plain_prompt"): on_plain_prompt,
        (ENCLAVE, "enclave_load"): on_enclave_load,
        (ENCLAVE, "evidence_request"): on_evidence_request,
        (ENCLAVE, "enclave_prompt"): on_enclave_prompt,
        (VERIFIER, "reference_values"): on_reference_values,
        (VERIFIER, "appraisal_request"): on_appraisal_request,
    },
    actions={
        (CREATOR, "release_model"): release_model,
        (DEPLOYER, "launch_enclave"): launch_enclave,
        (USER, "ask"): ask,
    },
    stage=((CREATOR, "release_model"), (DEPLOYER, "launch_enclave"), (USER, "ask")),
    adversaries={
        name: (DEPLOYER, None)
        for name in ("swap_model", "modified_code", "replay_quote", "rogue_vendor")
    },
    params=Settings,
)

"""What each role does in the tee protocol (confidential-computing inference).

model creator: pretrains the model, releases it to the deployer, and gives
    the verifier signed reference values (the measurement of the approved
    enclave image with this model).
deployer (host.py): loads the enclave with an image and a model, and relays
    nonces, evidence, sealed prompts and sealed answers, which it cannot open.
enclave (enclave.py): quotes with the device key the orchestrator provisioned
    to it alone; opens prompts, answers, seals and receipts.
verifier (RATS Verifier): appraises evidence against the run's simulated
    vendor root (provisioned to it alone), the reference values and the
    relying party's nonce; signs a result.
end user (RATS Relying Party): per prompt, a fresh nonce, evidence via the
    deployer, a result from the verifier; only on an affirming result does it
    seal its prompt (HPKE) to the key in the evidence, and it accepts the
    answer's receipt only under the receipt key in the evidence.

The trusted setup (`evidence.provision`) runs in the orchestrator once per
run. The adversaries live in adversaries.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric import ed25519

from models.corpus import pretrained_model
from parties.envelope import Envelope
from parties.errors import AirlockError, ClaimFailed
from parties.labels import Form, Label
from parties.payload import pack, unpack
from parties.protocol import FINGERPRINTS, Adversary, PartyContext, Protocol, Reply, sole_peer
from protocols.attestation.receipts import check_receipt
from protocols.attestation.statements import (
    PartySigner,
    json_or_none,
    open_statement,
    sign_statement,
)
from protocols.tee import adversaries, channel, host
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
    VendorRoot,
    appraise,
    measure,
    provision,
)
from protocols.tee.rules import CREATOR, DEPLOYER, ENCLAVE, NAME, RULES, USER, VERIFIER
from protocols.tee.settings import Settings

REFERENCE_PREDICATE = "urn:airlock:predicate:tee-reference-values:v1"
RESULT_PREDICATE = "urn:airlock:predicate:attestation-result:v1"
# shorter texts are not searched for: they could match some blob by chance
MIN_FINGERPRINT_BYTES = 8
Summary = dict[str, Any]


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
        # the vendor root comes from the run's trusted setup, never from a peer
        if not isinstance(ctx.provision, VendorRoot):
            raise AttestationRefused("no vendor root was provisioned to this verifier")
        if reference is None:
            raise AttestationRefused("no reference values received")
        vendor = ctx.provision
        claims = appraise(request.get("evidence"), nonce, reference, vendor.certificate)
        result.update(
            status="affirming",
            enclave=claims["enclave"],
            measurement=claims["measurement"],
            model_root=reference.model_root,
            hpke_public_key=claims["hpke_public_key"],
            receipt_public_key=claims["receipt_public_key"],
            vendor_root_sha256=vendor.sha256,
        )
    except AttestationRefused as refusal:
        result.update(status="contraindicated", reason=str(refusal))
    statement = sign_statement(
        f"attestation-result:{nonce.hex()}", "0" * 64, RESULT_PREDICATE, result, PartySigner.of(ctx)
    )
    label = (Label(f"attestation_result:{ctx.name}", Form.PUBLIC),)
    return Reply("attestation_result", label, json.dumps(statement).encode())


# -- end user (relying party) -----------------------------------------------------------


@dataclass(frozen=True)
class AttestedEnclave:
    """What an affirming attestation result vouches for."""

    hpke_public_key: bytes
    receipt_key: ed25519.Ed25519PublicKey
    model_root: bytes
    vendor_root_sha256: str


def _attest(ctx: PartyContext, deployer: str, verifier: str) -> AttestedEnclave:
    """Fresh evidence, appraised; what the affirming result vouches for, or ClaimFailed."""
    claim = "enclave attestation"
    nonce = os.urandom(32)
    request = json.dumps({"nonce": nonce.hex()}).encode()
    nonce_label = Label(f"nonce:{ctx.name}", Form.PUBLIC)
    reply = ctx.deliver(deployer, "attestation_request", [nonce_label], request)
    if reply is None:
        raise ClaimFailed(claim, "the deployer sent no evidence")
    evidence = json_or_none(reply.payload)
    appraisal = json.dumps({"evidence": evidence, "nonce": nonce.hex()}).encode()
    labels = [Label(reply.header.labels[0].asset, Form.PUBLIC), nonce_label]
    answer = ctx.deliver(verifier, "appraisal_request", labels, appraisal)
    if answer is None:
        raise ClaimFailed(claim, "the verifier sent no result")
    result = open_statement(
        json_or_none(answer.payload),
        ctx.public_key(verifier),
        RESULT_PREDICATE,
        "attestation result",
    ).predicate
    if result.get("nonce") != nonce.hex():
        raise ClaimFailed(claim, "the result answers another nonce")
    if result.get("status") != "affirming":
        raise ClaimFailed(claim, str(result.get("reason", "not affirming")))
    try:
        return AttestedEnclave(
            bytes.fromhex(result["hpke_public_key"]),
            ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(result["receipt_public_key"])),
            bytes.fromhex(result["model_root"]),
            str(result["vendor_root_sha256"]),
        )
    except (KeyError, TypeError, ValueError):
        raise ClaimFailed(claim, "the affirming result is malformed") from None


def _ask_enclave(
    ctx: PartyContext, deployer: str, enclave: AttestedEnclave, prompt: str
) -> tuple[str, bytes]:
    """Seal a prompt to the attested enclave; open its answer and check the
    receipt under the attested receipt key (not a key the host names)."""
    request, nonce = os.urandom(16).hex(), os.urandom(16)
    aad = request_aad(ctx.name, request)
    message = json.dumps({"prompt": prompt, "nonce": nonce.hex()}).encode()
    sealed, context = channel.seal_request(enclave.hpke_public_key, message, aad)
    label = [Label(f"prompt:{ctx.name}", Form.CIPHERTEXT)]
    reply = ctx.deliver(deployer, "sealed_prompt", label, pack({"request": request}, sealed))
    if reply is None:
        raise ClaimFailed("enclave answer", "no answer")
    _, sealed_answer = unpack(reply.payload)
    answer = json.loads(channel.open_answer(context, sealed_answer, aad))
    output = str(answer["output"])
    check_receipt(
        answer["receipt"],
        enclave.receipt_key,
        model_root=enclave.model_root,
        prompt=prompt.encode(),
        output=output.encode(),
        nonce=nonce,
    )
    return output, sealed_answer


def _fingerprints(texts: Iterable[str]) -> list[str]:
    """Each text as sent and as a JSON string body (how it would sit in a
    JSON payload), hex, for the audit's content scan."""
    found: set[bytes] = set()
    for text in texts:
        forms = {text.encode(), json.dumps(text)[1:-1].encode()}
        found |= {f for f in forms if len(f) >= MIN_FINGERPRINT_BYTES}
    return sorted(f.hex() for f in found)


def ask(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    """Per prompt: attest, then (only if affirming) ask through the enclave.
    With `baseline`, also ask the host in plaintext and time both. Every
    prompt and every answer is reported as a fingerprint for the audit."""
    s = Settings.model_validate(params)
    prompts = getattr(ctx.holdings, "prompts", ())
    deployer, verifier = sole_peer(ctx, DEPLOYER), sole_peer(ctx, VERIFIER)
    answers, refused, vendor_roots = [], [], set()
    handshake, enclave_times, plain_times = [], [], []
    for prompt in prompts:
        for _ in range(s.repeat):
            try:
                started = time.perf_counter()
                enclave = _attest(ctx, deployer, verifier)
                handshake.append(time.perf_counter() - started)
                vendor_roots.add(enclave.vendor_root_sha256)
                started = time.perf_counter()
                output, _ = _ask_enclave(ctx, deployer, enclave, prompt)
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
    summary: Summary = {
        "answers": answers,
        "refused": refused,
        "root_of_trust": SIMULATED,
        "vendor_roots": sorted(vendor_roots),
        FINGERPRINTS: {
            f"prompt:{ctx.name}": _fingerprints(prompts),
            f"output:{ctx.name}": _fingerprints(a["output"] for a in answers),
        },
    }
    if enclave_times:  # an answer was accepted
        summary["handshake_ms"] = round(1000 * min(handshake), 2)
        summary["enclave_ms"] = round(1000 * min(enclave_times), 2)
    if plain_times:
        summary["plain_ms"] = round(1000 * min(plain_times), 2)
    return summary


# -- the protocol ------------------------------------------------------------------------

Request = TypeVar("Request")


def _played(
    honest: Callable[[PartyContext, Request], Any],
    **variants: Callable[[PartyContext, Request], Any],
) -> Callable[[PartyContext, Request], Any]:
    """The role's `honest` logic, or the variant of the adversary its party plays."""

    def play(ctx: PartyContext, request: Request) -> Any:
        return variants.get(ctx.adversary or "", honest)(ctx, request)

    return play


PROTOCOL = Protocol(
    name=NAME,
    rules=RULES,
    handlers={
        (DEPLOYER, "model_release"): host.on_model_release,
        (DEPLOYER, "attestation_request"): _played(
            host.on_attestation_request,
            replay_quote=adversaries.replayed_evidence,
            rogue_vendor=adversaries.rogue_evidence,
        ),
        (DEPLOYER, "sealed_prompt"): _played(
            host.on_sealed_prompt, rogue_vendor=adversaries.open_sealed_prompt
        ),
        (DEPLOYER, "plain_prompt"): host.on_plain_prompt,
        (ENCLAVE, "enclave_load"): on_enclave_load,
        (ENCLAVE, "evidence_request"): on_evidence_request,
        (ENCLAVE, "enclave_prompt"): _played(
            on_enclave_prompt,
            unattested_receipt_key=adversaries.answer_with_party_key,
            mislabeled_answer=adversaries.answer_leaking_to_host,
        ),
        (VERIFIER, "reference_values"): on_reference_values,
        (VERIFIER, "appraisal_request"): on_appraisal_request,
    },
    actions={
        (CREATOR, "release_model"): release_model,
        (DEPLOYER, "launch_enclave"): _played(
            host.launch_enclave,
            swap_model=adversaries.launch_swapped_model,
            modified_code=adversaries.launch_modified_code,
        ),
        (DEPLOYER, "show_opened_prompts"): adversaries.show_opened_prompts,
        (USER, "ask"): ask,
    },
    stage=((CREATOR, "release_model"), (DEPLOYER, "launch_enclave"), (USER, "ask")),
    adversaries={
        "swap_model": Adversary(DEPLOYER),
        "modified_code": Adversary(DEPLOYER),
        "replay_quote": Adversary(DEPLOYER),
        "rogue_vendor": Adversary(DEPLOYER, after_stage="show_opened_prompts"),
        "unattested_receipt_key": Adversary(ENCLAVE),
        "mislabeled_answer": Adversary(ENCLAVE),
    },
    params=Settings,
    provision=provision,
)

"""The end user in the tee protocol (RATS Relying Party): it holds the
model creator's signed reference values (sent to it directly) and the
vendor's published root; per prompt, a fresh nonce, evidence via the
deployer, a result from the verifier; only on an affirming result, and its
own affirming appraisal of the same evidence (relying.py), does it seal its
prompt (HPKE) to the key in the evidence, and it accepts the answer's
receipt only under the receipt key in the evidence, naming the model it
expects. With `log_receipts` it also
needs the ledger's proof that the receipt is logged, under a head that
extends the last one it saw. Its request is padded inside the seal to the
scenario's request buckets, and it refuses an answer not padded to one of
its answer buckets (padding.py); its summary reports what padding cost."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from evidence.cose_receipts import RECEIPTS_DIR, open_cose_receipt
from evidence.receipts import check_receipt, new_salt, salted_sha256
from evidence.statements import json_or_none
from models.corpus import grounded_prompt
from parties.envelope import Envelope
from parties.errors import AirlockError, ClaimFailed, OutOfStep
from parties.labels import Form, Label
from parties.payload import pack, unpack
from parties.protocol import (
    FINGERPRINTS,
    PartyContext,
    RoleState,
    holdings_as,
    sole_peer,
    state_of,
)
from parties.roles import EndUser
from protocols.artifacts import COMMITTED_MODEL, RETRIEVED
from protocols.attestation.ledger import check_answer, entry_bytes
from protocols.attestation.shared import keep_head, last_head
from protocols.tee import channel
from protocols.tee.enclave import request_aad
from protocols.tee.evidence import (
    ENCLAVE_IMAGE,
    SIMULATED,
    ReferenceValues,
    measure,
    open_reference_values,
)
from protocols.tee.padding import PaddingError, cost
from protocols.tee.relying import AttestedEnclave, attest
from protocols.tee.rules import DEPLOYER, LEDGER, VERIFIER, Step
from protocols.tee.settings import Settings

CLAIM = "enclave answer"
# shorter texts are not searched for: they could match some blob by chance
MIN_FINGERPRINT_BYTES = 8
Summary = dict[str, Any]


@dataclass
class UserState(RoleState):
    """The creator's reference values this end user appraises evidence against."""

    reference: ReferenceValues | None = None


def on_reference_values(ctx: PartyContext, envelope: Envelope) -> None:
    """The model creator's signed reference values, once per run; refused
    unless they measure the enclave image this party knows (the protocol's
    own, public) booted with the model root they name."""
    state = state_of(ctx, UserState)
    if state.reference is not None:
        raise OutOfStep("the reference values come once per run")
    creator = ctx.public_key(envelope.header.sender)
    reference = open_reference_values(json_or_none(envelope.payload), creator)
    try:
        known = measure(ENCLAVE_IMAGE, bytes.fromhex(reference.model_root))
    except ValueError:
        raise AirlockError("the reference values' model root is not hex") from None
    if reference.measurement != known or len(bytes.fromhex(reference.model_root)) != 32:
        raise AirlockError("the reference measurement is not of the enclave image with its root")
    state.reference = reference


def attested(ctx: PartyContext) -> AttestedEnclave:
    """Fresh evidence for a prompt: the verifier's and this user's own appraisal."""
    reference = state_of(ctx, UserState).reference
    return attest(ctx, sole_peer(ctx, DEPLOYER), sole_peer(ctx, VERIFIER), reference)


@dataclass
class Sizes:
    """The plaintext size of each request sent and each answer opened, before padding."""

    requests: list[int] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)


def ask_enclave(
    ctx: PartyContext,
    deployer: str,
    enclave: AttestedEnclave,
    prompt: str,
    *,
    model_root: bytes | None = None,
    logged: bool = False,
    sizes: Sizes | None = None,
) -> tuple[str, int | None]:
    """Seal a prompt, padded to the scenario's request buckets, to the
    attested enclave; open its answer (refused unless padded to an answer
    bucket) and check the receipt under the attested receipt key (not a key
    the host names), for `model_root` (default: the attested one), and, if
    `logged`, its ledger proof. The receipt commits to the prompt under a
    salt kept here. Returns the answer and where the ledger logged its
    receipt (if asked); `sizes` gets both plaintext sizes before padding."""
    settings = Settings.model_validate(ctx.settings)
    request, nonce, salt = os.urandom(16).hex(), os.urandom(16), new_salt()
    last = last_head(ctx) if logged else None
    aad = request_aad(ctx.name, request)
    asked = {
        "prompt": prompt,
        "nonce": nonce.hex(),
        "input_sha256": salted_sha256(salt, prompt.encode()),
        "since": last.size if last else 0,
    }
    message = json.dumps(asked).encode()
    sealed, context = channel.seal_request(
        enclave.hpke_public_key, message, aad, settings.request_buckets
    )
    label = [Label(f"prompt:{ctx.name}", Form.CIPHERTEXT)]
    reply = ctx.deliver(deployer, Step.SEALED_PROMPT, label, pack({"request": request}, sealed))
    if reply is None:
        raise ClaimFailed(CLAIM, "no answer")
    if sizes is not None:
        sizes.requests.append(len(message))
    _, sealed_answer = unpack(reply.payload)
    try:
        opened = channel.open_answer(context, sealed_answer, aad, settings.answer_buckets)
    except PaddingError as error:
        raise ClaimFailed(CLAIM, str(error)) from None
    if sizes is not None:
        sizes.answers.append(len(opened))
    try:
        answer = json.loads(opened)
        output, receipt = str(answer["output"]), answer["receipt"]
        output_salt = bytes.fromhex(str(answer["output_salt"]))
        cose = bytes.fromhex(str(answer["cose_receipt"]))
    except (ValueError, KeyError, TypeError):
        raise ClaimFailed(CLAIM, "malformed answer") from None
    checked = check_receipt(
        receipt,
        enclave.receipt_key,
        model_root=enclave.model_root if model_root is None else model_root,
        prompt=prompt.encode(),
        output=output.encode(),
        nonce=nonce,
        prompt_salt=salt,
        output_salt=output_salt,
    )
    # the COSE receipt must say what the DSSE one says, under the same attested key
    if open_cose_receipt(cose, enclave.receipt_key) != checked:
        raise ClaimFailed(CLAIM, "the COSE receipt says other than the DSSE receipt")
    ctx.publish(f"{RECEIPTS_DIR}/{ctx.name}/{request}.cose", cose)
    if not logged:
        return output, None
    if "ledger" not in answer:
        raise ClaimFailed(CLAIM, f"receipt not logged: {answer.get('unlogged', 'no proof')}")
    proof, claim = answer["ledger"], "enclave receipt in the ledger"
    ledger_key = ctx.public_key(sole_peer(ctx, LEDGER))
    keep_head(ctx, check_answer(proof, ledger_key, entry_bytes(receipt), last, claim))
    return output, int(proof["index"])


def _fingerprints(texts: Iterable[str]) -> list[str]:
    """Each text as sent and as a JSON string body (how it would sit in a
    JSON payload), hex, for the audit's content scan."""
    found: set[bytes] = set()
    for text in texts:
        forms = {text.encode(), json.dumps(text)[1:-1].encode()}
        found |= {f for f in forms if len(f) >= MIN_FINGERPRINT_BYTES}
    return sorted(f.hex() for f in found)


def user_prompts(ctx: PartyContext, settings: Settings) -> tuple[str, ...]:
    """The holdings' prompts, or each question this user retrieved
    guidelines for (an earlier stage) with the top guideline as its context."""
    if settings.prompts == "holdings":
        return holdings_as(ctx, EndUser).prompts
    retrieved = ctx.store.get(RETRIEVED)
    return tuple(
        grounded_prompt(question, documents[0] if documents else None)
        for question, documents in zip(retrieved.questions, retrieved.documents, strict=True)
    )


def ask(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    """Per prompt: attest, then (only if affirming) ask through the enclave.
    With `baseline`, also ask the host in plaintext and time both. Every
    prompt and every answer is reported as a fingerprint for the audit."""
    s = Settings.model_validate(params)
    prompts = user_prompts(ctx, s)
    committed = ctx.store.get(COMMITTED_MODEL).root_sha256 if s.require_commitment else None
    deployer = sole_peer(ctx, DEPLOYER)
    answers, refused, vendor_roots, sizes = [], [], set(), Sizes()
    handshake, enclave_times, plain_times = [], [], []
    for prompt in prompts:
        for _ in range(s.repeat):
            try:
                started = time.perf_counter()
                enclave = attested(ctx)
                handshake.append(time.perf_counter() - started)
                if committed is not None and enclave.model_root.hex() != committed:
                    raise ClaimFailed(
                        "enclave attestation", "the enclave serves another model than committed"
                    )
                vendor_roots.add(enclave.vendor_root_sha256)
                started = time.perf_counter()
                output, logged_at = ask_enclave(
                    ctx,
                    deployer,
                    enclave,
                    prompt,
                    model_root=None if committed is None else bytes.fromhex(committed),
                    logged=s.log_receipts,
                    sizes=sizes,
                )
                enclave_times.append(time.perf_counter() - started)
            except (ClaimFailed, AirlockError) as error:
                refused.append(f"{prompt!r}: not sent: {error}")
                break
            if s.baseline:
                started = time.perf_counter()
                request = {"prompt": prompt, "max_new_tokens": s.max_new_tokens}
                label = [Label(f"prompt:{ctx.name}", Form.PLAINTEXT)]
                ctx.deliver(deployer, Step.PLAIN_PROMPT, label, json.dumps(request).encode())
                plain_times.append(time.perf_counter() - started)
        else:
            answer: dict[str, Any] = {"prompt": prompt, "output": output}
            if logged_at is not None:
                answer["receipt_logged_at"] = logged_at
            answers.append(answer)
    summary: Summary = {
        "answers": answers,
        "refused": refused,
        "root_of_trust": SIMULATED,
        "vendor_roots": sorted(vendor_roots),
        # what the host saw of each sealed prompt and answer: its bucket
        "padding": {
            "requests": cost(sizes.requests, s.request_buckets),
            "answers": cost(sizes.answers, s.answer_buckets),
        },
        FINGERPRINTS: {
            f"prompt:{ctx.name}": _fingerprints(prompts),
            f"output:{ctx.name}": _fingerprints(str(a["output"]) for a in answers),
        },
    }
    if enclave_times:  # an answer was accepted
        summary["handshake_ms"] = round(1000 * min(handshake), 2)
        summary["enclave_ms"] = round(1000 * min(enclave_times), 2)
    if plain_times:
        summary["plain_ms"] = round(1000 * min(plain_times), 2)
    return summary

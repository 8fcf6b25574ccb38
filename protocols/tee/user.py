"""The end user in the tee protocol (RATS Relying Party): per prompt, a
fresh nonce, evidence via the deployer, a result from the verifier; only on
an affirming result does it seal its prompt (HPKE) to the key in the
evidence, and it accepts the answer's receipt only under the receipt key in
the evidence."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from typing import Any

from evidence.receipts import check_receipt
from models.corpus import grounded_prompt
from parties.errors import AirlockError, ClaimFailed
from parties.labels import Form, Label
from parties.payload import pack, unpack
from parties.protocol import FINGERPRINTS, PartyContext, holdings_as, sole_peer
from parties.roles import EndUser
from protocols.artifacts import COMMITTED_MODEL, RETRIEVED
from protocols.tee import channel
from protocols.tee.enclave import request_aad
from protocols.tee.evidence import SIMULATED
from protocols.tee.relying import AttestedEnclave, attest
from protocols.tee.rules import DEPLOYER, VERIFIER, Step
from protocols.tee.settings import Settings

# shorter texts are not searched for: they could match some blob by chance
MIN_FINGERPRINT_BYTES = 8
Summary = dict[str, Any]


def ask_enclave(
    ctx: PartyContext, deployer: str, enclave: AttestedEnclave, prompt: str
) -> tuple[str, bytes]:
    """Seal a prompt to the attested enclave; open its answer and check the
    receipt under the attested receipt key (not a key the host names)."""
    request, nonce = os.urandom(16).hex(), os.urandom(16)
    aad = request_aad(ctx.name, request)
    message = json.dumps({"prompt": prompt, "nonce": nonce.hex()}).encode()
    sealed, context = channel.seal_request(enclave.hpke_public_key, message, aad)
    label = [Label(f"prompt:{ctx.name}", Form.CIPHERTEXT)]
    reply = ctx.deliver(deployer, Step.SEALED_PROMPT, label, pack({"request": request}, sealed))
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
    deployer, verifier = sole_peer(ctx, DEPLOYER), sole_peer(ctx, VERIFIER)
    answers, refused, vendor_roots = [], [], set()
    handshake, enclave_times, plain_times = [], [], []
    for prompt in prompts:
        for _ in range(s.repeat):
            try:
                started = time.perf_counter()
                enclave = attest(ctx, deployer, verifier)
                handshake.append(time.perf_counter() - started)
                if committed is not None and enclave.model_root.hex() != committed:
                    raise ClaimFailed(
                        "enclave attestation", "the enclave serves another model than committed"
                    )
                vendor_roots.add(enclave.vendor_root_sha256)
                started = time.perf_counter()
                output, _ = ask_enclave(ctx, deployer, enclave, prompt)
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

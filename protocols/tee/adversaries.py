"""The adversaries the tee protocol knows, apart from the honest roles.

Played by the deployer (the host):
  swap_model     boots the enclave with a smaller model of its own (its
                 root, then its weights, sealed to the enclave's key);
  modified_code  boots a patched enclave image;
  replay_quote   answers each party's attestation requests with the first
                 evidence it got for that party;
  rogue_vendor   plays the enclave itself: it makes its own simulated vendor
                 and chip (anyone can; the run's vendor key stays in the
                 orchestrator) and quotes its own keys with the right
                 measurement, to the end user and to the model creator; a
                 weights release sealed to it, it opens and serves from (as
                 the enclave's code, outside any enclave); a prompt sealed
                 to it, it opens, and answers if it holds weights. Alone it
                 gets neither: the verifier contraindicates its evidence.
                 With `colluding_verifier` (below) the verifier affirms it,
                 and only the relying parties' own appraisal stands in the
                 way. Its action `show_opened_prompts` reports what it
                 opened.
  prompt_hungry  relays every sealed prompt (it must, to be paid) but keeps a
                 copy, tries to read it, and after the stage forwards the
                 copies to the verifier, once as the ciphertext they are
                 (no rule lets a deployer send the verifier a prompt) and
                 once labelled plaintext (its own boundary withholds it,
                 for the same reason). Its action `exfiltrate_prompts`
                 reports what it opened (nothing) and what was refused.
  length_curious relays honestly but records the size of every sealed
                 prompt and sealed answer (as its own log does), to tell
                 prompts apart by length (which guideline was retrieved,
                 for anyone who knows the corpus). Its action
                 `show_sealed_sizes` reports the sizes it saw: one per
                 padding bucket used, whatever the prompts' lengths.
Played by the verifier:
  colluding_verifier  affirms whatever evidence it is sent (no vendor chain,
                 signature or measurement checked), naming the keys it
                 quotes, the reference values' model root and the run's
                 vendor root: the host's own chip (`rogue_vendor`) comes out
                 affirming.
Played by the end user:
  trusts_the_verifier  acts on the verifier's affirming result alone,
                 without appraising the evidence itself: against a
                 colluding verifier it seals its prompts to the host (its
                 summary as `ask`'s); `airlock verify` finds it.
  extraction     after its honest questions, asks the enclave to complete
                 each hospital's canary prefix ("the pin of <name> is"), as
                 the external attacker of "The Secret Sharer" who knows the
                 format; `extract_canaries` reports which secrets came out
                 (the evaluation harness knows them; the attacker would
                 only see the completions).
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
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from evidence.statements import PartySigner
from evidence.weights import float32_weights_root
from models.checkpoint import shipped_tokenizer
from models.transformer import ModelConfig, Transformer
from parties.envelope import Envelope
from parties.errors import AirlockError
from parties.labels import Form, Label
from parties.payload import pack, unpack
from parties.protocol import Adversary, PartyContext, Reply, attempt, sole_peer, state_of
from parties.roles import Role
from protocols.patients import canary_prefix, canary_secret
from protocols.tee import channel
from protocols.tee.ear import AFFIRMING_VECTOR, issue_ear
from protocols.tee.enclave import BootedEnclave, booted, relayed, request_aad, weights_aad
from protocols.tee.evidence import ENCLAVE_IMAGE, SIMULATED, SimulatedVendor, VendorRoot
from protocols.tee.host import (
    HostPhase,
    HostState,
    enclave_evidence,
    evidence_reply,
    load_enclave,
    model_root,
    on_sealed_prompt,
)
from protocols.tee.relying import AttestedEnclave, appraised
from protocols.tee.rules import DEPLOYER, ENCLAVE, USER, VERIFIER, Step
from protocols.tee.settings import Settings
from protocols.tee.user import ask_enclave, attested, user_prompts
from protocols.tee.verifier import VerifierState


class Name(enum.StrEnum):
    SWAP_MODEL = "swap_model"
    MODIFIED_CODE = "modified_code"
    REPLAY_QUOTE = "replay_quote"
    ROGUE_VENDOR = "rogue_vendor"
    COLLUDING_VERIFIER = "colluding_verifier"
    TRUSTS_THE_VERIFIER = "trusts_the_verifier"
    UNATTESTED_RECEIPT_KEY = "unattested_receipt_key"
    MISLABELED_ANSWER = "mislabeled_answer"
    PROMPT_HUNGRY = "prompt_hungry"
    LENGTH_CURIOUS = "length_curious"
    EXTRACTION = "extraction"


# -- the deployer ----------------------------------------------------------------------


def launch_swapped_model(ctx: PartyContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """swap_model: the enclave booted with a cheaper model of the host's own
    (the shipped tokenizer's vocabulary and context, a quarter of the
    width), whose weights it seals to the enclave's key itself."""
    cheaper = Transformer(ModelConfig(vocab=512, context=96, width=32, layers=2, hidden=64), seed=1)
    root = float32_weights_root(cheaper.state_dict())
    launched = load_enclave(ctx, ENCLAVE_IMAGE, root, ctx.name)
    nonce = json.dumps({"nonce": os.urandom(32).hex()}).encode()
    claims = json.loads(enclave_evidence(ctx, ctx.name, nonce))["claims"]
    key, enclave = bytes.fromhex(claims["hpke_public_key"]), sole_peer(ctx, ENCLAVE)
    sealed = channel.seal_weights(key, cheaper.to_bytes(), weights_aad(enclave, root))
    labels = [Label(f"weights:{ctx.name}", Form.CIPHERTEXT)]
    ctx.deliver(enclave, Step.ENCLAVE_WEIGHTS, labels, sealed)
    return launched


def launch_modified_code(ctx: PartyContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """modified_code: the enclave image, patched."""
    patch = b"\n# patched by the host: copy every prompt to the host's disk\n"
    return load_enclave(ctx, ENCLAVE_IMAGE + patch, *model_root(ctx, "launching the enclave"))


@dataclass
class ReplayingHost(HostState):
    first_evidence: dict[str, bytes] = field(default_factory=dict)


def replayed_evidence(ctx: PartyContext, envelope: Envelope) -> Reply:
    """replay_quote: the first evidence the enclave gave for this party, for
    each of its requests."""
    state, asker = state_of(ctx, ReplayingHost), envelope.header.sender
    if asker not in state.first_evidence:
        state.first_evidence[asker] = enclave_evidence(ctx, asker, envelope.payload)
    return evidence_reply(ctx, state.first_evidence[asker])


@dataclass
class RogueHost(HostState):
    forged: BootedEnclave | None = None
    opened_prompts: list[str] = field(default_factory=list)
    opened_weights: bool = False


def _host_enclave(ctx: PartyContext) -> BootedEnclave:
    """rogue_vendor: the enclave's own code, run by the host outside any
    enclave, on a chip of a vendor the host made, booted with the creator's
    root (so its measurement is the approved one), without weights."""
    state = state_of(ctx, RogueHost)
    if state.forged is None:
        s = Settings.model_validate(ctx.settings)
        device = SimulatedVendor().device()
        root = state.model_root  # announced by the creator; empty before
        state.forged = BootedEnclave.boot(
            device,
            ENCLAVE_IMAGE,
            root,
            s.max_new_tokens,
            shipped_tokenizer(),
            request_buckets=s.request_buckets,
            answer_buckets=s.answer_buckets,
        )
    return state.forged


def rogue_evidence(ctx: PartyContext, envelope: Envelope) -> Reply:
    nonce = bytes.fromhex(str(json.loads(envelope.payload)["nonce"]))
    quote = _host_enclave(ctx).evidence(sole_peer(ctx, ENCLAVE), nonce)
    return evidence_reply(ctx, json.dumps(quote).encode())


def open_weights_release(ctx: PartyContext, envelope: Envelope) -> None:
    """A weights release sealed to the forged enclave's key (the creator
    took the host's chip for the enclave): opened, and served by the host."""
    state = state_of(ctx, RogueHost)
    state.expect(HostPhase.LAUNCHED, doing="a model release")
    _host_enclave(ctx).install(sole_peer(ctx, ENCLAVE), envelope.payload)
    state.opened_weights, state.phase = True, HostPhase.RELAYED


def open_sealed_prompt(ctx: PartyContext, envelope: Envelope) -> Reply:
    """Opens a prompt sealed to the forged enclave's key, and answers it
    itself if it opened the creator's weights; otherwise it has nothing to
    answer with."""
    meta, sealed = unpack(envelope.payload)
    forged, user, request = _host_enclave(ctx), envelope.header.sender, str(meta["request"])
    aad = request_aad(user, request)
    opened, _ = channel.open_request(forged.hpke_keys, sealed, aad, forged.request_buckets)
    state_of(ctx, RogueHost).opened_prompts.append(str(json.loads(opened)["prompt"]))
    if forged.model is None:
        raise AirlockError("the host holds no weights to answer with")
    enclave = sole_peer(ctx, ENCLAVE)
    return forged.answer(enclave, user, request, sealed, forged.receipt_signer).reply(
        Step.SEALED_ANSWER
    )


def show_opened_prompts(ctx: PartyContext, params: Mapping[str, Any]) -> dict[str, Any]:
    state = state_of(ctx, RogueHost)
    return {"opened_prompts": list(state.opened_prompts), "opened_weights": state.opened_weights}


@dataclass
class HungryHost(HostState):
    kept_prompts: list[tuple[str, bytes]] = field(default_factory=list)  # (user, sealed)


def keep_sealed_prompt(ctx: PartyContext, envelope: Envelope) -> Reply:
    """prompt_hungry: a copy of the sealed prompt, then the honest relay."""
    _, sealed = unpack(envelope.payload)
    state_of(ctx, HungryHost).kept_prompts.append((envelope.header.sender, sealed))
    return on_sealed_prompt(ctx, envelope)


def exfiltrate_prompts(ctx: PartyContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """Try to read each kept prompt (no key of the host's opens it), then
    forward it to the verifier as ciphertext and as claimed plaintext."""
    verifier, opened, attempts = sole_peer(ctx, VERIFIER), 0, []
    kept = state_of(ctx, HungryHost).kept_prompts
    for user, sealed in kept:
        try:  # the host's own key pair is all it could try: the enclave's never leaves it
            channel.open_request(channel.new_key_pair(), sealed, b"")
            opened += 1
        except AirlockError:
            pass
        for form, own_boundary in ((Form.CIPHERTEXT, False), (Form.PLAINTEXT, True)):
            label = [Label(f"prompt:{user}", form)]
            attempts.append(
                attempt(
                    ctx,
                    verifier,
                    Step.APPRAISAL_REQUEST,
                    label,
                    sealed,
                    bypass_own_boundary=not own_boundary,
                )
            )
    return {
        "kept": len(state_of(ctx, HungryHost).kept_prompts),
        "opened": opened,
        "forwarded": attempts,
    }


@dataclass
class LengthCuriousHost(HostState):
    prompt_sizes: list[int] = field(default_factory=list)  # sealed bytes, as relayed
    answer_sizes: list[int] = field(default_factory=list)


def measure_sealed_prompt(ctx: PartyContext, envelope: Envelope) -> Reply:
    """length_curious: the honest relay, noting each sealed prompt's and answer's size."""
    state = state_of(ctx, LengthCuriousHost)
    state.prompt_sizes.append(len(unpack(envelope.payload)[1]))
    reply = on_sealed_prompt(ctx, envelope)
    state.answer_sizes.append(len(unpack(reply.payload)[1]))
    return reply


def show_sealed_sizes(ctx: PartyContext, params: Mapping[str, Any]) -> dict[str, Any]:
    state = state_of(ctx, LengthCuriousHost)
    return {
        "prompt_sizes": list(state.prompt_sizes),
        "answer_sizes": list(state.answer_sizes),
        "distinct_prompt_sizes": sorted(set(state.prompt_sizes)),
        "distinct_answer_sizes": sorted(set(state.answer_sizes)),
    }


# -- the verifier ---------------------------------------------------------------------------


def affirm_anything(ctx: PartyContext, envelope: Envelope) -> Reply:
    """colluding_verifier: an affirming EAR for whatever evidence came,
    naming the keys it quotes; the run's vendor root and the creator's model
    root are named as if appraised against."""
    request = json.loads(envelope.payload)
    nonce = bytes.fromhex(str(request["nonce"]))
    claims = request["evidence"]["claims"]
    reference = state_of(ctx, VerifierState).reference
    result = {
        "root_of_trust": SIMULATED,
        "enclave": claims["enclave"],
        "measurement": claims["measurement"],
        "model_root": reference.model_root if reference else "",
        "hpke_public_key": claims["hpke_public_key"],
        "receipt_public_key": claims["receipt_public_key"],
        "vendor_root_sha256": ctx.provision.sha256 if isinstance(ctx.provision, VendorRoot) else "",
    }
    ear = issue_ear(nonce, AFFIRMING_VECTOR, result, ctx.sign)
    label = (Label(f"attestation_result:{ctx.name}", Form.PUBLIC),)
    return Reply(Step.ATTESTATION_RESULT, label, json.dumps({"ear": ear}).encode())


# -- the end user ---------------------------------------------------------------------------


def ear_alone(ctx: PartyContext) -> AttestedEnclave:
    """trusts_the_verifier: what the verifier's affirming result names, taken
    on its word (no appraisal of the evidence by this party)."""
    result = appraised(ctx, sole_peer(ctx, DEPLOYER), sole_peer(ctx, VERIFIER)).result.claims
    return AttestedEnclave(
        str(result["enclave"]),
        bytes.fromhex(result["hpke_public_key"]),
        ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(result["receipt_public_key"])),
        bytes.fromhex(result["model_root"]),
        str(result["vendor_root_sha256"]),
    )


def ask_on_the_verifiers_word(ctx: PartyContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """trusts_the_verifier: per prompt, an affirming EAR, then the prompt,
    sealed to the key it names."""
    answers, refused = [], []
    for prompt in user_prompts(ctx, Settings.model_validate(params)):
        try:
            enclave = ear_alone(ctx)
            output, _ = ask_enclave(ctx, sole_peer(ctx, DEPLOYER), enclave, prompt)
            answers.append({"prompt": prompt, "output": output})
        except AirlockError as error:
            refused.append(f"{prompt!r}: {error}")
    return {"answers": answers, "refused": refused, "root_of_trust": SIMULATED}


def extract_canaries(ctx: PartyContext, params: Mapping[str, Any]) -> dict[str, Any]:
    """extraction: greedy completions of every hospital's first canary prefix."""
    deployer = sole_peer(ctx, DEPLOYER)
    enclave = attested(ctx)
    completions, extracted = {}, []
    for hospital in sorted(ctx.peers(Role.DATA_CONTRIBUTOR)):
        name, secret = canary_secret(hospital, 0)
        output, _ = ask_enclave(ctx, deployer, enclave, canary_prefix(name))
        completions[hospital] = output
        if secret in output:
            extracted.append(hospital)
    return {"completions": completions, "extracted": extracted}


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
            Step.MODEL_RELEASE: open_weights_release,
            Step.SEALED_PROMPT: open_sealed_prompt,
        },
        actions={"show_opened_prompts": show_opened_prompts},
        after_stage="show_opened_prompts",
        state=RogueHost,
    ),
    Name.COLLUDING_VERIFIER: Adversary(
        VERIFIER, handlers={Step.APPRAISAL_REQUEST: affirm_anything}
    ),
    Name.PROMPT_HUNGRY: Adversary(
        DEPLOYER,
        handlers={Step.SEALED_PROMPT: keep_sealed_prompt},
        actions={"exfiltrate_prompts": exfiltrate_prompts},
        after_stage="exfiltrate_prompts",
        state=HungryHost,
    ),
    Name.LENGTH_CURIOUS: Adversary(
        DEPLOYER,
        handlers={Step.SEALED_PROMPT: measure_sealed_prompt},
        actions={"show_sealed_sizes": show_sealed_sizes},
        after_stage="show_sealed_sizes",
        state=LengthCuriousHost,
    ),
    Name.TRUSTS_THE_VERIFIER: Adversary(USER, actions={"ask": ask_on_the_verifiers_word}),
    Name.EXTRACTION: Adversary(
        USER, actions={"extract_canaries": extract_canaries}, after_stage="extract_canaries"
    ),
    Name.UNATTESTED_RECEIPT_KEY: Adversary(
        ENCLAVE, handlers={Step.ENCLAVE_PROMPT: answer_with_party_key}
    ),
    Name.MISLABELED_ANSWER: Adversary(
        ENCLAVE, handlers={Step.ENCLAVE_PROMPT: answer_leaking_to_host}
    ),
}

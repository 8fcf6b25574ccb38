"""What each role does in the attestation protocol.

contributors attest their datasets -> the ledger logs them -> the creator
accepts only logged, verified dataset statements (and exclusion proofs) and
commits to its weights, bound to them -> deployers serve and sign a receipt
per answer, logged too -> end users accept an answer only with a receipt that
names the committed model. Every party checks each ledger answer: the head is
the ledger's, its entry is included, and the head extends the last one seen.

A party that finds a claim broken does not stop the run: it records the
rejection (returned in its action's summary) and `airlock verify` reports it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519
from pydantic import BaseModel, ConfigDict

from parties.envelope import Envelope
from parties.errors import ClaimFailed, ConfigError, Refused
from parties.labels import Form, Label
from parties.protocol import Adversary, PartyContext, Protocol, Reply
from parties.roles import DataContributor, ModelCreator, Role
from protocols.attestation.adversaries import (
    UNATTESTED_DATASET,
    OutOfOrderDataset,
    forged_signer,
    split_view_log,
)
from protocols.attestation.dataset import (
    Commitment,
    Dataset,
    ExclusionProof,
    verify_exclusion,
)
from protocols.attestation.ledger import (
    TransparencyLog,
    TreeHead,
    check_answer,
    entry_bytes,
)
from protocols.attestation.model import (
    DatasetReference,
    ModelCommitment,
    Server,
    Tensor,
    model_predicate,
    weights_root,
)
from protocols.attestation.receipts import check_receipt, issue_receipt, new_salt, salted_sha256
from protocols.attestation.rules import NAME, RULES
from protocols.attestation.statements import (
    DATASET_PREDICATE,
    MODEL_PREDICATE,
    RECEIPT_PREDICATE,
    OpenedStatement,
    PartySigner,
    json_or_none,
    open_statement,
    sign_statement,
)

Summary = dict[str, Any]


class Settings(BaseModel):
    """The stage's params (see docs/attestation.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    training_protocol: str = "none"
    training: dict[str, Any] = {}
    # the deployers the model creator deploys to, and so endorses to sign
    # receipts for its model (default: every deployer of the run)
    deploy_to: tuple[str, ...] | None = None


@dataclass(frozen=True)
class PromptOpening:
    """What opens an end user's salted prompt commitment; never leaves the user."""

    prompt: str
    salt: bytes


def placeholder_weights(model: str) -> dict[str, Tensor]:
    """Deterministic stand-in weights for a model name, until the federated
    issue's trained model exists. A name ending in "-small" gets half-width
    tensors: the "cheaper model" a dishonest deployer swaps in."""
    width = 16 if model.endswith("-small") else 32

    def tensor(name: str, shape: tuple[int, ...]) -> Tensor:
        size = 4 * shape[0] * (shape[1] if len(shape) > 1 else 1)
        stream, counter = b"", 0
        while len(stream) < size:
            stream += hashlib.sha256(f"{model}/{name}/{counter}".encode()).digest()
            counter += 1
        return Tensor("F32", shape, stream[:size])

    return {
        "embed.weight": tensor("embed.weight", (64, width)),
        "head.weight": tensor("head.weight", (width, 64)),
    }


def placeholder_answer(model_root: bytes, prompt: str) -> str:
    """A deterministic answer of the served weights (placeholder for generation)."""
    return f"answer {hashlib.sha256(model_root + prompt.encode()).hexdigest()[:24]}"


def _ledger(ctx: PartyContext) -> str:
    return ctx.peers(Role.LEDGER)[0]


def _dataset_label(ctx: PartyContext) -> list[Label]:
    return [Label(f"train:{ctx.name}", Form.DIGEST)]


def _model_label(ctx: PartyContext) -> list[Label]:
    return [Label(f"weights:{ctx.name}", Form.DIGEST)]


def _receipt_labels(user: str) -> list[Label]:
    return [Label(f"prompt:{user}", Form.DIGEST), Label(f"output:{user}", Form.DIGEST)]


def _reject(ctx: PartyContext, error: ClaimFailed) -> str:
    ctx.state.setdefault("rejected", []).append(str(error))
    return str(error)


def _submit(ctx: PartyContext, statement: dict[str, Any], labels: list[Label]) -> dict[str, Any]:
    """Log a statement; check the ledger's answer; return it."""
    ledger = _ledger(ctx)
    last: TreeHead | None = ctx.state.get("head")
    payload = json.dumps({"statement": statement, "since": last.size if last else 0}).encode()
    # the session names the entry, so an answer can be matched to its statement
    session = hashlib.sha256(entry_bytes(statement)).hexdigest()
    claim = f"ledger entry of {ctx.name}"
    try:
        reply = ctx.deliver(ledger, "submit", labels, payload, session)
    except Refused as refusal:
        raise ClaimFailed(claim, f"the ledger refused the statement ({refusal})") from None
    if reply is None:
        raise ClaimFailed(claim, "the ledger did not answer")
    answer = json_or_none(reply.payload)
    ctx.state["head"] = check_answer(
        answer, ctx.public_key(ledger), entry_bytes(statement), last, claim
    )
    return answer


def open_logged(
    shown: Any,
    signer_key: ed25519.Ed25519PublicKey,
    ledger_key: ed25519.Ed25519PublicKey,
    predicate_type: str,
    claim: str,
) -> OpenedStatement:
    """Check a statement shown with its ledger answer: signed by the signer,
    included in the ledger under a head the ledger signed."""
    if not isinstance(shown, dict) or "statement" not in shown or "logged" not in shown:
        raise ClaimFailed(claim, "malformed attestation")
    statement = open_statement(shown["statement"], signer_key, predicate_type, claim)
    check_answer(shown["logged"], ledger_key, entry_bytes(shown["statement"]), None, claim)
    return statement


# -- data contributor -------------------------------------------------------


def attest_dataset(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    holdings = ctx.holdings
    assert isinstance(holdings, DataContributor)
    dataset_args = (f"train:{ctx.name}", holdings.records, holdings.fields, holdings.sort_key)
    if ctx.adversary == "hide_excluded":
        dataset: Dataset = OutOfOrderDataset(*dataset_args, hidden=tuple(holdings.exclude))
    else:
        dataset = Dataset(*dataset_args)
    signer = forged_signer() if ctx.adversary == "forge_statement" else PartySigner.of(ctx)
    statement = sign_statement(
        dataset.name, dataset.root.hex(), DATASET_PREDICATE, dataset.predicate(), signer
    )
    try:
        logged = _submit(ctx, statement, _dataset_label(ctx))
    except ClaimFailed as error:
        return {"records": len(dataset.records), "rejected": _reject(ctx, error)}
    exclusions, unprovable = [], []
    for prefix in holdings.exclude:
        try:
            exclusions.append(dataset.prove_exclusion(prefix).to_json())
        except ClaimFailed as error:  # the data does contain it: no proof exists
            unprovable.append(_reject(ctx, error))
    shown = json.dumps(
        {"statement": statement, "logged": logged, "exclusions": exclusions}
    ).encode()
    for creator in ctx.peers(Role.MODEL_CREATOR):
        ctx.deliver(creator, "dataset_attestation", _dataset_label(ctx), shown)
    return {
        "records": len(dataset.records),
        "logged_at": logged["index"],
        "exclusions_proved": [proof["prefix"] for proof in exclusions],
        "exclusions_unprovable": unprovable,
    }


# -- model creator ----------------------------------------------------------


def check_dataset_attestation(
    shown: Any,
    contributor: str,
    contributor_key: ed25519.Ed25519PublicKey,
    ledger_key: ed25519.Ed25519PublicKey,
    required_exclusions: Iterable[str],
) -> Commitment:
    """What a model creator (and `airlock verify`) checks before training on a
    dataset: the statement is the contributor's, about its own dataset, logged
    by the ledger, and proves every required exclusion. Raises ClaimFailed."""
    claim = f"dataset attestation of {contributor}"
    statement = open_logged(shown, contributor_key, ledger_key, DATASET_PREDICATE, claim)
    commitment = Commitment.from_statement(statement, claim)
    if commitment.dataset != f"train:{contributor}":
        raise ClaimFailed(claim, f"{contributor} attests to another party's dataset")
    proved = set()
    for data in shown.get("exclusions", []):
        proof = ExclusionProof.from_json(data, claim)
        verify_exclusion(commitment, proof)
        proved.add(proof.prefix)
    for prefix in required_exclusions:
        if prefix not in proved:
            raise ClaimFailed(claim, f"no proof that the data excludes {prefix!r}")
    return commitment


def on_dataset_attestation(ctx: PartyContext, envelope: Envelope) -> None:
    contributor = envelope.header.sender
    holdings = ctx.holdings
    assert isinstance(holdings, ModelCreator)
    try:
        commitment = check_dataset_attestation(
            json_or_none(envelope.payload),
            contributor,
            ctx.public_key(contributor),
            ctx.public_key(_ledger(ctx)),
            holdings.requires_exclusion,
        )
    except ClaimFailed as error:
        _reject(ctx, error)
        return
    ctx.state.setdefault("datasets", {})[contributor] = DatasetReference(
        commitment.dataset, commitment.root.hex()
    )


def commit_model(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    holdings = ctx.holdings
    assert isinstance(holdings, ModelCreator)
    tensors = placeholder_weights(holdings.model)
    settings = Settings.model_validate(params)
    datasets = [ctx.state["datasets"][name] for name in sorted(ctx.state.get("datasets", {}))]
    if ctx.adversary == "unattested_dataset":
        datasets.append(UNATTESTED_DATASET)
    training = {"protocol": settings.training_protocol, **settings.training}
    deployers = ctx.peers(Role.DEPLOYER)
    deploy_to = deployers if settings.deploy_to is None else settings.deploy_to
    strangers = sorted(set(deploy_to) - set(deployers))
    if strangers:
        raise ConfigError(f"params.deploy_to: {strangers} are not deployers of this run")
    servers = [Server.of(name, ctx.public_key(name)) for name in deploy_to]
    predicate = model_predicate(holdings.model, tensors, datasets, training, servers)
    statement = sign_statement(
        f"weights:{ctx.name}",
        weights_root(tensors).hex(),
        MODEL_PREDICATE,
        predicate,
        PartySigner.of(ctx),
    )
    try:
        logged = _submit(ctx, statement, _model_label(ctx))
    except ClaimFailed as error:
        return {"rejected": _reject(ctx, error)}
    shown = json.dumps({"statement": statement, "logged": logged}).encode()
    for receiver in ctx.peers(Role.DEPLOYER) + ctx.peers(Role.END_USER):
        ctx.deliver(receiver, "model_attestation", _model_label(ctx), shown)
    return {
        "model": holdings.model,
        "datasets": [d.name for d in datasets],
        "servers": [server.name for server in servers],
        "rejected_datasets": len(ctx.state.get("rejected", [])),
    }


# -- deployer and end user --------------------------------------------------


def on_model_attestation(ctx: PartyContext, envelope: Envelope) -> None:
    creator = envelope.header.sender
    claim = f"model commitment of {creator}"
    try:
        statement = open_logged(
            json_or_none(envelope.payload),
            ctx.public_key(creator),
            ctx.public_key(_ledger(ctx)),
            MODEL_PREDICATE,
            claim,
        )
        ctx.state["model"] = ModelCommitment.from_statement(statement, claim)
    except ClaimFailed as error:
        _reject(ctx, error)


def on_inference_request(ctx: PartyContext, envelope: Envelope) -> Reply:
    """Serve the committed model, or (adversary swap_model) a smaller one, and
    sign and log a receipt naming the weights actually served. The receipt
    carries the user's salted commitment to the prompt, and a digest of the
    output under a fresh salt that only the user is given."""
    try:
        request = json.loads(envelope.payload)
        prompt, nonce = str(request["prompt"]), bytes.fromhex(request["nonce"])
        input_sha256 = bytes.fromhex(request["input_sha256"]).hex()
    except (ValueError, KeyError, TypeError):
        raise ClaimFailed("inference request", "malformed request") from None
    if len(input_sha256) != 64:
        raise ClaimFailed("inference request", "the prompt commitment is not a SHA-256 digest")
    committed: ModelCommitment | None = ctx.state.get("model")
    if committed is None:
        raise ClaimFailed("inference request", f"{ctx.name} has no committed model to serve")
    served = committed.model + ("-small" if ctx.adversary == "swap_model" else "")
    root = weights_root(placeholder_weights(served))
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
    try:
        _submit(ctx, receipt, _receipt_labels(user))
    except ClaimFailed as error:
        _reject(ctx, error)
    labels = (Label(f"output:{user}", Form.PUBLIC), Label(f"prompt:{user}", Form.DIGEST))
    answer = {"output": output, "output_salt": output_salt.hex(), "receipt": receipt}
    return Reply("inference_response", labels, json.dumps(answer).encode())


def query(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    """Ask each prompt, sending only a salted commitment to it for the receipt
    (the salt stays here, in `openings`); accept an answer only with a receipt
    signed by a server the model commitment endorses, naming the committed model."""
    prompts = getattr(ctx.holdings, "prompts", ())
    commitment: ModelCommitment | None = ctx.state.get("model")
    if commitment is None:
        return {
            "accepted": 0,
            "rejected": [_reject(ctx, ClaimFailed("model commitment", "none received"))],
        }
    openings: dict[str, PromptOpening] = ctx.state.setdefault("openings", {})
    accepted, rejected = 0, []
    for deployer in ctx.peers(Role.DEPLOYER):
        for prompt in prompts:
            nonce, salt = os.urandom(16), new_salt()
            openings[nonce.hex()] = PromptOpening(prompt, salt)
            request = {
                "prompt": prompt,
                "nonce": nonce.hex(),
                "input_sha256": salted_sha256(salt, prompt.encode()),
            }
            reply = ctx.deliver(
                deployer,
                "inference_request",
                [Label(f"prompt:{ctx.name}", Form.PUBLIC)],
                json.dumps(request).encode(),
            )
            try:
                if reply is None:
                    raise ClaimFailed("inference receipt", f"{deployer} sent no answer")
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
                accepted += 1
            except ClaimFailed as error:
                rejected.append(_reject(ctx, error))
            except (ValueError, KeyError, TypeError):
                rejected.append(_reject(ctx, ClaimFailed("inference receipt", "malformed answer")))
    return {"accepted": accepted, "rejected": rejected}


def audit_ledger(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    """Ask the ledger for its latest head and check it extends the last one seen."""
    last: TreeHead | None = ctx.state.get("head")
    if last is None:
        return {"checked": False}
    ledger = _ledger(ctx)
    payload = json.dumps({"since": last.size}).encode()
    reply = ctx.deliver(ledger, "head_request", [Label(f"ledger:{ledger}", Form.PUBLIC)], payload)
    claim = f"ledger history seen by {ctx.name}"
    try:
        if reply is None:
            raise ClaimFailed(claim, "the ledger did not answer")
        head = check_answer(json_or_none(reply.payload), ctx.public_key(ledger), None, last, claim)
    except ClaimFailed as error:
        return {"consistent": False, "rejected": _reject(ctx, error)}
    ctx.state["head"] = head
    return {"consistent": True, "from": last.size, "to": head.size}


# -- ledger -----------------------------------------------------------------


def _log(ctx: PartyContext, asker: str) -> TransparencyLog:
    if ctx.adversary == "split_view":
        return split_view_log(ctx, asker)
    # setdefault is atomic: concurrent first submissions share one log
    log: TransparencyLog = ctx.state.setdefault("log", TransparencyLog(ctx.name, ctx.sign))
    return log


SIGNED_BY_SENDER = {
    Role.DATA_CONTRIBUTOR: DATASET_PREDICATE,
    Role.MODEL_CREATOR: MODEL_PREDICATE,
    Role.DEPLOYER: RECEIPT_PREDICATE,
}


def on_submit(ctx: PartyContext, envelope: Envelope) -> Reply:
    """Log a statement signed by its sender; answer with head and proofs.
    Adversary rewrite_history: once three entries exist, replace the first;
    log_unverified: log statements without checking their signatures."""
    request = json.loads(envelope.payload)
    sender = envelope.header.sender
    role = ctx.role_of(sender)
    if ctx.adversary != "log_unverified":
        open_statement(
            request["statement"],
            ctx.public_key(sender),
            SIGNED_BY_SENDER[role],
            f"statement submitted by {sender}",
        )
    log = _log(ctx, sender)
    if (
        ctx.adversary == "rewrite_history"
        and len(log.entries) >= 3
        and not ctx.state.get("rewritten")
    ):
        log.rewrite(0, log.entries[0].replace(b'"payloadType"', b'"payloadType" '))
        ctx.state["rewritten"] = True
    answer = log.submit(entry_bytes(request["statement"]), int(request.get("since", 0)))
    return Reply("logged", (Label(f"ledger:{ctx.name}", Form.PUBLIC),), json.dumps(answer).encode())


def on_head_request(ctx: PartyContext, envelope: Envelope) -> Reply:
    since = int(json.loads(envelope.payload).get("since", 0))
    answer = _log(ctx, envelope.header.sender).answer(None, since)
    return Reply("logged", (Label(f"ledger:{ctx.name}", Form.PUBLIC),), json.dumps(answer).encode())


PROTOCOL = Protocol(
    name=NAME,
    rules=RULES,
    handlers={
        (Role.LEDGER, "submit"): on_submit,
        (Role.LEDGER, "head_request"): on_head_request,
        (Role.MODEL_CREATOR, "dataset_attestation"): on_dataset_attestation,
        (Role.DEPLOYER, "model_attestation"): on_model_attestation,
        (Role.END_USER, "model_attestation"): on_model_attestation,
        (Role.DEPLOYER, "inference_request"): on_inference_request,
    },
    actions={
        (Role.DATA_CONTRIBUTOR, "attest_dataset"): attest_dataset,
        (Role.MODEL_CREATOR, "commit_model"): commit_model,
        (Role.END_USER, "query"): query,
        **{
            (role, "audit_ledger"): audit_ledger
            for role in (Role.DATA_CONTRIBUTOR, Role.MODEL_CREATOR, Role.DEPLOYER)
        },
    },
    stage=(
        (Role.DATA_CONTRIBUTOR, "attest_dataset"),
        (Role.MODEL_CREATOR, "commit_model"),
        (Role.END_USER, "query"),
        (Role.DATA_CONTRIBUTOR, "audit_ledger"),
        (Role.MODEL_CREATOR, "audit_ledger"),
        (Role.DEPLOYER, "audit_ledger"),
    ),
    params=Settings,
    adversaries={
        "hide_excluded": Adversary(Role.DATA_CONTRIBUTOR),
        "forge_statement": Adversary(Role.DATA_CONTRIBUTOR),
        "unattested_dataset": Adversary(Role.MODEL_CREATOR),
        "swap_model": Adversary(Role.DEPLOYER),
        "rewrite_history": Adversary(Role.LEDGER),
        "log_unverified": Adversary(Role.LEDGER),
        "split_view": Adversary(Role.LEDGER),
    },
)

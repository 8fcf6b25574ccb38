"""What the data owners do in the mpc protocol (outsourced two-party
inference); the compute parties and the dealer are in compute.py.

model creator: secret-shares the weights of the shipped checkpoint
    or the model it trained in an earlier stage (`model_to_share`, the one
    place its side loads a model) to the two compute parties, with the
    model's configuration.
end user: encodes its prompt with the shipped tokenizer and checks it
    against the served model's configuration (the public checkpoint's)
    before anything is shared. Then, per generated token, it secret-shares
    the one-hot window to both compute parties, adds up the two logit shares
    it gets back, and picks the most likely next token (greedy); the answer
    is decoded with the same tokenizer.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from evidence.receipts import Deployment
from evidence.statements import PartySigner
from evidence.weights import float32_weights_root
from models.checkpoint import shipped, shipped_tokenizer
from models.transformer import BadPrompt, Codec, ModelConfig, Transformer
from parties.errors import AirlockError, ClaimFailed
from parties.labels import Form, Label
from parties.protocol import FINGERPRINTS, PartyContext, holdings_as
from parties.roles import EndUser
from protocols.artifacts import COMMITTED_MODEL, ModelSource, model_to_serve
from protocols.attestation.ledger import TreeHead
from protocols.attestation.shared import keep_head, submit
from protocols.mpc.communicator import pack_tensors, unpack_tensors
from protocols.mpc.model import decode, encode, one_hot, split
from protocols.mpc.receipts import PromptReceipts, check_reply
from protocols.mpc.rules import COMPUTE_ROLES, Step

Summary = dict[str, Any]


class RandomShape(BaseModel):
    """A model of random weights with the checkpoint's vocabulary, depth and
    heads, at another width and context: for timing only (the scaling table
    of bench/mpc.py); it answers nothing meaningful."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    width: int = Field(ge=8, le=512, multiple_of=8)  # divides among the checkpoint's 4 heads
    context: int = Field(ge=2, le=256)

    def config(self) -> ModelConfig:
        return replace(
            served_config(), width=self.width, context=self.context, hidden=3 * self.width
        )


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_new_tokens: int = Field(default=5, ge=1, le=64)
    # the model the creator shares: the shipped checkpoint, or the one it
    # trained in an earlier stage (its store's trained model)
    model: ModelSource = "checkpoint"
    # which of the end user's holdings it asks: `prompts`, or the ones it
    # marks most sensitive (`sensitive_prompts`), served here with no enclave
    prompts: Literal["prompts", "sensitive_prompts"] = "prompts"
    # the two compute parties, by rank (default: the deployer, then the one
    # compute party); named where a deployer of the run must not compute
    compute: tuple[str, str] | None = None
    # the compute parties sign and log in the ledger a receipt per reply
    # (receipts.py), and the end user takes a token only if both receipts
    # name the model whose commitment it accepted in an earlier stage
    log_receipts: bool = False
    # instead of `model`: random weights of this shape (every party reads it
    # from the scenario; the compute parties from the weights' metadata)
    random_shape: RandomShape | None = None

    @field_validator("compute")
    @classmethod
    def _two_parties(cls, pair: tuple[str, str] | None) -> tuple[str, str] | None:
        if pair is not None and pair[0] == pair[1]:
            raise ValueError("two different parties compute")
        return pair

    @model_validator(mode="after")
    def _random_shape_alone(self) -> Settings:
        if self.random_shape is not None and (self.model != "checkpoint" or self.log_receipts):
            raise ValueError(
                "random_shape serves random weights: it goes with neither a trained model "
                "nor receipts (which name the committed model)"
            )
        return self


class UserHoldings(EndUser):
    """Prompts the end user trusts no enclave with: a scenario whose other
    stages serve `prompts` serves these by MPC (`prompts = "sensitive_prompts"`)."""

    sensitive_prompts: tuple[str, ...] = ()


def compute_parties(ctx: PartyContext) -> list[str]:
    """By rank: the scenario's `compute` pair, or else the deployer first,
    then the compute servers."""
    named = Settings.model_validate(ctx.settings).compute
    eligible = [name for role in COMPUTE_ROLES for name in sorted(ctx.peers(role))]
    if named is not None:
        strangers = sorted(set(named) - set(eligible))
        if strangers:
            raise AirlockError(f"{strangers[0]} is not a deployer or compute party of this run")
        return list(named)
    ranked = eligible
    if len(ranked) != 2:
        raise AirlockError(f"two-party inference needs 2 compute parties, found {len(ranked)}")
    return ranked


# -- model creator ---------------------------------------------------------------------


def model_to_share(ctx: PartyContext, settings: Settings) -> Transformer:
    """The model the creator shares: the shipped checkpoint or the model it
    trained in an earlier stage. The only place the creator's side loads one."""
    if settings.random_shape is not None:
        return Transformer(settings.random_shape.config())
    return model_to_serve(ctx, settings.model)


def share_weights(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    settings = Settings.model_validate(params)
    model = model_to_share(ctx, settings)
    state = {k: v.detach() for k, v in model.state_dict().items()}
    shares: list[dict[str, torch.Tensor]] = [{}, {}]
    for name, value in state.items():
        for rank, share in enumerate(split(encode(value))):
            shares[rank][name] = share
    meta = {k: str(v) for k, v in asdict(model.config).items()}  # checked by each compute party
    root = float32_weights_root(model.state_dict())
    meta["model_sha256"] = root.hex()  # what its receipts name
    label = [Label(f"weights:{ctx.name}", Form.SHARE)]
    logged = {}
    for rank, party in enumerate(compute_parties(ctx)):
        ctx.deliver(party, Step.WEIGHT_SHARES, label, pack_tensors(meta, shares[rank]))
        if settings.log_receipts:  # it signs receipts with its party key
            deployment = Deployment(ctx.name, party, root.hex(), ctx.public_key(party))
            statement = deployment.statement(PartySigner.of(ctx))
            digest = [Label(f"weights:{ctx.name}", Form.DIGEST)]
            logged[party] = submit(ctx, statement, digest)["index"]
    # a fingerprint of the weights for the audit's content scan: raw and fixed point
    first = state["token_embedding.weight"]
    return {
        "parameters": sum(v.numel() for v in state.values()),
        **({"deployments_logged_at": logged} if logged else {}),
        FINGERPRINTS: {
            f"weights:{ctx.name}": [
                first.numpy().tobytes()[:32].hex(),
                encode(first).numpy().tobytes()[:32].hex(),
            ]
        },
    }


# -- end user ---------------------------------------------------------------------------------


def served_config() -> ModelConfig:
    """The served model's shape as the end user knows it: the public
    checkpoint's. Shares of another shape are refused by the compute parties."""
    return shipped().model.config


def check_prompt(prompt: str, tokenizer: Codec, config: ModelConfig) -> list[int]:
    """The prompt's tokens; BadPrompt (before anything is shared) if a
    character is outside the tokenizer's alphabet or the prompt does not fit."""
    tokens = tokenizer.encode(prompt)
    if not tokens:
        raise BadPrompt("empty prompt")
    if len(tokens) > config.context:
        raise BadPrompt(f"prompt of {len(tokens)} tokens exceeds the context of {config.context}")
    if max(tokens) >= config.vocab:
        raise BadPrompt(f"the tokenizer gives token {max(tokens)}, past the model's {config.vocab}")
    return tokens


def _next_logits(
    ctx: PartyContext,
    parties: list[str],
    window: list[int],
    vocab: int,
    receipts: PromptReceipts | None = None,
) -> torch.Tensor:
    """The logits after `window`, added up from both compute parties'
    shares; with `receipts`, only if both parties' receipts hold."""
    shares = split(encode(one_hot(window, vocab)))
    label = [Label(f"prompt:{ctx.name}", Form.SHARE)]
    expected = receipts.expect(ctx) if receipts else None
    request = expected.request() if expected else {}

    def ask(rank: int) -> tuple[torch.Tensor, TreeHead | None]:
        payload = pack_tensors(request, {"prompt": shares[rank]})
        reply = ctx.deliver(parties[rank], Step.PROMPT_SHARES, label, payload, "mpc")
        if reply is None:
            raise AirlockError(f"{parties[rank]} sent no logits")
        meta, tensors = unpack_tensors(reply.payload)
        logits = tensors["logits"]
        head = check_reply(ctx, parties[rank], meta, logits, expected) if expected else None
        return logits, head

    with ThreadPoolExecutor(max_workers=2) as pool:
        replies = list(pool.map(ask, range(2)))  # both ranks compute together
    heads = [head for _, head in replies if head is not None]
    if heads:
        keep_head(ctx, max(heads, key=lambda head: head.size))
    return decode(replies[0][0] + replies[1][0]).reshape(-1)


def generate(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    s = Settings.model_validate(params)
    config = s.random_shape.config() if s.random_shape else served_config()
    tokenizer = shipped_tokenizer()
    prompts = list(getattr(holdings_as(ctx, UserHoldings), s.prompts))
    # every prompt checked before anything is shared
    checked = [check_prompt(prompt, tokenizer, config) for prompt in prompts]
    parties = compute_parties(ctx)
    committed = (
        bytes.fromhex(ctx.store.get(COMMITTED_MODEL).root_sha256) if s.log_receipts else None
    )
    outputs, refused, seconds = [], [], []
    first_logits: list[float] = []  # the first token's, to compare with plaintext
    for prompt, tokens in zip(prompts, checked, strict=True):
        receipts = PromptReceipts.of(committed, prompt) if committed else None
        generated: list[int] = []
        try:
            for _ in range(s.max_new_tokens):
                started = time.perf_counter()
                window = (tokens + generated)[-config.context :]
                logits = _next_logits(ctx, parties, window, config.vocab, receipts)
                generated.append(int(logits.argmax()))  # greedy
                seconds.append(time.perf_counter() - started)
                first_logits = first_logits or [round(float(v), 4) for v in logits]
        except ClaimFailed as error:  # a receipt that does not hold: no answer
            refused.append(f"{prompt!r}: {error}")
            continue
        outputs.append({"prompt": prompt, "output": tokenizer.decode(generated)})
    return {
        "outputs": outputs,
        "refused": refused,
        **({"receipts_checked": 2 * len(seconds)} if committed else {}),
        "first_logits": first_logits,
        "seconds_per_token": round(sum(seconds) / max(1, len(seconds)), 3),
        FINGERPRINTS: {f"prompt:{ctx.name}": [p.encode().hex() for p in prompts if len(p) >= 8]},
    }

"""What each role does in the mpc protocol (outsourced two-party inference).

model creator: secret-shares the shared model's weights to the two compute
    parties.
end user: checks its prompt against the vocabulary and the context before
    anything is shared. Then, per generated token, it secret-shares the
    one-hot window to both compute parties, adds up the two logit shares it
    gets back, and picks the most likely next character (greedy).
compute parties (the deployer, rank 0; a `compute` party, rank 1): run the
    forward pass under CrypTen (model.py). Every CrypTen message between them
    is an envelope (communicator.py), and every Beaver triple comes from the
    dealer (dealer.py). Each replies with its share of the logits.
dealer: deals correlated randomness and sees no data.

Each compute party must run in its own process (on Ray): CrypTen's state is
per process.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from models.charlm import TOKENIZER, BadPrompt, ModelConfig
from models.corpus import pretrained_model
from parties.envelope import Envelope
from parties.errors import AirlockError
from parties.labels import Form, Label
from parties.protocol import (
    FINGERPRINTS,
    Adversary,
    PartyContext,
    Protocol,
    Reply,
    attempt,
    sole_peer,
)
from parties.roles import Role
from protocols.mpc import communicator, dealer
from protocols.mpc.communicator import pack_tensors, unpack_tensors
from protocols.mpc.model import decode, encode, forward, one_hot, secret, split
from protocols.mpc.rules import COMPUTE_ROLES, CREATOR, DEALER, NAME, RULES, USER

Summary = dict[str, Any]


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    pretrain_steps: int = Field(default=150, ge=0)
    max_new_tokens: int = Field(default=4, ge=1, le=64)
    seed: int = 0


def compute_parties(ctx: PartyContext) -> list[str]:
    """By rank: the deployer first, then the compute servers."""
    ranked = [name for role in COMPUTE_ROLES for name in sorted(ctx.peers(role))]
    if len(ranked) != 2:
        raise AirlockError(f"two-party inference needs 2 compute parties, found {len(ranked)}")
    return ranked


# -- model creator ---------------------------------------------------------------------


def share_weights(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    s = Settings.model_validate(params)
    model = pretrained_model(s.pretrain_steps, s.seed)
    state = {k: v.detach() for k, v in model.state_dict().items()}
    shares: list[dict[str, torch.Tensor]] = [{}, {}]
    for name, value in state.items():
        for rank, share in enumerate(split(encode(value))):
            shares[rank][name] = share
    meta = {k: str(v) for k, v in model.config.__dict__.items()}
    label = [Label(f"weights:{ctx.name}", Form.SHARE)]
    for rank, party in enumerate(compute_parties(ctx)):
        ctx.deliver(party, "weight_shares", label, pack_tensors(meta, shares[rank]))
    # a fingerprint of the weights for the audit's content scan: raw and fixed point
    first = state["token_embedding.weight"]
    return {
        "parameters": sum(v.numel() for v in state.values()),
        FINGERPRINTS: {
            f"weights:{ctx.name}": [
                first.numpy().tobytes()[:32].hex(),
                encode(first).numpy().tobytes()[:32].hex(),
            ]
        },
    }


# -- compute parties ------------------------------------------------------------------------


def on_weight_shares(ctx: PartyContext, envelope: Envelope) -> None:
    meta, shares = unpack_tensors(envelope.payload)
    ctx.state["config"] = ModelConfig.from_metadata(meta)
    ctx.state["weight_shares"] = shares


def _connect(ctx: PartyContext) -> None:
    """Install the boundary communicator and the dealer, once per process."""
    if ctx.state.get("connected"):
        return
    ranks = compute_parties(ctx)
    if communicator.installed() is not None:
        raise AirlockError("each compute party needs its own process: run on Ray, not --in-process")
    rank = ranks.index(ctx.name)
    inbox: communicator.Inbox = ctx.state.setdefault("inbox", communicator.Inbox())
    # every message may carry shares of the prompt or of the weights
    labels = [Label(f"prompt:{sole_peer(ctx, USER)}", Form.SHARE)]
    labels.append(Label(f"weights:{sole_peer(ctx, CREATOR)}", Form.SHARE))

    def send(peer: str, payload: bytes) -> None:
        ctx.deliver(peer, "mpc_message", labels, payload, "mpc")

    dealer_name = sole_peer(ctx, DEALER)
    request_label = [Label(f"randomness:{dealer_name}", Form.PUBLIC)]

    def request(message: dict[str, Any]) -> list[torch.Tensor]:
        reply = ctx.deliver(
            dealer_name, "tuple_request", request_label, json.dumps(message).encode(), "mpc"
        )
        if reply is None:
            raise AirlockError("the dealer sent nothing")
        meta, tensors = unpack_tensors(reply.payload)
        return [tensors[str(i)] for i in range(int(meta["count"]))]

    dealer.use_dealer(request)
    ctx.state["communicator"] = communicator.BoundaryCommunicator(rank, ranks, send, inbox)
    communicator.install(ctx.state["communicator"])
    ctx.state["connected"] = True


def on_mpc_message(ctx: PartyContext, envelope: Envelope) -> None:
    ranks = compute_parties(ctx)
    inbox: communicator.Inbox = ctx.state.setdefault("inbox", communicator.Inbox())
    inbox.put(ranks.index(envelope.header.sender), envelope.payload)


def on_prompt_shares(ctx: PartyContext, envelope: Envelope) -> Reply:
    if "weight_shares" not in ctx.state:
        raise AirlockError("no weight shares received")
    _, tensors = unpack_tensors(envelope.payload)
    share = tensors.get("prompt")
    config: ModelConfig = ctx.state["config"]
    if share is None or share.dim() != 2 or share.shape[1] != config.vocab:
        raise AirlockError(f"a prompt share is a (length, {config.vocab}) tensor")
    if not 1 <= share.shape[0] <= config.context or share.dtype != torch.long:
        raise AirlockError(f"a prompt share has 1 to {config.context} int64 rows")
    with ctx.state.setdefault("lock", threading.Lock()):  # CrypTen's state is per process
        _connect(ctx)
        weights = ctx.state.get("weights")
        if weights is None:
            weights = {k: secret(v) for k, v in ctx.state["weight_shares"].items()}
            ctx.state["weights"] = weights
        logits = forward(secret(share), weights, config)
        result = logits.share
    user = envelope.header.sender
    label = (Label(f"output:{user}", Form.SHARE),)
    return Reply("logit_shares", label, pack_tensors({}, {"logits": result}))


# -- dealer ---------------------------------------------------------------------------------


def on_tuple_request(ctx: PartyContext, envelope: Envelope) -> Reply:
    request = json.loads(envelope.payload)
    if not isinstance(request, dict):
        raise AirlockError("a tuple request is a JSON object")
    ranks = compute_parties(ctx)
    the_dealer: dealer.Dealer = ctx.state.setdefault("dealer", dealer.Dealer(len(ranks)))
    shares = the_dealer.deal(ranks.index(envelope.header.sender), request)
    label = (Label(f"randomness:{ctx.name}", Form.SHARE),)
    body = {str(i): t for i, t in enumerate(shares)}
    return Reply("tuple_shares", label, pack_tensors({"count": len(shares)}, body))


# -- end user ---------------------------------------------------------------------------------


def check_prompt(prompt: str, config: ModelConfig, new_tokens: int) -> list[int]:
    """The prompt's tokens; BadPrompt (before anything is shared) if a
    character is outside the vocabulary or the prompt does not fit."""
    tokens = TOKENIZER.encode(prompt)
    if not tokens:
        raise BadPrompt("empty prompt")
    if len(tokens) > config.context:
        raise BadPrompt(
            f"prompt of {len(tokens)} characters exceeds the context of {config.context}"
        )
    return tokens


def _next_token(ctx: PartyContext, parties: list[str], window: list[int], vocab: int) -> int:
    shares = split(encode(one_hot(window, vocab)))
    label = [Label(f"prompt:{ctx.name}", Form.SHARE)]

    def ask(rank: int) -> torch.Tensor:
        payload = pack_tensors({}, {"prompt": shares[rank]})
        reply = ctx.deliver(parties[rank], "prompt_shares", label, payload, "mpc")
        if reply is None:
            raise AirlockError(f"{parties[rank]} sent no logits")
        return unpack_tensors(reply.payload)[1]["logits"]

    with ThreadPoolExecutor(max_workers=2) as pool:
        logit_shares = list(pool.map(ask, range(2)))  # both ranks compute together
    logits = decode(logit_shares[0] + logit_shares[1]).reshape(-1)
    ctx.state.setdefault("logits", []).append([round(float(v), 4) for v in logits])
    return int(logits.argmax())


def generate(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    s = Settings.model_validate(params)
    config = ModelConfig()
    prompts = list(getattr(ctx.holdings, "prompts", ()))
    checked = []
    for prompt in prompts:  # every prompt checked before anything is shared
        checked.append(check_prompt(prompt, config, s.max_new_tokens))
    parties = compute_parties(ctx)
    outputs, seconds = [], []
    for prompt, tokens in zip(prompts, checked, strict=True):
        generated: list[int] = []
        for _ in range(s.max_new_tokens):
            started = time.perf_counter()
            window = (tokens + generated)[-config.context :]
            generated.append(_next_token(ctx, parties, window, config.vocab))
            seconds.append(time.perf_counter() - started)
        outputs.append({"prompt": prompt, "output": TOKENIZER.decode(generated)})
    return {
        "outputs": outputs,
        "first_logits": ctx.state["logits"][0] if ctx.state.get("logits") else [],
        "seconds_per_token": round(sum(seconds) / max(1, len(seconds)), 3),
        FINGERPRINTS: {f"prompt:{ctx.name}": [p.encode().hex() for p in prompts if len(p) >= 8]},
    }


def leak_share(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    """Adversary leak_share: a compute party sends its weight shares to the end user."""
    user = sole_peer(ctx, USER)
    label = [Label("weights:model_creator", Form.SHARE)]
    shares = ctx.state.get("weight_shares", {})
    return attempt(
        ctx, user, "mpc_message", label, pack_tensors({}, dict(list(shares.items())[:1]))
    )


PROTOCOL = Protocol(
    name=NAME,
    rules=RULES,
    handlers={
        **{(role, "weight_shares"): on_weight_shares for role in COMPUTE_ROLES},
        **{(role, "prompt_shares"): on_prompt_shares for role in COMPUTE_ROLES},
        **{(role, "mpc_message"): on_mpc_message for role in COMPUTE_ROLES},
        (DEALER, "tuple_request"): on_tuple_request,
    },
    actions={
        (CREATOR, "share_weights"): share_weights,
        (USER, "generate"): generate,
        (Role.DEPLOYER, "leak_share"): leak_share,
    },
    stage=((CREATOR, "share_weights"), (USER, "generate")),
    adversaries={"leak_share": Adversary(Role.DEPLOYER, after_stage="leak_share")},
    params=Settings,
)

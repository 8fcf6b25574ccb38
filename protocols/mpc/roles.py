"""What the data owners do in the mpc protocol (outsourced two-party
inference); the compute parties and the dealer are in compute.py.

model creator: secret-shares the shared model's weights to the two compute
    parties.
end user: checks its prompt against the vocabulary and the context before
    anything is shared. Then, per generated token, it secret-shares the
    one-hot window to both compute parties, adds up the two logit shares it
    gets back, and picks the most likely next character (greedy).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from models.transformer import TOKENIZER, BadPrompt, ModelConfig
from models.corpus import pretrained_model
from parties.errors import AirlockError
from parties.labels import Form, Label
from parties.protocol import FINGERPRINTS, PartyContext
from protocols.mpc.communicator import pack_tensors, unpack_tensors
from protocols.mpc.model import decode, encode, one_hot, split
from protocols.mpc.rules import COMPUTE_ROLES, Step

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
        ctx.deliver(party, Step.WEIGHT_SHARES, label, pack_tensors(meta, shares[rank]))
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


def _next_logits(
    ctx: PartyContext, parties: list[str], window: list[int], vocab: int
) -> torch.Tensor:
    """The logits after `window`, added up from both compute parties' shares."""
    shares = split(encode(one_hot(window, vocab)))
    label = [Label(f"prompt:{ctx.name}", Form.SHARE)]

    def ask(rank: int) -> torch.Tensor:
        payload = pack_tensors({}, {"prompt": shares[rank]})
        reply = ctx.deliver(parties[rank], Step.PROMPT_SHARES, label, payload, "mpc")
        if reply is None:
            raise AirlockError(f"{parties[rank]} sent no logits")
        return unpack_tensors(reply.payload)[1]["logits"]

    with ThreadPoolExecutor(max_workers=2) as pool:
        logit_shares = list(pool.map(ask, range(2)))  # both ranks compute together
    return decode(logit_shares[0] + logit_shares[1]).reshape(-1)


def generate(ctx: PartyContext, params: Mapping[str, Any]) -> Summary:
    s = Settings.model_validate(params)
    config = ModelConfig()
    prompts = list(getattr(ctx.holdings, "prompts", ()))
    checked = []
    for prompt in prompts:  # every prompt checked before anything is shared
        checked.append(check_prompt(prompt, config, s.max_new_tokens))
    parties = compute_parties(ctx)
    outputs, seconds = [], []
    first_logits: list[float] = []  # the first token's, to compare with plaintext
    for prompt, tokens in zip(prompts, checked, strict=True):
        generated: list[int] = []
        for _ in range(s.max_new_tokens):
            started = time.perf_counter()
            window = (tokens + generated)[-config.context :]
            logits = _next_logits(ctx, parties, window, config.vocab)
            generated.append(int(logits.argmax()))  # greedy
            seconds.append(time.perf_counter() - started)
            first_logits = first_logits or [round(float(v), 4) for v in logits]
        outputs.append({"prompt": prompt, "output": TOKENIZER.decode(generated)})
    return {
        "outputs": outputs,
        "first_logits": first_logits,
        "seconds_per_token": round(sum(seconds) / max(1, len(seconds)), 3),
        FINGERPRINTS: {f"prompt:{ctx.name}": [p.encode().hex() for p in prompts if len(p) >= 8]},
    }

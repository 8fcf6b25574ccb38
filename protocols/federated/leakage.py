"""What an external attacker holding the trained model learns about the
training data: canary exposure ("The Secret Sharer", Carlini et al. 2019)
and a loss-threshold membership-inference attack (Yeom et al. 2018).

Exposure of a canary with secret s among the space R of possible secrets is
log2|R| - log2 rank(s), where rank orders all secrets by the model's
log-perplexity. The rank is estimated from `samples` secrets drawn
uniformly: rank ~ (1 + number of samples scoring better) * |R| / (samples + 1).
An unseen canary has expected exposure about 1.44 bits; the largest this
estimate can show is log2(samples + 1).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from models.checkpoint import shipped_tokenizer
from models.transformer import Transformer, sequence_losses
from protocols.patients import CANARY_DIGITS, canary_prefix


def exposure(model: Transformer, name: str, secret: str, samples: int, seed: int = 0) -> float:
    # the harness's reference sample of non-secrets, seeded so that exposure
    # is repeatable; nothing drawn here is a share, mask, key or noise
    rng = random.Random(seed)
    space = 10**CANARY_DIGITS
    candidates = [secret] + [f"{rng.randrange(space):0{CANARY_DIGITS}d}" for _ in range(samples)]
    # each scored from a window's start, where training puts a record: the
    # space and the digits after the prefix (the full stop after them is
    # the same for every candidate, so it is left out)
    texts = [f" {c}" for c in candidates]
    losses = sequence_losses(model, shipped_tokenizer(), texts, prefix=canary_prefix(name))
    better = int((losses[1:] < losses[0]).sum())
    rank = (1 + better) * space / (samples + 1)
    return math.log2(space) - math.log2(rank)


def max_exposure(samples: int) -> float:
    """The largest exposure `samples` alternatives can show (no sample beats the canary)."""
    return math.log2(samples + 1)


@dataclass(frozen=True)
class MembershipResult:
    auc: float
    tpr_at_1pct_fpr: float
    members: int
    non_members: int


def membership_inference(
    model: Transformer, members: Sequence[str], non_members: Sequence[str]
) -> MembershipResult:
    """Score = minus the per-character loss: training records should score higher."""
    member_scores = -np.divide(*per_char_bits(model, members))
    other_scores = -np.divide(*per_char_bits(model, non_members))
    return MembershipResult(
        auc=_auc(member_scores, other_scores),
        tpr_at_1pct_fpr=_tpr_at(member_scores, other_scores, 0.01),
        members=len(members),
        non_members=len(non_members),
    )


def per_char_bits(model: Transformer, lines: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Each line's loss in bits and the characters it covers, scored as
    training sees a record: from a window's start, with its line break (the
    tokenizer merges it with the final full stop, so a line without it ends
    on a token training never saw). Every token but the first, which has no
    context, is scored. Per character rather than per token, so that lines
    the tokenizer splits more finely are not penalised."""
    tokenizer = shipped_tokenizer()
    records = [line + "\n" for line in lines]
    bits = sequence_losses(model, tokenizer, records).numpy()
    first = [len(tokenizer.decode(tokenizer.encode(r)[:1])) for r in records]
    return bits, np.array([max(len(r) - f, 1) for r, f in zip(records, first, strict=True)])


def _auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Area under the ROC curve: P(positive > negative), ties counting half."""
    greater = (positive[:, None] > negative[None, :]).sum()
    ties = (positive[:, None] == negative[None, :]).sum()
    return float((greater + 0.5 * ties) / (positive.size * negative.size))


def _tpr_at(positive: np.ndarray, negative: np.ndarray, fpr: float) -> float:
    """True-positive rate at the threshold that lets through at most `fpr` of the negatives."""
    allowed = int(math.floor(fpr * negative.size))
    threshold = np.sort(negative)[::-1][allowed] if allowed < negative.size else -np.inf
    return float((positive > threshold).mean())

"""Inference through the enclave path against plaintext serving of the same
model, in the same run: per answer end to end, and per generated token for
the shipped checkpoint and for a model of the old character model's shape.

    .venv/bin/python bench/tee.py [--repeat 20] [--tokens 64] [--ray]
        [--json FILE]

1. End to end: the tee-inference scenario with the benchmark's baseline
   switched on (the guarantees are lifted, so the creator also hands the
   host the weights in the clear and the host may serve plaintext). For
   each prompt the end user attests (fresh nonce, evidence through the
   host, appraisal by the verifier), asks through the enclave, then asks
   the host in plaintext. Answers end at their line's end, as in the
   scenario. Times are the best of --repeat, measured by the end user
   around each call; the key release (appraisal, sealing and relaying the
   weights) is timed once by the creator. Parties run in this process
   (real gRPC with mutual TLS between them), or with --ray each in its own
   Ray actor.
2. Per generated token, in this process: --tokens tokens without stopping
   at the line's end, for the shipped checkpoint (its tokenizer) and for a
   model of the old shape (vocabulary 48, context 64, width 64, 2 layers,
   random weights; characters fed as token ids directly, as the old model
   took them). Plaintext is greedy decoding; the enclave path is the
   enclave's own code (`BootedEnclave.answer`: HPKE open, decoding, signed
   receipt, sealed answer) with the end user's sealing, opening and receipt
   check around it, on an enclave booted and keyed as in the scenario. The
   host-to-enclave hop is part 1's. Best of --repeat, the two paths taking
   turns.

Torch runs on one thread in this process, so that both paths compete for
the same core and a busy second core does not sway the ratio.

Figures, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tempfile  # noqa: E402

import torch  # noqa: E402

from bench.figures import Figures, add_json_option  # noqa: E402
from evidence.receipts import check_receipt, new_salt, salted_sha256  # noqa: E402
from evidence.weights import float32_weights_root  # noqa: E402
from models.checkpoint import served_model, shipped_tokenizer  # noqa: E402
from models.transformer import (  # noqa: E402
    VOCAB,
    Codec,
    ModelConfig,
    Transformer,
    generate,
    within_alphabet,
)
from orchestrator.launcher import run_scenario  # noqa: E402
from orchestrator.scenario import load_scenario, parse_scenario  # noqa: E402
from protocols.tee import channel  # noqa: E402
from protocols.tee.enclave import BootedEnclave, request_aad, weights_aad  # noqa: E402
from protocols.tee.evidence import ENCLAVE_IMAGE, SimulatedVendor  # noqa: E402

OLD_SHAPE = ModelConfig(vocab=48, context=64, width=64, layers=2, heads=2, hidden=192)
# fits both contexts: 11 word pieces, 57 characters
PROMPT = "question: how should asthma be treated in adults?\nanswer:"


class Characters:
    """The old model's tokens: one per character of the alphabet (id 47 unused)."""

    def encode(self, text: str) -> list[int]:
        return [VOCAB.index(c) for c in within_alphabet(text)]

    def decode(self, tokens: Sequence[int]) -> str:
        return "".join(VOCAB[t] if t < len(VOCAB) else "" for t in tokens)


def best(repeat: int, *calls: Callable[[], object]) -> list[float]:
    """The best of `repeat` rounds of each call, in seconds; the calls take
    turns within a round, so a busy spell on the machine slows them alike."""
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(repeat):
        for call, taken in zip(calls, times, strict=True):
            started = time.perf_counter()
            call()
            taken.append(time.perf_counter() - started)
    return [min(taken) for taken in times]


def keyed_enclave(model: Transformer, codec: Codec, tokens: int) -> BootedEnclave:
    """An enclave booted with `model`'s root and given its weights by key
    release, as in the scenario; it decodes `tokens` tokens, no stop."""
    root = float32_weights_root(model.state_dict())
    enclave = BootedEnclave.boot(
        SimulatedVendor().device(), ENCLAVE_IMAGE, root, tokens, codec, stop=None
    )
    aad = weights_aad("enclave", root)
    enclave.install("enclave", channel.seal_weights(enclave.hpke_public_key, model.to_bytes(), aad))
    return enclave


def through_enclave(enclave: BootedEnclave, prompt: str) -> str:
    """One request as the end user makes it, less the transport."""
    request, nonce, salt = os.urandom(16).hex(), os.urandom(16), new_salt()
    aad = request_aad("alice", request)
    asked = {
        "prompt": prompt,
        "nonce": nonce.hex(),
        "input_sha256": salted_sha256(salt, prompt.encode()),
    }
    sealed, context = channel.seal_request(enclave.hpke_public_key, json.dumps(asked).encode(), aad)
    answered = enclave.answer("enclave", "alice", request, sealed, enclave.receipt_signer)
    answer = json.loads(channel.open_answer(context, answered.sealed, aad))
    check_receipt(
        answer["receipt"],
        enclave.receipt_key.public_key(),
        model_root=enclave.model_root,
        prompt=prompt.encode(),
        output=str(answer["output"]).encode(),
        nonce=nonce,
        prompt_salt=salt,
        output_salt=bytes.fromhex(answer["output_salt"]),
    )
    return str(answer["output"])


def per_token(tokens: int, repeat: int) -> list[tuple[str, float, float]]:
    """(model, plaintext ms per token, enclave path ms per token)."""
    rows = []
    models: list[tuple[str, Transformer, Codec]] = [
        ("shipped checkpoint (4 layers, width 128)", served_model(), shipped_tokenizer()),
        ("old shape (2 layers, width 64, vocab 48)", Transformer(OLD_SHAPE, seed=0), Characters()),
    ]
    for name, model, codec in models:
        print(f"per token: {name} ...", file=sys.stderr, flush=True)
        enclave = keyed_enclave(model, codec, tokens)
        plain, sealed = best(
            repeat,
            lambda m=model, c=codec: generate(m, c, PROMPT, tokens),
            lambda e=enclave: through_enclave(e, PROMPT),
        )
        rows.append((name, 1000 * plain / tokens, 1000 * sealed / tokens))
    return rows


def end_to_end(repeat: int, ray: bool) -> tuple[dict, dict]:
    """The scenario's answers: (the end user's summary, the creator's release)."""
    _, text = load_scenario("tee-inference")
    text = text[: text.index("[[guarantees]]")]  # the baseline serves plaintext
    text = re.sub(
        r"params = \{.*\}", f"params = {{ baseline = true, repeat = {repeat} }}", text, count=1
    )
    print("end to end: the tee-inference scenario ...", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        result = run_scenario(
            parse_scenario(text, "bench"), text, out=Path(scratch) / "run", in_process=not ray
        )
    if result.failure:
        raise SystemExit(result.failure)
    actions = {a["action"]: a["result"] for a in result.actions}
    return actions["ask"], actions["release_weights"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=64, help="tokens per answer, part 2")
    parser.add_argument("--ray", action="store_true", help="part 1: each party in its own actor")
    add_json_option(parser)
    args = parser.parse_args()
    figures = Figures()
    torch.set_num_threads(1)  # the parties in this process and part 2: one thread each way
    asked, released = end_to_end(args.repeat, args.ray)
    rows = per_token(args.tokens, args.repeat)
    where = "Ray actors" if args.ray else "one process"
    print(f"\n1. end to end, the scenario's answers, best of {args.repeat}, parties in {where}\n")
    print(
        "| plaintext serving (ms) | enclave path (ms) | ratio | handshake (ms) | key release (ms) |"
    )
    print("|---:|---:|---:|---:|---:|")
    ratio = asked["enclave_ms"] / asked["plain_ms"]
    print(
        f"| {asked['plain_ms']:.1f} | {asked['enclave_ms']:.1f} | {ratio:.2f}x | "
        f"{asked['handshake_ms']:.1f} | {released['release_ms']:.0f} |"
    )
    figures.row(
        "end_to_end",
        **{k: asked[k] for k in ("plain_ms", "enclave_ms", "handshake_ms")},
        release_ms=released["release_ms"],
    )
    # the scenario's answers: at most max_new_tokens = 24, ending at the line's end
    figures.ratio("tee_24_vs_plaintext", ratio)
    for answer in asked["answers"]:
        print(f"\n    {answer['output']!r}", end="")
    print(f"\n\n2. per generated token, {args.tokens} tokens, best of {args.repeat}, one process\n")
    print("| model | plaintext (ms/token) | enclave path (ms/token) | ratio |")
    print("|---|---:|---:|---:|")
    for name, plain, sealed in rows:
        print(f"| {name} | {plain:.2f} | {sealed:.2f} | {sealed / plain:.2f}x |")
        figures.row("per_token", model=name, plain_ms=plain, enclave_ms=sealed)
    figures.write(args.json)


if __name__ == "__main__":
    main()

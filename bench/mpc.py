"""Two-party inference under MPC: per-token latency of the shipped checkpoint
and of a model of the old character model's shape, against plaintext
inference and CrypTen's own communicator in the same run; for the
checkpoint also through Airlock (messages and bytes per token too).

    .venv/bin/python bench/mpc.py [--tokens 4] [--json FILE]

The prompt is the mpc-inference scenario's. The Airlock path runs that
scenario on an embedded Ray: five parties, each in its own actor, the
creator sharing the shipped checkpoint. Every CrypTen message is an
envelope, and every tuple comes from the dealer party. The CrypTen path runs
the same forward pass (protocols/mpc/model.py) in two processes plus
CrypTen's TTP, with gloo bound to the loopback interface. The old shape
(vocabulary 48, context 64, width 64, 2 layers, 2 heads, MLP 192) has random
weights and is fed token ids directly, a window as long as the prompt's.
Latency per token is the mean over the generated tokens; in the Airlock path
it includes the user sharing the window and adding up the logit shares.
Every process computes on one torch thread, as Ray gives each actor
(OMP_NUM_THREADS=1): on two cores shared with other work, torch's default of
two threads made even plaintext 50 times slower. Figures, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # CrypTen's baseline stays on loopback

import torch  # noqa: E402

from bench.figures import Figures, add_json_option  # noqa: E402
from models.checkpoint import served_model, shipped_tokenizer  # noqa: E402
from models.transformer import ModelConfig, Transformer  # noqa: E402
from orchestrator.scenario import load_scenario  # noqa: E402
from protocols.mpc.compat import crypten  # noqa: E402

OLD_SHAPE = ModelConfig(vocab=48, context=64, width=64, layers=2, heads=2, hidden=192)
MODELS = ("checkpoint", "old shape")


def model_and_window(name: str, prompt: str) -> tuple[Transformer, list[int]]:
    """The model, and the token ids of the prompt's window for it."""
    ids = shipped_tokenizer().encode(prompt)
    if name == "checkpoint":
        return served_model(), ids
    # random weights (timing only); ids fed directly, as many as the prompt's
    return Transformer(OLD_SHAPE), [i % OLD_SHAPE.vocab for i in ids]


def crypten_baseline(name: str, prompt: str, tokens: int) -> float:
    """Seconds per token with CrypTen's own communicator and TTP. Each party
    process builds the model itself: torch's thread pool does not survive a
    fork once the parent has used it (the parties hung)."""
    module = crypten()
    from crypten.config import cfg

    from protocols.mpc.model import forward, one_hot

    cfg.mpc.provider = "TTP"

    def party() -> list[float]:
        torch.set_num_threads(1)  # as in every path
        model, ids = model_and_window(name, prompt)
        config = model.config
        shared = {k: module.cryptensor(v.detach(), src=0) for k, v in model.state_dict().items()}
        window, times = list(ids), []
        for _ in range(tokens):
            started = time.perf_counter()
            x = module.cryptensor(one_hot(window[-config.context :], config.vocab).float(), src=1)
            logits = forward(x, shared, config).get_plain_text()
            window.append(int(logits.reshape(-1).argmax()))
            times.append(time.perf_counter() - started)
        return times

    results = module.mpc.context.run_multiprocess(world_size=2)(party)()
    return statistics.mean(results[0])


def plaintext(model: Transformer, ids: list[int], tokens: int) -> float:
    window = list(ids)
    with torch.no_grad():
        model(torch.tensor([window]))  # warm up: the first call pays torch's one-time setup
    started = time.perf_counter()
    with torch.no_grad():
        for _ in range(tokens):
            logits = model(torch.tensor([window[-model.config.context :]]))[0, -1]
            window.append(int(logits.argmax()))
    return (time.perf_counter() - started) / tokens


def airlock_run(text: str, tokens: int) -> dict:
    from orchestrator.launcher import run_scenario
    from orchestrator.scenario import parse_scenario
    from parties.log_check import read_entries

    text = re.sub(r"params = \{.*\}", f"params = {{ max_new_tokens = {tokens} }}", text)
    with tempfile.TemporaryDirectory() as scratch:
        result = run_scenario(parse_scenario(text, "bench"), text, out=Path(scratch))
        if result.failure:
            raise SystemExit(result.failure)
        (generated,) = [a["result"] for a in result.actions if a["action"] == "generate"]
        entries, _ = read_entries(Path(scratch) / "parties" / "deployer", "deployer")
        sent = [e for e in entries if e["direction"] == "out" and e["step"] == "mpc_message"]
        tuples = [e for e in entries if e["direction"] == "out" and e["step"] == "tuple_request"]
        return {
            "seconds_per_token": generated["seconds_per_token"],
            "messages_per_token": len(sent) / tokens,
            "bytes_per_token": sum(e["size"] for e in sent) / tokens,
            "tuples_per_token": len(tuples) / tokens,
            "output": generated["outputs"][0]["output"],
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=4)
    add_json_option(parser)
    args = parser.parse_args()
    figures = Figures()
    _, text = load_scenario("mpc-inference")
    (prompt,) = tomllib.loads(text)["parties"]["alice"]["prompts"]
    baseline, plain = {}, {}
    for name in MODELS:  # CrypTen's parties fork from this process: before any torch work here
        print(f"{name}: CrypTen's own communicator ...", file=sys.stderr, flush=True)
        baseline[name] = crypten_baseline(name, prompt, args.tokens)
    torch.set_num_threads(1)
    for name in MODELS:
        plain[name] = plaintext(*model_and_window(name, prompt), args.tokens)
    print("checkpoint: Airlock's (on Ray) ...", file=sys.stderr, flush=True)
    ours = airlock_run(text, args.tokens)
    length = len(shipped_tokenizer().encode(prompt))
    print(f"\n{args.tokens} tokens of greedy decoding after a {length}-token prompt\n")
    print("| model | path | seconds per token | vs plaintext | vs CrypTen's communicator |")
    print("|---|---|---:|---:|---:|")
    for name in MODELS:
        print(f"| {name} | plaintext (torch) | {plain[name]:.4f} | 1x | |")
        ratio = baseline[name] / plain[name]
        print(f"| {name} | CrypTen, gloo + TTP | {baseline[name]:.3f} | {ratio:.0f}x | 1.00x |")
        figures.row("per_token", model=name, path="plaintext", seconds=plain[name])
        figures.row("per_token", model=name, path="crypten", seconds=baseline[name])
    airlock = ours["seconds_per_token"]
    figures.row("per_token", model="checkpoint", path="airlock", seconds=airlock, **ours)
    figures.ratio("vs_crypten", airlock / baseline["checkpoint"])
    print(
        f"| checkpoint | Airlock boundary + dealer | {airlock:.3f} | "
        f"{airlock / plain['checkpoint']:.0f}x | {airlock / baseline['checkpoint']:.2f}x |"
    )
    print(
        "\ncheckpoint against the old shape, per token: "
        f"plaintext {plain['checkpoint'] / plain['old shape']:.1f}x, "
        f"CrypTen {baseline['checkpoint'] / baseline['old shape']:.1f}x"
    )
    print(f"Airlock's answer: {ours['output']!r}")
    print(
        "per token, from the deployer's log: "
        + json.dumps({k: round(v, 1) for k, v in ours.items() if k != "output"})
    )
    figures.write(args.json)


if __name__ == "__main__":
    main()

"""Two-party inference under MPC: per-token latency of the shipped checkpoint
and of a model of the old character model's shape, against plaintext
inference and CrypTen's own communicator in the same run; for the
checkpoint also through Airlock (messages and bytes per token too).

    .venv/bin/python bench/mpc.py [--tokens 4] [--json FILE]
    .venv/bin/python bench/mpc.py --scaling [--widths 64 128 256]
        [--contexts 16 32 64] [--tokens 2] [--json FILE]

The prompt is the mpc-inference scenario's. The Airlock path runs that
scenario on an embedded Ray: five parties, each in its own actor, the
creator sharing the shipped checkpoint. Every CrypTen message is an
envelope, and every tuple comes from the dealer party's seeds, the last
rank asking it for its corrections. The CrypTen path runs
the same forward pass (protocols/mpc/model.py) in two processes plus
CrypTen's TTP, with gloo bound to the loopback interface. The old shape
(vocabulary 48, context 64, width 64, 2 layers, 2 heads, MLP 192) has random
weights and is fed token ids directly, a window as long as the prompt's.
Latency per token is the mean over the generated tokens; in the Airlock path
it includes the user sharing the window and adding up the logit shares.
Every process computes on one torch thread, as Ray gives each actor
(OMP_NUM_THREADS=1): on two cores shared with other work, torch's default of
two threads made even plaintext 50 times slower.

--scaling: per token at each width and context, both paths with random
weights of the checkpoint's depth (4 layers), heads (4) and vocabulary
(512), MLP 3 x width (`random_shape` in the scenario's params), after a
prompt cut to fill the context once the tokens are generated. Figures, not
a test.
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
from protocols.mpc.roles import RandomShape  # noqa: E402

OLD_SHAPE = ModelConfig(vocab=48, context=64, width=64, layers=2, heads=2, hidden=192)
MODELS: dict[str, ModelConfig | None] = {"checkpoint": None, "old shape": OLD_SHAPE}


def model_and_window(shape: ModelConfig | None, prompt: str) -> tuple[Transformer, list[int]]:
    """The model (the checkpoint, or random weights of `shape`: timing only),
    and the token ids of the prompt's window for it."""
    ids = shipped_tokenizer().encode(prompt)
    if shape is None:
        return served_model(), ids
    return Transformer(shape), [i % shape.vocab for i in ids]  # the old shape's vocabulary is 48


def crypten_baseline(shape: ModelConfig | None, prompt: str, tokens: int) -> float:
    """Seconds per token with CrypTen's own communicator and TTP. Each party
    process builds the model itself: torch's thread pool does not survive a
    fork once the parent has used it (the parties hung)."""
    module = crypten()
    from crypten.config import cfg

    from protocols.mpc.model import forward, one_hot

    cfg.mpc.provider = "TTP"

    def party() -> list[float]:
        torch.set_num_threads(1)  # as in every path
        model, ids = model_and_window(shape, prompt)
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


def prompt_of(prompt: str, length: int) -> str:
    """`prompt`, repeated as often as needed, cut to text that encodes to at
    most `length` word pieces."""
    tokenizer = shipped_tokenizer()
    repeats = length // len(tokenizer.encode(prompt)) + 1
    ids = tokenizer.encode(" ".join([prompt] * repeats))[:length]
    while len(tokenizer.encode(tokenizer.decode(ids))) > length:
        ids = ids[:-1]
    return tokenizer.decode(ids)


def scaling(text: str, prompt: str, args: argparse.Namespace, figures: Figures) -> None:
    """Per token at each width and context: random weights of the
    checkpoint's depth, heads and vocabulary, the window filling the context."""
    print(
        "\n| width | context | CrypTen s/token | Airlock s/token | vs CrypTen "
        "| messages/token | MB/token | tuple requests/token | dealer MB/token |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for width in args.widths:
        for context in args.contexts:
            shape = RandomShape(width=width, context=context)
            short = prompt_of(prompt, max(1, context - args.tokens))
            print(f"width {width}, context {context} ...", file=sys.stderr, flush=True)
            baseline = crypten_baseline(shape.config(), short, args.tokens)
            if json.dumps(prompt) not in text:
                raise SystemExit("the scenario's prompt is not where this script looks for it")
            scenario = text.replace(json.dumps(prompt), json.dumps(short))
            shaped = f"random_shape = {{ width = {width}, context = {context} }}"
            ours = airlock_run(scenario, args.tokens, shaped)
            ratio = ours["seconds_per_token"] / baseline
            print(
                f"| {width} | {context} | {baseline:.3f} | {ours['seconds_per_token']:.3f} "
                f"| {ratio:.2f}x | {ours['messages_per_token']:.0f} "
                f"| {ours['bytes_per_token'] / 1e6:.2f} | {ours['tuples_per_token']:.1f} "
                f"| {ours['dealer_bytes_per_token'] / 1e6:.2f} |",
                flush=True,
            )
            figures.row(
                "scaling",
                width=width,
                context=context,
                crypten_seconds=baseline,
                **{k: v for k, v in ours.items() if k != "output"},
            )


def airlock_run(text: str, tokens: int, shape: str = "") -> dict:
    from orchestrator.launcher import run_scenario
    from orchestrator.scenario import parse_scenario
    from parties.log_check import read_entries

    params = ", ".join(p for p in (f"max_new_tokens = {tokens}", shape) if p)
    text = re.sub(r"params = \{.*\}", f"params = {{ {params} }}", text)
    with tempfile.TemporaryDirectory() as scratch:
        result = run_scenario(parse_scenario(text, "bench"), text, out=Path(scratch))
        if result.failure:
            raise SystemExit(result.failure)
        (generated,) = [a["result"] for a in result.actions if a["action"] == "generate"]
        entries, _ = read_entries(Path(scratch) / "parties" / "deployer", "deployer")
        sent = [e for e in entries if e["direction"] == "out" and e["step"] == "mpc_message"]
        # the last rank asks the dealer; rank 0 (the deployer) draws from its seed
        entries, _ = read_entries(Path(scratch) / "parties" / "compute", "compute")
        tuples = [e for e in entries if e["direction"] == "out" and e["step"] == "tuple_request"]
        entries, _ = read_entries(Path(scratch) / "parties" / "dealer", "dealer")
        dealt = [e for e in entries if e["outcome"] == "replied" and e["step"] == "tuple_shares"]
        return {
            "seconds_per_token": generated["seconds_per_token"],
            "messages_per_token": len(sent) / tokens,
            "bytes_per_token": sum(e["size"] for e in sent) / tokens,
            "tuples_per_token": len(tuples) / tokens,
            "dealer_bytes_per_token": sum(e["size"] for e in dealt) / tokens,
            "output": generated["outputs"][0]["output"],
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=4)
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="instead: per token at each --widths and --contexts (random weights)",
    )
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--contexts", type=int, nargs="+", default=[16, 32, 64])
    add_json_option(parser)
    args = parser.parse_args()
    figures = Figures()
    _, text = load_scenario("mpc-inference")
    (prompt,) = tomllib.loads(text)["parties"]["alice"]["prompts"]
    if args.scaling:
        torch.set_num_threads(1)
        scaling(text, prompt, args, figures)
        figures.write(args.json)
        return
    baseline, plain = {}, {}
    for name, shape in MODELS.items():  # CrypTen's parties fork from here: before torch work
        print(f"{name}: CrypTen's own communicator ...", file=sys.stderr, flush=True)
        baseline[name] = crypten_baseline(shape, prompt, args.tokens)
    torch.set_num_threads(1)
    for name, shape in MODELS.items():
        plain[name] = plaintext(*model_and_window(shape, prompt), args.tokens)
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

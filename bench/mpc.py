"""Two-party inference under MPC: per-token latency, messages and bytes, the
ratio to plaintext inference, and Airlock's communicator against CrypTen's
own (torch.distributed over gloo, with CrypTen's TTP process), in one run
on the same model and prompt.

    .venv/bin/python bench/mpc.py [--tokens 4] [--pretrain-steps 150]

The Airlock path runs the mpc-inference scenario on an embedded Ray: five
parties, each in its own actor. Every CrypTen message is an envelope, and
every tuple comes from the dealer party. The CrypTen path runs the same
forward pass (protocols/mpc/model.py) in two processes plus CrypTen's TTP,
with gloo bound to the loopback interface. Latency per token is the mean
over the generated tokens; in the Airlock path it includes the user sharing
the window and adding up the logit shares. Figures, not a test.
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # CrypTen's baseline stays on loopback

import torch  # noqa: E402

from models.transformer import TOKENIZER, ModelConfig  # noqa: E402
from models.corpus import pretrained_model  # noqa: E402
from protocols.mpc.compat import crypten  # noqa: E402

PROMPT = "first line for asthma is"


def crypten_baseline(tokens: int, steps: int) -> list[float]:
    """Seconds per token with CrypTen's own communicator and TTP."""
    module = crypten()
    from crypten.config import cfg

    from protocols.mpc.model import forward, one_hot

    cfg.mpc.provider = "TTP"

    def party() -> list[float]:
        model = pretrained_model(steps)
        weights = {k: module.cryptensor(v.detach(), src=0) for k, v in model.state_dict().items()}
        ids = TOKENIZER.encode(PROMPT)
        times = []
        for _ in range(tokens):
            started = time.perf_counter()
            window = ids[-ModelConfig().context :]
            x = module.cryptensor(one_hot(window, ModelConfig().vocab).float(), src=1)
            logits = forward(x, weights, ModelConfig()).get_plain_text()
            ids.append(int(logits.reshape(-1).argmax()))
            times.append(time.perf_counter() - started)
        return times

    results = module.mpc.context.run_multiprocess(world_size=2)(party)()
    return list(results[0])


def airlock_run(tokens: int, steps: int) -> dict:
    from orchestrator.launcher import run_scenario
    from orchestrator.scenario import load_scenario, parse_scenario
    from parties.log import read_entries

    _, text = load_scenario("mpc-inference")
    text = re.sub(
        r"params = \{.*\}",
        f"params = {{ pretrain_steps = {steps}, max_new_tokens = {tokens} }}",
        text,
    )
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


def plaintext(tokens: int, steps: int) -> float:
    model = pretrained_model(steps)
    ids = TOKENIZER.encode(PROMPT)
    started = time.perf_counter()
    with torch.no_grad():
        for _ in range(tokens):
            ids.append(int(model(torch.tensor([ids[-ModelConfig().context :]]))[0, -1].argmax()))
    return (time.perf_counter() - started) / tokens


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tokens", type=int, default=4)
    parser.add_argument("--pretrain-steps", type=int, default=150)
    args = parser.parse_args()
    print("running CrypTen's own communicator ...", file=sys.stderr, flush=True)
    baseline = statistics.mean(crypten_baseline(args.tokens, args.pretrain_steps))
    print("running Airlock's (on Ray) ...", file=sys.stderr, flush=True)
    ours = airlock_run(args.tokens, args.pretrain_steps)
    plain = plaintext(args.tokens, args.pretrain_steps)
    print(f"\n{args.tokens} tokens of greedy decoding from {PROMPT!r}\n")
    print("| path | seconds per token | vs plaintext | vs CrypTen's communicator |")
    print("|---|---:|---:|---:|")
    print(f"| plaintext (torch) | {plain:.4f} | 1x | |")
    print(f"| CrypTen, gloo + TTP | {baseline:.3f} | {baseline / plain:.0f}x | 1.00x |")
    print(
        f"| Airlock boundary + dealer | {ours['seconds_per_token']:.3f} | "
        f"{ours['seconds_per_token'] / plain:.0f}x | {ours['seconds_per_token'] / baseline:.2f}x |"
    )
    print(
        "\nper token, from the deployer's log: "
        + json.dumps({k: round(v, 1) for k, v in ours.items() if k != "output"})
    )


if __name__ == "__main__":
    main()

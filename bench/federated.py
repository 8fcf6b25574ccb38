"""Federated rounds in the three modes, and what the trained model leaks.

    .venv/bin/python bench/federated.py [--sizes 3 10] [--rounds 3]
        [--local-steps 30] [--dropouts 0.1 0.3] [--json FILE]

For each number of contributors n, runs `plain`, `secagg` and `secagg+dp`
one after another in the same process (every party in this process, real
gRPC with mutual TLS between them; no Ray), so that the ratios compare like
with like. Per mode: the mean wall time of a round (from the aggregator's
round records) and the bytes each contributor sent and received per round
(summed from its visibility log). Then, for n = the first size, canary
exposure and membership-inference AUC of the plain and the DP model (the
other sizes evaluate leakage with the fewest samples: it is not reported).

Dropout recovery: for each n and each fraction f in --dropouts, secagg runs
again with ceil(f * n) contributors killed (SIGKILL's in-process
counterpart: the party stops answering) before the last round's updates
are collected, so the aggregator recovers their masks from the survivors'
shares. The cost is that round's time against the same round without
dropouts, and the bytes a survivor sent and received in it.
Figures, not a test.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.figures import Figures, add_json_option  # noqa: E402
from orchestrator.launcher import RunResult, run_scenario  # noqa: E402
from orchestrator.scenario import parse_scenario  # noqa: E402
from parties.log_check import read_entries  # noqa: E402
from protocols.federated.scenario import federated_scenario  # noqa: E402

MODES = ("plain", "secagg", "secagg+dp")


def run(
    n: int, mode: str, args: argparse.Namespace, out: Path, *, leakage: bool, killed: int = 0
) -> RunResult:
    params = {"mode": mode, "rounds": args.rounds, "threshold": max(2, n // 2 + 1)}
    params["local_steps"] = args.local_steps
    if not leakage:
        params["exposure_samples"] = 10
    text = federated_scenario(n, params, update_form="plaintext" if mode == "plain" else "masked")
    for i in range(n, n - killed, -1):
        text += (
            f'\n[[faults]]\nkill = "hospital_{i}"\nbefore = "collect_updates"\n'
            f"round = {args.rounds}\n"
        )
    result = run_scenario(parse_scenario(text, "bench"), text, out=out, in_process=True)
    if result.failure:
        raise SystemExit(f"{mode} at n={n} ({killed} killed) failed: {result.failure}")
    return result


def round_bytes(run_dir: Path, party: str, rounds: range) -> float:
    """Payload bytes a contributor received and sent in these rounds, per round."""
    sessions = {f"round-{r}" for r in rounds}
    entries, _ = read_entries(run_dir / "parties" / party, party)
    total = sum(
        int(e.get("size", 0))
        for e in entries
        if e.get("session") in sessions and e.get("outcome") in ("admitted", "replied")
    )
    return total / len(rounds)


def dropouts(result: RunResult) -> list[str]:
    return list(json.loads((result.run_dir / "manifest.json").read_text())["dropouts"])


def published(result: RunResult) -> dict[str, Any]:
    return next(a["result"] for a in result.actions if a["action"] == "publish_model")


def run_figures(result: RunResult, n: int, rounds: int) -> dict[str, Any]:
    publish = published(result)
    leak = [a["result"] for a in result.actions if a["action"] == "evaluate_leakage"]
    every_round = range(1, rounds + 1)
    return {
        "round_s": statistics.mean(r["seconds"] for r in publish["rounds"]),
        "last_round_s": publish["rounds"][-1]["seconds"],
        "bytes": statistics.mean(
            round_bytes(result.run_dir, f"hospital_{i}", every_round) for i in range(1, n + 1)
        ),
        "last_round_bytes": statistics.mean(
            round_bytes(result.run_dir, f"hospital_{i}", range(rounds, rounds + 1))
            for i in range(1, n + 1 - len(dropouts(result)))
        ),
        "epsilon": publish["epsilon"],
        "utility": publish["utility_bits_per_char"],
        "exposure": statistics.mean(e for r in leak for e in r["exposure_bits"]),
        "control": statistics.mean(e for r in leak for e in r["control_exposure_bits"]),
        "auc": statistics.mean(r["mia_auc"] for r in leak),
        "max_exposure": leak[0]["exposure_max_bits"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 10])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--local-steps", type=int, default=30)
    parser.add_argument(
        "--dropouts",
        type=float,
        nargs="*",
        default=[0.1, 0.3],
        help="fractions of contributors lost in the last round (secagg)",
    )
    add_json_option(parser)
    args = parser.parse_args()
    results: dict[tuple[int, str], dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for n in args.sizes:
            runs = [(mode, 0) for mode in MODES]
            # ceil: at least one lost; fractions that lose as many run once
            runs += [("secagg", k) for k in sorted({math.ceil(f * n) for f in args.dropouts})]
            for mode, killed in runs:
                label = mode if not killed else f"{mode}, {killed} dropped"
                print(f"running {label} with {n} contributors ...", file=sys.stderr, flush=True)
                out = Path(scratch) / f"{n}-{mode}-{killed}"
                result = run(n, mode, args, out, leakage=n == args.sizes[0], killed=killed)
                if len(dropouts(result)) != killed:
                    raise SystemExit(f"{label}: the run lost {dropouts(result)}")
                results[(n, label)] = run_figures(result, n, args.rounds)
    figures = Figures()
    print(f"\n{args.rounds} rounds, {args.local_steps} local steps per round\n")
    print("| n | mode | round (s) | vs plain | bytes per contributor per round | vs plain |")
    print("|---:|---|---:|---:|---:|---:|")
    for (n, label), f in results.items():
        if label not in MODES:
            continue
        base = results[(n, "plain")]
        print(
            f"| {n} | {label} | {f['round_s']:.2f} | {f['round_s'] / base['round_s']:.2f}x | "
            f"{f['bytes'] / 1e3:,.0f} kB | {f['bytes'] / base['bytes']:.3f}x |"
        )
        figures.row("rounds", n=n, mode=label, round_s=f["round_s"], bytes=f["bytes"])
    if args.dropouts:
        print(f"\nDropout recovery (secagg, contributors lost in round {args.rounds})\n")
        print(
            "| n | dropped | last round (s) | vs no dropout | bytes per survivor | vs no dropout |"
        )
        print("|---:|---:|---:|---:|---:|---:|")
    for (n, label), f in results.items():
        if "dropped" not in label:
            continue
        base = results[(n, "secagg")]
        killed = int(label.split(", ")[1].split()[0])
        print(
            f"| {n} | {killed} ({killed / n:.0%}) | {f['last_round_s']:.2f} "
            f"| {f['last_round_s'] / base['last_round_s']:.2f}x "
            f"| {f['last_round_bytes'] / 1e3:,.0f} kB "
            f"| {f['last_round_bytes'] / base['last_round_bytes']:.3f}x |"
        )
        figures.row(
            "dropouts",
            n=n,
            dropped=killed,
            last_round_s=f["last_round_s"],
            no_dropout_last_round_s=base["last_round_s"],
            bytes_per_survivor=f["last_round_bytes"],
            no_dropout_bytes=base["last_round_bytes"],
        )
    n = args.sizes[0]
    print(f"\nLeakage at n = {n} (means over contributors; exposure can show at most ", end="")
    print(f"{results[(n, 'plain')]['max_exposure']:.2f} bits)\n")
    print("| mode | epsilon | canary exposure (bits) | control exposure | MIA AUC | bits/char |")
    print("|---|---:|---:|---:|---:|---:|")
    for mode in MODES:
        f = results[(n, mode)]
        epsilon = "-" if f["epsilon"] is None else f"{f['epsilon']:.2f}"
        print(
            f"| {mode} | {epsilon} | {f['exposure']:.2f} | {f['control']:.2f} | "
            f"{f['auc']:.3f} | {f['utility']:.3f} |"
        )
        figures.row(
            "leakage",
            n=n,
            mode=mode,
            **{k: f[k] for k in ("epsilon", "exposure", "control", "auc", "utility")},
        )
    figures.write(args.json)


if __name__ == "__main__":
    main()

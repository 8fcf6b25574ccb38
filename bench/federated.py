"""Federated rounds in the three modes, and what the trained model leaks.

    .venv/bin/python bench/federated.py [--sizes 3 10] [--rounds 3] [--local-steps 30]

For each number of contributors n, runs `plain`, `secagg` and `secagg+dp`
one after another in the same process (every party in this process, real
gRPC with mutual TLS between them; no Ray), so that the ratios compare like
with like. Per mode: the mean wall time of a round (from the aggregator's
round records) and the bytes each contributor sent and received per round
(summed from its visibility log). Then, for n = the first size, canary
exposure and membership-inference AUC of the plain and the DP model.
Figures, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.launcher import RunResult, run_scenario  # noqa: E402
from orchestrator.scenario import parse_scenario  # noqa: E402
from parties.log_check import read_entries  # noqa: E402
from protocols.federated.scenario import federated_scenario  # noqa: E402

MODES = ("plain", "secagg", "secagg+dp")


def run(n: int, mode: str, rounds: int, local_steps: int, out: Path) -> RunResult:
    params = {"mode": mode, "rounds": rounds, "threshold": max(2, n // 2 + 1)}
    params["local_steps"] = local_steps
    text = federated_scenario(n, params, update_form="plaintext" if mode == "plain" else "masked")
    result = run_scenario(parse_scenario(text, "bench"), text, out=out, in_process=True)
    if result.failure:
        raise SystemExit(f"{mode} at n={n} failed: {result.failure}")
    return result


def per_round_bytes(run_dir: Path, party: str, rounds: int) -> float:
    """Payload bytes a contributor received and sent in the rounds, per round."""
    entries, _ = read_entries(run_dir / "parties" / party, party)
    total = sum(
        int(e.get("size", 0))
        for e in entries
        if str(e.get("session", "")).startswith("round-")
        and e.get("outcome") in ("admitted", "replied")
    )
    return total / rounds


def figures(result: RunResult, n: int, rounds: int) -> dict[str, Any]:
    publish = next(a["result"] for a in result.actions if a["action"] == "publish_model")
    leak = [a["result"] for a in result.actions if a["action"] == "evaluate_leakage"]
    return {
        "round_s": statistics.mean(r["seconds"] for r in publish["rounds"]),
        "bytes": statistics.mean(
            per_round_bytes(result.run_dir, f"hospital_{i}", rounds) for i in range(1, n + 1)
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
    args = parser.parse_args()
    results: dict[tuple[int, str], dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for n in args.sizes:
            for mode in MODES:
                print(f"running {mode} with {n} contributors ...", file=sys.stderr, flush=True)
                out = Path(scratch) / f"{n}-{mode}"
                results[(n, mode)] = figures(
                    run(n, mode, args.rounds, args.local_steps, out), n, args.rounds
                )
    print(f"\n{args.rounds} rounds, {args.local_steps} local steps per round\n")
    print("| n | mode | round (s) | vs plain | bytes per contributor per round | vs plain |")
    print("|---:|---|---:|---:|---:|---:|")
    for (n, mode), f in results.items():
        base = results[(n, "plain")]
        print(
            f"| {n} | {mode} | {f['round_s']:.2f} | {f['round_s'] / base['round_s']:.2f}x | "
            f"{f['bytes'] / 1e3:,.0f} kB | {f['bytes'] / base['bytes']:.3f}x |"
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


if __name__ == "__main__":
    main()

"""Inference through the enclave path against plaintext serving of the same
model, in the same run; and the attestation handshake.

    .venv/bin/python bench/tee.py [--repeat 20] [--tokens 24 64 128] [--ray]

Runs the tee-inference scenario with the benchmark's baseline switched on.
For each prompt, the end user attests (fresh nonce, evidence through the
host, appraisal by the verifier), asks through the enclave, then asks the
host in plaintext. The prompt guarantees are lifted so the host may serve
plaintext. Times are the best of --repeat, measured by the end user around
each call. Parties run in this process (real gRPC with mutual TLS between
them), or with --ray each in its own Ray actor. Figures, not a test.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import tempfile  # noqa: E402

from orchestrator.launcher import run_scenario  # noqa: E402
from orchestrator.scenario import load_scenario, parse_scenario  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--tokens", type=int, nargs="+", default=[24, 64, 128])
    parser.add_argument("--ray", action="store_true", help="each party in its own Ray actor")
    args = parser.parse_args()
    _, text = load_scenario("tee-inference")
    text = text[: text.index("[[guarantees]]")]  # the baseline serves plaintext
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for tokens in args.tokens:
            edited = re.sub(
                r"params = \{.*\}",
                f"params = {{ pretrain_steps = 150, max_new_tokens = {tokens}, "
                f"baseline = true, repeat = {args.repeat} }}",
                text,
            )
            print(f"running with {tokens} new tokens ...", file=sys.stderr, flush=True)
            result = run_scenario(
                parse_scenario(edited, "bench"),
                edited,
                out=Path(scratch) / str(tokens),
                in_process=not args.ray,
            )
            if result.failure:
                raise SystemExit(result.failure)
            (asked,) = [a["result"] for a in result.actions if a["action"] == "ask"]
            rows.append((tokens, asked))
    where = "Ray actors" if args.ray else "one process"
    print(f"\nbest of {args.repeat}, parties in {where}\n")
    print("| new tokens | plaintext serving (ms) | enclave path (ms) | ratio | handshake (ms) |")
    print("|---:|---:|---:|---:|---:|")
    for tokens, asked in rows:
        ratio = asked["enclave_ms"] / asked["plain_ms"]
        print(
            f"| {tokens} | {asked['plain_ms']:.1f} | {asked['enclave_ms']:.1f} | "
            f"{ratio:.2f}x | {asked['handshake_ms']:.1f} |"
        )


if __name__ == "__main__":
    main()

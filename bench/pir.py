"""PIR server throughput against this machine's memory-read bandwidth, same run.

    .venv/bin/python bench/pir.py [--mib 256 ...] [--repeat 5] [--batch 32]
        [--rag] [--json FILE]

Database: --mib of records (4 KiB each); several sizes give a table each and
a scaling table (the goal ratios in --json are those of the first size).
Bandwidth baseline: a numpy sum over the same bytes (uint64 words). Every
path runs on one thread: numpy and the XOR kernels (numba, compiled before
timing) are single-threaded, and BLAS (SimplePIR) and OpenMP are pinned to
one thread with threadpoolctl; the script prints the count. XOR PIR
reduces the records its query selects in one streaming pass; SimplePIR
multiplies its digit matrix (float64, exact through BLAS) by the query.
A batch (what a client sends to fetch a cluster) is answered in one pass
over the database. Throughput counts database bytes (the records) per
second of answering, per query: a batch of k counts k database scans.
Figures, not a test.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.figures import Figures, add_json_option  # noqa: E402
from bench.timing import best  # noqa: E402
from protocols.pir.simplepir import LWE_N, SimplePirClient, SimplePirServer  # noqa: E402
from protocols.pir.xor import XorServer, make_queries  # noqa: E402

RECORD_BYTES = 4096
# the rows of each table, by the names of their goal ratios (`<name>_vs_memory`)
GOALS = ("xor", "xor_batch", "simplepir", "simplepir_batch")
THREADS = 1  # for every path, so that SimplePIR's BLAS is not compared on more cores


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mib", type=int, nargs="+", default=[256], help="database sizes in MiB")
    parser.add_argument("--repeat", type=int, default=5, help="best of N")
    parser.add_argument(
        "--rag", action="store_true", help="also time retrieval in the private-rag scenario"
    )
    parser.add_argument(
        "--batch", type=int, default=32, help="queries answered together (a cluster's fetch)"
    )
    add_json_option(parser)
    args = parser.parse_args()
    figures = Figures()
    with threadpool_limits(limits=THREADS):
        for mib in args.mib:
            measure(mib, args, figures)
    if len(args.mib) > 1:
        scaling(figures)
    if args.rag:
        print("\nprivate-rag end to end (2,000 documents, 32 clusters, a batch per question)")
        for scheme in ("xor", "simplepir"):
            latency, moved = retrieval_latency(scheme)
            print(f"{scheme:<10} retrieval {latency:7.1f} ms   query+answer bytes {moved:>10}")
            figures.row("private_rag", scheme=scheme, retrieval_ms=latency, bytes_moved=moved)
    figures.write(args.json)


def measure(mib: int, args: argparse.Namespace, figures: Figures) -> None:
    count = (mib << 20) // RECORD_BYTES
    records = np.random.default_rng(3).integers(0, 256, (count, RECORD_BYTES), dtype=np.uint8)
    size_gb = records.nbytes / 1e9
    words = records.view(np.uint64)

    bandwidth = size_gb / best(lambda: words.sum(), args.repeat)
    xor = XorServer(records)
    xor_query = make_queries(0, count)[0]
    xor.answer_batch([xor_query])  # loads (or compiles) the kernels before timing
    xor.answer(xor_query)
    xor_rate = size_gb / best(lambda: xor.answer(xor_query), args.repeat)
    xor_batch = [make_queries(i, count)[0] for i in range(args.batch)]
    xor_batch_rate = size_gb * args.batch / best(lambda: xor.answer_batch(xor_batch), args.repeat)

    start = time.perf_counter()
    lwe = SimplePirServer(records)
    setup_time = time.perf_counter() - start
    client = SimplePirClient(lwe.setup())
    query, _ = client.query(0)
    lwe_rate = size_gb / best(lambda: lwe.answer(query, lwe.version), args.repeat)
    lwe_batch = [client.query(i)[0] for i in range(args.batch)]
    lwe_batch_rate = (
        size_gb * args.batch / best(lambda: lwe.answer_batch(lwe_batch, lwe.version), args.repeat)
    )

    digits = lwe.hint.shape[0]
    print(
        f"database: {count} records of {RECORD_BYTES} B = {size_gb:.3f} GB; "
        f"SimplePIR: n = {LWE_N}, p = 2^{lwe.bits}, {digits} digits per record, "
        f"setup {setup_time:.1f} s"
    )
    pools = ", ".join(f"{p['internal_api']} {p['num_threads']}" for p in threadpool_info())
    print(f"threads per path: {THREADS} (thread pools: {pools})")
    print(f"{'path':<32} {'GB/s':>7} {'vs memory':>10}")
    print(f"{'memory read (numpy sum)':<32} {bandwidth:7.2f} {1.0:9.2f}x")
    rows = [
        ("XOR PIR, one query", xor_rate),
        (f"XOR PIR, batch of {args.batch}", xor_batch_rate),
        ("SimplePIR, one query", lwe_rate),
        (f"SimplePIR, batch of {args.batch}", lwe_batch_rate),
    ]
    for name, rate in rows:
        print(f"{name:<32} {rate:7.2f} {rate / bandwidth:9.2f}x")
    figures.row(
        "throughput",
        mib=mib,
        memory_gb_per_s=bandwidth,
        **{goal: rate for goal, (_, rate) in zip(GOALS, rows, strict=True)},
        xor_query_bytes=len(xor_query),
        xor_answer_bytes=RECORD_BYTES,
        simplepir_query_bytes=len(query),
        simplepir_answer_bytes=digits * 4,
        simplepir_hint_bytes=lwe.hint.nbytes,
        simplepir_setup_s=setup_time,
    )
    if len(figures.tables["throughput"]) == 1:
        for goal, (_, rate) in zip(GOALS, rows, strict=True):
            figures.ratio(f"{goal}_vs_memory", rate / bandwidth)
    print(f"\n{'size':<32} {'bytes':>12} {'SimplePIR formula':>28}")
    print(f"{'XOR query (each replica)':<32} {len(xor_query):>12} {'N/8':>28}")
    print(f"{'XOR answer (each replica)':<32} {RECORD_BYTES:>12} {'record size':>28}")
    print(
        f"{'SimplePIR hint (once)':<32} {lwe.hint.nbytes:>12} {'m * n * 4 (m digits/record)':>28}"
    )
    print(f"{'SimplePIR query':<32} {len(query):>12} {'N * 4':>28}")
    print(f"{'SimplePIR answer':<32} {digits * 4:>12} {'m * 4':>28}\n")


def scaling(figures: Figures) -> None:
    """How throughput (as a ratio to the memory read) and sizes grow with the database."""
    print(
        "| MiB | memory GB/s | XOR one | XOR batch | SimplePIR one | SimplePIR batch "
        "| XOR query B | SimplePIR query B | SimplePIR answer B | SimplePIR hint MiB |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in figures.tables["throughput"]:
        ratios = " | ".join(f"{row[goal] / row['memory_gb_per_s']:.2f}x" for goal in GOALS)
        print(
            f"| {row['mib']} | {row['memory_gb_per_s']:.1f} | {ratios} "
            f"| {row['xor_query_bytes']:,} | {row['simplepir_query_bytes']:,} "
            f"| {row['simplepir_answer_bytes']:,} | {row['simplepir_hint_bytes'] / (1 << 20):.1f} |"
        )


def retrieval_latency(scheme: str) -> tuple[float, int]:
    """End to end in the private-rag scenario (parties in this process):
    the best retrieval over its questions (embedding, PIR batch, decoding,
    ranking) and the payload bytes the client sent and received per question."""
    from orchestrator.launcher import run_scenario
    from orchestrator.scenario import load_scenario, parse_scenario
    from parties.log_check import read_entries

    _, text = load_scenario("private-rag")
    text = re.sub(r'scheme = "\w+"', f'scheme = "{scheme}"', text)
    with tempfile.TemporaryDirectory() as scratch:
        result = run_scenario(
            parse_scenario(text, "bench"), text, out=Path(scratch), in_process=True
        )
        (retrieved,) = [a["result"] for a in result.actions if a["action"] == "retrieve"]
        entries, _ = read_entries(Path(scratch) / "parties" / "alice", "alice")
        moved = sum(e["size"] for e in entries if e["step"] in ("pir_query", "pir_answer"))
    return retrieved["retrieval_ms"], moved // len(retrieved["answers"])


if __name__ == "__main__":
    main()

"""PIR server throughput against this machine's memory-read bandwidth, same run.

    .venv/bin/python bench/pir.py [--mib 256] [--repeat 5] [--batch 32] [--rag]

Database: --mib of records (4 KiB each). Bandwidth baseline: a numpy sum
over the same bytes (uint64 words). Every path runs on one thread: the
numpy paths are single-threaded, and BLAS (SimplePIR) and OpenMP are pinned
to one thread with threadpoolctl; the script prints the count. XOR PIR
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

from bench.timing import best  # noqa: E402
from protocols.pir.simplepir import LWE_N, SimplePirClient, SimplePirServer  # noqa: E402
from protocols.pir.xor import XorServer, make_queries  # noqa: E402

RECORD_BYTES = 4096
THREADS = 1  # for every path, so that SimplePIR's BLAS is not compared on more cores


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mib", type=int, default=256, help="database size in MiB")
    parser.add_argument("--repeat", type=int, default=5, help="best of N")
    parser.add_argument(
        "--rag", action="store_true", help="also time retrieval in the private-rag scenario"
    )
    parser.add_argument(
        "--batch", type=int, default=32, help="queries answered together (a cluster's fetch)"
    )
    args = parser.parse_args()
    with threadpool_limits(limits=THREADS):
        measure(args)


def measure(args: argparse.Namespace) -> None:
    count = (args.mib << 20) // RECORD_BYTES
    records = np.random.default_rng(3).integers(0, 256, (count, RECORD_BYTES), dtype=np.uint8)
    size_gb = records.nbytes / 1e9
    words = records.view(np.uint64)

    bandwidth = size_gb / best(lambda: words.sum(), args.repeat)
    xor = XorServer(records)
    xor_query = make_queries(0, count)[0]
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
    print(f"\n{'size':<32} {'bytes':>12} {'SimplePIR formula':>28}")
    print(f"{'XOR query (each replica)':<32} {len(xor_query):>12} {'N/8':>28}")
    print(f"{'XOR answer (each replica)':<32} {RECORD_BYTES:>12} {'record size':>28}")
    print(
        f"{'SimplePIR hint (once)':<32} {lwe.hint.nbytes:>12} {'m * n * 4 (m digits/record)':>28}"
    )
    print(f"{'SimplePIR query':<32} {len(query):>12} {'N * 4':>28}")
    print(f"{'SimplePIR answer':<32} {digits * 4:>12} {'m * 4':>28}")
    if args.rag:
        print("\nprivate-rag end to end (2,000 documents, 32 clusters, a batch per question)")
        for scheme in ("xor", "simplepir"):
            latency, moved = retrieval_latency(scheme)
            print(f"{scheme:<10} retrieval {latency:7.1f} ms   query+answer bytes {moved:>10}")


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

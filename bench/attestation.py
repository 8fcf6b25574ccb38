"""Data attestation figures: commit throughput against raw SHA-256 over the
same bytes (same run), and proof sizes and verification times at 10^6 records.

    .venv/bin/python bench/attestation.py [--records 1000000] [--repeat 3]
        [--json FILE]

Figures, not a test. "commit" builds the key-ordered tree with range
commitments (`ordered`) over the leaves (key + SHA-256 of each canonical
record) from records already in canonical encoding; "commit from records"
adds the JSON canonicalization and sorting of `Dataset`. The baseline is one
`hashlib.sha256` over all the canonical bytes. The consistency proof is the
transparency ledger's (RFC 9162), measured on a ledger of as many entries.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.figures import Figures, add_json_option  # noqa: E402
from bench.timing import best  # noqa: E402
from evidence.canonical import canonical_json  # noqa: E402
from evidence.merkle import MerkleTree, verify_consistency  # noqa: E402
from evidence.ordered import OrderedTree  # noqa: E402
from protocols.attestation.dataset import (  # noqa: E402
    Commitment,
    Dataset,
    ExclusionProof,
    leaf_for,
    verify_exclusion,
    verify_membership,
)


def records(count: int, text_bytes: int) -> list[dict[str, str]]:
    rng = random.Random(7)
    alphabet = "abcdefghijklmnopqrstuvwxyz "
    body = "".join(rng.choice(alphabet) for _ in range(text_bytes))
    return [
        {"source": f"site{i % 997:03d}.org/{i:08d}", "text": body[i % 17 :] + body[: i % 17]}
        for i in range(count)
    ]


def throughput(repeat: int, figures: Figures) -> None:
    print(
        f"{'record size':>12} {'records':>8} {'MiB':>6} {'sha256 MiB/s':>13} "
        f"{'commit MiB/s':>13} {'ratio':>6} {'from records MiB/s':>19} {'ratio':>6}"
    )
    for text_bytes, count in ((256, 40_000), (4096, 4_000), (65536, 300)):
        data = records(count, text_bytes)
        encoded = [canonical_json(r) for r in data]
        keys = [r["source"] for r in data]
        mib = sum(map(len, encoded)) / (1 << 20)

        def raw(encoded: list[bytes] = encoded) -> None:
            digest = hashlib.sha256()
            for item in encoded:
                digest.update(item)
            digest.digest()

        def commit(keys: list[str] = keys, encoded: list[bytes] = encoded) -> None:
            OrderedTree(
                [(k.encode(), leaf_for(k, e)) for k, e in zip(keys, encoded, strict=True)]
            ).root()

        def from_records(data: list[dict[str, str]] = data) -> None:
            Dataset("train:bench", data, ("source", "text"), "source").tree.root()

        t_raw, t_commit, t_full = (
            best(raw, repeat),
            best(commit, repeat),
            best(from_records, repeat),
        )
        print(
            f"{text_bytes:>10} B {count:>8} {mib:6.1f} {mib / t_raw:13.0f} {mib / t_commit:13.0f} "
            f"{t_raw / t_commit:5.2f}x {mib / t_full:19.0f} {t_raw / t_full:5.2f}x"
        )
        figures.row(
            "throughput",
            record_bytes=text_bytes,
            records=count,
            mib=mib,
            sha256_mib_per_s=mib / t_raw,
            commit_mib_per_s=mib / t_commit,
            from_records_mib_per_s=mib / t_full,
        )
        figures.ratio(f"commit_{text_bytes}B_vs_sha256", t_raw / t_commit)


def proofs(count: int, figures: Figures) -> None:
    start = time.perf_counter()
    dataset = Dataset("train:bench", records(count, 64), ("source", "text"), "source")
    built = time.perf_counter() - start
    commitment = Commitment("train:bench", dataset.root, count, "source", ("source", "text"))
    rng = random.Random(1)
    picks = [rng.randrange(count) for _ in range(1000)]
    made = [(dataset.records[i], dataset.prove_membership(dataset.records[i])) for i in picks]
    verify_times = []
    for record, proof in made:
        t = time.perf_counter()
        verify_membership(commitment, record, proof)
        verify_times.append(time.perf_counter() - t)
    membership_bytes = statistics.mean(len(canonical_json(p.to_json())) for _, p in made)
    exclusions = [dataset.prove_exclusion(f"site{i:03d}.org/x") for i in range(100)]
    exclusion_times = []
    for proof in exclusions:
        t = time.perf_counter()
        verify_exclusion(commitment, ExclusionProof.from_json(proof.to_json(), "e"))
        exclusion_times.append(time.perf_counter() - t)
    exclusion_bytes = statistics.mean(len(canonical_json(p.to_json())) for p in exclusions)
    ledger = MerkleTree.from_data(i.to_bytes(8, "big") for i in range(count))
    older = MerkleTree.from_data(i.to_bytes(8, "big") for i in range(count // 3))
    consistency = ledger.consistency_proof(count // 3)
    consistency_times = []
    for _ in range(100):
        t = time.perf_counter()
        verify_consistency(count // 3, count, older.root(), ledger.root(), consistency)
        consistency_times.append(time.perf_counter() - t)
    print(f"\n{count:,} records: commitment built in {built:.1f} s (canonicalize, sort, tree)")
    print(f"{'proof':<28} {'hashes':>7} {'bytes (JSON)':>13} {'verify median':>14}")
    print(
        f"{'membership':<28} {len(made[0][1].path):>7} {membership_bytes:>13.0f} "
        f"{statistics.median(verify_times) * 1e6:>11.1f} us"
    )
    print(
        f"{'exclusion (two neighbours)':<28} {2 * len(made[0][1].path):>7} "
        f"{exclusion_bytes:>13.0f} "
        f"{statistics.median(exclusion_times) * 1e6:>11.1f} us"
    )
    figures.row(
        "proofs",
        records=count,
        build_s=built,
        membership_bytes=membership_bytes,
        membership_verify_us=statistics.median(verify_times) * 1e6,
        exclusion_bytes=exclusion_bytes,
        exclusion_verify_us=statistics.median(exclusion_times) * 1e6,
        consistency_verify_us=statistics.median(consistency_times) * 1e6,
    )
    print(
        f"{'ledger consistency (n/3->n)':<28} {len(consistency):>7} "
        f"{len(canonical_json([h.hex() for h in consistency])):>13} "
        f"{statistics.median(consistency_times) * 1e6:>11.1f} us"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--records", type=int, default=1_000_000, help="dataset size for the proof figures"
    )
    parser.add_argument("--repeat", type=int, default=3, help="best of N for throughput")
    add_json_option(parser)
    args = parser.parse_args()
    figures = Figures()
    throughput(args.repeat, figures)
    proofs(args.records, figures)
    figures.write(args.json)


if __name__ == "__main__":
    main()

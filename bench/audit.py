"""How the cost of checking a visibility log grows with its length, against
SHA-256 over the same bytes, same run.

    .venv/bin/python bench/audit.py [--entries 1000 10000 100000 1000000]
        [--json FILE]

For each size, one party's log is written through the real `VisibilityLog`
(Ed25519-signed checkpoints every 1,000 entries, the party's default, and a
signed head when sealed): every entry records the same real envelope, 1 KiB
of payload signed by a sender's boundary, as it leaves (SENDING). Then
`verify_log`, the check the audit makes of every party's log (each line
parsed, each entry's hash recomputed over its canonical JSON, the chain
followed, every checkpoint's and the head's signature checked against the
party's key), runs over it. The baseline is one `hashlib.sha256` over the
log's files, read the same way. The audit's other checks (signatures of the
envelopes, the two sides' agreement, guarantees, canaries) run once per
envelope, not per byte; they are in `airlock audit`'s time for real runs,
not here. Figures, not a test.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.envelope_profile import parties  # noqa: E402
from bench.figures import Figures, add_json_option  # noqa: E402
from parties.labels import Form, Label  # noqa: E402
from parties.log import Direction, Outcome, VisibilityLog  # noqa: E402
from parties.log_check import verify_log  # noqa: E402

RUN_ID = "bench"


def sha256_files(directory: Path) -> bytes:
    """The log's files read and hashed as one string (the baseline); returns them."""
    data = b"".join(p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file())
    hashlib.sha256(data).digest()
    return data


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--entries",
        type=int,
        nargs="+",
        default=[1_000, 10_000, 100_000, 1_000_000],
        help="log lengths to write and verify",
    )
    add_json_option(parser)
    args = parser.parse_args()
    figures = Figures()
    with tempfile.TemporaryDirectory() as scratch:
        sender, receiver = parties(Path(scratch))
        labels = [Label("bench:sender", Form.CIPHERTEXT)]
        envelope = sender.boundary.seal("receiver", "bench", "blob", labels, os.urandom(1024))
        key = sender.keys.signing_key
        print("| entries | log MiB | write (s) | verify (s) | µs per entry | sha256 (s) | ratio |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for count in args.entries:
            directory = Path(scratch) / f"log-{count}"
            log = VisibilityLog(directory, "sender", RUN_ID, key.sign, checkpoint_seconds=0)
            started = time.perf_counter()
            for _ in range(count):
                log.record(
                    direction=Direction.OUT,
                    outcome=Outcome.SENDING,
                    peer="receiver",
                    envelope=envelope,
                )
            log.seal()
            written = time.perf_counter() - started
            started = time.perf_counter()
            mib = len(sha256_files(directory)) / (1 << 20)
            hashed = time.perf_counter() - started
            started = time.perf_counter()
            entries, problems = verify_log(directory, "sender", RUN_ID, key.public_key())
            verified = time.perf_counter() - started
            if problems or len(entries) != count:
                raise SystemExit(f"the log of {count} entries did not verify: {problems[:3]}")
            del entries
            print(
                f"| {count:,} | {mib:,.1f} | {written:.2f} | {verified:.2f} "
                f"| {verified / count * 1e6:.1f} | {hashed:.3f} | {hashed / verified:.3f}x |"
            )
            figures.row(
                "verify",
                entries=count,
                log_mib=mib,
                write_s=written,
                verify_s=verified,
                sha256_s=hashed,
            )
            figures.ratio(f"verify_{count}_vs_sha256", hashed / verified)
        sender.stop()
        receiver.stop()
    figures.write(args.json)


if __name__ == "__main__":
    main()

"""Where one envelope's time goes: a profiler run (yappi, wall clock, every
thread) of the Airlock boundary sending 1 KiB envelopes one after another
between two parties over real gRPC and mutual TLS, both in this process.

    .venv/bin/python bench/envelope_profile.py [--envelopes 2000] [--size 1024]
        [--json FILE]

Each row is the inclusive wall time of one piece of the path, per envelope,
on the side that runs it; nested rows are part of the row above them. The
"gRPC and thread hand-offs" rows are what is left: the sender's call minus
what the receiver's handler took (the network stack, gRPC's own work and
the hop from gRPC's thread to the handler and back), and the handler minus
the boundary's work. A profiler slows Python code more than C code, so the
shares are the figure; the unprofiled µs per envelope is printed beside
them. yappi is used because cProfile sees one thread only, and gRPC runs the
receiver's handler on its own thread pool. Figures, not a test.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import yappi

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.boundary_throughput import runtime  # noqa: E402
from bench.figures import Figures, add_json_option  # noqa: E402
from parties.directory import Directory, PartyEntry  # noqa: E402
from parties.identity import RunAuthority, issue_credentials  # noqa: E402
from parties.labels import Form, Label  # noqa: E402
from parties.roles import Role  # noqa: E402

# (row, indent, function as yappi names it, module file it lives in)
PIECES = (
    ("sender: deliver (whole round trip)", 0, "PartyRuntime.deliver", "runtime.py"),
    ("seal: header, signature, sender's own checks", 1, "Boundary.seal", "boundary.py"),
    ("Ed25519 signing", 2, "PartyKeys.sign", "identity.py"),
    ("rules and guarantees (Policy.check)", 2, "Policy.check", "policy.py"),
    ("message definition (Policy.check_payload)", 2, "Policy.check_payload", "policy.py"),
    ("log entries out (SENDING, DELIVERED)", 1, "Boundary._log_out", "boundary.py"),
    ("gRPC call (PartyClient.send)", 1, "PartyClient.send", "transport.py"),
    (
        "receiver: its answer to one envelope (PartyServer._answer)",
        2,
        "PartyServer._answer",
        "transport.py",
    ),
    ("admission (Boundary.admit)", 3, "Boundary.admit", "boundary.py"),
    ("identity and signature check", 4, "Boundary._check_identity", "boundary.py"),
    ("rules and guarantees (Policy.check)", 4, "Policy.check", "policy.py"),
    ("message definition (Policy.check_payload)", 4, "Policy.check_payload", "policy.py"),
    ("log entry in (VisibilityLog.record)", 4, "VisibilityLog.record", "log.py"),
    ("blob write", 5, "VisibilityLog._store_blob", "log.py"),
    ("entry encoding (canonical JSON)", 5, "canonical_json", "canonical.py"),
    ("log file append", 5, "_AppendOnly.append", "log.py"),
    ("role handler (dispatch)", 3, "PartyRuntime._dispatch", "runtime.py"),
)
RECEIVER_FROM = 7  # PIECES from here on run on the receiver's side


def parties(workdir: Path) -> tuple:
    authority = RunAuthority("bench")
    sender = runtime("sender", Role.END_USER, workdir / "sender")
    receiver = runtime("receiver", Role.DEPLOYER, workdir / "receiver")
    entries = []
    for party, role in ((sender, Role.END_USER), (receiver, Role.DEPLOYER)):
        credentials = issue_credentials(authority, party.name, party.certificate_requests())
        address = party.start(credentials, "127.0.0.1")
        entries.append(PartyEntry(party.name, role, address, credentials.signing_cert_pem))
    for party in (sender, receiver):
        party.join(Directory(entries, authority.certificate_pem))
    return sender, receiver


def thread_stats(ctx_id: int) -> list:
    return list(yappi.get_func_stats(filter={"ctx_id": ctx_id}))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--envelopes", type=int, default=2000)
    parser.add_argument("--size", type=int, default=1024, help="payload bytes")
    add_json_option(parser)
    args = parser.parse_args()
    sender, receiver = parties(Path(tempfile.mkdtemp(prefix="airlock-profile-")))
    labels = [Label("bench:sender", Form.CIPHERTEXT)]

    def send_all() -> float:
        # a fresh payload each time: the receiver keeps each as a new blob, as in a run
        payloads = [os.urandom(args.size) for _ in range(args.envelopes)]
        started = time.perf_counter()
        for payload in payloads:
            sender.deliver("receiver", "bench", "blob", labels, payload)
        return time.perf_counter() - started

    send_all()  # warm-up: channels, caches
    unprofiled = send_all() / args.envelopes * 1e6
    yappi.set_clock_type("wall")
    yappi.start()
    send_all()
    yappi.stop()
    # the sender's pieces run on this (the main) thread; the receiver's on gRPC's
    main = threading.get_ident()
    threads = [(t.id, t.tid == main) for t in yappi.get_thread_stats()]
    stats = {  # by side: True for the receiver's threads
        side: [s for ctx, on_main in threads if on_main != side for s in thread_stats(ctx)]
        for side in (False, True)
    }
    sender.stop()
    receiver.stop()

    def per_envelope(name: str, module: str, receiving: bool = False) -> float:
        found = [s for s in stats[receiving] if s.name == name and s.module.endswith(module)]
        return sum(s.ttot for s in found) / args.envelopes * 1e6

    rows = [
        (row, indent, per_envelope(name, module, receiving=i >= RECEIVER_FROM))
        for i, (row, indent, name, module) in enumerate(PIECES)
    ]
    whole = rows[0][2]
    admit = per_envelope("Boundary.admit", "boundary.py", receiving=True)
    checked = sum(micros for _, depth, micros in rows[RECEIVER_FROM + 1 : -1] if depth == 4)
    handler = per_envelope("PartyServer._answer", "transport.py", receiving=True)
    handled = admit + per_envelope("PartyRuntime._dispatch", "runtime.py", receiving=True)
    call = per_envelope("PartyClient.send", "transport.py")
    # the rows no single function has: what is left of each piece above them
    rows.insert(-1, ("the rest: reading, digest, quotas, locks, waits", 4, admit - checked))
    rows.insert(7, ("gRPC and thread hand-offs (the send minus the answer)", 2, call - handler))
    rows.append(("stream reading in the answer (the rest of it)", 3, handler - handled))
    print(f"{args.envelopes} envelopes of {args.size} B; unprofiled: {unprofiled:.0f} µs each")
    print(f"profiled: {whole:.0f} µs each (wall, yappi)\n")
    print("| piece | µs per envelope (profiled) | share of the round trip |")
    print("|---|---:|---:|")
    for row, indent, micros in rows:
        print(f"| {'&emsp;' * indent}{row} | {micros:.0f} | {micros / whole:.0%} |")
    figures = Figures()
    figures.row("unprofiled", size=args.size, us_per_envelope=unprofiled)
    for row, indent, micros in rows:
        figures.row("pieces", piece=row, depth=indent, us=micros, share=micros / whole)
    figures.write(args.json)


if __name__ == "__main__":
    main()

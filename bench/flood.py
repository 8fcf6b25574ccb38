"""A flood: a legitimate party of the run sends as fast as it can, from many
threads at once, while an honest party goes on delivering to the same
receiver.

Three processes: the receiver (an Airlock party), the flooder (mallory, a
party of the run: its envelopes are well signed and rule-admitted) and this
one, the honest sender (alice), which times its deliveries one after another,
first without the flood and then during it. The receiver's memory (resident
set, and its peak) is read from its /proc before, at the end and after.

    .venv/bin/python bench/flood.py [--seconds 10] [--threads 32]
        [--size-kib 64] [--json FILE]

Figures, not a test (tests/test_flood.py asserts the behaviour).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from boundary_throughput import runtime  # noqa: E402

from bench.figures import Figures, add_json_option  # noqa: E402
from parties.directory import Directory, PartyEntry  # noqa: E402
from parties.errors import Refused  # noqa: E402
from parties.identity import RunAuthority, issue_credentials  # noqa: E402
from parties.labels import Form, Label  # noqa: E402
from parties.roles import Role  # noqa: E402

RUN_ID = "bench"


def memory_kib() -> dict[str, int]:
    """This process's resident set now and at its peak (VmRSS, VmHWM), KiB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def flood(party, seconds: float, threads: int, size: int) -> dict[str, int]:
    """Deliver from `threads` threads for `seconds`; count the outcomes."""
    counts = {"admitted": 0, "refused OVERLOADED": 0, "refused otherwise": 0}
    lock = threading.Lock()
    labels = [Label(f"bench:{party.name}", Form.CIPHERTEXT)]
    end = time.monotonic() + seconds

    def worker() -> None:
        payload = os.urandom(size)
        while time.monotonic() < end:
            try:
                party.deliver("receiver", "bench", "blob", labels, payload)
                outcome = "admitted"
            except Refused as refusal:
                overloaded = refusal.reason_name == "OVERLOADED"
                outcome = "refused OVERLOADED" if overloaded else "refused otherwise"
            with lock:
                counts[outcome] += 1

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return counts


def party_process(conn, name: str, role: Role, workdir: str) -> None:  # a child process
    party = runtime(name, role, Path(workdir) / name)
    conn.send(party.certificate_requests())
    credentials = conn.recv()
    conn.send(party.start(credentials, "127.0.0.1"))
    party.join(Directory(conn.recv(), credentials.ca_pem))
    while True:
        command = conn.recv()
        if command == "stop":
            break
        if command == "memory":
            conn.send(memory_kib())
        else:  # ("flood", seconds, threads, size)
            conn.send(flood(party, *command[1:]))
    party.stop()


def timed_deliveries(party, seconds: float, size: int) -> list[float]:
    """Latency of each of alice's deliveries, one after another, in ms."""
    labels = [Label(f"bench:{party.name}", Form.CIPHERTEXT)]
    payload = os.urandom(size)
    times, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        start = time.perf_counter()
        party.deliver("receiver", "bench", "blob", labels, payload)
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--threads", type=int, default=32, help="the flooder's threads")
    parser.add_argument("--size-kib", type=int, default=64, help="the flooder's payload size")
    add_json_option(parser)
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="airlock-bench-flood-")
    authority = RunAuthority(RUN_ID)
    spawn = mp.get_context("spawn")
    children = {}
    for name, role in (("receiver", Role.DEPLOYER), ("mallory", Role.END_USER)):
        parent, child = spawn.Pipe()
        spawn.Process(target=party_process, args=(child, name, role, workdir), daemon=True).start()
        children[name] = parent
    credentials = {n: issue_credentials(authority, n, c.recv()) for n, c in children.items()}
    for name, conn in children.items():
        conn.send(credentials[name])
    addresses = {name: conn.recv() for name, conn in children.items()}
    alice = runtime("alice", Role.END_USER, Path(workdir) / "alice")
    credentials["alice"] = issue_credentials(authority, "alice", alice.certificate_requests())
    addresses["alice"] = alice.start(credentials["alice"], "127.0.0.1")
    roles = {"receiver": Role.DEPLOYER, "mallory": Role.END_USER, "alice": Role.END_USER}
    entries = [
        PartyEntry(n, roles[n], addresses[n], credentials[n].signing_cert_pem) for n in roles
    ]
    for conn in children.values():
        conn.send(entries)
    alice.join(Directory(entries, authority.certificate_pem))
    receiver, mallory = children["receiver"], children["mallory"]

    receiver.send("memory")
    before = receiver.recv()
    quiet = timed_deliveries(alice, args.seconds, 1 << 10)
    mallory.send(("flood", args.seconds, args.threads, args.size_kib << 10))
    during = timed_deliveries(alice, args.seconds, 1 << 10)
    counts = mallory.recv()
    receiver.send("memory")
    after = receiver.recv()
    for conn in children.values():
        conn.send("stop")
    alice.stop()

    def row(label: str, times: list[float]) -> str:
        p95 = statistics.quantiles(times, n=20)[-1]
        median = statistics.median(times)
        return f"{label:26} {len(times):9} {median:9.2f} {p95:9.2f}"

    print(f"{'alice, 1 KiB one by one':26} {'messages':>9} {'p50 ms':>9} {'p95 ms':>9}")
    print(row("without the flood", quiet))
    print(row("during the flood", during))
    ratio = statistics.median(during) / statistics.median(quiet)
    print(f"median latency during / without: {ratio:.2f}x")
    figures = Figures()
    for phase, times in (("quiet", quiet), ("flood", during)):
        figures.row(
            "latency",
            phase=phase,
            messages=len(times),
            p50_ms=statistics.median(times),
            p95_ms=statistics.quantiles(times, n=20)[-1],
        )
    figures.ratio("p50_flood_vs_quiet", ratio)
    total = sum(counts.values())
    print(
        f"flood: {args.threads} threads x {args.size_kib} KiB for {args.seconds:g} s: {total} "
        + ", ".join(f"{n} {k}" for k, n in counts.items())
    )
    print(
        f"receiver memory: {before['VmRSS'] / 1024:.0f} MiB before, "
        f"{after['VmRSS'] / 1024:.0f} MiB after, peak {after['VmHWM'] / 1024:.0f} MiB"
    )
    figures.row("flood", **counts, rss_before_kib=before["VmRSS"], peak_kib=after["VmHWM"])
    figures.write(args.json)


if __name__ == "__main__":
    main()

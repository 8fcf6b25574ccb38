"""Throughput through the Airlock boundary versus plain gRPC, same run.

Two processes: this one sends; a child process hosts three servers side by
side: an Airlock party (mTLS + signature check + rule and guarantee check +
hash-chained log + blob store), a plain gRPC server over mutual TLS, and a
plain gRPC server without TLS. Both plain servers take the very same
`Envelope` protobuf stream and only reassemble the payload. Messages are sent
one after another (each waits for its answer), for 1 KiB and 1 MiB payloads.

    .venv/bin/python bench/boundary_throughput.py [--seconds 5] [--run-time]
        [--json FILE]

--run-time also times `airlock run` (the default scenario, embedded Ray).
Figures, not a test: the machine is noisy, so compare the ratios.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent import futures
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.figures import Figures, add_json_option  # noqa: E402
from parties.directory import Directory, PartyEntry  # noqa: E402
from parties.envelope import to_messages  # noqa: E402
from parties.identity import RunAuthority, issue_credentials  # noqa: E402
from parties.labels import Form, Label  # noqa: E402
from parties.message import opaque  # noqa: E402
from parties.protocol import Protocol, Rule, label_rule  # noqa: E402
from parties.roles import Deployer, EndUser, Role  # noqa: E402
from parties.runtime import PartyRuntime  # noqa: E402
from parties.wire import airlock_pb2_grpc as pb_grpc  # noqa: E402

RUN_ID = "bench"
BENCH = Protocol(
    name="bench",
    rules=(
        Rule(
            "blob", Role.END_USER, Role.DEPLOYER, (label_rule("bench:{sender}", Form.CIPHERTEXT),)
        ),
    ),
    messages={"blob": opaque()},  # bytes the receiver keeps: the boundary's own work only
    handlers={(Role.DEPLOYER, "blob"): lambda ctx, envelope: None},
)
SIZES = {"1 KiB": 1 << 10, "1 MiB": 1 << 20}


def runtime(name: str, role: Role, workdir: Path) -> PartyRuntime:
    holdings = EndUser() if role == Role.END_USER else Deployer()
    return PartyRuntime(
        name=name,
        role=role,
        run_id=RUN_ID,
        workdir=workdir,
        holdings={"bench": holdings},
        protocols={"bench": BENCH},
    )


class PlainServicer(pb_grpc.PartyServicer):
    def Deliver(self, request_iterator, context):  # noqa: N802 - generated name
        payload = bytearray()
        for message in request_iterator:
            payload += message.payload
        return iter(())


def serve(conn, workdir: str) -> None:  # runs in the child process
    receiver = runtime("receiver", Role.DEPLOYER, Path(workdir) / "receiver")
    conn.send(receiver.certificate_requests())
    credentials = conn.recv()
    airlock_address = receiver.start(credentials, "127.0.0.1")
    plain = grpc.server(
        futures.ThreadPoolExecutor(4), options=[("grpc.max_receive_message_length", 8 << 20)]
    )
    pb_grpc.add_PartyServicer_to_server(PlainServicer(), plain)
    insecure_port = plain.add_insecure_port("127.0.0.1:0")
    tls_port = plain.add_secure_port(
        "127.0.0.1:0",
        grpc.ssl_server_credentials(
            [(receiver.keys.tls_key_pem(), credentials.tls_cert_pem)],
            credentials.ca_pem,
            require_client_auth=True,
        ),
    )
    plain.start()
    conn.send((airlock_address, f"127.0.0.1:{insecure_port}", f"127.0.0.1:{tls_port}"))
    entries = conn.recv()
    receiver.join(Directory(entries, credentials.ca_pem))
    conn.send("ready")
    conn.recv()  # stop
    plain.stop(0)
    receiver.stop()


def measure(paths: dict, seconds: float, rounds: int = 5) -> dict[str, tuple[int, float]]:
    """Messages sent and time taken per path, interleaving the paths in
    `rounds` short rounds so that drift in machine load hits all alike."""
    totals = {name: [0, 0.0] for name in paths}
    for send in paths.values():
        for _ in range(3):  # warm-up: connections, caches
            send()
    for _ in range(rounds):
        for name, send in paths.items():
            count, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds / rounds:
                send()
                count += 1
            totals[name][0] += count
            totals[name][1] += time.perf_counter() - start
    return {name: (int(count), elapsed) for name, (count, elapsed) in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="time per measurement")
    parser.add_argument("--run-time", action="store_true", help="also time `airlock run` (3 runs)")
    add_json_option(parser)
    args = parser.parse_args()
    figures = Figures()

    workdir = tempfile.mkdtemp(prefix="airlock-bench-")
    authority = RunAuthority(RUN_ID)
    parent, child = mp.get_context("spawn").Pipe()
    server = mp.get_context("spawn").Process(target=serve, args=(child, workdir), daemon=True)
    server.start()
    receiver_credentials = issue_credentials(authority, "receiver", parent.recv())
    parent.send(receiver_credentials)
    airlock_address, insecure_address, tls_address = parent.recv()

    sender = runtime("sender", Role.END_USER, Path(workdir) / "sender")
    sender_credentials = issue_credentials(authority, "sender", sender.certificate_requests())
    sender_address = sender.start(sender_credentials, "127.0.0.1")
    entries = [
        PartyEntry(
            "receiver", Role.DEPLOYER, airlock_address, receiver_credentials.signing_cert_pem
        ),
        PartyEntry("sender", Role.END_USER, sender_address, sender_credentials.signing_cert_pem),
    ]
    sender.join(Directory(entries, authority.certificate_pem))
    parent.send(entries)
    assert parent.recv() == "ready"

    options = [("grpc.max_send_message_length", 8 << 20)]
    insecure = pb_grpc.PartyStub(grpc.insecure_channel(insecure_address, options=options))
    tls_credentials = grpc.ssl_channel_credentials(
        authority.certificate_pem, sender.keys.tls_key_pem(), sender_credentials.tls_cert_pem
    )
    mtls = pb_grpc.PartyStub(
        grpc.secure_channel(
            tls_address,
            tls_credentials,
            options=[*options, ("grpc.ssl_target_name_override", "receiver")],
        )
    )
    labels = [Label("bench:sender", Form.CIPHERTEXT)]

    rows = []
    for size_name, size in SIZES.items():
        payload = os.urandom(size)
        # the plain servers get the same signed envelope stream each time
        envelope = sender.boundary.seal("receiver", "bench", "blob", labels, payload)
        results = measure(
            {
                "plain gRPC": lambda e=envelope: list(insecure.Deliver(to_messages(e))),
                "plain gRPC + mTLS": lambda e=envelope: list(mtls.Deliver(to_messages(e))),
                "Airlock boundary": lambda p=payload: sender.deliver(
                    "receiver", "bench", "blob", labels, p
                ),
            },
            args.seconds,
        )
        baseline = results["plain gRPC"][0] / results["plain gRPC"][1]
        with_tls = results["plain gRPC + mTLS"][0] / results["plain gRPC + mTLS"][1]
        for path, (count, elapsed) in results.items():
            rate = count / elapsed
            rows.append(
                (size_name, path, rate, rate * size / (1 << 20), rate / baseline, rate / with_tls)
            )

    parent.send("stop")
    server.join(timeout=10)
    sender.stop()

    print(f"{'payload':8} {'path':20} {'msgs/s':>9} {'MiB/s':>8} {'vs plain':>9} {'vs mTLS':>8}")
    for size_name, path, rate, mib, ratio, ratio_tls in rows:
        print(f"{size_name:8} {path:20} {rate:9.1f} {mib:8.1f} {ratio:8.2f}x {ratio_tls:7.2f}x")
        figures.row(
            "throughput",
            payload=size_name,
            path=path,
            msgs_per_s=rate,
            mib_per_s=mib,
            vs_plain=ratio,
            vs_mtls=ratio_tls,
        )
        if path == "Airlock boundary":
            figures.ratio(f"{size_name.replace(' ', '')}_vs_mtls", ratio_tls)

    if args.run_time:
        times = []
        for _ in range(3):
            out = Path(tempfile.mkdtemp(prefix="airlock-bench-run-")) / "run"
            start = time.perf_counter()
            subprocess.run(
                [str(ROOT / ".venv" / "bin" / "airlock"), "run", "--out", str(out)],
                check=True,
                capture_output=True,
                cwd=ROOT,
            )
            times.append(time.perf_counter() - start)
        print(
            "airlock run (default scenario, embedded Ray): "
            f"median {statistics.median(times):.1f} s "
            f"over 3 runs ({', '.join(f'{t:.1f}' for t in times)})"
        )
        figures.row("airlock_run", seconds=times)
    figures.write(args.json)


if __name__ == "__main__":
    main()

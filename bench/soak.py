"""Soak: a scenario run N times in a row, on one Ray instance and on a fresh
embedded Ray each time, with what the machine holds after each run: Ray's
processes, the driver's open files, listening TCP ports, and memory (the
driver's resident set, and all of Ray's processes together). Growth from
the first run to the last is what a leak would show.

    .venv/bin/python bench/soak.py --runs 50 [--scenario walkthrough]
        [--mode both] [--json FILE]

One instance: a Ray head started here (loopback, every site of the
scenario), each run a driver connection to it. Fresh: each run starts and
stops an embedded Ray, as `airlock run` does.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# isort: off
import orchestrator  # noqa: E402, F401 - sets Ray's environment before Ray is imported
import ray  # noqa: E402

# isort: on

from bench.figures import Figures, add_json_option  # noqa: E402
from orchestrator.launcher import run_scenario  # noqa: E402
from orchestrator.scenario import load_scenario  # noqa: E402
from tests.helpers import free_port, stop_session, wait_for_nodes  # noqa: E402

RAY_NAMES = (b"ray::", b"raylet", b"gcs_server", b"dashboard", b"runtime_env")


def _ray_pids() -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if int(entry) != os.getpid() and any(name in cmdline for name in RAY_NAMES):
            pids.append(int(entry))
    return pids


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _listening_ports() -> int:
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            count += sum(1 for line in list(lines)[1:] if line.split()[3] == "0A")
    return count


def snapshot() -> dict[str, float]:
    ray = _ray_pids()
    return {
        "ray processes": len(ray),
        "driver open files": len(os.listdir("/proc/self/fd")),
        "listening ports": _listening_ports(),
        "driver MiB": round(_rss_mib(os.getpid()), 1),
        "ray MiB": round(sum(_rss_mib(pid) for pid in ray), 1),
    }


def start_head(sites: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    address = f"127.0.0.1:{port}"
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}
    resources = json.dumps({f"airlock_site_{site}": 1000 for site in sites})
    head = subprocess.Popen(
        [sys.executable, str(ROOT / "deploy" / "loopback_ray.py"), "start", "--head"]
        + [f"--port={port}", "--node-ip-address=127.0.0.1", "--include-dashboard=false"]
        + [f"--resources={resources}", "--block"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    wait_for_nodes(address, env, nodes=1)
    return head, address


def settle(limit: int, seconds: float = 15) -> None:
    """Wait until Ray's processes are back to `limit` (Ray ends a run's
    actors after the run returns); a process that stays is a leak, and shows."""
    deadline = time.monotonic() + seconds
    while len(_ray_pids()) > limit and time.monotonic() < deadline:
        time.sleep(0.5)


def soak(scenario_name: str, runs: int, address: str | None) -> list[dict[str, float]]:
    scenario, text = load_scenario(scenario_name)
    baseline = len(_ray_pids())  # the head's own processes, or none
    rows = []
    for number in range(1, runs + 1):
        out = Path(tempfile.mkdtemp(prefix="airlock-soak-")) / "run"
        began = time.monotonic()
        result = run_scenario(scenario, text, out=out, address=address)
        seconds = time.monotonic() - began
        if result.failure or not result.audit.ok:
            raise SystemExit(f"run {number} failed: {result.failure or 'audit'} ({out})")
        subprocess.run(["rm", "-rf", str(out.parent)], check=False)
        settle(baseline)
        row = {"run": number, "seconds": round(seconds, 1), **snapshot()}
        rows.append(row)
        print("  ".join(f"{k} {v}" for k, v in row.items()), flush=True)
    return rows


def growth(rows: list[dict[str, float]]) -> str:
    first, last = rows[0], rows[-1]
    keys = [k for k in first if k not in ("run", "seconds")]
    return ", ".join(f"{k} {last[k] - first[k]:+g}" for k in keys)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10, help="runs in a row per mode")
    parser.add_argument("--scenario", default="walkthrough", help="a built-in scenario or file")
    parser.add_argument("--mode", choices=("one", "fresh", "both"), default="both")
    add_json_option(parser)
    args = parser.parse_args()
    sites = load_scenario(args.scenario)[0].site_names
    print("before:", snapshot())
    results = {}
    if args.mode in ("one", "both"):
        head, address = start_head(sites)
        try:
            print(f"one Ray instance at {address}:")
            results["one Ray instance"] = soak(args.scenario, args.runs, address)
        finally:
            ray.shutdown()  # the driver's connection to the head
            stop_session(head)
    if args.mode in ("fresh", "both"):
        print("a fresh embedded Ray each run:")
        results["fresh embedded Ray"] = soak(args.scenario, args.runs, None)
    print("after:", snapshot())
    for mode, rows in results.items():
        print(
            f"{mode}, {args.runs} x {args.scenario}, growth from run 1 to {args.runs}: "
            + growth(rows)
        )
    figures = Figures()
    for mode, rows in results.items():
        for row in rows:
            figures.row("runs", mode=mode, **row)
        # seconds of the last run against the first: does a long soak slow down?
        figures.ratio(
            f"{mode.replace(' ', '_')}_last_vs_first_run", rows[-1]["seconds"] / rows[0]["seconds"]
        )
    figures.write(args.json)


if __name__ == "__main__":
    main()

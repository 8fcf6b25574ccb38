"""`airlock trace`: the Chrome trace and the OTLP export of a walkthrough run,
read back and counted against the run's own logs and manifest."""

from __future__ import annotations

import datetime
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from orchestrator.trace import chrome_trace, load_timeline, otlp_trace
from orchestrator.trace.otlp import ORCHESTRATOR
from tests.helpers import airlock

PRODUCER, CONSUMER = 4, 5  # OTLP span kinds
STATUS_ERROR = 2


def _logs(run: Path) -> dict[str, list[dict[str, Any]]]:
    return {
        party.name: [json.loads(line) for line in (party / "log.jsonl").read_text().splitlines()]
        for party in (run / "parties").iterdir()
    }


def _crossings(run: Path) -> tuple[int, int]:
    """(envelopes that reached a receiver's boundary, of which refused there),
    counted on both sides of the logs, which must agree."""
    entries = [e for party in _logs(run).values() for e in party]
    received = [e for e in entries if e["direction"] == "in" and e["header_sha256"]]
    # what a sender logged of an envelope that reached its peer: delivered, replied, refused
    answered = [
        e
        for e in entries
        if e["direction"] == "out" and e["outcome"] in ("delivered", "replied", "refused")
    ]
    assert len(received) == len(answered)
    return len(received), sum(e["outcome"] == "refused" for e in received)


def _manifest(run: Path) -> dict[str, Any]:
    return json.loads((run / "manifest.json").read_text())


def _export(run: Path, out: Path, format: str) -> Any:
    done = airlock("trace", str(run), "--out", str(out), "--format", format)
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())


def test_chrome_trace_has_a_process_per_party_and_an_arrow_per_envelope(
    default_run: Path, tmp_path: Path
) -> None:
    trace = _export(default_run, tmp_path / "trace.json", "chrome")
    events = trace["traceEvents"]
    manifest = _manifest(default_run)
    names = {e["pid"]: e["args"]["name"] for e in events if e["name"] == "process_name"}
    assert sorted(names.values()) == sorted(manifest["parties"])
    slices = [e for e in events if e["ph"] == "X"]
    actions = [e for e in slices if e["cat"].startswith("action")]
    assert sorted((names[e["pid"]], e["name"]) for e in actions) == sorted(
        (a["party"], a["action"]) for a in manifest["actions"]
    )
    # flows: each bind_id leaves one slice and enters one, on two parties
    ends: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
    for e in slices:
        if "bind_id" in e:
            ends[e["bind_id"]]["out" if e.get("flow_out") else "in"] = e
    assert all(set(pair) == {"out", "in"} for pair in ends.values())
    assert all(pair["out"]["pid"] != pair["in"]["pid"] for pair in ends.values())
    crossed, refused = _crossings(default_run)
    assert len(ends) == crossed
    refused_arrows = [p for p in ends.values() if p["in"]["cat"] == "envelope,refused"]
    assert len(refused_arrows) == refused == 1
    (arrow,) = refused_arrows
    assert (names[arrow["out"]["pid"]], names[arrow["in"]["pid"]]) == ("deployer", "guidelines_db")
    assert arrow["in"]["args"]["refusal"] == "RULE_NOT_PERMITTED"
    # the withheld prompt never left alice: a slice of hers, no arrow
    (withheld,) = [e for e in slices if e["cat"] == "envelope,withheld"]
    assert names[withheld["pid"]] == "alice" and "bind_id" not in withheld
    assert withheld["args"]["refusal"] == "GUARANTEE_VIOLATED"
    _assert_nested(slices)


def _assert_nested(slices: list[dict[str, Any]]) -> None:
    """On each lane, slices nest or follow one another (what viewers require)."""
    lanes: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    for e in slices:
        lanes[(e["pid"], e["tid"])].append(e)
    for lane in lanes.values():
        open_ends: list[int] = []
        for e in sorted(lane, key=lambda e: (e["ts"], -e["dur"])):
            assert e["dur"] > 0
            while open_ends and open_ends[-1] <= e["ts"]:
                open_ends.pop()
            assert not open_ends or e["ts"] + e["dur"] <= open_ends[-1], e
            open_ends.append(e["ts"] + e["dur"])


def test_otlp_trace_links_the_receivers_span_to_the_senders(
    default_run: Path, tmp_path: Path
) -> None:
    request = _export(default_run, tmp_path / "trace.otlp.json", "otlp")
    manifest = _manifest(default_run)
    services = []
    spans: dict[str, tuple[str, dict[str, Any]]] = {}
    for resource in request["resourceSpans"]:
        attributes = {a["key"]: a["value"] for a in resource["resource"]["attributes"]}
        service = attributes["service.name"]["stringValue"]
        services.append(service)
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                spans[span["spanId"]] = (service, span)
    assert sorted(services) == sorted([*manifest["parties"], ORCHESTRATOR])
    assert len({span["traceId"] for _, span in spans.values()}) == 1
    pairs = []
    for service, span in spans.values():
        parent = spans.get(span.get("parentSpanId", ""))
        if parent is not None and parent[0] != service and span["kind"] == CONSUMER:
            assert parent[1]["kind"] == PRODUCER
            pairs.append((parent, (service, span)))
    crossed, refused = _crossings(default_run)
    assert len(pairs) == crossed
    failed = [(s, r) for s, r in pairs if r[1]["status"].get("code") == STATUS_ERROR]
    assert len(failed) == refused == 1
    ((sender, _), (receiver, span)), *_ = failed
    assert (sender, receiver) == ("deployer", "guidelines_db")
    attributes = {a["key"]: a["value"] for a in span["attributes"]}
    assert attributes["airlock.refusal"] == {"stringValue": "RULE_NOT_PERMITTED"}
    assert attributes["airlock.step"] == {"stringValue": "sealed_prompt"}
    assert attributes["airlock.labels"]["arrayValue"]["values"] == [
        {"stringValue": "prompt:alice@ciphertext"}
    ]
    # the span starts at the receiver's own log entry
    entry = _logs(default_run)["guidelines_db"][2]
    logged = datetime.datetime.fromisoformat(entry["time"])
    assert int(span["startTimeUnixNano"]) // 1000 == round(logged.timestamp() * 1e6)
    actions = [s for _, s in spans.values() if s["kind"] == 1 and "parentSpanId" in s]
    assert len(actions) == len(manifest["actions"])


def test_trace_of_the_same_run_is_the_same_file(default_run: Path) -> None:
    assert chrome_trace(load_timeline(default_run)) == chrome_trace(load_timeline(default_run))
    assert otlp_trace(load_timeline(default_run)) == otlp_trace(load_timeline(default_run))


def test_trace_bad_input_is_one_line(default_run: Path, tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("")
    cases = {
        (str(tmp_path), "--out", str(tmp_path / "t.json")): "is not a run directory",
        (str(default_run), "--out", str(tmp_path / "t.json"), "--format", "svg"): (
            "unknown trace format 'svg' (known: chrome, otlp)"
        ),
        (str(default_run), "--out", str(a_file / "t.json")): "cannot write",
        (str(default_run), "--out", str(tmp_path)): "cannot write",
    }
    for args, message in cases.items():
        done = airlock("trace", *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    help_text = airlock("trace", "--help").stdout
    for opener in ("ui.perfetto.dev", "chrome://tracing", "OpenTelemetry Collector"):
        assert opener in help_text

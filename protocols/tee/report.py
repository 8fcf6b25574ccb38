"""The tee stage in the run's report: each action's result in brief, as for
any stage, then what padding cost: per end user, the buckets its sealed
prompts and answers were padded to and the bytes that added."""

from __future__ import annotations

import json
from typing import Any

from parties.protocol import FINGERPRINTS

BRIEF = 240


def _brief(result: Any) -> str:
    if isinstance(result, dict):
        result = {k: v for k, v in result.items() if k not in (FINGERPRINTS, "padding")}
    text = json.dumps(result)
    return text if len(text) <= BRIEF else text[: BRIEF - 3] + "..."


def _row(party: str, what: str, cost: dict[str, Any]) -> str:
    buckets = ", ".join(str(b) for b in cost["buckets"])
    used = ", ".join(f"{b}: {n}" for b, n in cost["per_bucket"].items()) or "-"
    added = f"{cost['added_bytes']}"
    if cost["count"]:
        added += f" ({cost['added_min']} to {cost['added_max']} each)"
    return (
        f"| {party} | {what} | {buckets} | {used} | {cost['plaintext_bytes']} "
        f"| {cost['padded_bytes']} | {added} |"
    )


def report(actions: list[dict[str, Any]]) -> list[str]:
    lines = []
    for action in actions:
        tag = "adversary " if action["adversarial"] else ""
        lines.append(f"- {tag}{action['party']} {action['action']}: {_brief(action['result'])}")
    padded = [a for a in actions if isinstance(a["result"], dict) and "padding" in a["result"]]
    if not padded:
        return lines
    lines += [
        "",
        "Sealed prompts and answers are padded inside the seal to the scenario's size "
        "buckets (bytes of plaintext); the host sees only the bucket:",
        "",
        "| party | sealed | buckets | messages per bucket | plaintext bytes | padded bytes "
        "| bytes added |",
        "|---|---|---|---|---:|---:|---:|",
    ]
    for action in padded:
        padding = action["result"]["padding"]
        lines.append(_row(action["party"], "prompts", padding["requests"]))
        lines.append(_row(action["party"], "answers", padding["answers"]))
    return lines

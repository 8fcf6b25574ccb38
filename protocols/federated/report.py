"""The federated section of a run's report.md: rounds, privacy, leakage."""

from __future__ import annotations

from typing import Any


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def report(actions: list[dict[str, Any]]) -> list[str]:
    by_action: dict[str, list[dict[str, Any]]] = {}
    for action in actions:
        by_action.setdefault(action["action"], []).append(action)
    lines = ["## Federated training", ""]
    published = by_action.get("publish_model", [])
    if not published:
        return lines + ["Training did not finish: no model was published.", ""]
    summary = published[0]["result"]
    lines += [
        f"Mode `{summary['mode']}`; held-out public text after training: "
        f"{summary['utility_bits_per_char']} bits/char"
        + (
            f"; (epsilon, delta) = ({summary['epsilon']}, {summary['delta']}) "
            "at the contributor level."
            if summary.get("epsilon") is not None
            else "; no differential privacy."
        ),
        "",
        "| round | survivors | dropped | epsilon | seconds | bits/char |",
        "|---:|---|---|---:|---:|---:|",
    ]
    for entry in summary["rounds"]:
        dropped = "; ".join(f"{n}: {why}" for n, why in entry["dropped"].items()) or "-"
        if entry.get("discarded"):
            dropped += f" (round discarded: {entry['discarded']})"
        lines.append(
            f"| {entry['round']} | {', '.join(entry['survivors'])} | {dropped} | "
            f"{_cell(entry['epsilon'])} | {entry['seconds']} | {entry['utility_bits_per_char']} |"
        )
    lines += [
        "",
        "What an outsider holding the model learns, measured by each contributor on its own data:",
        "",
        "| contributor | updates sent | own epsilon | canary exposure (bits)"
        " | control exposure (bits) | MIA AUC | MIA TPR at 1% FPR |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    maximum = None
    for action in by_action.get("evaluate_leakage", []):
        result = action["result"]
        if not result.get("evaluated"):
            lines.append(f"| {action['party']} | | | {result.get('why', '-')} | | | |")
            continue
        maximum = result["exposure_max_bits"]
        lines.append(
            f"| {action['party']} | {result['updates_sent']} | {_cell(result['own_epsilon'])} | "
            f"{', '.join(map(str, result['exposure_bits'])) or '-'} | "
            f"{', '.join(map(str, result['control_exposure_bits']))} | "
            f"{result['mia_auc']} | {result['mia_tpr_at_1pct_fpr']} |"
        )
    if maximum is not None:
        lines += [
            "",
            f"Exposure is estimated against sampled secrets; it cannot show more than "
            f"{maximum} bits. Control canaries were never inserted: their exposure is "
            "the random baseline (about 1.4 bits expected). MIA AUC 0.5 is chance. "
            "Own epsilon: each contributor's accountant over the noised updates it sent "
            "(it joins each round once, at most the scenario's number), beside the "
            "aggregator's above.",
        ]
    return lines + [""]

"""Run directories as things to list and compare: what `airlock runs`,
`airlock diff` and the Python API read from a run directory (its manifest
and audit.json, written by `airlock run`), and the `--out` check."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parties.errors import ConfigError

MANIFEST = "manifest.json"
AUDIT = "audit.json"


def prepare_out(out: Path | None, force: bool) -> None:
    """`--out` names a new or empty folder; an existing run is replaced only
    with `--force`, and a folder that is not a run is never emptied."""
    if out is None or not out.exists():
        return
    if not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    if not any(out.iterdir()):
        return
    if not (out / MANIFEST).is_file():
        raise ConfigError(
            f"--out {out}: a folder that is not empty and not a run directory; "
            "name a new folder (it is never emptied, even with --force)"
        )
    if not force:
        raise ConfigError(
            f"--out {out}: already holds a run; name a new folder, or give --force to replace it"
        )
    shutil.rmtree(out)


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    return data if isinstance(data, dict) else {}


@dataclass
class RunSummary:
    """One run directory, as its manifest and audit.json record it."""

    path: Path
    scenario: str
    outcome: str
    started: str
    claims_ok: int
    claims: int
    failure: str | None = None
    manifest: dict[str, Any] = field(default_factory=dict, repr=False)
    audit: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def verdict(self) -> str:
        if not self.audit:
            return "not audited"
        return "every claim holds" if self.claims_ok == self.claims else "some claims fail"


def read_run(path: Path) -> RunSummary:
    """The run in `path`; ConfigError if it is not a run directory."""
    if not (path / MANIFEST).is_file():
        raise ConfigError(f"{path} is not a run directory (no {MANIFEST})")
    manifest = _json(path / MANIFEST)
    audit = _json(path / AUDIT)
    claims = audit.get("claims", [])
    return RunSummary(
        path=path,
        scenario=str(manifest.get("scenario", "?")),
        outcome=str(manifest.get("outcome", "?")),
        started=str(manifest.get("started", "")),
        claims_ok=sum(1 for c in claims if c.get("ok")),
        claims=len(claims),
        failure=manifest.get("failure"),
        manifest=manifest,
        audit=audit,
    )


def list_runs(root: Path) -> list[RunSummary]:
    """The run directories directly under `root`, oldest first."""
    if not root.is_dir():
        raise ConfigError(f"--dir {root}: no such folder (runs are written to runs/ by default)")
    found = [read_run(p) for p in root.iterdir() if (p / MANIFEST).is_file()]
    return sorted(found, key=lambda r: (r.started, r.path.name))


def figures(manifest: dict[str, Any]) -> dict[str, float]:
    """The numbers each action's result recorded, by `stage/party/action[/round]: key`
    (nested keys joined by dots; lists left out)."""
    found: dict[str, float] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, bool):
            return
        if isinstance(value, int | float):
            found[prefix] = float(value)
        elif isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix.count(":") else f"{prefix}: {key}", inner)

    for action in manifest.get("actions", []):
        if not isinstance(action, dict):
            continue
        where = f"{action.get('stage')}/{action.get('party')}/{action.get('action')}"
        if action.get("round") is not None:
            where += f"/{action['round']}"
        walk(where, action.get("result"))
    return found


def answers(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Each answered question of a run: the stage, the party that asked and
    what its result recorded (prompt, documents, answer or output)."""
    found = []
    for action in manifest.get("actions", []):
        result = action.get("result") if isinstance(action, dict) else None
        if not isinstance(result, dict):
            continue
        for key in ("answers", "outputs"):
            for item in result.get(key) or []:
                if isinstance(item, dict):
                    found.append(
                        {"stage": action.get("stage"), "party": action.get("party"), **item}
                    )
    return found


@dataclass
class RunDiff:
    visibility: list[tuple[str, str, str | None, str | None]]  # party, asset, before, after
    claims: list[tuple[str, str, str]]  # claim, before, after
    figures: list[tuple[str, float | None, float | None]]


def _claim_state(claim: dict[str, Any] | None) -> str:
    if claim is None:
        return "absent"
    return ("holds" if claim.get("ok") else "fails") + f" ({claim.get('checked', 0)} checked)"


def diff_runs(a: RunSummary, b: RunSummary) -> RunDiff:
    """What changed from run `a` to run `b`."""
    seen: list[tuple[str, str, str | None, str | None]] = []
    va, vb = a.audit.get("visibility", {}), b.audit.get("visibility", {})
    for party in sorted(set(va) | set(vb)):
        pa, pb = va.get(party, {}), vb.get(party, {})
        for asset in sorted(set(pa) | set(pb)):
            if pa.get(asset) != pb.get(asset):
                seen.append((party, asset, pa.get(asset), pb.get(asset)))
    ca = {c.get("claim"): c for c in a.audit.get("claims", [])}
    cb = {c.get("claim"): c for c in b.audit.get("claims", [])}
    claims = []
    for name in [*ca, *(n for n in cb if n not in ca)]:
        before, after = _claim_state(ca.get(name)), _claim_state(cb.get(name))
        if before != after:
            claims.append((str(name), before, after))
    fa, fb = figures(a.manifest), figures(b.manifest)
    numbers = [
        (key, fa.get(key), fb.get(key))
        for key in [*fa, *(k for k in fb if k not in fa)]
        if fa.get(key) != fb.get(key)
    ]
    return RunDiff(seen, claims, numbers)

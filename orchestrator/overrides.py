"""Command-line overrides of a scenario: `--set KEY=VALUE`.

A KEY is a dotted path into the scenario's tables, as the file writes them:
`run.action_timeout_s=600`, `parties.hospital_1.synthetic_notes=50`,
`stages.train.params.rounds=5` (a stage by its name or its index). A VALUE
is read as a TOML value (`5`, `2e-3`, `true`, `"secagg"`, `[1, 2]`), else
taken as a string. A few keys are counts that stamp out parties from the
scenario's first party of a role: `contributors=100` makes 100 data
contributors, copies of the first one (those already there are kept, in
order, up to the count). The scenario is then checked whole, as a file is:
every error names the `--set` key it came from.
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

import tomli_w

from orchestrator.scenario import Scenario, load_scenario, parse_scenario
from parties.errors import ConfigError

# `--set COUNT=N`: N parties of the role, stamped from its first party
COUNTS = {
    "contributors": "data_contributor",
    "databases": "external_database",
    "users": "end_user",
}
MAX_COUNT = 1000
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$")


def parse_assignment(assignment: str) -> tuple[str, Any]:
    """`KEY=VALUE` -> (key, value), the value read as TOML where it is one."""
    key, equals, raw = assignment.partition("=")
    key = key.strip()
    if not equals or not key:
        raise ConfigError(
            f"--set {assignment!r}: expected KEY=VALUE (e.g. run.action_timeout_s=600)"
        )
    if not _KEY.match(key):
        raise ConfigError(f"--set {key}: not a dotted key (e.g. stages.train.params.rounds)")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def _stage_index(stages: list[Any], part: str, key: str) -> int:
    names = [s.get("name") for s in stages if isinstance(s, dict)]
    if part.isdigit() and int(part) < len(stages):
        return int(part)
    if part in names:
        return names.index(part)
    raise ConfigError(
        f"--set {key}: no stage {part!r} (the scenario's stages: {', '.join(map(str, names))})"
    )


def _set_path(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node: Any = data
    for depth, part in enumerate(parts[:-1]):
        where = ".".join(parts[: depth + 1])
        if isinstance(node, list):
            if where.count(".") != 1 or not where.startswith("stages."):
                raise ConfigError(f"--set {key}: {where} is a list; only stages are named")
            node = node[_stage_index(node, part, key)]
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"--set {key}: {'.'.join(parts[:depth])} is a value, not a table")
        if part not in node:
            if depth == 0 and part not in Scenario.model_fields:
                known = ", ".join(sorted(Scenario.model_fields))
                raise ConfigError(f"--set {key}: no key {part!r} in a scenario (keys: {known})")
            if depth == 1 and parts[0] == "parties":
                known = ", ".join(sorted(node))
                raise ConfigError(f"--set {key}: no party {part!r} (the parties: {known})")
            node[part] = {}
        node = node[part]
    last = parts[-1]
    if isinstance(node, list):
        raise ConfigError(f"--set {key}: a whole stage cannot be set; set its keys")
    if not isinstance(node, dict):
        raise ConfigError(f"--set {key}: {'.'.join(parts[:-1])} is a value, not a table")
    if len(parts) == 1 and last not in Scenario.model_fields:
        known = ", ".join(sorted([*Scenario.model_fields, *COUNTS]))
        raise ConfigError(f"--set {key}: no key {last!r} in a scenario (keys: {known})")
    node[last] = value


def _stamp(data: dict[str, Any], key: str, value: Any) -> None:
    """`contributors=N`: N parties of the role, copies of its first party."""
    role = COUNTS[key]
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_COUNT:
        raise ConfigError(
            f"--set {key}: expected a whole number from 1 to {MAX_COUNT}, not {value!r}"
        )
    parties: dict[str, Any] = data.get("parties", {})
    ofrole = [name for name, spec in parties.items() if spec.get("role") == role]
    if not ofrole:
        raise ConfigError(f"--set {key}: the scenario has no {role} to copy")
    template = ofrole[0]
    stem = re.sub(r"_?\d+$", "", template) or role
    keep = set(ofrole[:value])
    stamped: dict[str, Any] = {
        n: s for n, s in parties.items() if s.get("role") != role or n in keep
    }
    number = 1
    while len(keep) < value:
        name = f"{stem}_{number}"
        number += 1
        if name not in parties and name not in stamped:
            stamped[name] = dict(parties[template])
            keep.add(name)
    data["parties"] = stamped


def apply_overrides(data: dict[str, Any], pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """The scenario's tables with each (key, value) laid over them, in order
    (counts first, so that a later key can set a stamped party)."""
    for key, value in pairs:
        if key in COUNTS:
            _stamp(data, key, value)
    for key, value in pairs:
        if not _KEY.match(key):
            raise ConfigError(f"--set {key}: not a dotted key (e.g. stages.train.params.rounds)")
        if key not in COUNTS:
            _set_path(data, key, value)
    return data


def load_scenario_with(
    name_or_path: str, pairs: list[tuple[str, Any]] | list[str]
) -> tuple[Scenario, str]:
    """`load_scenario`, then the overrides (`KEY=VALUE` strings, or (key,
    value) pairs) laid over it. The text returned (kept in the run
    directory) is the scenario as it ran."""
    scenario, text = load_scenario(name_or_path)
    if not pairs:
        return scenario, text
    parsed = [parse_assignment(p) if isinstance(p, str) else p for p in pairs]
    data = apply_overrides(tomllib.loads(text), parsed)
    shown = " ".join(f"--set {key}={_shown(value)}" for key, value in parsed)
    source = f"{name_or_path} with {shown}"
    try:
        text = f"# {source}\n" + tomli_w.dumps(data)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {exc}") from None
    try:
        return parse_scenario(text, "scenario"), text
    except ConfigError as exc:
        message = str(exc).removeprefix("scenario: ")
        raise ConfigError(f"{source}: {message}") from None


def _shown(value: Any) -> str:
    try:
        return tomli_w.dumps({"v": value})[4:].strip()
    except (TypeError, ValueError):
        return repr(value)

"""Scenario TOML for federated runs of any size (the built-in `federated`
scenario has three contributors); used by the tests and the benchmark."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def federated_scenario(
    contributors: int,
    params: Mapping[str, Any],
    *,
    update_form: str = "masked",
    notes: int = 100,
    canaries: int = 1,
    name: str = "federated-generated",
) -> str:
    """`contributors` hospitals and a model creator; updates may reach the
    aggregator at most in `update_form` (plaintext for plain mode)."""
    parts = [f'name = "{name}"\n']
    for i in range(1, contributors + 1):
        parts.append(
            f'[parties.hospital_{i}]\nrole = "data_contributor"\nsite = "training"\n'
            f"synthetic_notes = {notes}\ncanaries = {canaries}\n"
        )
    parts.append('[parties.model_creator]\nrole = "model_creator"\nsite = "training"\n')
    inline = ", ".join(f"{k} = {_toml_value(v)}" for k, v in params.items())
    parts.append(f'[[stages]]\nname = "train"\nprotocol = "federated"\nparams = {{ {inline} }}\n')
    parts.append(
        '[[guarantees]]\nname = "updates reach the aggregator at most '
        f'{update_form}"\nasset = "update:*"\nviewers = ["model_creator"]\n'
        f'max_form = "{update_form}"\n'
    )
    parts.append(
        '[[guarantees]]\nname = "training data never leaves a contributor"\n'
        'asset = "train:*"\nviewers = ["model_creator", "data_contributor"]\n'
        'max_form = "digest"\n'
    )
    return "\n".join(parts)

"""Contributors and an aggregator as in-process parties (real gRPC with
mutual TLS), each configured with the same stage settings, driven action by
action so that a test can stop in the middle of a round and look inside."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from parties.errors import Refused
from parties.labels import Form, Label
from parties.payload import pack
from parties.roles import Role
from protocols.federated.roles import Aggregator, Contributor, ContributorRound
from protocols.federated.secagg import decode_sum
from tests.helpers import Parties, running_parties

FAST = {"local_steps": 2, "pretrain_steps": 0, "exposure_samples": 20, "batch": 8}
ROUND = ("start_round", "share_keys", "collect_updates", "check_consistency", "aggregate")
CREATOR = "model_creator"
CONTROL = [Label("federated:model_creator", Form.PUBLIC)]


@contextlib.contextmanager
def federation(tmp: Path, contributors: int, **params: Any) -> Iterator[Parties]:
    """`contributors` hospitals (hospital_1...) and the model creator, all
    configured with `params` (plus FAST)."""
    names = [f"hospital_{i}" for i in range(1, contributors + 1)]
    roles = {name: Role.DATA_CONTRIBUTOR for name in names} | {CREATOR: Role.MODEL_CREATOR}
    holdings = {name: {"synthetic_notes": 10} for name in names}
    settings = {**FAST, **params}
    with running_parties(
        tmp, roles=roles, protocol="federated", holdings=holdings, settings=settings
    ) as started:
        yield started


def contributor_names(started: Parties) -> list[str]:
    return sorted(n for n in started.runtimes if n != CREATOR)


def act(started: Parties, party: str, action: str, **extra: Any) -> dict[str, Any]:
    """Run `party`'s action with the settings every party was configured with."""
    params = {**started[party].settings["federated"], **extra}
    return started[party].act("federated", action, params)


def prepare(started: Parties) -> None:
    for name in contributor_names(started):
        act(started, name, "prepare_data")
    act(started, CREATOR, "pretrain")


def play(started: Parties, actions: tuple[str, ...], number: int = 1) -> dict[str, Any]:
    """The aggregator's `actions` of round `number`; the last one's result."""
    result: dict[str, Any] = {}
    for action in actions:
        result = act(started, CREATOR, action, round=number)
    return result


def aggregator_state(started: Parties) -> Aggregator:
    state = started[CREATOR].state["federated"]["aggregator"]
    assert isinstance(state, Aggregator)
    return state


def contributor_state(started: Parties, name: str) -> Contributor:
    state = started[name].state["federated"]["contributor"]
    assert isinstance(state, Contributor)
    return state


def round_of(started: Parties, name: str) -> ContributorRound:
    current = contributor_state(started, name).round
    assert current is not None
    return current


def sent_sum(started: Parties, names: list[str], max_abs: float) -> np.ndarray:
    """The sum of what `names` masked, decoded: what unmasking must give."""
    total = np.zeros_like(round_of(started, names[0]).sent)
    for name in names:
        sent = round_of(started, name).sent
        assert sent is not None
        total += sent
    return decode_sum(total, len(names), max_abs).astype(np.float64)


def refusal(started: Parties, receiver: str, step: str, meta: dict[str, Any]) -> str:
    """Deliver `step` from the aggregator; the receiver's handler must refuse
    it: return its reason."""
    try:
        started[CREATOR].deliver(receiver, "federated", step, CONTROL, pack(meta), "round-1")
    except Refused as refused:
        assert refused.reason_name == "HANDLER_FAILED", refused
        return refused.detail
    raise AssertionError(f"{receiver} accepted {step} {meta}")

"""Contributors and an aggregator as in-process parties (real gRPC with
mutual TLS), each configured with the same stage settings, driven action by
action so that a test can stop in the middle of a round and look inside."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from parties.errors import Refused
from parties.labels import Form, Label
from parties.payload import pack
from parties.protocol import RoleState
from parties.roles import Role
from protocols.federated.aggregator import AggregatorRound, AggregatorState
from protocols.federated.contributor import ContributorRound, ContributorState
from protocols.federated.secagg import decode_sum
from tests.helpers import Parties, running_parties

FAST = {"local_steps": 2, "exposure_samples": 20, "batch": 8}
ROUND = ("start_round", "share_keys", "collect_updates", "check_consistency", "aggregate")
CREATOR = "model_creator"
CONTROL = [Label("federated:model_creator", Form.PUBLIC)]


@contextlib.contextmanager
def federation(
    tmp: Path, contributors: int, *, aggregator: str | None = None, **params: Any
) -> Iterator[Parties]:
    """`contributors` hospitals (hospital_1...) and the model creator, all
    configured with `params` (plus FAST); the model creator plays the
    adversary `aggregator`, if given."""
    names = [f"hospital_{i}" for i in range(1, contributors + 1)]
    roles = {name: Role.DATA_CONTRIBUTOR for name in names} | {CREATOR: Role.MODEL_CREATOR}
    holdings = {name: {"synthetic_notes": 10} for name in names}
    settings = {**FAST, **params}
    with running_parties(
        tmp,
        roles=roles,
        protocol="federated",
        holdings=holdings,
        settings=settings,
        adversaries={CREATOR: aggregator} if aggregator else None,
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
    act(started, CREATOR, "load_model")


def play(started: Parties, actions: tuple[str, ...], number: int = 1) -> dict[str, Any]:
    """The aggregator's `actions` of round `number`; the last one's result."""
    result: dict[str, Any] = {}
    for action in actions:
        result = act(started, CREATOR, action, round=number)
    return result


S = TypeVar("S", bound=RoleState)


def _state(started: Parties, party: str, kind: type[S]) -> S:
    state = started[party].state["federated"]
    assert isinstance(state, kind)
    return state


def aggregator_state(started: Parties) -> AggregatorState:
    return _state(started, CREATOR, AggregatorState)


def aggregator_round(started: Parties) -> AggregatorRound:
    current = aggregator_state(started).round
    assert current is not None
    return current


def contributor_state(started: Parties, name: str) -> ContributorState:
    return _state(started, name, ContributorState)


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


def refusal(
    started: Parties,
    receiver: str,
    step: str,
    meta: dict[str, Any],
    reason: str = "HANDLER_FAILED",
) -> str:
    """Deliver `step` from the aggregator; it must be refused with `reason`
    (OUT_OF_STEP: the round is not where the step needs it; BAD_PAYLOAD:
    the step's message definition refuses it): return the refusal's detail."""
    try:
        started[CREATOR].deliver(receiver, "federated", step, CONTROL, pack(meta), "round-1")
    except Refused as refused:
        assert refused.reason_name == reason, refused
        return refused.detail
    raise AssertionError(f"{receiver} accepted {step} {meta}")

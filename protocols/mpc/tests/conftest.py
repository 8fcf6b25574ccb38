"""The mpc protocol's parties in this process (real gRPC with mutual TLS),
and two communicator ranks in threads."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from models.transformer import ModelConfig, Transformer
from parties.roles import Role
from protocols.mpc import roles
from protocols.mpc.communicator import BoundaryCommunicator, Inbox
from tests.helpers import Parties, running_parties

MPC_ROLES = {
    "alice": Role.END_USER,
    "model_creator": Role.MODEL_CREATOR,
    "deployer": Role.DEPLOYER,
    "compute": Role.COMPUTE,
    "dealer": Role.DEALER,
}


@pytest.fixture
def mpc_parties(tmp_path: Path) -> Iterator[Parties]:
    with running_parties(tmp_path, roles=MPC_ROLES, protocol="mpc") as started:
        yield started


def share_instead(monkeypatch: pytest.MonkeyPatch, model: Transformer) -> None:
    """The model creator (in this process) shares `model` instead of the
    shipped checkpoint, through the protocol's own code path."""
    monkeypatch.setattr(roles, "model_to_share", lambda ctx, settings: model)


@pytest.fixture
def small_model(monkeypatch: pytest.MonkeyPatch) -> Transformer:
    """Tests of the machinery share the small test model (ModelConfig()'s
    defaults: the checkpoint's vocabulary and context, a narrower model)."""
    model = Transformer(ModelConfig())
    share_instead(monkeypatch, model)
    return model


def pair() -> list[BoundaryCommunicator]:
    """Ranks 0 and 1, each delivering straight into the other's inbox."""
    inboxes = [Inbox(), Inbox()]
    names = ["deployer", "compute"]

    def sender(me: int) -> Callable[[str, bytes], None]:
        return lambda peer, payload: inboxes[names.index(peer)].put(me, payload)

    return [BoundaryCommunicator(r, names, sender(r), inboxes[r]) for r in (0, 1)]


def run_both(function: Callable[[BoundaryCommunicator, int], Any]) -> list[Any]:
    """`function(communicator, rank)` on both ranks at once, in threads."""
    results: list[Any] = [None, None]
    communicators = pair()

    def run(rank: int) -> None:
        results[rank] = function(communicators[rank], rank)

    threads = [threading.Thread(target=run, args=(r,)) for r in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results

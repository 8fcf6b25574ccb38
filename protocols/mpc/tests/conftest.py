"""The mpc protocol's parties in this process (real gRPC with mutual TLS),
and two communicator ranks in threads."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from parties.roles import Role
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

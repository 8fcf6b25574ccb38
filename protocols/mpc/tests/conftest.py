"""The mpc protocol's parties in this process (real gRPC with mutual TLS)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from parties.roles import Role
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

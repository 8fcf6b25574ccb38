"""Misbehaviours of the toy protocol, apart from the honest roles.

inflated_count  a contributor sends a thousand times what it holds (its
                action replaces the honest `send_count`);
late_count      a contributor sends a second count after the collector
                closed the tally: refused as OUT_OF_STEP.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from parties.errors import Refused
from parties.protocol import Adversary, PartyContext, holdings_as
from parties.roles import Role
from tests.toy.roles import Contributor, deliver_count


def inflated_count(ctx: PartyContext, params: Mapping[str, Any]) -> dict[str, Any]:
    return deliver_count(ctx, 1000 * holdings_as(ctx, Contributor).count)


def late_count(ctx: PartyContext, params: Mapping[str, Any]) -> dict[str, Any]:
    try:
        deliver_count(ctx, 1)
    except Refused as refusal:
        return {"refused": refusal.reason_name}
    return {"refused": None}


ADVERSARIES = {
    "inflated_count": Adversary(Role.DATA_CONTRIBUTOR, actions={"send_count": inflated_count}),
    "late_count": Adversary(
        Role.DATA_CONTRIBUTOR, actions={"late_count": late_count}, after_stage="late_count"
    ),
}

"""What each role does in the toy protocols: honest code only."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from parties.envelope import Envelope
from parties.errors import AirlockError
from parties.labels import Form, Label
from parties.protocol import PartyContext, RoleState, holdings_as, sole_peer, state_of
from parties.roles import DataContributor, Role
from parties.store import Kept
from tests.toy.messages import Count, Total
from tests.toy.rules import Step


class Contributor(DataContributor):
    """What a contributor holds for the tally: a count, checked when the
    scenario is parsed (an error names parties.NAME.count)."""

    count: int = Field(default=0, ge=0, le=1000)


# what the collector keeps from the tally stage for the announce stage
KEPT_TOTAL = Kept("tally.total", Total)


class Phase(enum.Enum):
    OPEN = 1  # counts are coming in
    CLOSED = 2  # the total is kept; no count is taken any more


@dataclass
class CollectorState(RoleState):
    phase: Phase = Phase.OPEN
    counts: dict[str, int] = field(default_factory=dict)


def send_count(ctx: PartyContext, params: Mapping[str, Any]) -> dict[str, Any]:
    return deliver_count(ctx, holdings_as(ctx, Contributor).count)


def deliver_count(ctx: PartyContext, count: int) -> dict[str, Any]:
    collector = sole_peer(ctx, Role.MODEL_CREATOR)
    label = Label(f"tally:{ctx.name}", Form.AGGREGATE)
    ctx.deliver(collector, Step.COUNT, [label], Count(count=count).model_dump_json().encode())
    return {"sent": count}


def on_count(ctx: PartyContext, envelope: Envelope) -> None:
    state = state_of(ctx, CollectorState)
    state.expect(Phase.OPEN, doing="a count")
    sender = envelope.header.sender
    if sender in state.counts:
        raise AirlockError(f"{sender} already sent its count")
    # the boundary admitted only a payload that fits Count (messages.py)
    state.counts[sender] = Count.model_validate_json(envelope.payload).count


def close(ctx: PartyContext, params: Mapping[str, Any]) -> dict[str, Any]:
    state = state_of(ctx, CollectorState)
    state.expect(Phase.OPEN, doing="closing the tally")
    state.phase = Phase.CLOSED
    total = Total(value=sum(state.counts.values()), contributors=len(state.counts))
    ctx.store.put(KEPT_TOTAL, total)
    return total.model_dump()


def announce(ctx: PartyContext, params: Mapping[str, Any]) -> dict[str, Any]:
    total = ctx.store.get(KEPT_TOTAL)  # made by this party's tally stage
    for user in ctx.peers(Role.END_USER):
        payload = total.model_dump_json().encode()
        ctx.deliver(user, Step.TOTAL, [Label("tally:total", Form.PUBLIC)], payload)
    return {"announced": total.value}


def on_total(ctx: PartyContext, envelope: Envelope) -> None:
    ctx.state["total"] = Total.model_validate_json(envelope.payload).value

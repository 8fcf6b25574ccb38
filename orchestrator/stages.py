"""Running one stage of a scenario: its protocol's plan, action by action,
with the injected faults of each action and the liveness check after it;
the parties lost on the way are dropouts or the end of the run (`Losses`).
"""

from __future__ import annotations

import datetime
import json
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.hosts import LocalHosts, RayHosts
from orchestrator.scenario import FaultSpec, Scenario, StageSpec
from parties.errors import PartiesLost
from parties.protocol import FINGERPRINTS, Protocol
from protocols import get_protocol

Progress = Callable[[str], None]
Hosts = LocalHosts | RayHosts
KILLED_BY_FAULT = "killed by an injected fault"


@dataclass
class Losses:
    """The parties gone during a run. A dropout is gone where its stage's
    protocol survives the loss of its role: killed by an injected fault, or
    lost (its process died, or it missed a deadline). `lost` says why."""

    dropouts: set[str] = field(default_factory=set)
    lost: dict[str, str] = field(default_factory=dict)

    def take(
        self, lost: dict[str, str], scenario: Scenario, protocol: Protocol, progress: Progress
    ) -> None:
        """Record parties found lost during `protocol`'s stage; raise
        PartiesLost naming those it cannot go on without."""
        fatal = {}
        for party, why in lost.items():
            self.lost.setdefault(party, why)
            if scenario.role_of(party) in protocol.survives_loss_of:
                self.dropouts.add(party)
                progress(f"lost {party} ({why}): a dropout, {protocol.name} goes on without it")
            else:
                fatal[party] = why
        if fatal:
            raise PartiesLost(fatal)


def _utc_now() -> str:
    """Now, as the visibility logs write their times."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds")


def run_stage(
    scenario: Scenario,
    stage: StageSpec,
    params: dict[str, Any],
    hosts: Hosts,
    pids: dict[str, int],
    progress: Progress,
    losses: Losses,
) -> list[dict[str, Any]]:
    """Run one stage's plan (with the protocol's params merged over its
    stages). After each action every party must answer a liveness check: a
    party lost on the way (or killed by an injected fault) whose role the
    protocol survives losing is a dropout and the run goes on; any other
    loss ends the run, naming the party."""
    protocol_name = stage.protocol
    protocol = get_protocol(protocol_name)
    deadlines = scenario.run
    done: list[dict[str, Any]] = []
    plan = [
        (role, [n for n in scenario.parties if scenario.role_of(n) == role], action, number, False)
        for role, action, number in protocol.plan(params, stage.part)
    ]
    last_part = [s.part for s in scenario.stages if s.protocol == protocol_name][-1]
    for name, spec in scenario.parties.items():
        adversary = protocol.adversaries.get(spec.adversary) if spec.adversary else None
        # an adversary's after-stage action runs once, after its protocol's last stage
        if adversary is not None and adversary.after_stage is not None and stage.part == last_part:
            plan.append((scenario.role_of(name), [name], adversary.after_stage, None, True))
    for role, parties, action, number, adversarial in plan:
        timers, faults = [], []
        for fault in scenario.faults:
            due = fault.round is None or fault.round == number
            if fault.action != action or not due or fault.kill not in hosts.alive:
                continue
            if fault.signal is None:  # a signalled party is found lost, with its own reason
                faults.append(fault.kill)
            if fault.before is not None:
                _inject(fault, hosts, pids, progress)
            else:
                timer = threading.Timer(fault.after_s, _inject, (fault, hosts, pids, progress))
                timers.append(timer)
                timer.start()
        if role in protocol.survives_loss_of:  # the protocol copes without them
            parties = [n for n in parties if n in hosts.alive]
        # a dropout of an earlier stage is gone for the rest of the run
        parties = [n for n in parties if n not in losses.dropouts or n in hosts.alive]
        step_params = params if number is None else {**params, "round": number}
        # the orchestrator's clock, from its call to the last party's answer
        # (on Ray the parties of one call act at once): `airlock trace` draws it
        began = _utc_now()
        try:
            answers = hosts.gather(
                {n: ("act", (protocol_name, action, step_params)) for n in parties},
                deadlines.action_timeout_s,
                alive_within=deadlines.control_timeout_s,  # a frozen party is found in that
            )
        finally:
            for timer in timers:
                timer.cancel()
        ended = _utc_now()
        check = hosts.gather({n: ("node", ()) for n in hosts.alive}, deadlines.control_timeout_s)
        for party, error in answers.failed.items():
            progress(f"{protocol_name}: {party} {action} failed: {error}")
        killed = {n: KILLED_BY_FAULT for n in faults if n not in hosts.alive}
        losses.take({**answers.lost, **check.lost, **killed}, scenario, protocol, progress)
        answers.raise_failure()
        for party, result in answers.results.items():
            done.append(
                {
                    "stage": stage.name,
                    "protocol": protocol_name,
                    "party": party,
                    "action": action,
                    "round": number,
                    "adversarial": adversarial,
                    "started": began,
                    "finished": ended,
                    "result": result,
                }
            )
            tag = "adversary " if adversarial else ""
            where = f" (round {number})" if number is not None else ""
            progress(f"{protocol_name}: {tag}{party} {action}{where} -> {brief(result)}")
    return done


def _inject(fault: FaultSpec, hosts: Hosts, pids: dict[str, int], progress: Progress) -> None:
    """Kill the fault's party: through Ray, or by a signal to its pid (which
    the run then has to find out for itself)."""
    if fault.kill not in hosts.alive:
        return
    when = f"before {fault.before}" if fault.before else f"{fault.after_s} s into {fault.during}"
    if fault.signal is None:
        hosts.kill(fault.kill)
        progress(f"fault injected: killed {fault.kill} {when}")
        return
    try:
        os.kill(pids[fault.kill], signal.Signals[fault.signal])
    except ProcessLookupError:  # it died already: the liveness check will tell
        return
    progress(f"fault injected: sent {fault.signal} to {fault.kill} {when}")


def brief(result: Any, limit: int = 240) -> str:
    """A result for the progress line; fingerprints stay in the manifest."""
    if isinstance(result, dict):
        result = {k: v for k, v in result.items() if k != FINGERPRINTS}
    text = json.dumps(result)
    return text if len(text) <= limit else text[: limit - 3] + "..."

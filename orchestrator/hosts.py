"""Where parties run: Ray actors (the real thing) or in this process (tests).

Both offer `gather`: run one method on several parties at once, within a
deadline, and tell apart what each answered, the parties that failed (they
raised an error) and those that were lost (their process died, or they
missed the deadline). A lost party is killed at once, so that its peers are
refused quickly and no process of the run outlives it. `call` is `gather`
where any failure or loss is an error naming the party.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from parties.actor import ControlledHost, ControlSigner, LogKeeper, LogKeeperActor, PartyActor
from parties.errors import AirlockError, PartiesLost, PartyFailed
from parties.runtime import PartyConfig
from protocols import get_protocol

Calls = Mapping[str, tuple[str, tuple[Any, ...]]]  # party -> (method, args)


def site_resource(site: str) -> str:
    return f"airlock_site_{site}"


def _explain(error: BaseException) -> str:
    if isinstance(error, AirlockError):
        return str(error)
    return f"{type(error).__name__}: {error}"


@dataclass
class Answers:
    results: dict[str, Any] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # party -> its error
    lost: dict[str, str] = field(default_factory=dict)  # party -> what it missed

    def raise_failure(self) -> None:
        for party, error in self.failed.items():
            raise PartyFailed(party, error)

    def raise_any(self) -> None:
        """A failure first (it says what went wrong), then the losses."""
        self.raise_failure()
        if self.lost:
            raise PartiesLost(self.lost)


class _Hosts:
    alive: set[str]
    single_machine: bool  # every party on this machine: they listen on bind_host

    def gather(self, calls: Calls, timeout: float, alive_within: float | None = None) -> Answers:
        """Each call's answer within `timeout`; with `alive_within`, a party
        that shows no sign of life for that long while it works is lost then."""
        raise NotImplementedError

    def call(self, calls: Calls, timeout: float) -> dict[str, Any]:
        answers = self.gather(calls, timeout)
        answers.raise_any()
        return answers.results


class LocalHosts(_Hosts):
    """Every party in this process (no Ray); for tests and debugging. There
    are no deadlines here: a party that hangs hangs the run."""

    def __init__(self, configs: Mapping[str, PartyConfig]) -> None:
        self.control = ControlSigner()
        self.hosts = {
            name: ControlledHost(config, self.control.public, get_protocol)
            for name, config in configs.items()
        }
        self.alive = set(self.hosts)
        self.single_machine = True

    def kill(self, party: str) -> None:
        """Stop the party's server; it answers nothing from now on."""
        self.hosts[party].call(self.control.sign(party, "halt"), "halt")
        self.alive.discard(party)

    def salvage(self, party: str, placement: Mapping[str, Any], timeout: float) -> dict[str, bytes]:
        return LogKeeper().salvage(str(placement["workdir"]))

    def gather(self, calls: Calls, timeout: float, alive_within: float | None = None) -> Answers:
        answers = Answers()
        for party, (method, args) in calls.items():
            if party not in self.alive:
                answers.lost[party] = "it was killed"
                continue
            try:
                signed = self.control.sign(party, method, args)
                answers.results[party] = self.hosts[party].call(signed, method, *args)
            except Exception as exc:  # noqa: BLE001 - told, with the party's name
                answers.failed[party] = _explain(exc)
        return answers

    def close(self) -> None:
        for party in self.alive:
            self.hosts[party].stop(self.control.sign(party, "stop"))


def ray_start_failure(embedded: bool, address: str | None, error: BaseException) -> str:
    """What a Ray that did not start says to the user: what happened and what to try."""
    what = f"{type(error).__name__}: {error}".strip().rstrip(":")
    if embedded:
        return (
            f"could not start an embedded Ray on this machine ({what}). Try: check free "
            "memory (`free -h`) and free disk under /tmp (Ray keeps its session there); "
            "stop a Ray left running (`ray stop`); on a busy machine (Ray waits 30 s for "
            "its raylet) retry once it is quieter; or run without Ray to debug: "
            "`airlock run ... --in-process`. "
            "No run directory was written."
        )
    return (
        f"could not join the Ray cluster at {address} ({what}). Try: `ray status "
        f"--address {address}` to see that it runs and is reachable from here, the same "
        "Ray and Python versions on both sides, and RAY_ADDRESS unset if it is stale. "
        "No run directory was written."
    )


class RayHosts(_Hosts):
    """One Ray actor per party, placed by the scenario's sites.

    With no address, an embedded local Ray starts and declares every site as a
    resource; with an address (or RAY_ADDRESS), an existing cluster is used and
    its nodes must carry the `airlock_site_<site>` resources."""

    def __init__(
        self, configs: Mapping[str, PartyConfig], sites: Mapping[str, str], address: str | None
    ) -> None:
        address = address or os.environ.get("RAY_ADDRESS") or None
        self.embedded = address is None
        self.single_machine = self.embedded
        if not ray.is_initialized():
            try:
                if self.embedded:
                    # "local": always a fresh instance, even if a cluster runs here.
                    ray.init(
                        address="local",
                        include_dashboard=False,
                        log_to_driver=False,
                        configure_logging=False,
                        resources={site_resource(s): 1000 for s in set(sites.values())},
                    )
                else:
                    ray.init(address=address, log_to_driver=False, configure_logging=False)
            except Exception as error:  # noqa: BLE001 - Ray's start-up errors have no common type
                with contextlib.suppress(Exception):
                    ray.shutdown()  # what did start (a GCS without its raylet) goes too
                raise AirlockError(ray_start_failure(self.embedded, address, error)) from None
        self._check_sites(set(sites.values()))
        # unnamed actors (no ray.get_actor by a guessable name), each driven
        # by calls signed with a key that never leaves this process
        self.control = ControlSigner()
        self.actors = {
            name: PartyActor.options(  # type: ignore[attr-defined]
                resources={site_resource(sites[name]): 0.001},
            ).remote(config, self.control.public, get_protocol)
            for name, config in configs.items()
        }
        self.alive = set(self.actors)
        self._silent_nodes: set[str] = set()  # nodes where a salvage got no answer

    def kill(self, party: str) -> None:
        """Kill the party's actor process (an injected fault, or a lost party:
        Ray ends even a stopped process, with SIGKILL after its grace time)."""
        ray.kill(self.actors[party], no_restart=True)
        self.alive.discard(party)

    def salvage(self, party: str, placement: Mapping[str, Any], timeout: float) -> dict[str, bytes]:
        """The log a dead party left on its node, read by a keeper placed there."""
        node = placement["node_id"]
        alive = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
        if node not in alive or node in self._silent_nodes:
            raise PartyFailed(party, "its log cannot be salvaged: its node is unreachable")
        keeper: Any = LogKeeperActor.options(  # Ray's stubs do not type actor handles
            scheduling_strategy=NodeAffinitySchedulingStrategy(placement["node_id"], soft=False)
        ).remote()
        try:
            files: dict[str, bytes] = ray.get(
                keeper.salvage.remote(placement["workdir"]), timeout=timeout
            )
        except (ray.exceptions.RayError, TimeoutError) as error:
            if isinstance(error, TimeoutError):  # the others there would wait as long
                self._silent_nodes.add(node)
            raise PartyFailed(party, f"its log could not be salvaged: {error}") from None
        finally:
            ray.kill(keeper)
        return files

    def _check_sites(self, sites: set[str]) -> None:
        available = ray.cluster_resources()
        missing = sorted(s for s in sites if site_resource(s) not in available)
        if missing:
            raise AirlockError(
                "no Ray node offers site(s) "
                + ", ".join(missing)
                + ": start nodes with --resources '{\"airlock_site_<site>\": 1000}'"
            )

    def gather(self, calls: Calls, timeout: float, alive_within: float | None = None) -> Answers:
        answers = Answers()
        refs = {}
        for party, (method, args) in calls.items():
            if party in self.alive:
                signed = self.control.sign(party, method, args)
                refs[party] = self.actors[party].call.remote(signed, method, *args)
            else:
                answers.lost[party] = "it was killed"
        done, silent = self._wait(refs, timeout, alive_within)
        for party, ref in refs.items():
            method = calls[party][0]
            if party in silent:
                answers.lost[party] = f"no sign of life for {alive_within:g} s during {method}"
                continue
            if ref not in done:
                answers.lost[party] = f"no answer to {method} within {timeout:g} s"
                continue
            try:
                answers.results[party] = ray.get(ref)
            except ray.exceptions.RayActorError:  # killed, crashed, or its node is gone
                answers.lost[party] = f"its process died (during {method})"
            except ray.exceptions.RayTaskError as error:
                answers.failed[party] = _explain(error.cause)
            except ray.exceptions.RayError as error:  # e.g. an error Ray could not unpickle
                answers.failed[party] = f"failed: {error}"
        for party in answers.lost:
            if party in self.alive:
                self.kill(party)
        return answers

    def _wait(
        self, refs: Mapping[str, Any], timeout: float, alive_within: float | None
    ) -> tuple[set[Any], set[str]]:
        """The answers in by `timeout`, and the parties that answered no ping
        (a `node` call beside their work) for `alive_within` seconds: a
        frozen party is lost within that, not at its action's deadline."""
        deadline = time.monotonic() + timeout
        pending = dict(refs)
        done: set[Any] = set()
        seen = dict.fromkeys(refs, time.monotonic())
        pings: dict[str, Any] = {}
        silent: set[str] = set()
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            step = left if alive_within is None else min(left, max(0.5, alive_within / 4))
            ready = ray.wait(list(pending.values()), num_returns=len(pending), timeout=step)[0]
            done.update(ready)
            pending = {p: r for p, r in pending.items() if r not in ready}
            if alive_within is None:
                continue
            now = time.monotonic()
            for party in list(pending):
                ping = pings.get(party)
                if ping is not None and ray.wait([ping], timeout=0)[0]:
                    with contextlib.suppress(ray.exceptions.RayError):
                        ray.get(ping)
                        seen[party] = now
                    del pings[party]
                if now - seen[party] > alive_within:
                    silent.add(party)
                    del pending[party]
                elif party not in pings:
                    signed = self.control.sign(party, "node")
                    pings[party] = self.actors[party].call.remote(signed, "node")
        return done, silent

    def close(self) -> None:
        stops = [self.actors[n].stop.remote(self.control.sign(n, "stop")) for n in self.alive]
        ray.wait(stops, num_returns=len(stops), timeout=10)  # a dead party has nothing to stop
        for actor in self.actors.values():
            ray.kill(actor)
        if self.embedded:
            ray.shutdown()

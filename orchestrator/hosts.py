"""Where parties run: Ray actors (the real thing) or in this process (tests).

Both offer `call`: run one method on several parties at once and return each
result, turning any failure into a PartyFailed that names the party.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from parties.actor import ControlledHost, LogKeeper, LogKeeperActor, PartyActor
from parties.errors import AirlockError, PartyFailed
from parties.runtime import PartyConfig
from protocols import get_protocol

Calls = Mapping[str, tuple[str, tuple[Any, ...]]]  # party -> (method, args)


def site_resource(site: str) -> str:
    return f"airlock_site_{site}"


def _explain(error: BaseException) -> str:
    if isinstance(error, AirlockError):
        return str(error)
    return f"{type(error).__name__}: {error}"


class LocalHosts:
    """Every party in this process (no Ray); for tests and debugging."""

    def __init__(self, configs: Mapping[str, PartyConfig]) -> None:
        self._keys = {name: secrets.token_bytes(32) for name in configs}
        self.hosts = {
            name: ControlledHost(config, self._keys[name], get_protocol)
            for name, config in configs.items()
        }
        self.alive = set(self.hosts)

    def kill(self, party: str) -> None:
        """Stop the party's server; it answers nothing from now on."""
        self.hosts[party].call(self._keys[party], "halt")
        self.alive.discard(party)

    def salvage(self, party: str, placement: Mapping[str, Any]) -> dict[str, bytes]:
        return LogKeeper().salvage(str(placement["workdir"]))

    def call(self, calls: Calls) -> dict[str, Any]:
        results = {}
        for party, (method, args) in calls.items():
            if party not in self.alive:
                raise PartyFailed(party, "was killed")
            try:
                results[party] = self.hosts[party].call(self._keys[party], method, *args)
            except Exception as exc:
                raise PartyFailed(party, _explain(exc)) from exc
        return results

    def close(self) -> None:
        for party in self.alive:
            self.hosts[party].stop(self._keys[party])


class RayHosts:
    """One Ray actor per party, placed by the scenario's sites.

    With no address, an embedded local Ray starts and declares every site as a
    resource; with an address (or RAY_ADDRESS), an existing cluster is used and
    its nodes must carry the `airlock_site_<site>` resources."""

    def __init__(
        self, configs: Mapping[str, PartyConfig], sites: Mapping[str, str], address: str | None
    ) -> None:
        address = address or os.environ.get("RAY_ADDRESS") or None
        self.embedded = address is None
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
            except (ConnectionError, ValueError, RuntimeError) as error:
                where = "an embedded Ray" if self.embedded else f"the Ray cluster at {address}"
                raise AirlockError(f"cannot start {where}: {error}") from None
        self._check_sites(set(sites.values()))
        # unnamed actors (no ray.get_actor by a guessable name), each driven
        # with a control key that only this process holds
        self._keys = {name: secrets.token_bytes(32) for name in configs}
        self.actors = {
            name: PartyActor.options(  # type: ignore[attr-defined]
                resources={site_resource(sites[name]): 0.001},
            ).remote(config, self._keys[name], get_protocol)
            for name, config in configs.items()
        }
        self.alive = set(self.actors)

    def kill(self, party: str) -> None:
        """Kill the party's actor process (fault injection)."""
        ray.kill(self.actors[party], no_restart=True)
        self.alive.discard(party)

    def salvage(self, party: str, placement: Mapping[str, Any]) -> dict[str, bytes]:
        """The log a dead party left on its node, read by a keeper placed there."""
        keeper: Any = LogKeeperActor.options(  # Ray's stubs do not type actor handles
            scheduling_strategy=NodeAffinitySchedulingStrategy(placement["node_id"], soft=False)
        ).remote()
        try:
            files: dict[str, bytes] = ray.get(
                keeper.salvage.remote(placement["workdir"]), timeout=60
            )
        except (ray.exceptions.RayError, TimeoutError) as error:
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

    def call(self, calls: Calls) -> dict[str, Any]:
        refs = {
            party: self.actors[party].call.remote(self._keys[party], method, *args)
            for party, (method, args) in calls.items()
        }
        results, failures = {}, []
        for party, ref in refs.items():
            try:
                results[party] = ray.get(ref)
            except ray.exceptions.RayActorError:
                failures.append(PartyFailed(party, "stopped unexpectedly (its actor died)"))
            except ray.exceptions.RayTaskError as error:
                failures.append(PartyFailed(party, _explain(error.cause)))
            except ray.exceptions.RayError as error:  # e.g. an error Ray could not unpickle
                failures.append(PartyFailed(party, f"failed: {error}"))
        if failures:
            raise failures[0]
        return results

    def close(self) -> None:
        for name, actor in self.actors.items():
            try:
                ray.get(actor.stop.remote(self._keys[name]), timeout=10)
            except Exception:  # noqa: BLE001 - a dead party has nothing left to stop
                pass
            ray.kill(actor)
        if self.embedded:
            ray.shutdown()

"""Hosting a party: `PartyHost` is a plain class around PartyRuntime;
`ControlledHost` admits a control call only with the party's control key,
and `PartyActor` is that class as a Ray actor.

Ray places and starts the party and carries the orchestrator's control calls
(start, join, act, seal, collect the log). Party-to-party traffic never goes
through Ray: it goes through the party's gRPC boundary.

Ray's control plane is open to every worker of the cluster: any party's code
could obtain another party's actor handle (actors are unnamed, but Ray's
state API lists them) and call it. So every control call carries a key that
only the orchestrator holds, one per party, drawn from the OS CSPRNG; a
call without it is refused before any method runs. See docs/architecture.md
for what Ray itself still does not protect.
"""

from __future__ import annotations

import hmac
import os
import shutil
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray

from parties.directory import Directory, PartyEntry
from parties.errors import AirlockError
from parties.identity import PartyCredentials
from parties.log import LOG_FILE, export_directory
from parties.protocol import Protocol
from parties.runtime import PartyConfig


class PartyHost:
    def __init__(self, config: PartyConfig, resolve: Callable[[str], Protocol]) -> None:
        self._workdir = Path(tempfile.mkdtemp(prefix=f"airlock-{config.run_id}-{config.name}-"))
        self._runtime = config.build(self._workdir, resolve)

    def node(self) -> dict[str, Any]:
        where = {
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "workdir": str(self._workdir),
        }
        if ray.is_initialized():
            where["node_id"] = ray.get_runtime_context().get_node_id()
            where["node_ip"] = ray.util.get_node_ip_address()
        return where

    def certificate_requests(self) -> tuple[bytes, bytes]:
        return self._runtime.certificate_requests()

    def start(self, credentials: PartyCredentials, host: str, advertise: str | None) -> str:
        return self._runtime.start(credentials, host, advertise)

    def join(self, entries: list[PartyEntry], ca_pem: bytes) -> None:
        self._runtime.join(Directory(entries, ca_pem))

    def act(self, protocol: str, action: str, params: dict[str, Any]) -> dict[str, Any]:
        return self._runtime.act(protocol, action, params)

    def seal(self) -> dict[str, Any]:
        return self._runtime.seal()

    def export_log(self) -> dict[str, bytes]:
        return self._runtime.export_log()

    def halt(self) -> None:
        """Stop serving at once, leaving the log as it is (a crash, for tests)."""
        self._runtime.stop()

    def stop(self) -> None:
        self._runtime.stop()
        shutil.rmtree(self._workdir, ignore_errors=True)


class ControlRefused(AirlockError):
    """A control call without this party's control key."""


class ControlledHost:
    """A PartyHost that runs a control call only with the key it was created
    with: `call(key, method, *args)`. Only the methods below can be called."""

    METHODS = frozenset(
        {"node", "certificate_requests", "start", "join", "act", "seal", "export_log", "halt"}
    )

    def __init__(
        self, config: PartyConfig, control_key: bytes, resolve: Callable[[str], Protocol]
    ) -> None:
        self._key = control_key
        self._host = PartyHost(config, resolve)

    def call(self, control_key: bytes, method: str, *args: Any) -> Any:
        if not isinstance(control_key, bytes) or not hmac.compare_digest(control_key, self._key):
            raise ControlRefused("control call refused: wrong control key")
        if method not in self.METHODS:
            raise ControlRefused(f"control call refused: no method {method!r}")
        return getattr(self._host, method)(*args)

    def stop(self, control_key: bytes) -> None:
        self.call(control_key, "node")  # the key check
        self._host.stop()


class LogKeeper:
    """Runs on the node of a party that died and hands over the log it wrote
    there: unsealed, but every entry still verifies against the chain. Reads
    the node's own disk; nothing assumes a filesystem shared between nodes."""

    def salvage(self, directory: str) -> dict[str, bytes]:
        path = Path(directory)
        if not (path / LOG_FILE).exists():
            return {}
        files = export_directory(path)
        shutil.rmtree(path, ignore_errors=True)
        return files


# num_cpus=0: parties are mostly waiting on the network; a 2-core machine must
# host all of them. max_concurrency: a party serves control calls while acting.
PartyActor = ray.remote(  # type: ignore[call-overload]  # stubs lack max_concurrency
    num_cpus=0, max_restarts=0, max_concurrency=4
)(ControlledHost)
LogKeeperActor = ray.remote(num_cpus=0, max_restarts=0)(LogKeeper)

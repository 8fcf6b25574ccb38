"""Hosting a party: `PartyHost` is a plain class around PartyRuntime;
`ControlledHost` runs a control call only if the orchestrator signed it,
and `PartyActor` is that class as a Ray actor.

Ray places and starts the party and carries the orchestrator's control calls
(start, join, act, seal, collect the log). Party-to-party traffic never goes
through Ray: it goes through the party's gRPC boundary.

Ray's control plane is open to every worker of the cluster: any party's code
could obtain another party's actor handle (actors are unnamed, but Ray's
state API lists them) and call it, and whatever passes through Ray (actor
arguments, calls, results) can be read from the driver, the GCS and the
worker. So no secret is handed to a party through Ray: the orchestrator
keeps a control signing key in its own process, each party is created with
its public half only, and every control call carries the orchestrator's
signature over the party, a sequence number used once, the method and a
digest of its arguments (`ControlSigner`). A call anyone else makes, or one
replayed, is refused before any method runs. See docs/architecture.md for
what Ray itself still does not protect.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import itertools
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from evidence.canonical import canonical_json
from parties.directory import Directory, PartyEntry
from parties.errors import AirlockError
from parties.identity import PartyCredentials
from parties.isolation import IsolatedHost
from parties.log import LOG_FILE, export_directory
from parties.protocol import Protocol
from parties.runtime import PartyConfig


def ray_location() -> dict[str, str]:
    """The Ray node this process runs on, if it is a Ray worker."""
    if not ray.is_initialized():
        return {}
    return {
        "node_id": ray.get_runtime_context().get_node_id(),
        "node_ip": ray.util.get_node_ip_address(),
    }


class PartyHost:
    def __init__(
        self, config: PartyConfig, resolve: Callable[[str], Protocol], workdir: Path | None = None
    ) -> None:
        prefix = f"airlock-{config.run_id}-{config.name}-"
        self._workdir = workdir or Path(tempfile.mkdtemp(prefix=prefix))
        self._runtime = config.build(self._workdir, resolve)

    def node(self) -> dict[str, Any]:
        where = {
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "uid": os.getuid(),
            "workdir": str(self._workdir),
        }
        return {**where, **ray_location()}

    def certificate_requests(self) -> tuple[bytes, bytes]:
        return self._runtime.certificate_requests()

    def provision_requests(self) -> dict[str, bytes]:
        return self._runtime.provision_requests()

    def start(
        self,
        credentials: PartyCredentials,
        host: str,
        advertise: str | None,
        provisions: dict[str, Any],
    ) -> str:
        return self._runtime.start(credentials, host, advertise, provisions)

    def join(self, entries: list[PartyEntry], ca_pem: bytes, published: dict[str, Any]) -> None:
        self._runtime.join(Directory(entries, ca_pem, published))

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
    """A control call the orchestrator did not sign, or one seen before."""


def _plain(value: Any) -> Any:
    """`value` as JSON values, for the digest of a control call's arguments."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"type": type(value).__name__, **fields}
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise ControlRefused(f"a control call cannot carry a {type(value).__name__}")


def control_message(party: str, sequence: int, method: str, args: tuple[Any, ...]) -> bytes:
    """What the orchestrator signs for one control call."""
    digest = hashlib.sha256(canonical_json(_plain(list(args)))).hexdigest()
    return canonical_json(
        {"party": party, "sequence": sequence, "method": method, "args_sha256": digest}
    )


@dataclasses.dataclass(frozen=True)
class ControlCall:
    """One signed control call's credentials (its arguments travel beside it)."""

    sequence: int
    signature: bytes


class ControlSigner:
    """The orchestrator's control key: made in its process, never sent. Each
    party gets `public`; each call is signed with a sequence number of its own."""

    def __init__(self) -> None:
        self._key = ed25519.Ed25519PrivateKey.generate()
        self.public = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self._sequence = itertools.count(1)
        self._lock = threading.Lock()

    def sign(self, party: str, method: str, args: tuple[Any, ...] = ()) -> ControlCall:
        with self._lock:
            sequence = next(self._sequence)
        return ControlCall(sequence, self._key.sign(control_message(party, sequence, method, args)))


class ControlledHost:
    """A PartyHost that runs a control call only if it is signed by the
    orchestrator key it was created with (its public half), for this party,
    with a sequence number it has not seen: `call(signed, method, *args)`.
    Only the methods below can be called."""

    METHODS = frozenset(
        {
            "node",
            "certificate_requests",
            "provision_requests",
            "start",
            "join",
            "act",
            "seal",
            "export_log",
            "halt",
        }
    )

    def __init__(
        self,
        config: PartyConfig,
        control_public: bytes,
        resolve: Callable[[str], Protocol],
        on_death: Callable[[], None] = lambda: None,
    ) -> None:
        self._name = config.name
        self._control = ed25519.Ed25519PublicKey.from_public_bytes(control_public)
        self._seen: set[int] = set()
        self._lock = threading.Lock()
        self._host: PartyHost | IsolatedHost = (
            IsolatedHost(config, resolve, on_death)
            if config.isolation == "user"
            else PartyHost(config, resolve)
        )

    def _admit(self, signed: ControlCall, method: str, args: tuple[Any, ...]) -> None:
        if not isinstance(signed, ControlCall) or not isinstance(signed.signature, bytes):
            raise ControlRefused("control call refused: not signed by the orchestrator")
        try:
            message = control_message(self._name, signed.sequence, method, args)
            self._control.verify(signed.signature, message)
        except (InvalidSignature, TypeError, ValueError):
            raise ControlRefused("control call refused: not signed by the orchestrator") from None
        with self._lock:
            if signed.sequence in self._seen:
                raise ControlRefused("control call refused: a call replayed")
            self._seen.add(signed.sequence)

    def call(self, signed: ControlCall, method: str, *args: Any) -> Any:
        self._admit(signed, method, args)
        if method not in self.METHODS:
            raise ControlRefused(f"control call refused: no method {method!r}")
        return getattr(self._host, method)(*args)

    def stop(self, signed: ControlCall) -> None:
        self._admit(signed, "stop", ())
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


class ControlledActor(ControlledHost):
    """A ControlledHost in a Ray actor: if the party's own process (under
    user isolation) dies, so does the actor, and Ray reports it lost."""

    def __init__(
        self, config: PartyConfig, control_public: bytes, resolve: Callable[[str], Protocol]
    ) -> None:
        super().__init__(config, control_public, resolve, on_death=lambda: os._exit(1))


# num_cpus=0: parties are mostly waiting on the network; a 2-core machine must
# host all of them. max_concurrency: a party serves control calls while acting.
PartyActor = ray.remote(  # type: ignore[call-overload]  # stubs lack max_concurrency
    num_cpus=0, max_restarts=0, max_concurrency=4
)(ControlledActor)
LogKeeperActor = ray.remote(num_cpus=0, max_restarts=0)(LogKeeper)

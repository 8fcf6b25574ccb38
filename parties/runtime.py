"""A party: keys, a gRPC server, a boundary, a visibility log and its role.

A plain class, so that tests can run parties without Ray; `parties.actor`
hosts one inside a Ray actor. Lifecycle, driven by the orchestrator:
`certificate_requests`, `provision_requests` -> `start` (credentials, setup
material) -> `join` (directory) -> `act` ... -> `seal` -> `export_log` ->
`stop`.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ed25519

from parties.boundary import DEFAULT_MAX_PAYLOAD, Boundary
from parties.directory import Directory
from parties.envelope import Envelope
from parties.errors import AirlockError, ConfigError, OutOfStep, Refused
from parties.identity import PartyCredentials, PartyKeys
from parties.labels import Form, Label
from parties.log import (
    DEFAULT_CHECKPOINT_ENTRIES,
    DEFAULT_CHECKPOINT_SECONDS,
    DEFAULT_MAX_KEPT,
    PUBLISHED_DIR,
    VisibilityLog,
)
from parties.policy import Guarantee, Policy
from parties.protocol import Protocol, ProvisionRequest, Reply, party_holdings
from parties.roles import Holdings, Role, parse_role
from parties.seed import set_run_seed
from parties.store import PartyStore
from parties.transport import DEFAULT_DELIVERY_TIMEOUT, PartyClient, PartyServer
from parties.wire import airlock_pb2 as pb

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PartyConfig:
    """Everything a party needs to start, as plain public data (it travels to
    the party's actor over Ray's control plane; no party data is in it
    except the party's own holdings)."""

    name: str
    role: str
    run_id: str
    holdings: dict[str, Any]
    protocols: tuple[str, ...]
    guarantees: tuple[tuple[str, str, tuple[str, ...], str], ...]  # name, asset, viewers, form
    adversary: str | None = None
    max_payload: int = DEFAULT_MAX_PAYLOAD
    max_kept: int = DEFAULT_MAX_KEPT
    delivery_timeout: float = DEFAULT_DELIVERY_TIMEOUT
    checkpoint_entries: int = DEFAULT_CHECKPOINT_ENTRIES
    checkpoint_seconds: float = DEFAULT_CHECKPOINT_SECONDS
    # "process": the party runs in its host's process; "user": in a process
    # of its own under an OS user of its own (parties/isolation.py)
    isolation: str = "process"
    scenario_sha256: str = ""  # bound into the signed log head
    # protocol -> the scenario's params for its stage: a party's own privacy
    # settings come from here, never from a peer
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    seed: int = 0  # the run's seed for non-secret random choices (parties.seed)

    def build(self, workdir: Path, resolve: Callable[[str], Protocol]) -> PartyRuntime:
        """The party, with its protocols resolved by the host (`resolve`
        is the registry: the runtime itself knows no protocol by name)."""
        set_run_seed(self.seed)
        role = parse_role(self.role)
        protocols = {name: resolve(name) for name in self.protocols}
        return PartyRuntime(
            name=self.name,
            role=role,
            run_id=self.run_id,
            workdir=workdir,
            holdings=party_holdings(role, self.holdings, f"parties.{self.name}", protocols),
            protocols=protocols,
            guarantees=[
                Guarantee(name, asset, frozenset(viewers), Form.parse(form))
                for name, asset, viewers, form in self.guarantees
            ],
            adversary=self.adversary,
            max_payload=self.max_payload,
            max_kept=self.max_kept,
            delivery_timeout=self.delivery_timeout,
            checkpoints=(self.checkpoint_entries, self.checkpoint_seconds),
            scenario_sha256=self.scenario_sha256,
            settings=self.settings,
        )


class Stage(enum.Enum):
    CREATED = 1
    LISTENING = 2
    JOINED = 3
    SEALED = 4


class PartyRuntime:
    def __init__(
        self,
        *,
        name: str,
        role: Role,
        run_id: str,
        workdir: Path,
        holdings: Mapping[str, Holdings],
        protocols: Mapping[str, Protocol],
        guarantees: Iterable[Guarantee] = (),
        adversary: str | None = None,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        max_kept: int = DEFAULT_MAX_KEPT,
        delivery_timeout: float = DEFAULT_DELIVERY_TIMEOUT,
        checkpoints: tuple[int, float] = (DEFAULT_CHECKPOINT_ENTRIES, DEFAULT_CHECKPOINT_SECONDS),
        scenario_sha256: str = "",
        settings: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.name = name
        self.settings = {p: dict((settings or {}).get(p, {})) for p in protocols}
        # protocol -> this party's setup material (Protocol.provision), and
        # what it made for the setup in this process, until the setup answers
        self.provisions: dict[str, Any] = {}
        self._provision_requests: dict[str, ProvisionRequest] = {}
        self.role = role
        self.run_id = run_id
        self.holdings = holdings
        self.adversary = adversary
        self.policy = Policy(protocols=dict(protocols), guarantees=tuple(guarantees))
        self.max_payload = max_payload
        self.delivery_timeout = delivery_timeout
        self.keys = PartyKeys.generate(name)
        self.log = VisibilityLog(workdir, name, run_id, self.keys.sign, max_kept, *checkpoints)
        self.store = PartyStore(workdir, name)  # beside the log; never exported
        self.scenario_sha256 = scenario_sha256
        self.state: dict[str, Any] = {
            name: protocol.new_state(role, adversary) for name, protocol in protocols.items()
        }
        self._stage = Stage.CREATED
        self._server: PartyServer | None = None
        self._client: PartyClient | None = None
        self._boundary: Boundary | None = None
        self._joined = threading.Event()

    def _require(self, stage: Stage) -> None:
        if self._stage != stage:
            raise AirlockError(
                f"party {self.name} is {self._stage.name.lower()}, not {stage.name.lower()}"
            )

    # -- lifecycle ----------------------------------------------------------

    def certificate_requests(self) -> tuple[bytes, bytes]:
        return self.keys.certificate_requests()

    def provision_requests(self) -> dict[str, bytes]:
        """For each protocol whose trusted setup needs something of this
        party (Protocol.provision_request), the public part of what it made
        here; the rest stays in this process."""
        self._require(Stage.CREATED)
        for name, protocol in self.policy.protocols.items():
            made = protocol.provision_request(self.role) if protocol.provision_request else None
            if made is not None:
                self._provision_requests[name] = made
        return {name: made.public for name, made in self._provision_requests.items()}

    def start(
        self,
        credentials: PartyCredentials,
        host: str = "127.0.0.1",
        advertise: str | None = None,
        provisions: Mapping[str, Any] | None = None,
    ) -> str:
        """Listen for deliveries on `host`; returns the address the others
        reach this party at: `advertise` (default `host`) and the port.
        `provisions` (protocol -> material) is what the trusted setup sent
        this party, completed with what it made for it (provision_requests)."""
        self._require(Stage.CREATED)
        for protocol, material in (provisions or {}).items():
            made = self._provision_requests.pop(protocol, None)
            self.provisions[protocol] = made.complete(material) if made else material
        self.credentials = credentials
        tls_key = self.keys.tls_key_pem()
        self._server = PartyServer(credentials, tls_key, self._on_delivery)
        self._client = PartyClient(credentials, tls_key, self.delivery_timeout)
        address = self._server.start(host, advertise or host)
        self._stage = Stage.LISTENING
        return address

    def join(self, directory: Directory) -> None:
        self._require(Stage.LISTENING)
        self.directory = directory
        self.log.bindings = {
            "scenario_sha256": self.scenario_sha256,
            "ca_sha256": directory.ca_fingerprint,
            "setup_sha256": directory.setup_fingerprint,
        }
        if self._client is None:
            raise AirlockError(f"party {self.name} joins before it listens")
        self._boundary = Boundary(
            party=self.name,
            run_id=self.run_id,
            keys=self.keys,
            directory=directory,
            policy=self.policy,
            log=self.log,
            client=self._client,
            max_payload=self.max_payload,
        )
        self._stage = Stage.JOINED
        self._joined.set()

    def seal(self) -> dict[str, Any]:
        """Stop accepting deliveries and sign the log's head."""
        if self._server is not None:
            self._server.stop()
        self._stage = Stage.SEALED
        return self.log.seal()

    def export_log(self) -> dict[str, bytes]:
        return self.log.export()

    def publish(self, path: str, data: bytes) -> None:
        """A file this party makes public (its signed model): kept beside its
        log, collected with it, and laid in the run directory as `path`."""
        target = (self.log.directory / PUBLISHED_DIR / path).resolve()
        if not target.is_relative_to((self.log.directory / PUBLISHED_DIR).resolve()):
            raise AirlockError(f"{path!r} is not a path inside what a party publishes")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
        if self._server is not None:
            self._server.stop()

    # -- sending ------------------------------------------------------------

    @property
    def boundary(self) -> Boundary:
        if self._boundary is None:
            raise AirlockError(f"party {self.name} has not joined the run yet")
        return self._boundary

    def deliver(
        self,
        receiver: str,
        protocol: str,
        step: str,
        labels: Iterable[Label],
        payload: bytes,
        session: str = "",
        check: bool = True,
    ) -> Envelope | None:
        """Seal one envelope (withheld if this party's boundary forbids it) and
        send it; the admitted reply, if any. `check=False` is for adversaries
        only: they bypass their own party's boundary."""
        self._require(Stage.JOINED)
        envelope = self.boundary.seal(
            receiver, protocol, step, labels, payload, session, check=check
        )
        return self.boundary.send(envelope)

    # -- receiving ----------------------------------------------------------

    def _on_delivery(self, tls_peer: str, messages: Iterator[bytes]) -> Envelope | None:
        if not self._joined.wait(timeout=30):
            raise Refused(pb.WRONG_DESTINATION, f"{self.name} has not joined the run")
        # an adversary's handlers are its own code: its replies bypass its boundary
        return self.boundary.receive(
            tls_peer, messages, self._dispatch, check_reply=self.adversary is None
        )

    def _dispatch(self, envelope: Envelope) -> Reply | None:
        """Run the role's handler for an admitted envelope."""
        header = envelope.header
        protocol = self.policy.protocols[header.protocol]
        handler = protocol.handler(self.role, header.step, self.adversary)
        if handler is None:  # nothing to do: the log already holds what arrived
            return None
        try:
            return handler(self.context(header.protocol), envelope)
        except OutOfStep as exc:
            raise Refused(pb.OUT_OF_STEP, f"{header.step} refused: {exc}") from exc
        except AirlockError as exc:  # the role's own reason, meant to be told
            raise Refused(pb.HANDLER_FAILED, f"{header.step} refused: {exc}") from exc
        except Exception as exc:  # a party never crashes on input; internals stay inside
            logger.exception("%s: handler %s.%s failed", self.name, header.protocol, header.step)
            raise Refused(pb.HANDLER_FAILED, f"{header.step} could not be processed") from exc

    # -- protocol actions ---------------------------------------------------

    def context(self, protocol: str) -> ProtocolContext:
        return ProtocolContext(self, protocol)

    def act(
        self, protocol: str, action: str, params: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Run one action of this party's role in `protocol`."""
        self._require(Stage.JOINED)
        spec = self.policy.protocols.get(protocol)
        if spec is None:
            raise ConfigError(f"protocol {protocol!r} is not active in this run")
        function = spec.action(self.role, action, self.adversary)
        if function is None:
            raise ConfigError(f"{protocol} has no action {action!r} for role {self.role}")
        return function(self.context(protocol), params or {})


class ProtocolContext:
    """What role logic sees of its party, bound to one protocol."""

    def __init__(self, runtime: PartyRuntime, protocol: str) -> None:
        self._runtime = runtime
        self.protocol = protocol
        self.name = runtime.name
        self.role = runtime.role
        self.holdings = runtime.holdings[protocol]
        self.adversary = runtime.adversary
        self.state = runtime.state[protocol]
        # the scenario's params for this protocol's stage, as this party was
        # configured: trust these, not a peer's word, for privacy settings
        self.settings: Mapping[str, Any] = runtime.settings[protocol]
        self.provision: Any = runtime.provisions.get(protocol)
        # what this party keeps between stages, shared by its protocols
        self.store = runtime.store

    def peers(self, role: Role) -> list[str]:
        return self._runtime.directory.with_role(role)

    def role_of(self, party: str) -> Role:
        return self._runtime.directory.role_of(party)

    def public_key(self, party: str) -> ed25519.Ed25519PublicKey:
        """The party's Ed25519 key, certified by the run's CA."""
        return self._runtime.directory.public_key(party)

    def sign(self, message: bytes) -> bytes:
        """Sign with this party's Ed25519 key (the key itself stays inside)."""
        return self._runtime.keys.sign(message)

    def deliver(
        self, receiver: str, step: str, labels: Iterable[Label], payload: bytes, session: str = ""
    ) -> Envelope | None:
        return self._runtime.deliver(receiver, self.protocol, step, labels, payload, session)

    def publish(self, path: str, data: bytes) -> None:
        self._runtime.publish(path, data)

    def deliver_unchecked(
        self, receiver: str, step: str, labels: Iterable[Label], payload: bytes, session: str = ""
    ) -> Envelope | None:
        """UNSAFE, adversaries only: send past this party's own boundary, as
        an attacker who controls its party would; the receiver still checks."""
        if self.adversary is None:
            raise AirlockError(f"{self.name} is honest: its deliveries pass its own boundary")
        return self._runtime.deliver(
            receiver, self.protocol, step, labels, payload, session, check=False
        )

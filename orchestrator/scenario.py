"""Scenarios: TOML files naming the parties and where they run, the stages to
run, the guarantees to enforce and the canaries to look for.

Checked once, where they are parsed: every error names the file and key.
Built-in scenarios live in orchestrator/scenarios/ and resolve by name.
"""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Any, Literal

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from parties.errors import ConfigError
from parties.identity import check_party_name
from parties.labels import ASSET_RE, Form
from parties.log import DEFAULT_CHECKPOINT_ENTRIES, DEFAULT_CHECKPOINT_SECONDS
from parties.policy import Guarantee
from parties.protocol import Protocol, party_holdings
from parties.roles import Holdings, Role, parse_role
from parties.transport import DEFAULT_DELIVERY_TIMEOUT
from protocols import get_protocol

BUILTIN_DIR = Path(__file__).parent / "scenarios"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunSettings(_Strict):
    # where parties listen on one machine (embedded Ray or --in-process); on a
    # Ray cluster each listens on its node's address (see SiteSpec)
    bind_host: str = "127.0.0.1"
    max_payload_mib: int = Field(default=256, ge=1, le=4096)
    # payload bytes each party keeps (its blob store) at most; past it, refused
    max_kept_mib: int = Field(default=4096, ge=1, le=1 << 20)
    # Deadlines, in seconds. A party that misses one is lost (docs/cluster.md).
    # placed by Ray, its process up, its certificate requested, listening
    start_timeout_s: float = Field(default=180, gt=0, le=3600)
    # join, seal, log export, and the liveness check after every action
    control_timeout_s: float = Field(default=60, gt=0, le=3600)
    # one action of a stage (a federated round's step, a PIR query, ...)
    action_timeout_s: float = Field(default=1800, gt=0, le=86400)
    # one envelope's gRPC call, the receiver's reply included
    delivery_timeout_s: float = Field(default=DEFAULT_DELIVERY_TIMEOUT, gt=0, le=3600)
    # each party signs its log's head every N entries, and every T seconds
    # with new entries, so that a crashed party's log verifies up to there
    checkpoint_entries: int = Field(default=DEFAULT_CHECKPOINT_ENTRIES, ge=1, le=1 << 20)
    checkpoint_seconds: float = Field(default=DEFAULT_CHECKPOINT_SECONDS, gt=0, le=3600)
    # "process": each party in its host's process (a Ray actor), every party
    # under the same OS user; "user": each party in a process of its own under
    # an OS user of its own, its files private to it (needs root; see
    # docs/architecture.md, "What each mode isolates")
    isolation: Literal["process", "user"] = "process"


class SiteSpec(_Strict):
    """`[sites.NAME]`: how the other nodes reach the parties of a site on a Ray
    cluster. By default, at the node address Ray reports for their node."""

    # the host name or address to advertise instead (a node behind NAT, or
    # known to the others by a DNS name); the party still listens on the
    # node's own address
    advertise: str | None = Field(default=None, min_length=1, max_length=253)


class PartySpec(BaseModel):
    """role, site and adversary; every other key is the role's holdings."""

    model_config = ConfigDict(extra="allow", frozen=True)

    role: str
    site: str = Field(default="local", pattern=r"^[a-z][a-z0-9_]*$")
    adversary: str | None = None

    @property
    def holdings_values(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class StageSpec(_Strict):
    """One stage: a protocol's whole stage, or one of its named parts. The
    stages of one protocol share its params (given on any of them)."""

    name: str
    protocol: str
    part: str | None = None
    params: dict[str, Any] = {}


class GuaranteeSpec(_Strict):
    name: str
    asset: str
    viewers: list[str] = Field(min_length=1)
    max_form: str


class CanarySpec(_Strict):
    asset: str
    value: str = Field(min_length=8)


class FaultSpec(_Strict):
    """Fault injection: kill party `kill` just before action `before` runs,
    or `after_s` seconds into action `during` (in round `round` of a protocol
    with rounds; the first time if unset). By default through Ray (the run
    knows at once); with `signal`, by sending that signal to the party's
    process by its pid, from outside Ray, as an operator or the kernel would:
    the run finds the party lost by its deadlines. Signals need every party
    on this machine (an embedded Ray)."""

    kill: str
    before: str | None = None
    during: str | None = None
    after_s: float = Field(default=2.0, gt=0, le=600)
    round: int | None = Field(default=None, ge=1)
    signal: Literal["SIGKILL", "SIGSTOP"] | None = None

    @property
    def action(self) -> str:
        return self.before or self.during or ""


class Scenario(_Strict):
    name: str
    description: str = ""
    run: RunSettings = RunSettings()
    sites: dict[str, SiteSpec] = {}
    parties: dict[str, PartySpec] = Field(min_length=2)
    stages: list[StageSpec] = Field(min_length=1)
    guarantees: list[GuaranteeSpec] = []
    canaries: list[CanarySpec] = []
    faults: list[FaultSpec] = []

    # -- derived, checked views ------------------------------------------

    def role_of(self, party: str) -> Role:
        return parse_role(self.parties[party].role)

    def holdings_of(self, party: str, protocol: str) -> Holdings:
        """What `party` holds, as `protocol` (one of the stages') declares it."""
        return self.all_holdings_of(party)[protocol]

    def all_holdings_of(self, party: str) -> dict[str, Holdings]:
        spec = self.parties[party]
        protocols = {name: get_protocol(name) for name in self.protocol_names}
        where = f"parties.{party}"
        return party_holdings(parse_role(spec.role), spec.holdings_values, where, protocols)

    def policy_guarantees(self) -> list[Guarantee]:
        return [
            Guarantee(g.name, g.asset, frozenset(g.viewers), Form.parse(g.max_form))
            for g in self.guarantees
        ]

    @property
    def protocol_names(self) -> list[str]:
        return sorted({stage.protocol for stage in self.stages})

    def stage_settings(self) -> dict[str, dict[str, Any]]:
        """protocol -> its params, merged over its stages (`_check` refuses a
        key two stages give different values)."""
        settings: dict[str, dict[str, Any]] = {}
        for stage in self.stages:
            settings.setdefault(stage.protocol, {}).update(stage.params)
        return settings

    @property
    def site_names(self) -> list[str]:
        return sorted({spec.site for spec in self.parties.values()})


def _check(scenario: Scenario) -> None:
    """Cross-field checks that pydantic cannot express; ConfigError names the key."""
    for name in scenario.parties:
        try:
            check_party_name(name)
        except ConfigError as exc:
            raise ConfigError(f"parties.{name}: {exc}") from None
        try:
            scenario.role_of(name)
        except ConfigError as exc:
            raise ConfigError(f"parties.{name}.role: {exc}") from None
    for site in scenario.sites:
        if site not in scenario.site_names:
            raise ConfigError(
                f"sites.{site}: no party runs at site {site!r} "
                f"(the parties' sites: {', '.join(scenario.site_names)})"
            )
    protocols = _check_stages(scenario)
    for name in scenario.parties:
        scenario.all_holdings_of(name)
    _check_artifacts(scenario, protocols)
    for name, spec in scenario.parties.items():
        if spec.adversary is None:
            continue
        matches = [p for p in protocols.values() if spec.adversary in p.adversaries]
        if not matches:
            known = sorted({a for p in protocols.values() for a in p.adversaries})
            raise ConfigError(
                f"parties.{name}.adversary: unknown adversary {spec.adversary!r} "
                f"(the scenario's protocols know: {', '.join(known) or 'none'})"
            )
        wanted = matches[0].adversaries[spec.adversary].role
        if scenario.role_of(name) != wanted:
            raise ConfigError(
                f"parties.{name}.adversary: {spec.adversary!r} is played by a {wanted}, "
                f"not a {scenario.role_of(name)}"
            )
    known_viewers = set(scenario.parties) | {r.value for r in Role}
    for index, guarantee in enumerate(scenario.guarantees):
        try:
            Form.parse(guarantee.max_form)
        except ConfigError as exc:
            raise ConfigError(f"guarantees[{index}].max_form: {exc}") from None
        unknown = sorted(set(guarantee.viewers) - known_viewers)
        if unknown:
            raise ConfigError(f"guarantees[{index}].viewers: unknown party or role {unknown[0]!r}")
    actions = {action for p in protocols.values() for action in p.action_names}
    for index, fault in enumerate(scenario.faults):
        if fault.kill not in scenario.parties:
            raise ConfigError(f"faults[{index}].kill: no party named {fault.kill!r}")
        if (fault.before is None) == (fault.during is None):
            raise ConfigError(f"faults[{index}]: give exactly one of `before` and `during`")
        key = "before" if fault.before is not None else "during"
        if fault.action not in actions:
            raise ConfigError(
                f"faults[{index}].{key}: no action {fault.action!r} "
                f"(the scenario's protocols run: {', '.join(sorted(actions))})"
            )
    for index, canary in enumerate(scenario.canaries):
        if not ASSET_RE.match(canary.asset):
            raise ConfigError(f"canaries[{index}].asset: malformed asset name {canary.asset!r}")


def _check_stages(scenario: Scenario) -> dict[str, Protocol]:
    """Each stage names a known protocol (and part), runs once, and agrees
    with its protocol's other stages on params."""
    protocols: dict[str, Protocol] = {}
    ran: dict[str, list[str | None]] = {}
    given: dict[str, dict[str, tuple[int, Any]]] = {}
    for index, stage in enumerate(scenario.stages):
        where = f"stages[{index}]"
        try:
            protocol = protocols[stage.protocol] = get_protocol(stage.protocol)
        except ConfigError as exc:
            raise ConfigError(f"{where}.protocol: {exc}") from None
        if stage.part is not None and stage.part not in protocol.parts:
            parts = ", ".join(sorted(protocol.parts)) or "none"
            raise ConfigError(
                f"{where}.part: {stage.protocol} has no part {stage.part!r} (its parts: {parts})"
            )
        earlier = ran.setdefault(stage.protocol, [])
        if stage.part in earlier or (earlier and None in (*earlier, stage.part)):
            raise ConfigError(
                f"{where}: {stage.protocol} already runs "
                + (f"part {stage.part!r} " if stage.part else "")
                + "in an earlier stage"
            )
        earlier.append(stage.part)
        for key, value in stage.params.items():
            first = given.setdefault(stage.protocol, {}).setdefault(key, (index, value))
            if first[1] != value:
                raise ConfigError(
                    f"{where}.params.{key}: stages[{first[0]}] gives {stage.protocol} "
                    f"another value (a protocol's stages share its params)"
                )
    settings = scenario.stage_settings()
    for name, protocol in protocols.items():
        if protocol.params is None:
            continue
        try:
            protocol.params.model_validate(settings[name])
        except ValidationError as exc:
            first_error = exc.errors()[0]
            key = ".".join(str(p) for p in first_error["loc"])
            index = next(i for i, s in enumerate(scenario.stages) if s.protocol == name)
            raise ConfigError(f"stages[{index}].params.{key}: {first_error['msg']}") from None
    return protocols


def _check_artifacts(scenario: Scenario, protocols: dict[str, Protocol]) -> None:
    """Every stage finds in its parties' stores what it needs from earlier stages."""
    settings = scenario.stage_settings()
    kept: set[tuple[Role, str]] = set()
    for index, stage in enumerate(scenario.stages):
        artifacts = protocols[stage.protocol].artifacts_of(settings[stage.protocol], stage.part)
        for role, wanted in artifacts.needs:
            if (role, wanted.name) not in kept:
                raise ConfigError(
                    f"stages[{index}] ({stage.name}): needs the {role}'s {wanted.name}, "
                    f"which no earlier stage makes"
                )
        kept |= {(role, made.name) for role, made in artifacts.makes}


def _merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`base` with `changes` laid over it: tables merge key by key, anything
    else (values, arrays of stages or guarantees) is replaced."""
    merged = dict(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def _toml(text: str, source: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """The TOML's tables; a scenario that `extends` a built-in is laid over it."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    base = data.pop("extends", None)
    if base is None:
        return data
    path = BUILTIN_DIR / f"{base}.toml"
    if not isinstance(base, str) or not path.is_file():
        raise ConfigError(
            f"{source}: extends: no built-in scenario {base!r} ({', '.join(builtin_names())})"
        )
    if base in seen:
        raise ConfigError(f"{source}: extends: {base!r} extends itself")
    return _merged(_toml(path.read_text(encoding="utf-8"), str(path), (*seen, base)), data)


def parse_scenario(text: str, source: str) -> Scenario:
    """Parse and check scenario TOML (laid over the built-in it `extends`,
    if any); errors start with `source`."""
    data = _toml(text, source)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise ConfigError(f"{source}: {key}: {first['msg']}") from None
    try:
        _check(scenario)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    return scenario


def builtin_names() -> list[str]:
    return sorted(path.stem for path in BUILTIN_DIR.glob("*.toml"))


def load_scenario(name_or_path: str) -> tuple[Scenario, str]:
    """A built-in scenario by name, or a TOML file by path. Returns (scenario,
    TOML text), the text whole (laid over the built-in it extends, if any)."""
    path = Path(name_or_path)
    if not path.exists() and (BUILTIN_DIR / f"{name_or_path}.toml").exists():
        path = BUILTIN_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        close = difflib.get_close_matches(name_or_path, builtin_names(), n=1, cutoff=0.6)
        raise ConfigError(
            f"no scenario {name_or_path!r}: not a file, nor a built-in"
            + (f"; did you mean {close[0]!r}?" if close else "")
            + f" (built-ins: {', '.join(builtin_names())})"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    scenario = parse_scenario(text, str(path))
    if "extends" in tomllib.loads(text):
        # the run directory keeps the scenario whole: its meaning must not
        # change when the built-in it extends does
        text = f"# {path}, laid over the built-in it extends\n" + tomli_w.dumps(
            _toml(text, str(path))
        )
    return scenario, text

"""Runs a scenario: start the parties, give them identities and a directory,
run the stages, seal and collect the logs, write the run directory, audit it.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import platform
import signal
import time
import uuid
from collections.abc import Iterator, Mapping, Set
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from orchestrator.audit import AuditReport, audit_record, load_run
from orchestrator.hosts import LocalHosts, RayHosts
from orchestrator.report import REPORT_HTML, build_report, with_answers
from orchestrator.scenario import Scenario
from orchestrator.stages import Hosts, Losses, Progress, brief, run_stage
from parties.directory import PartyEntry
from parties.errors import AirlockError, ConfigError, PartyFailed
from parties.identity import RunAuthority, issue_credentials
from parties.log import PUBLISHED_DIR
from parties.runtime import PartyConfig
from parties.seed import set_run_seed
from protocols import get_protocol

MANIFEST = "manifest.json"
REPORT = "report.md"
PARTIES_DIR = "parties"


@dataclass
class RunResult:
    run_dir: Path
    failure: str | None
    audit: AuditReport
    actions: list[dict[str, Any]]
    interrupted: bool = False  # by Ctrl-C: what ran was sealed, collected and audited


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("airlock", "ray", "grpcio", "protobuf", "cryptography"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


# What an embedded run needs, measured (README, "What a run needs"): the
# healthcare run's 14 parties peaked at 6.0 GiB, the sum of the proportional
# set sizes (PSS) of the driver, Ray's processes and the party actors
# sampled every 0.5 s (9.1 GiB summing RSS, which counts shared pages once
# per process): about BASE_MIB + PARTY_MIB a party.
BASE_MIB = 1024
PARTY_MIB = 360


def available_memory_mib() -> int | None:
    """MemAvailable of /proc/meminfo, in MiB (None where there is none)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_memory(parties: int, available: int | None = None) -> None:
    """Refuse to start `parties` parties on this machine without the memory
    they need (an out-of-memory kill mid-run helps nobody)."""
    available = available_memory_mib() if available is None else available
    needed = BASE_MIB + PARTY_MIB * parties
    if available is not None and available < needed:
        raise AirlockError(
            f"not enough free memory for {parties} parties on this machine: about "
            f"{needed / 1024:.1f} GiB needed (Ray and {PARTY_MIB} MiB a party), "
            f"{available / 1024:.1f} GiB available (MemAvailable in /proc/meminfo). "
            "Close other programs, run a scenario with fewer parties, spread the parties "
            "over a Ray cluster (--address), or start anyway with --skip-memory-check."
        )


def default_run_dir(scenario: Scenario, run_id: str) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{stamp}-{scenario.name}-{run_id[:8]}"


def party_configs(
    scenario: Scenario, run_id: str, scenario_text: str = "", seed: int = 0
) -> dict[str, PartyConfig]:
    """Each party's configuration: public data only (it travels over Ray)."""
    guarantees = tuple((g.name, g.asset, tuple(g.viewers), g.max_form) for g in scenario.guarantees)
    settings = scenario.stage_settings()
    return {
        name: PartyConfig(
            name=name,
            role=spec.role,
            run_id=run_id,
            holdings=spec.holdings_values,
            protocols=tuple(scenario.protocol_names),
            guarantees=guarantees,
            adversary=spec.adversary,
            max_payload=scenario.run.max_payload_mib << 20,
            max_kept=scenario.run.max_kept_mib << 20,
            delivery_timeout=scenario.run.delivery_timeout_s,
            checkpoint_entries=scenario.run.checkpoint_entries,
            checkpoint_seconds=scenario.run.checkpoint_seconds,
            isolation=scenario.run.isolation,
            scenario_sha256=hashlib.sha256(scenario_text.encode()).hexdigest(),
            settings=settings,
            seed=seed,
        )
        for name, spec in scenario.parties.items()
    }


def provision_parties(
    scenario: Scenario, requests: Mapping[str, Mapping[str, bytes]]
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Each protocol's trusted setup, here in the orchestrator, from the
    public parts of what the parties made for it (`requests`: party ->
    protocol -> bytes): what each party receives (party -> protocol ->
    material), and what each setup publishes (by protocol)."""
    roles = {name: scenario.role_of(name) for name in scenario.parties}
    provisions: dict[str, dict[str, Any]] = {name: {} for name in scenario.parties}
    published: dict[str, Any] = {}
    for protocol_name, params in scenario.stage_settings().items():
        provision = get_protocol(protocol_name).provision
        if provision is None:
            continue
        made = {n: r[protocol_name] for n, r in requests.items() if protocol_name in r}
        provisioned = provision(roles, params, made)
        for name, material in provisioned.parties.items():
            provisions[name][protocol_name] = material
        if provisioned.public:
            published[protocol_name] = dict(provisioned.public)
    return provisions, published


def run_scenario(
    scenario: Scenario,
    scenario_text: str,
    *,
    out: Path | None = None,
    address: str | None = None,
    in_process: bool = False,
    progress: Progress = lambda message: None,
    strict: bool = False,
    memory_check: bool = True,
    seed: int = 0,
) -> RunResult:
    """Run `scenario` end to end. A party failure ends the run cleanly: the
    logs of the others are still sealed, collected and audited."""
    if any(f.signal for f in scenario.faults) and (
        in_process or address or os.environ.get("RAY_ADDRESS")
    ):
        raise ConfigError(
            "faults[].signal: signals go to the parties' processes on this machine: "
            "run on an embedded Ray (no --address, no --in-process)"
        )
    embedded = not (in_process or address or os.environ.get("RAY_ADDRESS"))
    if memory_check and embedded:
        check_memory(len(scenario.parties))
    run_id = uuid.uuid4().hex[:16]
    run_dir = out or default_run_dir(scenario, run_id)
    if seed < 0:
        raise ConfigError(f"--seed: {seed} is negative; give a whole number 0 or more")
    set_run_seed(seed)  # the parties' processes get it with their configuration
    configs = party_configs(scenario, run_id, scenario_text, seed)
    deadlines = scenario.run
    started = datetime.datetime.now(datetime.UTC).isoformat()
    progress(f"starting {len(configs)} parties" + (" in this process" if in_process else " on Ray"))
    # the run directory is made once the parties' hosts are up: a Ray that
    # does not start (or a Ctrl-C while it starts) leaves no empty directory
    hosts = (
        LocalHosts(configs)
        if in_process
        else RayHosts(configs, {n: s.site for n, s in scenario.parties.items()}, address)
    )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        hosts.close()
        raise ConfigError(f"--out: cannot make the run directory {run_dir}: {error}") from None
    names = list(configs)
    manifest: dict[str, Any] = {
        "run_id": run_id,
        "scenario": scenario.name,
        "started": started,
        "versions": _versions(),
        "ray": "in-process (no Ray)" if in_process else ("embedded" if hosts.embedded else address),  # type: ignore[union-attr]
        "outcome": "running",
        "strict": strict,
        # fixes the non-secret random choices (parties.seed); secrets are the OS's
        "seed": seed,
    }
    failure: str | None = None
    actions: list[dict[str, Any]] = []
    sealed: set[str] = set()
    losses = Losses()
    timings: dict[str, float] = {}
    running = ""  # the stage under way, which a failure is told in
    interrupted = False
    try:
        authority = RunAuthority(run_id)
        manifest["ca_pem"] = authority.certificate_pem.decode()
        running = "starting the parties"
        placement = hosts.call({n: ("node", ()) for n in names}, deadlines.start_timeout_s)
        requests = hosts.call(
            {n: ("certificate_requests", ()) for n in names}, deadlines.control_timeout_s
        )
        credentials = {n: issue_credentials(authority, n, requests[n]) for n in names}
        made = hosts.call(
            {n: ("provision_requests", ()) for n in names}, deadlines.control_timeout_s
        )
        provisions, published = provision_parties(scenario, made)
        manifest["provisioned"] = published
        listen = _listen_addresses(scenario, placement, single_machine=hosts.single_machine)
        addresses = hosts.call(
            {n: ("start", (credentials[n], *listen[n], provisions[n])) for n in names},
            deadlines.control_timeout_s,
        )
        entries = [
            PartyEntry(n, scenario.role_of(n), addresses[n], credentials[n].signing_cert_pem)
            for n in names
        ]
        manifest["parties"] = {
            n: {
                "role": str(scenario.role_of(n)),
                "site": scenario.parties[n].site,
                "adversary": scenario.parties[n].adversary,
                "address": addresses[n],
                "placement": placement[n],
                "signing_cert_pem": credentials[n].signing_cert_pem.decode(),
                "tls_cert_pem": credentials[n].tls_cert_pem.decode(),
            }
            for n in names
        }
        # written now too, so that where each party runs can be seen during the run
        (run_dir / MANIFEST).write_text(json.dumps(manifest, indent=2))
        hosts.call(
            {n: ("join", (entries, authority.certificate_pem, published)) for n in names},
            deadlines.control_timeout_s,
        )
        progress("identities issued, mutual TLS up, directory shared")
        running = ""
        settings = scenario.stage_settings()
        for number, stage in enumerate(scenario.stages, 1):
            began = time.monotonic()
            running = f"stage {number}/{len(scenario.stages)} ({stage.name})"
            progress(f"stage {number}/{len(scenario.stages)}: {stage.name} ({stage.protocol})")
            params = settings[stage.protocol]
            pids = {n: int(placement[n]["pid"]) for n in names}
            actions += run_stage(scenario, stage, params, hosts, pids, progress, losses)
            elapsed = time.monotonic() - began
            timings[stage.name] = round(elapsed, 2)
            progress(f"stage {number}/{len(scenario.stages)}: {stage.name} done in {elapsed:.1f} s")
            running = ""
    except AirlockError as error:
        failure = f"{running}: {error}" if running else str(error)
        progress(f"run failed: {failure}")
    except KeyboardInterrupt:
        interrupted = True
        failure = f"interrupted (Ctrl-C) during {running or 'the run'}"
        progress(f"{failure}: sealing and collecting the logs, then auditing what ran")
    finally:
        with _shielded_from_interrupts(progress) if interrupted else contextlib.nullcontext():
            try:
                placements = {
                    n: p.get("placement", {}) for n, p in manifest.get("parties", {}).items()
                }
                sealed = _seal_and_collect(
                    hosts, names, placements, run_dir, progress, deadlines.control_timeout_s
                )
            finally:
                hosts.close()
    unsealed = set(names) - sealed - losses.dropouts
    if failure is None and unsealed:
        failure = "logs of " + ", ".join(sorted(unsealed)) + " could not be sealed"
    manifest.update(
        dropouts=sorted(losses.dropouts),
        lost=dict(sorted(losses.lost.items())),
        finished=datetime.datetime.now(datetime.UTC).isoformat(),
        outcome="interrupted" if interrupted else "failed" if failure else "completed",
        stages_not_reached=[s.name for s in scenario.stages if s.name not in timings],
        warnings=_coverage_warnings(scenario, actions, timings, losses.dropouts),
        failure=failure,
        actions=actions,
        stage_seconds=timings,
    )
    (run_dir / MANIFEST).write_text(json.dumps(manifest, indent=2))
    (run_dir / "scenario.toml").write_text(scenario_text)
    progress("auditing the logs")
    record = load_run(run_dir)
    audit = audit_record(record)
    (run_dir / "audit.json").write_text(json.dumps(audit.to_json(), indent=2))
    markdown = _report(scenario, manifest, actions, audit)
    (run_dir / REPORT).write_text(with_answers(markdown, record))
    (run_dir / REPORT_HTML).write_text(build_report(record, audit), encoding="utf-8")
    return RunResult(run_dir, failure, audit, actions, interrupted)


def _coverage_warnings(
    scenario: Scenario,
    actions: list[dict[str, Any]],
    timings: Mapping[str, float],
    dropouts: Set[str] = frozenset(),
) -> list[str]:
    """Where a stage that ran did less than it declares: a planned action
    that no party ran (no party of its role), its final step among them,
    and what it should have left in a role's store that no party of that
    role made. The audit's coverage claim reports them (strict: fails)."""
    warnings = []
    settings = scenario.stage_settings()
    for stage in scenario.stages:
        if stage.name not in timings:
            continue  # not reached: the audit says so
        protocol = get_protocol(stage.protocol)
        params = settings[stage.protocol]
        ran = {(a["action"], a["round"]) for a in actions if a.get("stage") == stage.name}
        plan = protocol.plan(params, stage.part)
        for index, (role, action, number) in enumerate(plan):
            if (action, number) in ran:
                continue
            final = " (its final step)" if index == len(plan) - 1 else ""
            within = f" in round {number}" if number is not None else ""
            warnings.append(
                f"stage {stage.name}: {stage.protocol} action {action}{final} of the "
                f"{role} ran at no party{within}"
            )
        for role, kept in protocol.artifacts_of(params, stage.part).makes:
            # made by the parties of that role, acting or answering: a role
            # the scenario has none of needs none (its actions are checked above)
            keepers = [n for n in scenario.parties if scenario.role_of(n) == role]
            if keepers and all(n in dropouts for n in keepers):
                warnings.append(
                    f"stage {stage.name}: declares the {role}'s {kept.name}, but every "
                    f"{role} dropped out, so none made it"
                )
    return warnings


@contextlib.contextmanager
def _shielded_from_interrupts(progress: Progress) -> Iterator[None]:
    """After a Ctrl-C, finish sealing and collecting (every call has its
    deadline, so this ends): a further Ctrl-C is told, not obeyed."""

    def told(signum: int, frame: Any) -> None:
        progress("still sealing and collecting the logs (each call has a deadline)")

    try:
        previous = signal.signal(signal.SIGINT, told)
    except ValueError:  # not the main thread: nothing to shield
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _listen_addresses(
    scenario: Scenario, placement: dict[str, dict[str, Any]], *, single_machine: bool
) -> dict[str, tuple[str, str | None]]:
    """party -> (where it listens, what it advertises if not that). On one
    machine, the scenario's bind_host; on a cluster, its node's address as Ray
    reports it, advertised as its site's `advertise` where one is given."""
    listen: dict[str, tuple[str, str | None]] = {}
    for name, spec in scenario.parties.items():
        if single_machine:
            listen[name] = (scenario.run.bind_host, None)
            continue
        site = scenario.sites.get(spec.site)
        listen[name] = (placement[name]["node_ip"], site.advertise if site else None)
    return listen


def _report(
    scenario: Scenario, manifest: dict[str, Any], actions: list[dict[str, Any]], audit: AuditReport
) -> str:
    """report.md, the run's story stage by stage: what each party's actions
    gave (or the protocol's own account, where it gives one), then what
    reached each party in which form, and the audit's verdict."""
    outcome = manifest["outcome"] + (f": {manifest['failure']}" if manifest["failure"] else "")
    lines = [f"# Run {manifest['run_id']} ({scenario.name})", "", f"Outcome: {outcome}", ""]
    timings = manifest.get("stage_seconds", {})
    reported: set[str] = set()
    for number, stage in enumerate(scenario.stages, 1):
        protocol = get_protocol(stage.protocol)
        seconds = timings.get(stage.name)
        took = f", {seconds:.1f} s" if seconds is not None else ", not run"
        part = f" ({stage.part})" if stage.part else ""
        lines += [f"## Stage {number}: {stage.name} ({stage.protocol}{part}{took})", ""]
        if protocol.report is not None and stage.protocol not in reported:
            reported.add(stage.protocol)
            mine = [a for a in actions if a["protocol"] == stage.protocol]
            lines += [*protocol.report(mine), ""]
            continue
        for action in (a for a in actions if a.get("stage") == stage.name):
            tag = "adversary " if action["adversarial"] else ""
            lines.append(f"- {tag}{action['party']} {action['action']}: {brief(action['result'])}")
        lines.append("")
    lines += ["## What reached each party, in the most revealing form", ""]
    lines += ["| party | asset @ form |", "|---|---|"]
    for party, seen in audit.visibility.items():
        shown = ", ".join(f"{asset}@{form}" for asset, form in sorted(seen.items())) or "-"
        lines.append(f"| {party} | {shown} |")
    verdict = "every claim holds" if audit.ok else "some claims fail (see audit.json)"
    blocked = f"; {len(audit.blocked)} deliveries blocked at a boundary" if audit.blocked else ""
    lines += ["", f"Audit: {verdict}{blocked}.", ""]
    return "\n".join(lines)


def _seal_and_collect(
    hosts: Hosts,
    names: list[str],
    placements: dict[str, dict[str, Any]],
    run_dir: Path,
    progress: Progress,
    timeout: float,
) -> set[str]:
    """Seal every party that still answers, at once, and collect their logs;
    salvage the unsealed logs of those that died or did not answer. Return
    the names of the sealed ones."""
    sealing = hosts.gather({n: ("seal", ()) for n in names if n in hosts.alive}, timeout)
    for party, why in {**sealing.failed, **sealing.lost}.items():
        progress(f"could not seal the log of {party}: {why}")
    collected = set()
    for name in names:
        if name in sealing.results:
            exported = hosts.gather({name: ("export_log", ())}, timeout)
            if name in exported.results:
                files = exported.results[name]
                _write_log_files(run_dir / PARTIES_DIR / name, name, files, progress)
                collected.add(name)
                continue
            trouble = {**exported.failed, **exported.lost}
            progress(f"could not collect the log of {name}: {trouble[name]}")
        if not placements.get(name):
            continue
        try:
            files = hosts.salvage(name, placements[name], timeout)
        except PartyFailed as salvage_error:
            progress(str(salvage_error))
            continue
        progress(f"salvaged the unsealed log of {name} ({len(files)} files) from its node")
        _write_log_files(run_dir / PARTIES_DIR / name, name, files, progress)
    progress(f"sealed and collected {len(collected)} logs")
    _lay_out_published(run_dir, progress)
    return collected


def _lay_out_published(run_dir: Path, progress: Progress) -> None:
    """Move what each party published (collected with its log) to the run
    directory's top level, never over a file already there."""
    for published in sorted((run_dir / PARTIES_DIR).glob(f"*/{PUBLISHED_DIR}")):
        for path in sorted(p for p in published.iterdir()):
            target = run_dir / path.name
            if target.exists():
                progress(f"{published.parent.name} published {path.name}, already in the run")
                continue
            path.rename(target)
            progress(f"{published.parent.name} published {path.name}")


def _write_log_files(target: Path, party: str, files: dict[str, bytes], progress: Progress) -> None:
    """Write what a party handed over, refusing any path that would leave
    `target` (absolute, `..`, or through a link): the names are the party's."""
    root = target.resolve()
    for relative, data in files.items():
        path = (target / relative).resolve()
        if (
            not isinstance(relative, str)
            or not isinstance(data, bytes)
            or Path(relative).is_absolute()
            or ".." in Path(relative).parts
            or not path.is_relative_to(root)
            or path == root
        ):
            progress(f"refused a file {party} handed over: {relative!r} is outside its log")
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

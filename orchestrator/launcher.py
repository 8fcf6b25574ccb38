"""Runs a scenario: start the parties, give them identities and a directory,
run the stages, seal and collect the logs, write the run directory, audit it.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import signal
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from orchestrator.audit import AuditReport, audit_record, load_run
from orchestrator.hosts import LocalHosts, RayHosts
from orchestrator.report import REPORT_HTML, build_report
from orchestrator.scenario import FaultSpec, Scenario, StageSpec
from parties.directory import PartyEntry
from parties.errors import AirlockError, ConfigError, PartiesLost, PartyFailed
from parties.identity import RunAuthority, issue_credentials
from parties.protocol import FINGERPRINTS, Protocol
from parties.runtime import PartyConfig
from protocols import get_protocol

Progress = Callable[[str], None]
Hosts = LocalHosts | RayHosts
MANIFEST = "manifest.json"
REPORT = "report.md"
PARTIES_DIR = "parties"
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


@dataclass
class RunResult:
    run_dir: Path
    failure: str | None
    audit: AuditReport
    actions: list[dict[str, Any]]


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("airlock", "ray", "grpcio", "protobuf", "cryptography"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _utc_now() -> str:
    """Now, as the visibility logs write their times."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds")


def default_run_dir(scenario: Scenario, run_id: str) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{stamp}-{scenario.name}-{run_id[:8]}"


def party_configs(
    scenario: Scenario, run_id: str, scenario_text: str = ""
) -> dict[str, PartyConfig]:
    guarantees = tuple((g.name, g.asset, tuple(g.viewers), g.max_form) for g in scenario.guarantees)
    settings = scenario.stage_settings()
    roles = {name: scenario.role_of(name) for name in scenario.parties}
    provisions: dict[str, dict[str, Any]] = {name: {} for name in scenario.parties}
    for protocol_name, params in settings.items():
        provision = get_protocol(protocol_name).provision
        if provision is not None:
            for name, material in provision(roles, params).items():
                provisions[name][protocol_name] = material
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
            scenario_sha256=hashlib.sha256(scenario_text.encode()).hexdigest(),
            settings=settings,
            provisions=provisions[name],
        )
        for name, spec in scenario.parties.items()
    }


def run_scenario(
    scenario: Scenario,
    scenario_text: str,
    *,
    out: Path | None = None,
    address: str | None = None,
    in_process: bool = False,
    progress: Progress = lambda message: None,
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
    run_id = uuid.uuid4().hex[:16]
    run_dir = out or default_run_dir(scenario, run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    configs = party_configs(scenario, run_id, scenario_text)
    deadlines = scenario.run
    started = datetime.datetime.now(datetime.UTC).isoformat()
    progress(f"starting {len(configs)} parties" + (" in this process" if in_process else " on Ray"))
    hosts = (
        LocalHosts(configs)
        if in_process
        else RayHosts(configs, {n: s.site for n, s in scenario.parties.items()}, address)
    )
    names = list(configs)
    manifest: dict[str, Any] = {
        "run_id": run_id,
        "scenario": scenario.name,
        "started": started,
        "versions": _versions(),
        "ray": "in-process (no Ray)" if in_process else ("embedded" if hosts.embedded else address),  # type: ignore[union-attr]
        "outcome": "running",
    }
    failure: str | None = None
    actions: list[dict[str, Any]] = []
    sealed: set[str] = set()
    losses = Losses()
    timings: dict[str, float] = {}
    running = ""  # the stage under way, which a failure is told in
    try:
        authority = RunAuthority(run_id)
        manifest["ca_pem"] = authority.certificate_pem.decode()
        running = "starting the parties"
        placement = hosts.call({n: ("node", ()) for n in names}, deadlines.start_timeout_s)
        requests = hosts.call(
            {n: ("certificate_requests", ()) for n in names}, deadlines.control_timeout_s
        )
        credentials = {n: issue_credentials(authority, n, requests[n]) for n in names}
        listen = _listen_addresses(scenario, placement, single_machine=hosts.single_machine)
        addresses = hosts.call(
            {n: ("start", (credentials[n], *listen[n])) for n in names}, deadlines.control_timeout_s
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
            {n: ("join", (entries, authority.certificate_pem)) for n in names},
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
            actions += _run_stage(scenario, stage, params, hosts, pids, progress, losses)
            elapsed = time.monotonic() - began
            timings[stage.name] = round(elapsed, 2)
            progress(f"stage {number}/{len(scenario.stages)}: {stage.name} done in {elapsed:.1f} s")
            running = ""
    except AirlockError as error:
        failure = f"{running}: {error}" if running else str(error)
        progress(f"run failed: {failure}")
    finally:
        try:
            placements = {n: p.get("placement", {}) for n, p in manifest.get("parties", {}).items()}
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
        outcome="failed" if failure else "completed",
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
    (run_dir / REPORT).write_text(_report(scenario, manifest, actions, audit))
    (run_dir / REPORT_HTML).write_text(build_report(record, audit), encoding="utf-8")
    return RunResult(run_dir, failure, audit, actions)


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
            lines.append(f"- {tag}{action['party']} {action['action']}: {_brief(action['result'])}")
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


def _run_stage(
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
            progress(f"{protocol_name}: {tag}{party} {action}{where} -> {_brief(result)}")
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


def _brief(result: Any, limit: int = 240) -> str:
    """A result for the progress line; fingerprints stay in the manifest."""
    if isinstance(result, dict):
        result = {k: v for k, v in result.items() if k != FINGERPRINTS}
    text = json.dumps(result)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
    return collected


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

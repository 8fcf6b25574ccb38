"""Runs a scenario: start the parties, give them identities and a directory,
run the stages, seal and collect the logs, write the run directory, audit it.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import platform
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from orchestrator.audit import AuditReport, audit_record, load_run
from orchestrator.hosts import LocalHosts, RayHosts
from orchestrator.report import REPORT_HTML, build_report
from orchestrator.scenario import Scenario, StageSpec
from parties.directory import PartyEntry
from parties.errors import AirlockError, PartyFailed
from parties.identity import RunAuthority, issue_credentials
from parties.protocol import FINGERPRINTS
from parties.runtime import PartyConfig
from protocols import get_protocol

Progress = Callable[[str], None]
MANIFEST = "manifest.json"
REPORT = "report.md"
PARTIES_DIR = "parties"


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
    run_id = uuid.uuid4().hex[:16]
    run_dir = out or default_run_dir(scenario, run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    configs = party_configs(scenario, run_id, scenario_text)
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
    }
    failure: str | None = None
    actions: list[dict[str, Any]] = []
    sealed: set[str] = set()
    dropouts: set[str] = set()
    timings: dict[str, float] = {}
    running = ""  # the stage under way, which a failure is told in
    try:
        authority = RunAuthority(run_id)
        manifest["ca_pem"] = authority.certificate_pem.decode()
        placement = hosts.call({n: ("node", ()) for n in names})
        requests = hosts.call({n: ("certificate_requests", ()) for n in names})
        credentials = {n: issue_credentials(authority, n, requests[n]) for n in names}
        host = scenario.run.bind_host
        addresses = hosts.call({n: ("start", (credentials[n], host)) for n in names})
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
        hosts.call({n: ("join", (entries, authority.certificate_pem)) for n in names})
        progress("identities issued, mutual TLS up, directory shared")
        settings = scenario.stage_settings()
        for number, stage in enumerate(scenario.stages, 1):
            began = time.monotonic()
            running = f"stage {number}/{len(scenario.stages)} ({stage.name})"
            progress(f"stage {number}/{len(scenario.stages)}: {stage.name} ({stage.protocol})")
            actions += _run_stage(
                scenario, stage, settings[stage.protocol], hosts, progress, dropouts
            )
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
            sealed = _seal_and_collect(hosts, names, placements, run_dir, progress)
        finally:
            hosts.close()
    unsealed = set(names) - sealed - dropouts
    if failure is None and unsealed:
        failure = "logs of " + ", ".join(sorted(unsealed)) + " could not be sealed"
    manifest.update(
        dropouts=sorted(dropouts),
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
    hosts: LocalHosts | RayHosts,
    progress: Progress,
    dropouts: set[str],
) -> list[dict[str, Any]]:
    """Run one stage's plan (with the protocol's params merged over its
    stages). A party of a role the protocol survives losing that is killed
    by an injected fault is a dropout: the run goes on."""
    protocol_name = stage.protocol
    protocol = get_protocol(protocol_name)
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
        timers = []
        for fault in scenario.faults:
            due = fault.round is None or fault.round == number
            if fault.action != action or not due or fault.kill not in hosts.alive:
                continue
            if scenario.role_of(fault.kill) in protocol.survives_loss_of:
                dropouts.add(fault.kill)
            if fault.before is not None:
                hosts.kill(fault.kill)
                progress(f"fault injected: killed {fault.kill} before {action}")
            else:
                timer = threading.Timer(fault.after_s, _kill_during, (hosts, fault, progress))
                timers.append(timer)
                timer.start()
        if role in protocol.survives_loss_of:  # the protocol copes without them
            parties = [n for n in parties if n in hosts.alive]
        # a dropout of an earlier stage is gone for the rest of the run
        parties = [n for n in parties if n not in dropouts or n in hosts.alive]
        step_params = params if number is None else {**params, "round": number}
        # the orchestrator's clock, from its call to the last party's answer
        # (on Ray the parties of one call act at once): `airlock trace` draws it
        began = _utc_now()
        try:
            results = hosts.call(
                {n: ("act", (protocol_name, action, step_params)) for n in parties}
            )
        finally:
            for timer in timers:
                timer.cancel()
        ended = _utc_now()
        for party, result in results.items():
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


def _kill_during(hosts: LocalHosts | RayHosts, fault: Any, progress: Progress) -> None:
    if fault.kill in hosts.alive:
        hosts.kill(fault.kill)
        progress(f"fault injected: killed {fault.kill} {fault.after_s} s into {fault.during}")


def _brief(result: Any, limit: int = 240) -> str:
    """A result for the progress line; fingerprints stay in the manifest."""
    if isinstance(result, dict):
        result = {k: v for k, v in result.items() if k != FINGERPRINTS}
    text = json.dumps(result)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _seal_and_collect(
    hosts: LocalHosts | RayHosts,
    names: list[str],
    placements: dict[str, dict[str, Any]],
    run_dir: Path,
    progress: Progress,
) -> set[str]:
    """Seal and collect every party that still answers; salvage the unsealed
    logs of those that died. Return the names of the sealed ones."""
    collected = set()
    for name in names:
        try:
            hosts.call({name: ("seal", ())})
            files = hosts.call({name: ("export_log", ())})[name]
            collected.add(name)
        except PartyFailed as error:
            progress(f"could not seal a log: {error}")
            if not placements.get(name):
                continue
            try:
                files = hosts.salvage(name, placements[name])
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

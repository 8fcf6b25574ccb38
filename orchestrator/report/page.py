"""The report page, section by section: the run, the claims, the visibility
matrix, the sequence diagram, the protocols' figures, and a page per party.
Everything is inline (style, script, pictures) and the page's own policy
forbids loading anything, so it opens from disk with no network."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from html import escape
from importlib import resources
from itertools import groupby
from typing import Any

from evidence.claims import Claim, Finding
from orchestrator.audit import AuditReport, RunRecord
from orchestrator.report.answers import answers_html
from orchestrator.report.deliveries import (
    Delivery,
    arrows,
    assign_stages,
    chatty_steps,
    pair_deliveries,
)
from orchestrator.report.diagram import arrow_details, sequence_diagram
from orchestrator.report.figures import figures
from parties.labels import Form
from parties.log import Direction, Outcome, labels_text
from parties.log_check import blob_path
from parties.policy import Policy

# the browser refuses to load anything: every byte the page uses is in it
POLICY = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
PREVIEW_BYTES = 200
PRINTABLE_SHARE = 0.9  # a preview is shown when this share of it is printable text
FOLD_AT_LEAST = 4  # consecutive like entries of a party's log are folded into one row
EVENTS = {
    ("out", "sending"): "sent, no outcome logged",
    ("out", "delivered"): "sent",
    ("out", "replied"): "replied",
    ("out", "refused"): "sent, refused there",
    ("out", "undelivered"): "undelivered",
    ("out", "withheld"): "withheld",
    ("in", "admitted"): "received",
    ("in", "refused"): "refused",
}


def _anchor(party: str | None, entry: int | None) -> str:
    """A link to a log entry on its party's page (or the party's page)."""
    if party is None:
        return "run"
    target = f"e-{party}-{entry}" if entry is not None else f"party-{party}"
    text = party + (f" entry {entry}" if entry is not None else "")
    return f'<a href="#{escape(target)}">{escape(text)}</a>'


def _finding(finding: Finding) -> str:
    return f"<li>{_anchor(finding.party, finding.entry)}: {escape(finding.detail)}</li>"


def _claims_table(claims: list[Claim]) -> str:
    rows = []
    for claim in claims:
        verdict = "holds" if claim.ok else "FAILS"
        findings = "".join(_finding(f) for f in claim.findings)
        notes = "".join(_finding(n) for n in claim.notes)
        rows.append(
            f'<tr class="claim {"holds" if claim.ok else "fails"}">'
            f"<td>{escape(claim.name)}</td><td>{claim.checked}</td>"
            f'<td><span class="verdict">{verdict}</span>'
            + (f'<ul class="findings">{findings}</ul>' if findings else "")
            + (f'<ul class="notes">{notes}</ul>' if notes else "")
            + "</td></tr>"
        )
    return (
        '<table class="claims"><tr><th>claim</th><th>checked</th><th>result</th></tr>'
        + "".join(rows)
        + "</table>"
    )


def _claims_section(audit: AuditReport, verified: list[Claim] | None) -> str:
    parts = ['<section id="claims"><h2>Claims</h2>', "<h3>The audit</h3>"]
    parts.append(_claims_table(audit.claims))
    if verified is not None:
        parts += ["<h3>Verification (the run's attestation stages)</h3>", _claims_table(verified)]
    if audit.blocked:
        parts.append(f"<h3>Blocked at a boundary ({len(audit.blocked)})</h3><ul class=blocked>")
        for item in audit.blocked:
            verb = "withheld" if item["withheld"] else "refused"
            parts.append(
                f"<li><b>{verb}</b> {escape(str(item['from']))} → {escape(str(item['to']))} "
                f"({_anchor(item['party'], item['entry'])}): {escape(str(item['step']))} "
                f"[{escape(labels_text(item['labels']))}]: {escape(str(item['refusal']))}: "
                f"{escape(str(item['detail']))}</li>"
            )
        parts.append("</ul>")
    return "".join(parts) + "</section>"


# asset kinds, most sensitive first: what a user of the run would look for
# first (prompts, patient notes, weights, updates, queries, answers), then
# what protects them; every other kind follows, by name
SENSITIVE_KINDS = (
    "prompt",
    "train",
    "weights",
    "update",
    "query",
    "output",
    "mask_seeds",
    "randomness",
)


PUBLIC_ONLY = "public-only"  # the compact matrix's column of kinds seen only as public


def _kind(asset: str) -> str:
    return asset.split(":", 1)[0]


def _owner(asset: str) -> str:
    return asset.split(":", 1)[1] if ":" in asset else ""


def _kind_order(kind: str) -> tuple[int, str]:
    return (SENSITIVE_KINDS.index(kind), "") if kind in SENSITIVE_KINDS else (99, kind)


def _legend() -> str:
    forms = "".join(f'<span class="cell f-{form}">{form}</span>' for form in Form)
    return (
        '<p class="legend">Forms, most to least revealing: '
        + forms
        + '. <span class="cell capped f-share">dashed</span>: a guarantee caps what this party '
        "may see of this asset (its cap after ≤); "
        '<span class="cell breach f-plaintext">striped</span>: the cap is broken. '
        '<span class="cell open f-plaintext">pale</span>: no guarantee limits this party '
        "here (expected, e.g. contributors receiving the model they train); "
        '<span class="cell own">own</span>: the party\'s own asset. '
        "Sensitive assets come first.</p>"
    )


class _Cells:
    """What each matrix cell says: the form, and how it stands against the
    guarantees (capped, breached, open, the party's own)."""

    def __init__(self, run: RunRecord, audit: AuditReport) -> None:
        self.scenario = run.scenario
        self.guarantees = run.scenario.policy_guarantees()
        self.visibility = audit.visibility

    def classes(self, party: str, asset: str) -> tuple[list[str], str, str]:
        """(CSS classes, the cap or "", the hover text) of one party's asset."""
        role = self.scenario.role_of(party)
        form = self.visibility[party].get(asset, "")
        caps = [g for g in self.guarantees if g.covers(party, role, asset)]
        classes = [f"f-{form}"] if form else []
        title = f"{party}: {asset} " + (f"reached it as {form}" if form else "never reached it")
        cap = ""
        if caps:
            cap = str(max(g.max_form for g in caps))  # the least revealing form any cap allows
            classes.append("capped")
            title += "; capped at " + "; ".join(f"{g.max_form} by '{g.name}'" for g in caps)
            if form and any(not Form.parse(form).reveals_at_most(g.max_form) for g in caps):
                classes.append("breach")
                title += "; BREACH"
        elif form and _owner(asset) == party:
            classes.append("own")
            title += "; its own"
        elif form:
            classes.append("open")
            title += "; no guarantee limits it"
        return classes, cap, title


def _matrix_head(first: str, columns: list[tuple[str, str]]) -> str:
    """A header row: the party column, then (column name, its group) each."""
    return (
        f'<tr><th class="party">{first}</th>'
        + "".join(
            f'<th class="asset" data-group="{escape(group)}"><span>{escape(name)}</span></th>'
            for name, group in columns
        )
        + "</tr>"
    )


def _party_cell(party: str, role: str) -> str:
    return (
        f'<th class="party"><a href="#party-{escape(party)}">{escape(party)}</a>'
        f'<span class="role">{escape(role)}</span></th>'
    )


def _full_matrix(cells: _Cells, parties: list[str], assets: list[str]) -> str:
    rows = []
    for party in parties:
        row = [_party_cell(party, cells.scenario.role_of(party))]
        for asset in assets:
            classes, cap, title = cells.classes(party, asset)
            form = cells.visibility[party].get(asset, "")
            attributes = f'data-party="{escape(party)}" data-asset="{escape(asset)}"'
            if cap:
                attributes += f' data-cap="{cap}"'
            row.append(
                f'<td class="{" ".join(["cell", *classes])}" {attributes} '
                f'title="{escape(title)}">{escape(form)}</td>'
            )
        rows.append("<tr>" + "".join(row) + "</tr>")
    head = _matrix_head("party", [(a, _kind(a)) for a in assets])
    return f'<table id="matrix" class="matrix">{head}{"".join(rows)}</table>'


def _rank_of(form: str) -> int:
    order = [str(f) for f in Form]
    return order.index(form) if form in order else len(order)


def _compact_matrix(cells: _Cells, parties: list[str], assets: list[str]) -> str:
    """A column per asset kind: the most revealing form that reached the
    party of any asset of that kind, marked as its worst cell is."""
    by_kind: dict[str, list[str]] = {}
    for asset in assets:
        by_kind.setdefault(_kind(asset), []).append(asset)
    # kinds that reach every party only as public, and no guarantee caps:
    # one column at the end (keys, nonces, catalogs, ...)
    public = [
        kind
        for kind, members in by_kind.items()
        if kind not in SENSITIVE_KINDS
        and all(
            cells.visibility[p].get(a, "") in ("", str(Form.PUBLIC))
            and "capped" not in cells.classes(p, a)[0]
            for p in parties
            for a in members
        )
    ]
    kinds = {k: m for k, m in by_kind.items() if k not in public}
    labels = {kind: f"{kind} ({len(members)})" for kind, members in kinds.items()}
    if public:
        kinds[PUBLIC_ONLY] = [a for kind in public for a in by_kind[kind]]
        labels[PUBLIC_ONLY] = f"only public: {', '.join(public)}"
    rows = []
    for party in parties:
        row = [_party_cell(party, cells.scenario.role_of(party))]
        for kind, members in kinds.items():
            seen = [(a, cells.visibility[party].get(a, "")) for a in members]
            reached = [(a, f) for a, f in seen if f]
            marks: set[str] = set()
            for asset, _ in reached:
                marks.update(c for c in cells.classes(party, asset)[0] if not c.startswith("f-"))
            form = min((f for _, f in reached), key=_rank_of, default="")
            classes = ["cell"] + ([f"f-{form}"] if form else [])
            if "breach" in marks:
                classes += ["capped", "breach"]
            elif "capped" in marks:
                classes.append("capped")
            elif marks == {"own"}:
                classes.append("own")
            elif "open" in marks:
                classes.append("open")
            title = f"{party}, {kind}: " + (
                "; ".join(f"{a} as {f}" for a, f in reached) or "nothing reached it"
            )
            count = f"<small>×{len(reached)}</small>" if len(reached) > 1 else ""
            row.append(
                f'<td class="{" ".join(classes)}" data-party="{escape(party)}" '
                f'data-kind="{escape(kind)}" title="{escape(title)}">{escape(form)}{count}</td>'
            )
        rows.append("<tr>" + "".join(row) + "</tr>")
    head = _matrix_head("party", [(labels[kind], kind) for kind in kinds])
    return f'<table id="matrix-kinds" class="matrix">{head}{"".join(rows)}</table>'


def _matrix_section(run: RunRecord, audit: AuditReport) -> str:
    scenario = run.scenario
    cells = _Cells(run, audit)
    guarantees = cells.guarantees
    found = {asset for seen in audit.visibility.values() for asset in seen}
    assets = sorted(found, key=lambda a: (_kind_order(_kind(a)), a))
    parties = [p for p in scenario.parties if p in audit.visibility]  # those with a log
    breached = any("breach" in cells.classes(p, a)[0] for p in parties for a in audit.visibility[p])
    listed = "".join(
        f"<li>{escape(g.name)}: {escape(g.asset)} at most as <b>{g.max_form}</b> for "
        f"{escape(', '.join(sorted(g.viewers)))}</li>"
        for g in guarantees
    )
    kinds = len({_kind(a) for a in assets})
    # compact by default; every asset's column where a guarantee is broken
    return (
        '<section id="visibility"><h2>Visibility: the most revealing form that reached '
        "each party</h2>"
        + _legend()
        + f"<h3>By kind of asset ({kinds} kinds; hover a cell for its assets)</h3>"
        + f'<div class="scroll matrix-view">{_compact_matrix(cells, parties, assets)}</div>'
        + f'<details id="matrix-full"{" open" if breached else ""}><summary>Every asset '
        f"({len(assets)} columns, sensitive first)</summary>"
        + f'<div class="scroll matrix-view">{_full_matrix(cells, parties, assets)}</div>'
        + "</details>"
        + (f"<h3>Guarantees</h3><ul>{listed}</ul>" if listed else "")
        + "</section>"
    )


def _options(name: str, label: str, values: list[str]) -> str:
    options = "".join(f'<option value="{escape(v)}">{escape(v)}</option>' for v in values)
    return (
        f'<label>{label} <select id="filter-{name}"><option value="">all</option>'
        f"{options}</select></label>"
    )


def _sequence_section(run: RunRecord, deliveries: list[Delivery], audit: AuditReport) -> str:
    drawn = arrows(deliveries)
    signatures = next(c for c in audit.claims if c.name == "sender signatures")
    unverified = {(f.party or "", f.entry or -1) for f in signatures.findings}
    details = [arrow_details(arrow, unverified) for arrow in drawn]
    outcomes = sorted({d.outcome for d in deliveries})
    stages = [s.name for s in run.scenario.stages]
    filters = (
        _options("stage", "stage", stages)
        + _options("party", "party", list(run.scenario.parties))
        + _options("outcome", "outcome", outcomes)
    )
    blocked = sum(1 for d in deliveries if d.blocked)
    note = (
        f"{len(deliveries)} deliveries, {blocked} blocked, drawn as {len(drawn)} arrows: a step "
        "that crosses often is drawn once per burst, with its count. Click an arrow for its "
        "header and both logs' entries."
    )
    # "</" would end the script element early; JSON reads "<\/" as "</"
    data = json.dumps(details, separators=(",", ":")).replace("</", "<\\/")
    return (
        '<section id="sequence-diagram"><h2>Sequence of the run</h2>'
        f'<p>{escape(note)}</p><form class="filters">{filters} '
        f'<span id="shown-count"></span></form>'
        '<div class="sequence-view"><div class="scroll diagram">'
        + sequence_diagram(run.scenario, drawn)
        + '</div><aside id="details"><p>Select an arrow.</p></aside></div>'
        f'<script type="application/json" id="arrow-data">{data}</script></section>'
    )


def _figures_section(run: RunRecord, deliveries: list[Delivery]) -> str:
    drawn = figures(run, deliveries)
    if not drawn:
        names = ", ".join(run.scenario.protocol_names)
        body = f"<p>This run's protocols ({escape(names)}) have no figures.</p>"
    else:
        body = "".join(
            f"<figure><h3>{escape(f.title)}</h3>{f.body}<figcaption>{escape(f.caption)}"
            "</figcaption></figure>"
            for f in drawn
        )
    return f'<section id="figures"><h2>Protocol figures</h2>{body}</section>'


def _preview(run: RunRecord, party: str, entry: dict[str, Any]) -> str:
    """The start of a kept payload as text, or "" when it is mostly not text."""
    path = blob_path(run.run_dir / "parties" / party, entry)
    if not entry.get("blob_verified") or path is None:
        return ""
    with path.open("rb") as blob:
        text = blob.read(PREVIEW_BYTES).decode("utf-8", errors="replace")
    printable = [c if c.isprintable() or c in "\n\t" else "·" for c in text]
    if not text or printable.count("·") > (1 - PRINTABLE_SHARE) * len(text):
        return ""
    return "".join(printable) + ("…" if int(entry.get("size", 0)) > PREVIEW_BYTES else "")


class _PartyRows:
    """The rows of one party's log table."""

    def __init__(self, run: RunRecord, party: str) -> None:
        self.run, self.party = run, party
        self.role = run.scenario.role_of(party)
        self.policy = Policy(protocols={}, guarantees=tuple(run.scenario.policy_guarantees()))

    def readable(self, label: dict[str, str]) -> bool:
        """Whether the party may see the asset as it came: public, or
        plaintext that no guarantee keeps from it."""
        form = label["form"]
        return form == str(Form.PUBLIC) or (
            form == str(Form.PLAINTEXT)
            and self.policy.entitled_to_plaintext(self.party, self.role, label["asset"])
        )

    def row(self, entry: dict[str, Any]) -> str:
        key = (entry.get("direction", ""), entry.get("outcome", ""))
        event = _event(entry)
        digest = str(entry.get("payload_sha256", ""))
        kept = key == (Direction.IN, Outcome.ADMITTED)
        labels = entry.get("labels", [])
        note = " ".join(filter(None, (entry.get("refusal"), entry.get("detail"))))
        if kept and labels and all(self.readable(label) for label in labels):
            preview = _preview(self.run, self.party, entry)
            note = f'<pre class="preview">{escape(preview)}</pre>' if preview else ""
        else:
            note = escape(note)
        blocked = key in ((Direction.IN, Outcome.REFUSED), (Direction.OUT, Outcome.WITHHELD))
        index = entry.get("index")
        return (
            f'<tr id="e-{escape(self.party)}-{index}"'
            + (' class="blocked"' if blocked else "")
            + f"><td>{index}</td><td>{escape(str(entry.get('time', ''))[11:23])}</td>"
            f"<td>{escape(event)}</td><td>{escape(str(entry.get('peer', '')))}</td>"
            f"<td>{escape(str(entry.get('protocol', '')))}.{escape(str(entry.get('step', '')))}"
            f"</td><td>{escape(labels_text(labels))}</td><td>{entry.get('size', '')}</td>"
            f'<td class="digest" title="{escape(digest)}">{escape(digest[:16])}</td>'
            f"<td>{note}</td></tr>"
        )


def _event(entry: dict[str, Any]) -> str:
    key = (entry.get("direction", ""), entry.get("outcome", ""))
    return EVENTS.get(key, " ".join(key))


def _folds(
    entries: list[dict[str, Any]], chatty: set[tuple[str, str]]
) -> Iterator[list[dict[str, Any]]]:
    """Consecutive entries of chatty steps, or else alike in event, peer and step."""

    def alike(entry: dict[str, Any]) -> tuple[Any, ...]:
        step = (entry.get("protocol", ""), entry.get("step", ""))
        return ("chatty",) if step in chatty else (_event(entry), entry.get("peer"), *step)

    for _, similar in groupby(entries, key=alike):
        yield list(similar)


def _fold_summary(entries: list[dict[str, Any]]) -> str:
    counts = Counter((_event(e), str(e.get("step", "")), str(e.get("peer", ""))) for e in entries)
    total = sum(int(e.get("size", 0) or 0) for e in entries)
    what = "; ".join(f"{n} × {event} {step} ({peer})" for (event, step, peer), n in counts.items())
    return (
        f"entries {entries[0].get('index')}–{entries[-1].get('index')}: {what}; "
        f"{total:,} bytes in all"
    )


def _settled_sendings(deliveries: list[Delivery]) -> set[int]:
    """The `sending` entries whose outcome the same log records later (by
    id): a party's page shows the outcome alone."""
    return {
        id(entry)
        for delivery in deliveries
        for owner, entry in delivery.entries
        if entry.get("outcome") == Outcome.SENDING
        and any(p == owner and e is not entry for p, e in delivery.entries)
    }


def _party_section(
    run: RunRecord, party: str, settled: set[int], chatty: set[tuple[str, str]]
) -> str:
    entries = run.logs.get(party, [])
    shown = [e for e in entries if id(e) not in settled]
    count: dict[tuple[str, str], int] = {}
    for entry in shown:
        key = (entry.get("direction", ""), entry.get("outcome", ""))
        count[key] = count.get(key, 0) + 1
    outgoing = sum(n for (direction, _), n in count.items() if direction == Direction.OUT)
    spec = run.scenario.parties[party]
    adversary = f", playing the adversary <b>{escape(spec.adversary)}</b>" if spec.adversary else ""
    summary = (
        f"<p>{len(entries)} log entries: {outgoing} outgoing "
        f"({count.get(('out', 'withheld'), 0)} withheld by its own boundary), "
        f"{count.get(('in', 'admitted'), 0)} received, "
        f"{count.get(('in', 'refused'), 0)} refused{adversary}.</p>"
    )
    rows = _PartyRows(run, party)
    body = []
    for similar in _folds(shown, chatty):
        if len(similar) < FOLD_AT_LEAST:
            body += [rows.row(e) for e in similar]
            continue
        body.append(
            f'<tr class="fold"><td colspan="9"><details><summary>{escape(_fold_summary(similar))}'
            '</summary><table class="log">'
            + "".join(rows.row(e) for e in similar)
            + "</table></details></td></tr>"
        )
    return (
        f'<section class="party" id="party-{escape(party)}">'
        f"<h2>{escape(party)} ({escape(spec.role)})</h2>"
        + summary
        + '<table class="log"><tr><th>#</th><th>time</th><th>event</th><th>peer</th>'
        "<th>step</th><th>labels</th><th>bytes</th><th>payload sha256</th>"
        "<th>preview or reason</th></tr>" + "".join(body) + "</table></section>"
    )


def _run_section(run: RunRecord, audit: AuditReport) -> str:
    manifest = run.manifest
    outcome = str(manifest.get("outcome", "?"))
    if manifest.get("failure"):
        outcome += f": {manifest['failure']}"
    verdict = "every claim holds" if audit.ok else "some claims fail"
    stages = _timeline(run)
    # the verdict first, on one line; then when, and the CA, in small print
    facts = [("outcome", outcome), ("audit", verdict)]
    if manifest.get("dropouts"):
        facts.append(("dropouts", ", ".join(manifest["dropouts"])))
    fine = [
        ("started", str(manifest.get("started", ""))),
        ("finished", str(manifest.get("finished", ""))),
        ("run CA", f"sha256:{audit.ca_fingerprint}"),
    ]

    def listed(pairs: list[tuple[str, str]]) -> str:
        return "".join(
            f'<span class="fact" data-fact="{escape(k)}"><b>{escape(k)}</b> {escape(v)}</span>'
            for k, v in pairs
        )

    state = "holds" if audit.ok and not manifest.get("failure") else "fails"
    return (
        f'<section id="run"><p class="scenario"><b>{escape(run.scenario.name)}</b>: '
        f"{escape(run.scenario.description)}</p>"
        f'<p class="facts {state}">{listed(facts)}</p>'
        f'<p class="facts fine">{listed(fine)}</p>{stages}</section>'
    )


def _timeline(run: RunRecord) -> str:
    """The run at a glance: its stages in order, each as wide as the time
    it took (a stage not run is drawn narrow and hatched)."""
    timings = run.manifest.get("stage_seconds", {})
    total = sum(float(v) for v in timings.values()) or 1.0
    parts = []
    for number, stage in enumerate(run.scenario.stages, 1):
        seconds = timings.get(stage.name)
        took = f"{float(seconds):.1f} s" if seconds is not None else "not run"
        grow = max(float(seconds) / total, 0.04) if seconds is not None else 0.04
        protocol = stage.protocol + (f" ({stage.part})" if stage.part else "")
        parts.append(
            f'<li class="stage p-{escape(stage.protocol)}'
            + (" not-run" if seconds is None else "")
            + f'" style="flex-grow:{grow:.3f}" data-stage="{escape(stage.name)}" '
            f'title="stage {number}: {escape(stage.name)}, {escape(protocol)}, {took}">'
            f"<b>{number}. {escape(stage.name)}</b><span>{escape(protocol)}</span>"
            f"<span>{took}</span></li>"
        )
    return (
        f'<h3 class="timeline">Stages, each as long as it took ({total:.1f} s in all)</h3>'
        f'<ol id="timeline">{"".join(parts)}</ol>'
    )


def _answers_section(run: RunRecord, deliveries: list[Delivery]) -> str:
    body = answers_html(run.manifest.get("actions", []), deliveries)
    return (
        '<section id="answers"><h2>Answers: each question, what was retrieved, the answer, '
        "its receipt, and who saw what of it</h2>" + body + "</section>"
    )


def build_page(run: RunRecord, audit: AuditReport, verified: list[Claim] | None) -> str:
    """The whole report as one HTML document. `verified`: the claims of
    `airlock verify` beyond log integrity, for a run with attestation stages."""
    deliveries = pair_deliveries(run.logs)
    assign_stages(deliveries, run.scenario.stages)
    settled = _settled_sendings(deliveries)
    chatty = chatty_steps(deliveries)
    parties = list(run.scenario.parties)
    nav = "".join(
        f'<a href="#{target}">{escape(text)}</a>'
        for target, text in (
            ("answers", "answers"),
            ("claims", "claims"),
            ("visibility", "visibility"),
            ("sequence-diagram", "sequence"),
            ("figures", "figures"),
        )
    ) + "".join(f'<a href="#party-{escape(p)}">{escape(p)}</a>' for p in parties)
    style = resources.files("orchestrator.report").joinpath("report.css").read_text()
    script = resources.files("orchestrator.report").joinpath("report.js").read_text()
    title = f"Run {run.run_id} ({run.scenario.name})"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Airlock: {escape(title)}</title><style>{style}</style></head><body>"
        f"<header><h1>Airlock report: {escape(title)}</h1><nav>{nav}</nav></header><main>"
        + _run_section(run, audit)
        + _answers_section(run, deliveries)
        + _claims_section(audit, verified)
        + _matrix_section(run, audit)
        + _sequence_section(run, deliveries, audit)
        + _figures_section(run, deliveries)
        + "".join(_party_section(run, p, settled, chatty) for p in parties)
        + f"</main><script>{script}</script></body></html>\n"
    )

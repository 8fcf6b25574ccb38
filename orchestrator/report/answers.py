"""What the run answered: each question an end user asked, what was
retrieved for it, the answer (or why there was none), its receipt, and
who saw what of it. Drawn from the actions' results in the manifest
(the end user's own account) and the audit's visibility; nothing is
recomputed. Shown at the top of report.html and of report.md, in full."""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from html import escape
from typing import Any

from orchestrator.audit import RunRecord
from orchestrator.report.deliveries import Delivery, pair_deliveries
from parties.labels import Form
from parties.log import Outcome

# a prompt grounded in a retrieved guideline (models.corpus.grounded_prompt)
GROUNDED = re.compile(r"question: (?P<q>.*?)\n(?:context: (?P<c>.*)\n)?answer:\s*$", re.DOTALL)
# what a manifest edited (or written by another version) may raise here
UNREADABLE = (KeyError, TypeError, ValueError, AttributeError)
# the user's assets an answer touches, in the order they cross the pipeline
ASSET_KINDS = ("query", "prompt", "output")


@dataclass
class Answer:
    """One question and what became of it."""

    user: str
    stage: str
    protocol: str
    question: str
    retrieved: list[str] = field(default_factory=list)
    answer: str | None = None  # None: no answer
    refused: str = ""  # why there is no answer
    receipt: str = ""
    seen: list[tuple[str, str, str]] = field(default_factory=list)  # (asset, form, parties)
    path: list[str] = field(default_factory=list)  # the protocols that carried it


def _question(prompt: str) -> tuple[str, str | None]:
    """(the question, the guideline it was grounded in, if any)."""
    grounded = GROUNDED.match(prompt)
    if grounded:
        return grounded["q"].strip(), grounded["c"]
    return prompt, None


def _refusal(text: str) -> tuple[str, str]:
    """A refusal recorded as "'prompt': reason"."""
    match = re.match(r"(?P<p>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"): (?P<r>.*)", text, re.DOTALL)
    if not match:
        return "", text
    try:
        prompt = ast.literal_eval(match["p"])
    except (ValueError, SyntaxError):
        prompt = match["p"][1:-1]
    return str(prompt), match["r"]


Views = Mapping[tuple[str, str], Mapping[str, str]]


def views_by_protocol(deliveries: list[Delivery]) -> dict[tuple[str, str], dict[str, str]]:
    """(asset, protocol) -> party -> the most revealing form in which that
    protocol's admitted deliveries brought the asset to the party."""
    views: dict[tuple[str, str], dict[str, str]] = {}
    for delivery in deliveries:
        if delivery.outcome != Outcome.ADMITTED:
            continue
        protocol = str(delivery.field("protocol"))
        for label in delivery.field("labels", []):
            seen = views.setdefault((str(label["asset"]), protocol), {})
            form = str(label["form"])
            if _rank(form) < _rank(seen.get(delivery.receiver, "")):
                seen[delivery.receiver] = form
    return views


def who_saw(user: str, protocols: list[str], views: Views) -> list[tuple[str, str, str]]:
    """For each of the user's assets (query, prompt, output): each form in
    which the given protocols brought it to a party other than the user,
    most revealing first, with those parties."""
    seen = []
    for kind in ASSET_KINDS:
        asset = f"{kind}:{user}"
        best: dict[str, str] = {}
        for protocol in protocols:
            for party, form in views.get((asset, protocol), {}).items():
                if party != user and _rank(form) < _rank(best.get(party, "")):
                    best[party] = form
        by_form: dict[str, list[str]] = {}
        for party, form in best.items():
            by_form.setdefault(form, []).append(party)
        for form in sorted(by_form, key=_rank):
            seen.append((asset, form, ", ".join(sorted(by_form[form]))))
    return seen


def _rank(form: str) -> int:
    """Most revealing first; a form never seen ranks last."""
    order = [str(f) for f in Form]
    return order.index(form) if form in order else len(order)


def _answer(
    retrieved: Mapping[tuple[str, str], list[str]],
    where: tuple[str, str, str],
    prompt: str,
    **values: Any,
) -> Answer:
    """One question: `where` is (user, stage, protocol); `retrieved`, the
    documents each (user, question) was given by private retrieval."""
    user, stage, protocol = where
    question, context = _question(str(prompt))
    fetched = (user, question) in retrieved
    documents = list(retrieved.get((user, question), []))
    if context and context not in documents:
        documents.insert(0, context + " (given with the prompt, not retrieved)")
    path = [protocol, "attestation"] + (["pir"] if fetched else [])
    return Answer(user, stage, protocol, question, documents, path=path, **values)


def answers(actions: list[dict[str, Any]], views: Views) -> list[Answer]:
    """Every question the run's end users asked, in the order of the
    pipeline: retrieval (pir), the enclave (tee), MPC. Who saw what of
    each: what its own path (its protocol, the retrieval that found its
    documents, the ledger's receipts) brought to each party."""
    retrieved: dict[tuple[str, str], list[str]] = {}
    found: list[Answer] = []
    for action in actions:
        result = action.get("result")
        if not isinstance(result, dict):
            continue
        user, stage, protocol = (str(action.get(key, "")) for key in ("party", "stage", "protocol"))
        kind = (protocol, action.get("action"))

        def add(
            prompt: str, where: tuple[str, str, str] = (user, stage, protocol), **values: Any
        ) -> None:
            found.append(_answer(retrieved, where, prompt, **values))

        if kind == ("pir", "retrieve"):
            for item in result.get("answers", []):
                question = str(item.get("prompt", ""))
                retrieved[(user, question)] = [str(d) for d in item.get("documents", [])]
                if "answer" in item:  # answered where it was retrieved
                    add(question, answer=str(item["answer"]), receipt="none (answered locally)")
            for note in result.get("errors", []):
                prompt, why = _refusal(str(note))
                if prompt and "left out" not in why:
                    add(prompt, refused=f"not retrieved: {why}")
        elif kind == ("tee", "ask"):
            for item in result.get("answers", []):
                at = item.get("receipt_logged_at")
                receipt = (
                    f"signed by the enclave's attested key; logged in the ledger at entry {at}"
                    if at is not None
                    else "signed by the enclave's attested key (not logged)"
                )
                add(
                    str(item.get("prompt", "")),
                    answer=str(item.get("output", "")).strip(),
                    receipt=receipt,
                )
            for note in result.get("refused", []):
                prompt, why = _refusal(str(note))
                add(prompt, refused=why)
        elif kind == ("mpc", "generate"):
            checked = result.get("receipts_checked")
            receipt = (
                f"both compute parties' receipts per token checked and logged ({checked} in all "
                "for this user)"
                if checked
                else "none (receipts not asked for)"
            )
            for item in result.get("outputs", []):
                add(
                    str(item.get("prompt", "")),
                    answer=str(item.get("output", "")).strip(),
                    receipt=receipt,
                )
            for note in result.get("refused", []):
                prompt, why = _refusal(str(note))
                add(prompt, refused=why)
    for item in found:
        item.seen = who_saw(item.user, item.path, views)
    return found


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ⏎ ")


def answers_markdown(run: RunRecord) -> list[str]:
    """report.md's answers table, every text in full (empty when no end
    user asked anything)."""
    try:
        found = answers(
            run.manifest.get("actions", []), views_by_protocol(pair_deliveries(run.logs))
        )
    except UNREADABLE as error:  # a manifest edited, or written by another version
        return ["## Answers", "", f"The run's records lack what the answers need ({error!r}).", ""]
    if not found:
        return []
    lines = [
        "## Answers",
        "",
        "| # | user | stage | question | retrieved | answer | receipt "
        "| who saw what of it, on its path |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for number, item in enumerate(found, 1):
        answer = item.answer if item.answer is not None else f"no answer: {item.refused}"
        retrieved = "; ".join(item.retrieved) or "-"
        seen = "; ".join(f"{asset}@{form}: {parties}" for asset, form, parties in item.seen)
        lines.append(
            "| "
            + " | ".join(
                _cell(text)
                for text in (
                    str(number),
                    item.user,
                    f"{item.stage} ({item.protocol})",
                    item.question,
                    retrieved,
                    answer,
                    item.receipt or "-",
                    seen or "-",
                )
            )
            + " |"
        )
    return [*lines, ""]


def answers_html(actions: list[dict[str, Any]], deliveries: list[Delivery]) -> str:
    """report.html's answers table (a line saying there are none, when no
    end user asked anything)."""
    try:
        found = answers(actions, views_by_protocol(deliveries))
    except UNREADABLE as error:  # a manifest edited, or written by another version
        why = escape(repr(error))
        return f'<p class="none">The run\'s records lack what the answers need ({why}).</p>'
    if not found:
        return '<p class="none">No end user asked a question in this run.</p>'
    rows = []
    for number, item in enumerate(found, 1):
        if item.answer is not None:
            answer = f'<td class="answer">{escape(item.answer)}</td>'
        else:
            answer = f'<td class="answer none">no answer: {escape(item.refused)}</td>'
        retrieved = "".join(f"<li>{escape(d)}</li>" for d in item.retrieved)
        seen = "".join(
            f'<li><span class="cell f-{escape(form)}">{escape(form)}</span> '
            f"<code>{escape(asset)}</code>: {escape(parties)}</li>"
            for asset, form, parties in item.seen
        )
        rows.append(
            f'<tr class="question"><td>{number}</td><td>{escape(item.user)}</td>'
            f"<td>{escape(item.stage)} ({escape(item.protocol)})</td>"
            f'<td class="question-text">{escape(item.question)}</td>'
            f'<td><ul class="retrieved">{retrieved}</ul></td>{answer}'
            f'<td class="receipt">{escape(item.receipt or "-")}</td>'
            f'<td><ul class="seen">{seen}</ul></td></tr>'
        )
    return (
        '<table id="answers-table"><tr><th>#</th><th>user</th><th>stage</th><th>question</th>'
        "<th>retrieved</th><th>answer</th><th>receipt</th>"
        "<th>who saw what of it, on its path</th></tr>" + "".join(rows) + "</table>"
    )


def with_answers(markdown: str, run: RunRecord) -> str:
    """report.md with the answers table put at its top, after the outcome
    line (before the stages)."""
    table = answers_markdown(run)
    if not table:
        return markdown
    lines = markdown.split("\n")
    at = next((i for i, line in enumerate(lines) if line.startswith("## ")), len(lines))
    return "\n".join([*lines[:at], *table, *lines[at:]])

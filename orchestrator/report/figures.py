"""The protocols' figures, for the protocols a run has: drawn from what the
run recorded (its actions' results in the manifest, the sizes, times and
public payloads in its logs), never recomputed. Plots are matplotlib
(Agg), saved as SVG and inlined; text is drawn as paths, so no font is
fetched."""

from __future__ import annotations

import datetime
import io
import json
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING, Any

from orchestrator.audit import RunRecord
from orchestrator.report.deliveries import Delivery
from parties.errors import ClaimFailed
from protocols.attestation.ledger import TreeHead

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not with the CLI
    from matplotlib.figure import Figure as Canvas

# step names, as the protocols' rules.py define them (a test checks they still do)
PIR_QUERY, PIR_ANSWER = "pir_query", "pir_answer"
PROMPT_SHARES = "prompt_shares"
APPRAISAL_REQUEST, ATTESTATION_RESULT = "appraisal_request", "attestation_result"
# the ledger's assets: what it hands out (signed tree heads, proofs) is public
LEDGER_ASSET = re.compile(r"ledger:.+")
_SVG_PROLOGUE = re.compile(r"^.*?(?=<svg)", re.DOTALL)
_NAMESPACES = re.compile(r'\s+xmlns(:\w+)?="[^"]*"')
_METADATA = re.compile(r"<metadata>.*?</metadata>", re.DOTALL)


@dataclass(frozen=True)
class Figure:
    title: str
    body: str  # an inline SVG or an HTML table
    caption: str


def _plot(name: str, draw: Callable[[Canvas], None], size: tuple[float, float]) -> str:
    """Draw with `draw` on a new figure and return it as inline SVG. The salt
    keeps each plot's clip-path and marker ids apart from the others' on the
    page; matplotlib's `*` style rule is scoped to this plot."""
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as Canvas

    with rc_context({"svg.fonttype": "path", "svg.hashsalt": name, "font.size": 9}):
        figure = Canvas(figsize=size, layout="constrained")
        FigureCanvasAgg(figure)
        draw(figure)
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    svg = _METADATA.sub("", _SVG_PROLOGUE.sub("", buffer.getvalue(), count=1))
    svg = _NAMESPACES.sub("", svg).replace("<svg ", f'<svg class="plot" id="plot-{name}" ', 1)
    return svg.replace("*{", f"#plot-{name} *{{", 1)


def _results(actions: list[dict[str, Any]], protocol: str, action: str) -> list[dict[str, Any]]:
    return [
        {**a["result"], "party": a["party"]}
        for a in actions
        if a.get("protocol") == protocol
        and a.get("action") == action
        and isinstance(a.get("result"), dict)
    ]


def federated_rounds(actions: list[dict[str, Any]]) -> Figure | None:
    rounds = [r for r in _results(actions, "federated", "aggregate") if "round" in r]
    if not rounds:
        return None
    start = _results(actions, "federated", "load_model")
    # round 0: the model before training, as the model creator measured it
    utility = [(0, start[0]["utility_bits_per_char"])] if start else []
    utility += [(r["round"], r["utility_bits_per_char"]) for r in rounds]
    epsilon = [(r["round"], r["epsilon"]) for r in rounds if r.get("epsilon") is not None]

    def draw(figure: Canvas) -> None:
        left, right = figure.subplots(1, 2)
        left.plot(*zip(*utility, strict=True), marker="o")
        left.set(title="held-out text (bits/char)", xlabel="round")
        if epsilon:
            right.plot(*zip(*epsilon, strict=True), marker="o", color="tab:red")
            right.set(title="epsilon spent (cumulative)", xlabel="round")
        else:
            right.text(0.5, 0.5, "no differential privacy", ha="center", transform=right.transAxes)
            right.set_axis_off()
        for axes in (left, right):
            axes.set_xticks([r for r, _ in utility])

    delta = rounds[-1].get("delta")
    dropped = [f"round {r['round']}: {', '.join(r['dropped'])}" for r in rounds if r.get("dropped")]
    caption = (
        f"Mode {rounds[-1].get('mode', '?')}"
        + (f"; delta {delta}" if delta is not None else "")
        + (f"; dropped {'; '.join(dropped)}" if dropped else "")
        + ". From the model creator's aggregate results (round 0: before training)."
    )
    return Figure("Federated training, round by round", _plot("rounds", draw, (7, 2.6)), caption)


def federated_leakage(actions: list[dict[str, Any]]) -> Figure | None:
    measured = [r for r in _results(actions, "federated", "evaluate_leakage") if r.get("evaluated")]
    if not measured:
        return None
    names = [r["party"] for r in measured]

    def mean(values: list[float]) -> float:
        return sum(values) / len(values) if values else 0.0

    def draw(figure: Canvas) -> None:
        left, right = figure.subplots(1, 2)
        places = range(len(names))
        canary = [mean(r["exposure_bits"]) for r in measured]
        control = [mean(r["control_exposure_bits"]) for r in measured]
        left.bar([p - 0.2 for p in places], canary, 0.4, label="canaries", color="tab:red")
        left.bar([p + 0.2 for p in places], control, 0.4, label="controls", color="tab:gray")
        left.axhline(measured[0]["exposure_max_bits"], ls="--", color="black", lw=0.8)
        left.set(title="canary exposure (bits)", xticks=list(places), xticklabels=names)
        left.legend(fontsize=7)
        right.bar(places, [r["mia_auc"] for r in measured], 0.5, color="tab:purple")
        right.axhline(0.5, ls="--", color="black", lw=0.8)
        right.set(title="membership inference AUC", xticks=list(places), xticklabels=names)
        right.set_ylim(0, 1)

    caption = (
        "Each contributor's measurement on the trained model: mean exposure of its canaries "
        "and of never-inserted controls (dashed: the most the estimate can show), and the "
        "AUC of a loss-threshold membership inference (dashed: chance)."
    )
    return Figure("What the trained model leaks", _plot("leakage", draw, (7, 2.6)), caption)


def _units(deliveries: list[Delivery], protocol: str, opening: str) -> list[list[Delivery]]:
    """The protocol's deliveries cut into units of work (a question, a
    token), each opened by an `opening` delivery to the first party such
    deliveries go to (a unit opens with one to each)."""
    mine = [d for d in deliveries if d.field("protocol") == protocol]
    openers = [d for d in mine if d.field("step") == opening]
    if not openers:
        return []
    units: list[list[Delivery]] = []
    for delivery in mine:
        if delivery.field("step") == opening and delivery.receiver == openers[0].receiver:
            units.append([])
        if units:
            units[-1].append(delivery)
    return units


def _by_step(units: list[list[Delivery]], value: Callable[[Delivery], float]) -> dict[str, list]:
    """step -> its total `value` in each unit."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(units))
    for number, unit in enumerate(units):
        for delivery in unit:
            totals[str(delivery.field("step"))][number] += value(delivery)
    return dict(totals)


def _stacked(axes: Any, totals: dict[str, list[float]], title: str) -> None:
    bottom = [0.0] * len(next(iter(totals.values())))
    for step, values in sorted(totals.items()):
        places = range(1, len(values) + 1)
        axes.bar(places, values, bottom=bottom, label=step)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    axes.set(title=title, xticks=list(range(1, len(bottom) + 1)))


def _size(delivery: Delivery) -> float:
    return float(delivery.field("size", 0) or 0)


def pir_bytes(deliveries: list[Delivery], actions: list[dict[str, Any]]) -> Figure | None:
    questions = _units(deliveries, "pir", PIR_QUERY)
    if not questions:
        return None
    asked = [
        a["prompt"] for r in _results(actions, "pir", "retrieve") for a in r.get("answers", [])
    ]
    totals = _by_step(questions, lambda d: _size(d) / 1024)
    kept = {step: totals[step] for step in (PIR_QUERY, PIR_ANSWER) if step in totals}

    def draw(figure: Canvas) -> None:
        axes = figure.subplots()
        _stacked(axes, kept, "KiB per question")
        axes.set_xlabel("question")
        axes.legend(fontsize=7)

    caption = "Queries sent and answers received per question, from the logged envelope sizes"
    if len(asked) == len(questions):
        caption += ": " + "; ".join(f"{n}. {q}" for n, q in enumerate(asked, 1))
    return Figure("Private retrieval: bytes per question", _plot("pir", draw, (5, 2.6)), caption)


def mpc_cost(deliveries: list[Delivery], actions: list[dict[str, Any]]) -> Figure | None:
    tokens = _units(deliveries, "mpc", PROMPT_SHARES)
    if not tokens:
        return None
    messages = _by_step(tokens, lambda d: 1.0)
    mebibytes = _by_step(tokens, lambda d: _size(d) / (1 << 20))

    def draw(figure: Canvas) -> None:
        left, right = figure.subplots(1, 2)
        _stacked(left, messages, "messages per token")
        _stacked(right, mebibytes, "MiB per token")
        for axes in (left, right):
            axes.set_xlabel("generated token")
        right.legend(fontsize=7)

    speed = [r["seconds_per_token"] for r in _results(actions, "mpc", "generate")]
    caption = (
        f"Every envelope of the mpc protocol from one token's prompt shares to the next's, by "
        f"step ({len(tokens)} tokens)"
        + (f"; {speed[0]} s per token, as the end user measured" if speed else "")
        + "."
    )
    return Figure(
        "MPC inference: messages and bytes per token", _plot("mpc", draw, (7, 2.8)), caption
    )


def _table(rows: list[tuple[str, str, str]]) -> str:
    body = "".join(
        f"<tr><th>{escape(a)}</th><td>{escape(b)}</td><td>{escape(c)}</td></tr>" for a, b, c in rows
    )
    head = "<tr><th>link</th><th>what</th><th>recorded by</th></tr>"
    return f'<table class="chain">{head}{body}</table>'


Result = dict[str, Any]
# the links of the chain that the tee actions' results record, in order:
# (link, action, what its result says); the appraisals come from the logs
_BEFORE_APPRAISAL: tuple[tuple[str, str, Callable[[Result], str]], ...] = (
    (
        "hardware vendor root",
        "ask",
        lambda r: f"{r.get('root_of_trust')}; sha256 {', '.join(r.get('vendor_roots', []))}",
    ),
    (
        "reference values",
        "publish_model",
        lambda r: f"measurement {r.get('measurement')}; model root {r.get('model_root')}",
    ),
    ("enclave launched", "launch_enclave", lambda r: f"{r.get('enclave')}"),
)
_AFTER_APPRAISAL: tuple[tuple[str, str, Callable[[Result], str]], ...] = (
    (
        "weights released",
        "release_weights",
        lambda r: f"to {r.get('enclave')}: {r.get('released')}, {r.get('sealed_bytes')} bytes",
    ),
    (
        "answers",
        "ask",
        lambda r: f"{len(r.get('answers', []))} answered, {len(r.get('refused', []))} refused",
    ),
)


def enclave_chain(deliveries: list[Delivery], actions: list[Result]) -> Figure | None:
    def recorded(links: tuple[tuple[str, str, Callable[[Result], str]], ...]) -> list:
        return [
            (link, what(result), f"{result['party']} {action}")
            for link, action, what in links
            for result in _results(actions, "tee", action)
        ]

    appraisals = [
        ("appraisal", f"{d.sender} → {d.receiver}: {d.field('step')}, {d.outcome}", d.time[11:23])
        for d in deliveries
        if d.field("protocol") == "tee"
        and d.field("step") in (APPRAISAL_REQUEST, ATTESTATION_RESULT)
    ]
    rows = recorded(_BEFORE_APPRAISAL) + appraisals + recorded(_AFTER_APPRAISAL)
    if not rows:
        return None
    caption = (
        "From the vendor's root of trust (SIMULATED hardware) to the answers the end user took."
    )
    return Figure("Enclave: the appraisal chain", _table(rows), caption)


def ledger_heads(run: RunRecord, deliveries: list[Delivery]) -> Figure | None:
    """The signed tree heads the ledger handed out, as each party received them."""
    started = datetime.datetime.fromisoformat(str(run.manifest["started"])).timestamp()
    heads: list[tuple[float, int, str]] = []
    for delivery in deliveries:
        admission = delivery.admission
        if admission is None or not any(
            LEDGER_ASSET.fullmatch(label["asset"]) and label["form"] == "public"
            for label in admission.get("labels", [])
        ):
            continue
        try:
            head = json.loads(run.blob(delivery.receiver, admission) or b"null")["head"]
            size = TreeHead.from_json(head, "ledger head").size
        except (ValueError, TypeError, KeyError, ClaimFailed):
            continue  # a public ledger payload without a tree head (or not JSON)
        at = datetime.datetime.fromisoformat(delivery.time).timestamp()
        heads.append((at - started, size, delivery.receiver))
    if not heads:
        return None
    heads.sort()

    def draw(figure: Canvas) -> None:
        axes = figure.subplots()
        axes.step(
            [t for t, _, _ in heads], [s for _, s, _ in heads], where="post", color="tab:gray"
        )
        by_party: dict[str, list[tuple[float, int]]] = defaultdict(list)
        for time, size, party in heads:
            by_party[party].append((time, size))
        for party, points in sorted(by_party.items()):
            axes.scatter([t for t, _ in points], [s for _, s in points], 14, label=party, zorder=3)
        axes.set(title="ledger tree size", xlabel="seconds since the run started", ylabel="entries")
        axes.legend(fontsize=7, ncol=2)

    caption = f"{len(heads)} signed tree heads, as the parties received them (the tree only grows)."
    return Figure(
        "Transparency log: tree heads over time", _plot("ledger", draw, (7, 2.8)), caption
    )


def figures(run: RunRecord, deliveries: list[Delivery]) -> list[Figure]:
    """Every figure the run's protocols give, in the order of the pipeline."""
    actions = run.manifest.get("actions", [])
    protocols = set(run.scenario.protocol_names)
    builders: list[Callable[[], Figure | None]] = []
    if "federated" in protocols:
        builders += [lambda: federated_rounds(actions), lambda: federated_leakage(actions)]
    if "pir" in protocols:
        builders.append(lambda: pir_bytes(deliveries, actions))
    if "tee" in protocols:
        builders.append(lambda: enclave_chain(deliveries, actions))
    if "mpc" in protocols:
        builders.append(lambda: mpc_cost(deliveries, actions))
    builders.append(lambda: ledger_heads(run, deliveries))
    found = []
    for build in builders:
        try:
            found.append(build())
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            # a manifest edited, or written by another version: the page still opens
            note = f"The run's records lack what a figure needs ({error!r}); not drawn."
            found.append(Figure("A figure not drawn", "", note))
    return [figure for figure in found if figure is not None]

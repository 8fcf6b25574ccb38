"""The sequence diagram: a lane per party, an arrow per delivery (or burst of
chatty deliveries) in time order, as inline SVG. Every arrow is a `<g>`
with data-* attributes that the page's script filters and selects on; what
the details panel shows of each arrow is `arrow_details`, embedded as JSON."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from html import escape
from typing import Any

from orchestrator.report.deliveries import Arrow, Delivery
from orchestrator.scenario import Scenario
from parties.log import Direction, Outcome, labels_text

# the lanes share the diagram's width: at most MAX_GAP apart, at least
# MIN_GAP (below that the diagram scrolls sideways); the page's script
# spreads them again over the width it has, and over the lanes its filters
# leave (a lane with no arrow shown is hidden)
FIT_WIDTH = 960  # the diagram's width on a 1366 px screen, beside the details panel
MAX_GAP = 140
MIN_GAP = 60
STAGGER_BELOW = 110  # closer lanes than this put their names on two rows
LEFT = 84  # room for the time column
RIGHT = 24
ROW = 26  # an arrow's row
REASON_ROW = 40  # a refused (withheld, undelivered) arrow's, with the reason under it
LINE_Y = 18  # an arrow's line, from its row's top
MARKER_ROW = 24  # a stage's or round's band
HEAD = 44  # the lane names (HEAD_STAGGERED: on two rows)
HEAD_STAGGERED = 74
CHAR_WIDTH = 6.2  # about, at the labels' 11 px, to keep a label inside the diagram
LABEL_CHARS = 64
REASON_CHARS = 100
# an arrow's CSS classes by outcome: `refused` marks every blocked delivery
CLASSES: dict[str, str] = {
    Outcome.ADMITTED: "admitted",
    Outcome.REFUSED: "refused",
    Outcome.WITHHELD: "refused withheld",
    Outcome.UNDELIVERED: "undelivered",
}
TIPS = ("admitted", "refused", "undelivered", "unsettled")


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def lanes(scenario: Scenario, arrows: list[Arrow]) -> list[str]:
    """The scenario's parties in its order, then any other name a log gives."""
    names = list(scenario.parties)
    for arrow in arrows:
        for name in (arrow.first.sender, arrow.first.receiver):
            if name not in names:
                names.append(name)
    return names


@dataclass(frozen=True)
class Row:
    """One row of the diagram (a stage's or round's band, or an arrow): its
    `<g>`'s attributes and content, drawn from the row's top down. The
    page's script stacks the rows it shows by their data-h."""

    height: int
    attributes: str
    content: str


def _data(values: dict[str, Any]) -> str:
    return " ".join(f'data-{k}="{escape(str(v))}"' for k, v in values.items())


def _marker(text: str, stage: str, round_: int | None, width: int, kind: str) -> Row:
    data = _data({"stage": stage, "round": round_ or "", "h": MARKER_ROW})
    return Row(
        MARKER_ROW,
        f'class="row marker {kind}" {data}',
        f'<rect x="0" y="2" width="{width}" height="{MARKER_ROW - 4}"/>'
        f'<text x="6" y="{MARKER_ROW - 8}">{escape(text)}</text>',
    )


def gap_for(lanes: int, width: int = FIT_WIDTH) -> int:
    """How far apart `lanes` lanes are drawn in `width` pixels."""
    return max(MIN_GAP, min(MAX_GAP, (width - LEFT - RIGHT) // max(lanes, 1)))


def _label_x(middle: int, text: str, width: int) -> int:
    """A centred label's x, moved in so that it stays inside the diagram."""
    half = int(len(text) * CHAR_WIDTH / 2) + 4
    return max(LEFT + half, min(middle, width - half))


def _reason_x(start: int, text: str, width: int) -> int:
    """A reason's x: under its arrow, moved left as far as it must to fit."""
    return max(LEFT, min(start, width - int(len(text) * CHAR_WIDTH * 0.9) - 4))


def _arrow(arrow: Arrow, x: dict[str, int], gap: int, width: int) -> Row:
    first = arrow.first
    outcome = first.outcome
    classes = CLASSES.get(outcome, "unsettled")
    tip = classes.split()[0]
    x1, x2 = x[first.sender], x[first.receiver]
    if x1 == x2:  # never expected (a party does not deliver to itself), drawn all the same
        x2 = x1 + gap // 3
    step = str(first.field("step", "?"))
    count = len(arrow.deliveries)
    label = step + (f" ×{count}" if count > 1 else "")
    labels = labels_text(first.field("labels", []))
    if labels:
        label += " · " + labels
    reason = first.reason
    height = REASON_ROW if reason else ROW
    middle = (x1 + x2) // 2
    title = f"{first.sender} → {first.receiver}: {label} ({outcome})" + (
        f"\n{reason}" if reason else ""
    )
    data = {
        "id": arrow.number,
        "stage": first.stage,
        "round": first.round or "",
        "sender": first.sender,
        "receiver": first.receiver,
        "outcome": outcome,
        "h": height,
    }
    line = f'x1="{x1}" y1="{LINE_Y}" x2="{x2}" y2="{LINE_Y}"'
    parts = [
        f"<title>{escape(title)}</title>",
        f'<text class="when" x="4" y="{LINE_Y + 4}">{escape(first.time[11:23])}</text>',
        f'<line class="shaft" {line} marker-end="url(#tip-{tip})"/>',
        # what takes the clicks: the arrow's whole span, not its thin line
        f'<rect class="hit" x="{min(x1, x2)}" y="2" width="{abs(x2 - x1)}" height="{height - 4}"/>',
        f'<text class="label" x="{_label_x(middle, _short(label, LABEL_CHARS), width)}" '
        f'y="{LINE_Y - 5}">{escape(_short(label, LABEL_CHARS))}</text>',
    ]
    if reason:
        reason_text = _short(f"{outcome}: {reason}", REASON_CHARS)
        parts.append(
            f'<text class="reason" x="{_reason_x(min(x1, x2), reason_text, width)}" '
            f'y="{LINE_Y + 15}">{escape(reason_text)}</text>'
        )
    return Row(height, f'class="row arrow {classes}" tabindex="0" {_data(data)}', "".join(parts))


def _rows(
    arrows: list[Arrow], scenario: Scenario, x: dict[str, int], gap: int, width: int
) -> Iterator[Row]:
    """Arrows, each stage's band before its first arrow and each round's
    before the first of that round."""
    numbers = {stage.name: n for n, stage in enumerate(scenario.stages, 1)}
    protocols = {stage.name: stage.protocol for stage in scenario.stages}
    stage: str | None = None
    round_: int | None = None
    for arrow in arrows:
        first = arrow.first
        if first.stage != stage:
            stage, round_ = first.stage, None
            text = (
                f"stage {numbers.get(stage, '?')}/{len(numbers)}: {stage} ({protocols.get(stage)})"
            )
            yield _marker(text, stage, None, width, "stage")
        if first.round is not None and first.round != round_:
            round_ = first.round
            yield _marker(f"round {round_}", stage, round_, width, "round")
        yield _arrow(arrow, x, gap, width)


def sequence_diagram(scenario: Scenario, arrows: list[Arrow]) -> str:
    """The lanes' heading and the diagram, as two inline SVGs."""
    names = lanes(scenario, arrows)
    gap = gap_for(len(names))
    x = {name: LEFT + gap // 2 + gap * i for i, name in enumerate(names)}
    width = LEFT + gap * len(names) + RIGHT
    staggered = gap < STAGGER_BELOW
    roles = {name: str(scenario.role_of(name)) for name in scenario.parties}
    height = HEAD_STAGGERED if staggered else HEAD
    head = [f'<svg id="lane-names" width="{width}" height="{height}">']
    for i, name in enumerate(names):
        down = 28 if staggered and i % 2 else 0
        lane = f'data-lane="{escape(name)}"'
        head.append(
            f'<g class="lane-name" {lane} transform="translate({x[name]},{down})">'
            f'<text class="party" x="0" y="18">{escape(name)}</text>'
            f'<text class="role" x="0" y="32">{escape(roles.get(name, "?"))}</text></g>'
        )
    head.append("</svg>")
    body, y = [], 0
    for row in _rows(arrows, scenario, x, gap, width):
        body.append(f'<g transform="translate(0,{y})" {row.attributes}>{row.content}</g>')
        y += row.height
    tips = "".join(
        f'<marker id="tip-{tip}" class="tip {tip}" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" orient="auto">'
        '<path d="M0,0L10,5L0,10z"/></marker>'
        for tip in TIPS
    )
    lines = "".join(
        f'<line class="lane" data-lane="{escape(n)}" x1="{x[n]}" y1="0" x2="{x[n]}" y2="{y}"/>'
        for n in names
    )
    # what the page's script needs to lay the lanes out again
    geometry = _data(
        {
            "left": LEFT,
            "right": RIGHT,
            "min-gap": MIN_GAP,
            "max-gap": MAX_GAP,
            "stagger-below": STAGGER_BELOW,
            "head": HEAD,
            "head-staggered": HEAD_STAGGERED,
        }
    )
    return (
        "".join(head)
        + f'<svg id="sequence" width="{width}" height="{y}" {geometry}><defs>{tips}</defs>'
        + f'<g id="lanes">{lines}</g>'
        + "".join(body)
        + "</svg>"
    )


def _signature(delivery: Delivery, unverified: set[tuple[str, int]]) -> str:
    """What the audit says of the sender's signature: it checks it on every
    admitted envelope, with the key the run's CA certified."""
    for party, entry in delivery.entries:
        if (entry.get("direction"), entry.get("outcome")) == (Direction.IN, Outcome.ADMITTED):
            if (party, entry.get("index")) in unverified:
                return "does not verify (the audit's sender-signatures claim fails here)"
            return "verified by the audit with the sender's certified key"
    if not delivery.field("signature"):
        return "none logged"
    return "signed; never admitted, so the audit does not check it"


def _entry(party: str, entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "party": party,
        "index": entry.get("index"),
        "time": str(entry.get("time", ""))[11:26],
        "event": f"{entry.get('direction', '')} {entry.get('outcome', '')}",
        "refusal": entry.get("refusal", ""),  # its detail is the header's outcome already
        "hash": str(entry.get("hash", ""))[:16],
    }


def arrow_details(arrow: Arrow, unverified: set[tuple[str, int]]) -> dict[str, Any]:
    """The details panel's content for one arrow: the header (of the first
    delivery of a burst, with the burst's span) and the log entries of both
    sides (of a burst's first and last delivery)."""
    first, last = arrow.first, arrow.deliveries[-1]
    count = len(arrow.deliveries)
    sequence = str(first.field("sequence", "?"))
    if count > 1:
        sequence += f" … {last.field('sequence', '?')} ({count} deliveries in this burst)"
    size = f"{arrow.size:,} bytes" + (" in all" if count > 1 else "")
    header = [
        ("outcome", first.outcome + (f": {first.reason}" if first.reason else "")),
        ("sender", first.sender),
        ("receiver", first.receiver),
        ("step", f"{first.field('protocol', '?')}.{first.field('step', '?')}"),
        ("session", first.field("session")),
        ("sequence", sequence),
        ("labels", labels_text(first.field("labels", []))),
        ("size", size),
        ("payload sha256", first.field("payload_sha256")),
        ("header sha256", first.field("header_sha256")),
        ("signature", _signature(first, unverified)),
        ("time", first.time),
        ("stage", first.stage + (f", round {first.round}" if first.round else "")),
    ]
    shown = [first] if count == 1 else [first, last]
    return {
        "title": f"{first.sender} → {first.receiver}: {first.field('step', '?')}",
        "header": header,
        "entries": [_entry(p, e) for delivery in shown for p, e in delivery.entries],
    }

"""The toy protocols of tests/toy/ (the template in docs/architecture.md,
"Adding a protocol") through the real orchestrator: the runtime's protocol
mechanisms (holdings a protocol declares, typed role state, adversaries as
overrides, a party's store between stages) as a new protocol uses them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import protocols
from orchestrator.scenario import parse_scenario
from parties.errors import ConfigError
from parties.labels import Form
from parties.log import LOG_FILE
from parties.message import Empty, json_message
from parties.protocol import Adversary, Protocol, Rule, label_rule
from parties.roles import Role
from parties.store import STORE_DIR
from tests.helpers import result_of, run_text


@pytest.fixture(autouse=True)
def toy_protocols(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registered for this module's tests only; the parties run in this process."""
    monkeypatch.setitem(protocols.MODULES, "tally", "tests.toy.tally")
    monkeypatch.setitem(protocols.MODULES, "announce", "tests.toy.announce")


def scenario(counts: dict[str, object], adversaries: dict[str, str] | None = None) -> str:
    parties = "".join(
        f'[parties.{name}]\nrole = "data_contributor"\ncount = {json.dumps(count)}\n'
        + (f'adversary = "{(adversaries or {})[name]}"\n' if name in (adversaries or {}) else "")
        for name, count in counts.items()
    )
    return f"""name = "toy"
{parties}
[parties.collector]
role = "model_creator"

[parties.reader]
role = "end_user"

[[stages]]
name = "count"
protocol = "tally"

[[stages]]
name = "tell"
protocol = "announce"

[[guarantees]]
name = "counts leave a contributor only summed"
asset = "tally:*"
viewers = ["end_user"]
max_form = "public"
"""


def test_a_kept_total_reaches_a_later_stage_and_every_claim_holds(tmp_path: Path) -> None:
    result = run_text(scenario({"h1": 3, "h2": 4}), tmp_path / "run")
    assert result.failure is None and result.audit.ok, result.audit
    assert result_of(result, "collector", "close") == {"value": 7, "contributors": 2}
    assert result_of(result, "collector", "announce") == {"announced": 7}
    # the store stayed with its party: the run directory has the log, not the store
    collected = tmp_path / "run" / "parties" / "collector"
    assert (collected / LOG_FILE).exists() and not (collected / STORE_DIR).exists()


def test_holdings_are_checked_against_what_the_protocol_declares() -> None:
    with pytest.raises(ConfigError, match=r"parties\.h1\.count: Input should be"):
        parse_scenario(scenario({"h1": 3000}), "toy.toml")
    with pytest.raises(ConfigError, match=r"parties\.h1\.count: .*not permitted"):
        # the same key where no active protocol declares it
        text = scenario({"h1": 3}).replace('[[stages]]\nname = "count"\nprotocol = "tally"\n', "")
        parse_scenario(text, "toy.toml")


def split_stages(text: str, *stages: str) -> str:
    """The toy scenario with these stages (TOML tables) instead of its own."""
    head = text[: text.index("[[stages]]")]
    tail = text[text.index("[[guarantees]]") :]
    return head + "".join(f"[[stages]]\n{stage}\n" for stage in stages) + tail


COUNTING = 'name = "counting"\nprotocol = "tally"\npart = "counting"'
CLOSING = 'name = "closing"\nprotocol = "tally"\npart = "closing"'
TELL = 'name = "tell"\nprotocol = "announce"'


def test_a_protocols_parts_run_as_stages_of_their_own(tmp_path: Path) -> None:
    text = split_stages(scenario({"h1": 3, "h2": 4}), COUNTING, CLOSING, TELL)
    result = run_text(text, tmp_path / "run")
    assert result.failure is None and result.audit.ok, result.audit
    assert result_of(result, "collector", "announce") == {"announced": 7}


@pytest.mark.parametrize(
    ("stages", "expected"),
    [
        ((TELL, COUNTING, CLOSING), r"stages\[0\] \(tell\): needs the model_creator's tally.total"),
        ((COUNTING, TELL, CLOSING), r"stages\[1\] \(tell\): needs .*which no earlier stage makes"),
        ((COUNTING, COUNTING), r"stages\[1\]: tally already runs part 'counting'"),
        ((COUNTING, 'name = "all"\nprotocol = "tally"'), r"stages\[1\]: tally already runs"),
        (('name = "x"\nprotocol = "tally"\npart = "cnt"',), r"no part 'cnt' \(its parts: closing"),
        (
            (COUNTING + "\nparams = { a = 1 }", CLOSING + "\nparams = { a = 2 }"),
            r"stages\[1\]\.params\.a: stages\[0\] gives tally another value",
        ),
    ],
)
def test_stages_out_of_order_or_repeated_are_refused_when_parsed(
    stages: tuple[str, ...], expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected):
        parse_scenario(split_stages(scenario({"h1": 3}), *stages), "toy.toml")


def test_an_adversary_replaces_the_honest_action_for_its_party_only(tmp_path: Path) -> None:
    result = run_text(scenario({"h1": 3, "h2": 4}, {"h1": "inflated_count"}), tmp_path / "run")
    assert result_of(result, "h1", "send_count") == {"sent": 3000}
    assert result_of(result, "h2", "send_count") == {"sent": 4}
    assert result_of(result, "collector", "close")["value"] == 3004


def test_a_message_out_of_step_is_refused_with_its_reason(tmp_path: Path) -> None:
    result = run_text(scenario({"h1": 3, "h2": 4}, {"h2": "late_count"}), tmp_path / "run")
    assert result_of(result, "h2", "late_count") == {"refused": "OUT_OF_STEP"}
    assert result_of(result, "collector", "announce") == {"announced": 7}
    # refused after admission: the collector's handler gave the reason, and
    # the sender's log keeps it with the envelope, delivered
    log = (tmp_path / "run" / "parties" / "h2" / LOG_FILE).read_text().splitlines()
    (late,) = [e for e in map(json.loads, log) if e.get("refusal") == "OUT_OF_STEP"]
    assert late["outcome"] == "delivered"
    assert "a count needs the role to be open, it is closed" in late["detail"]


def test_a_protocol_with_a_handler_for_an_unknown_step_fails_at_import() -> None:
    rule = Rule(
        "count", Role.DATA_CONTRIBUTOR, Role.MODEL_CREATOR, (label_rule("x:*", Form.PUBLIC),)
    )
    messages = {"count": json_message(Empty)}
    with pytest.raises(ConfigError, match="handler for 'cuont'"):
        Protocol(
            "typo",
            (rule,),
            messages=messages,
            handlers={(Role.MODEL_CREATOR, "cuont"): lambda c, e: None},
        )
    with pytest.raises(ConfigError, match="runs unknown action"):
        Protocol(
            "typo",
            (rule,),
            messages=messages,
            adversaries={"x": Adversary(Role.END_USER, after_stage="nope")},
        )
    with pytest.raises(ConfigError, match=r"steps without a message definition \['count'\]"):
        Protocol("typo", (rule,))
    with pytest.raises(ConfigError, match=r"definitions without a step \['cuont'\]"):
        Protocol("typo", (rule,), messages={**messages, "cuont": json_message(Empty)})

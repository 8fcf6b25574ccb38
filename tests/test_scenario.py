"""Scenarios are checked where they are parsed: every error names the file
and the key, and the CLI shows it as one line, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.scenario import builtin_names, load_scenario, parse_scenario
from parties.errors import ConfigError
from protocols import get_protocol, protocol_names
from tests.helpers import airlock

MINIMAL = """
name = "mini"
[parties.alice]
role = "end_user"
prompts = ["hi"]
[parties.db]
role = "external_database"
[[stages]]
name = "s"
protocol = "walkthrough"
"""


def test_builtin_default_resolves_by_name() -> None:
    assert "walkthrough" in builtin_names()
    scenario, text = load_scenario("walkthrough")
    assert {str(scenario.role_of(n)) for n in scenario.parties} >= {
        "data_contributor",
        "model_creator",
        "deployer",
        "end_user",
        "external_database",
    }
    assert "[parties.deployer]" in text


def test_minimal_scenario_parses() -> None:
    scenario = parse_scenario(MINIMAL, "mini.toml")
    assert scenario.holdings_of("alice", "walkthrough").prompts == ("hi",)  # type: ignore[attr-defined]


BAD = {
    "not TOML": ("name = \n", "not valid TOML"),
    "unknown top-level key": (MINIMAL + "\ncolour = 1\n", "colour: Extra inputs are not permitted"),
    "party without role": (
        MINIMAL.replace('role = "end_user"\n', ""),
        "parties.alice.role: Field required",
    ),
    "unknown role": (
        MINIMAL.replace('"end_user"', '"wizard"'),
        "parties.alice.role: unknown role 'wizard'",
    ),
    "holding the role does not have": (
        MINIMAL.replace("prompts", "prompt"),
        "parties.alice.prompt: Extra inputs",
    ),
    "holding of the wrong type": (MINIMAL.replace('["hi"]', "3"), "parties.alice.prompts"),
    "bad party name": (MINIMAL.replace("[parties.db]", '[parties."Bad Name"]'), "parties.Bad Name"),
    "unknown protocol": (
        MINIMAL.replace('protocol = "walkthrough"', 'protocol = "magic"'),
        "stages[0].protocol: unknown protocol 'magic'",
    ),
    "unknown adversary": (
        MINIMAL.replace('prompts = ["hi"]', 'prompts = ["hi"]\nadversary = "gremlin"'),
        "parties.alice.adversary: unknown adversary 'gremlin'",
    ),
    "adversary of another role": (
        MINIMAL.replace('prompts = ["hi"]', 'prompts = ["hi"]\nadversary = "forward_prompt"'),
        "played by a deployer",
    ),
    "unknown form": (
        MINIMAL + '[[guarantees]]\nname="g"\nasset="prompt:*"\nviewers=["db"]\nmax_form="secret"\n',
        "guarantees[0].max_form: unknown form 'secret'",
    ),
    "unknown viewer": (
        MINIMAL
        + '[[guarantees]]\nname="g"\nasset="prompt:*"\nviewers=["bob"]\nmax_form="digest"\n',
        "guarantees[0].viewers: unknown party or role 'bob'",
    ),
    "malformed canary asset": (
        MINIMAL + '[[canaries]]\nasset="prompt"\nvalue="CANARY-123456"\n',
        "canaries[0].asset",
    ),
    "no stages": (MINIMAL.split("[[stages]]")[0], "stages: Field required"),
    "a deadline of zero": (
        MINIMAL + "[run]\ncontrol_timeout_s = 0\n",
        "run.control_timeout_s: Input should be greater than 0",
    ),
    "a deadline that is not a number": (
        MINIMAL + '[run]\ndelivery_timeout_s = "soon"\n',
        "run.delivery_timeout_s",
    ),
    "a site no party runs at": (
        MINIMAL + '[sites.serving]\nadvertise = "serving.example.org"\n',
        "sites.serving: no party runs at site 'serving' (the parties' sites: local)",
    ),
    "an empty advertised address": (
        MINIMAL + '[sites.local]\nadvertise = ""\n',
        "sites.local.advertise",
    ),
}


def test_listen_addresses_single_machine_and_cluster() -> None:
    """One machine: bind_host for all. A cluster: each party its node's
    address, advertised as its site's `advertise` where one is given."""
    from orchestrator.launcher import _listen_addresses

    text = MINIMAL.replace('role = "external_database"', 'role = "external_database"\nsite = "db"')
    scenario = parse_scenario(text + '[sites.db]\nadvertise = "db.example.org"\n', "m.toml")
    placement = {"alice": {"node_ip": "10.0.0.1"}, "db": {"node_ip": "10.0.0.2"}}
    assert _listen_addresses(scenario, placement, single_machine=True) == {
        "alice": ("127.0.0.1", None),
        "db": ("127.0.0.1", None),
    }
    assert _listen_addresses(scenario, placement, single_machine=False) == {
        "alice": ("10.0.0.1", None),
        "db": ("10.0.0.2", "db.example.org"),
    }


@pytest.mark.parametrize("case", list(BAD))
def test_bad_scenario_error_names_file_and_key(case: str) -> None:
    text, expected = BAD[case]
    with pytest.raises(ConfigError) as caught:
        parse_scenario(text, "bad.toml")
    message = str(caught.value)
    assert message.startswith("bad.toml: ")
    assert expected in message


def test_unknown_scenario_name_lists_builtins() -> None:
    with pytest.raises(ConfigError, match="walkthrough"):
        load_scenario("no-such-scenario")


def test_cli_reports_a_malformed_scenario_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(MINIMAL.replace('"end_user"', '"wizard"'))
    done = airlock("run", str(path))
    assert done.returncode == 2
    assert f"{path}: parties.alice.role: unknown role 'wizard'" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_cli_help_explains_each_command() -> None:
    done = airlock("--help")
    assert done.returncode == 0
    for command in ("run", "audit", "logs", "scenarios"):
        assert command in done.stdout


def test_the_scenario_guide_names_every_adversary_a_protocol_knows() -> None:
    """A scenario author learns the adversaries from docs/scenarios.md: one
    added to a protocol and left out there is a gap in the docs."""
    guide = (Path(__file__).resolve().parent.parent / "docs" / "scenarios.md").read_text()
    missing = [
        f"{name}: {adversary}"
        for name in protocol_names()
        for adversary in get_protocol(name).adversaries
        if f"`{adversary}`" not in guide
    ]
    assert not missing, missing

"""The walkthrough protocol: positive runs, forbidden messages refused, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.audit import audit_run
from parties.errors import Refused
from parties.labels import Form, Label
from parties.log import BLOB_DIR
from parties.log_check import read_entries
from parties.wire import airlock_pb2 as pb
from protocols.walkthrough.roles import CreatorState, DeployerState
from tests.helpers import Parties, failing, run_default


def admitted_payloads(parties: Parties, name: str, step: str) -> list[bytes]:
    runtime = parties[name]
    entries, _ = read_entries(runtime.log.directory, name)
    return [
        (runtime.log.directory / BLOB_DIR / e["payload_sha256"]).read_bytes()
        for e in entries
        if e["direction"] == "in" and e["outcome"] == "admitted" and e["step"] == step
    ]


def test_every_role_acts_and_receivers_hold_exactly_what_their_logs_say(parties: Parties) -> None:
    assert parties["hospital_1"].act("walkthrough", "commit_dataset") == {"delivered": 1}
    assert parties["model_creator"].act("walkthrough", "publish_model_card") == {"delivered": 1}
    assert parties["alice"].act("walkthrough", "fetch_catalog") == {"titles": 0}
    assert parties["alice"].act("walkthrough", "send_prompt") == {"receipts": 1}

    deployer = parties["deployer"].state["walkthrough"]
    assert isinstance(deployer, DeployerState)
    held = [sealed for _, sealed in deployer.prompts]
    assert held == admitted_payloads(parties, "deployer", "sealed_prompt")
    assert b"hello" not in held[0]  # the prompt arrived sealed
    creator = parties["model_creator"].state["walkthrough"]
    assert isinstance(creator, CreatorState)
    datasets = creator.datasets
    assert [json.dumps(datasets["hospital_1"]).encode()] == admitted_payloads(
        parties, "model_creator", "dataset_commitment"
    )
    card = deployer.model_card
    assert card is not None and card["card"]["trained_on"] == ["hospital_1"]


def test_clean_default_run_has_nothing_blocked(tmp_path: Path) -> None:
    result = run_default(tmp_path / "run", adversaries={})
    assert result.failure is None and result.audit.ok
    assert result.audit.blocked == []
    assert {a["action"] for a in result.actions} == {
        "commit_dataset",
        "publish_model_card",
        "fetch_catalog",
        "send_prompt",
    }


@pytest.mark.parametrize(
    ("party", "adversary", "reason", "withheld"),
    [
        ("alice", "plaintext_prompt", "GUARANTEE_VIOLATED", True),  # by her own boundary
        ("deployer", "forward_prompt", "RULE_NOT_PERMITTED", False),  # by the database's
    ],
)
def test_adversaries_are_refused_at_the_boundary(
    tmp_path: Path, party: str, adversary: str, reason: str, withheld: bool
) -> None:
    result = run_default(tmp_path / "run", adversaries={party: adversary})
    attempt = next(a for a in result.actions if a["adversarial"])
    assert attempt["party"] == party and attempt["result"]["refused"] == reason
    assert result.audit.ok
    assert [(b["refusal"], b["withheld"]) for b in result.audit.blocked] == [(reason, withheld)]


def test_a_leaked_prompt_refused_by_the_receiver_still_counts_as_seen(tmp_path: Path) -> None:
    """A compromised client past its own boundary: the deployer refuses the
    plaintext prompt, but the bytes reached it, so the guarantee fails (the
    audit cannot tell an honest refusal from a receiver that kept them).
    Held before: a refusal counted as not seen."""
    result = run_default(tmp_path / "run", adversaries={"alice": "leaked_prompt"})
    assert result.actions[-1]["result"]["refused"] == "GUARANTEE_VIOLATED"
    assert result.audit.visibility["deployer"]["prompt:alice"] == "plaintext"
    findings = failing(result.audit)
    assert list(findings) == ["guarantee: prompts stay sealed outside the end user"]
    assert findings["guarantee: prompts stay sealed outside the end user"][0].startswith(
        "deployer entry"
    )


def test_a_reply_refused_by_the_callers_boundary_counts_as_seen(tmp_path: Path) -> None:
    """The database replies with a training record; alice's boundary refuses
    the reply over gRPC, and the audit still counts what reached her.
    Held before: `replied` paired with `refused` passed every claim."""
    result = run_default(tmp_path / "run", adversaries={"guidelines_db": "tainted_catalog"})
    assert result.failure is not None and "RULE_NOT_PERMITTED" in result.failure
    alice = read_entries(tmp_path / "run" / "parties" / "alice", "alice")[0]
    refused = [e for e in alice if e["direction"] == "in" and e["outcome"] == "refused"]
    assert [(e["step"], e["refusal"], e["blob"]) for e in refused] == [
        ("catalog", "RULE_NOT_PERMITTED", False)
    ]
    assert result.audit.visibility["alice"]["train:hospital_1"] == "plaintext"
    assert "guarantee: training data leaves contributors only as digests" in failing(result.audit)


def test_a_mislabelled_plaintext_prompt_is_caught_by_the_canary_scan(tmp_path: Path) -> None:
    """Labels can lie; the audit scans the bytes the deployer admitted."""
    result = run_default(tmp_path / "run", adversaries={"alice": "mislabeled_prompt"})
    assert result.actions[-1]["result"]["refused"] is None  # the boundary trusted the label
    report = audit_run(tmp_path / "run")
    assert not report.ok
    canary = next(c for c in report.claims if c.name == "canary prompt:alice")
    assert [(f.party, "canary of prompt:alice" in f.detail) for f in canary.findings] == [
        ("deployer", True)
    ]


@pytest.mark.parametrize(
    ("sender", "receiver", "step", "label"),
    [
        (
            "alice",
            "deployer",
            "sealed_prompt",
            Label("prompt:bob", Form.CIPHERTEXT),
        ),  # another user's asset
        (
            "hospital_1",
            "model_creator",
            "dataset_commitment",
            Label("train:hospital_2", Form.DIGEST),
        ),
        (
            "hospital_1",
            "model_creator",
            "dataset_commitment",
            Label("train:hospital_1", Form.PLAINTEXT),
        ),
        ("guidelines_db", "alice", "catalog", Label("catalog:other_db", Form.PUBLIC)),
    ],
)
def test_labels_outside_the_rules_are_refused(
    parties: Parties, sender: str, receiver: str, step: str, label: Label
) -> None:
    with pytest.raises(Refused) as caught:
        parties[sender].deliver(receiver, "walkthrough", step, [label], b"{}")
    assert caught.value.reason == pb.RULE_NOT_PERMITTED


def test_a_killed_party_ends_the_run_and_leaves_a_verifiable_unsealed_log(tmp_path: Path) -> None:
    from orchestrator.launcher import run_scenario
    from orchestrator.scenario import parse_scenario
    from tests.helpers import DEFAULT_ADVERSARIES, default_text

    text = (
        default_text(DEFAULT_ADVERSARIES)
        + '\n[[faults]]\nkill = "deployer"\nbefore = "send_prompt"\n'
    )
    result = run_scenario(
        parse_scenario(text, "crash"), text, out=tmp_path / "run", in_process=True
    )
    assert result.failure is not None and "deployer" in result.failure
    integrity = result.audit.claims[0]
    assert [(f.party, f.detail) for f in integrity.findings] == [
        ("deployer", "signed head is missing (log never sealed)")
    ]
    entries, _ = read_entries(tmp_path / "run" / "parties" / "deployer", "deployer")
    assert [e["step"] for e in entries] == ["model_card"]  # what it saw before it died
    assert all(claim.ok for claim in result.audit.claims[1:])


@pytest.mark.parametrize(
    ("sender", "receiver", "step", "label"),
    [
        ("deployer", "alice", "prompt_receipt", Label("prompt:alice", Form.DIGEST)),
        ("guidelines_db", "alice", "catalog", Label("catalog:guidelines_db", Form.PUBLIC)),
    ],
)
def test_a_reply_step_sent_unsolicited_is_refused(
    parties: Parties, sender: str, receiver: str, step: str, label: Label
) -> None:
    """Receipts and catalogues arrive only as answers to the user's own requests."""
    with pytest.raises(Refused) as caught:
        parties[sender].deliver(receiver, "walkthrough", step, [label], b"{}")
    assert caught.value.reason == pb.RULE_NOT_PERMITTED
    assert "may only answer" in caught.value.detail


def test_policy_refuses_a_request_step_that_comes_back_as_an_answer() -> None:
    from parties.envelope import new_header
    from parties.policy import Policy
    from parties.roles import Role
    from protocols import get_protocol

    policy = Policy({"walkthrough": get_protocol("walkthrough")}, ())
    header = new_header(
        sender="alice",
        receiver="db",
        run_id="r",
        session_id="",
        protocol="walkthrough",
        step="catalog_request",
        sequence=1,
        labels=[Label("catalog:db", Form.PUBLIC)],
        payload=b"{}",
    )
    policy.check(header, Role.END_USER, Role.EXTERNAL_DATABASE)
    with pytest.raises(Refused, match="not an answer"):
        policy.check(header, Role.END_USER, Role.EXTERNAL_DATABASE, answering="catalog")

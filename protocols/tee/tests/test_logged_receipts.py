"""Receipts logged in the ledger (`log_receipts`): the model creator logs
which receipt key the enclave it released the weights to holds; the enclave
logs each receipt under that key before it answers; the end user accepts an
answer only with the ledger's proof. The ledger refuses a receipt under any
other key, and a deployment not signed by the creator."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from evidence.receipts import (
    DEPLOYMENT_PREDICATE,
    RECEIPT_PREDICATE,
    Deployment,
    issue_receipt,
)
from evidence.statements import PartySigner, open_statement
from orchestrator.scenario import load_scenario
from parties.errors import Refused
from parties.labels import Form, Label
from parties.log_check import read_entries
from parties.roles import Role
from parties.wire import airlock_pb2 as pb
from protocols.attestation.ledger_server import logged_entries
from tests.helpers import result_of, run_text, running_parties, with_adversary

_, SCENARIO = load_scenario("tee-inference")
PROMPTS: list[str] = tomllib.loads(SCENARIO)["parties"]["alice"]["prompts"]
LOGGED = (
    SCENARIO.replace(
        "params = { max_new_tokens = 24 }", "params = { max_new_tokens = 24, log_receipts = true }"
    )
    + '\n[parties.ledger]\nrole = "ledger"\n'
)


def test_each_answer_comes_with_its_receipt_logged(tmp_path: Path) -> None:
    assert "log_receipts = true" in LOGGED
    result = run_text(LOGGED, tmp_path / "run")
    assert result.failure is None and result.audit.ok, result.failure
    released = result_of(result, "model_creator", "release_weights")
    assert released["deployment_logged_at"] == 0
    asked = result_of(result, "alice", "ask")
    assert asked["refused"] == []
    assert [a["receipt_logged_at"] for a in asked["answers"]] == [1, 2]
    # the ledger logged the deployment, then one receipt per answer: salted
    # digests only (the prompts are nowhere in the ledger's bytes)
    ledger = tmp_path / "run" / "parties" / "ledger"
    submitted = [
        (e["peer"], e["outcome"])
        for e in read_entries(ledger, "ledger")[0]
        if e["direction"] == "in" and e["step"] == "submit"
    ]
    assert submitted == [("model_creator", "admitted"), ("enclave", "admitted")] + [
        ("enclave", "admitted")
    ] * (len(asked["answers"]) - 1)
    stored = b"".join(p.read_bytes() for p in ledger.rglob("*") if p.is_file())
    assert all(prompt.encode() not in stored for prompt in PROMPTS)


def test_an_answer_whose_receipt_the_ledger_refuses_is_not_accepted(tmp_path: Path) -> None:
    """The enclave signs receipts with its party key: the ledger refuses to
    log them (no deployment names that key), and alice accepts no answer."""
    text = with_adversary(LOGGED, "enclave", "unattested_receipt_key")
    result = run_text(text, tmp_path / "run")
    assert result.failure is None, result.failure
    asked = result_of(result, "alice", "ask")
    assert asked["answers"] == [] and len(asked["refused"]) == 2


SERVING = {"model_creator": Role.MODEL_CREATOR, "enclave": Role.ENCLAVE, "ledger": Role.LEDGER}


@pytest.fixture
def serving(tmp_path: Path):
    with running_parties(
        tmp_path, roles=SERVING, protocol="tee", settings={"log_receipts": True}
    ) as started:
        yield started


def _submit(parties, sender: str, statement: dict, labels: list[Label]):
    payload = json.dumps({"statement": statement, "since": 0}).encode()
    return parties[sender].deliver("ledger", "tee", "submit", labels, payload)


RECEIPT_LABELS = [Label("prompt:alice", Form.DIGEST), Label("output:alice", Form.DIGEST)]
WEIGHTS = [Label("weights:model_creator", Form.DIGEST)]


def test_the_ledger_logs_receipts_only_under_the_deployed_key(serving) -> None:
    root, attested = bytes(32), ed25519.Ed25519PrivateKey.generate()
    signer = PartySigner(attested.public_key(), attested.sign)
    receipt = issue_receipt(root, b"prompt", b"answer", bytes(16), "enclave", signer)

    def refused(sender: str, statement: dict, labels: list[Label]) -> str:
        with pytest.raises(Refused) as caught:
            _submit(serving, sender, statement, labels)
        assert caught.value.reason == pb.HANDLER_FAILED
        return caught.value.detail

    # before any deployment: no key to log a receipt under
    assert "no logged deployment names a key of enclave" in refused(
        "enclave", receipt, RECEIPT_LABELS
    )
    # a deployment signed by someone other than the creator who sends it
    creator = serving["model_creator"]
    deployment = Deployment("model_creator", "enclave", root.hex(), attested.public_key())
    forged = deployment.statement(signer, appraised_by="verifier")
    assert "signature does not verify" in refused("model_creator", forged, WEIGHTS)
    # the creator's deployment, then the receipt under the key it names
    statement = deployment.statement(
        PartySigner.of(creator.context("tee")), appraised_by="verifier"
    )
    _submit(serving, "model_creator", statement, WEIGHTS)
    _submit(serving, "enclave", receipt, RECEIPT_LABELS)
    # a receipt under another key (the enclave party's own, which its host holds)
    host_held = PartySigner.of(serving["enclave"].context("tee"))
    other = issue_receipt(root, b"prompt", b"answer", bytes(16), "enclave", host_held)
    assert "signature does not verify" in refused("enclave", other, RECEIPT_LABELS)
    # a receipt presented as a plain prompt is refused at the boundary
    with pytest.raises(Refused) as plain:
        _submit(serving, "enclave", receipt, [Label("prompt:alice", Form.PLAINTEXT)])
    assert plain.value.reason == pb.RULE_NOT_PERMITTED
    logged = logged_entries(serving["ledger"].store)
    assert len(logged) == 2
    creator_key = creator.context("tee").public_key("model_creator")
    assert open_statement(json.loads(logged[0]), creator_key, DEPLOYMENT_PREDICATE, "x")
    assert open_statement(json.loads(logged[1]), attested.public_key(), RECEIPT_PREDICATE, "x")

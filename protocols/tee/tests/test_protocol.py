"""The tee protocol between real parties (in-process, real gRPC with mutual
TLS): answers come through the enclave and the host holds only ciphertext;
each host adversary makes the end user refuse to send its prompt; bad input
gets a clear refusal and the enclave keeps serving."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from models.charlm import CharTransformer, generate
from models.corpus import pretrained_model
from orchestrator.scenario import load_scenario
from parties.errors import Refused
from parties.labels import Form, Label
from parties.log import read_entries
from parties.payload import pack
from parties.roles import Role
from parties.wire import airlock_pb2 as pb
from protocols.tee.evidence import ENCLAVE_IMAGE
from tests.helpers import failing, result_of, run_text, running_parties, with_adversary

PROMPTS = ["first line for asthma is", "for diabetes, start"]


def tee_text(pretrain_steps: int = 0, adversary: str | None = None) -> str:
    _, text = load_scenario("tee-inference")
    text = text.replace("pretrain_steps = 150", f"pretrain_steps = {pretrain_steps}")
    return with_adversary(text, "deployer", adversary) if adversary else text


def test_prompts_are_answered_by_the_enclave_and_the_host_sees_ciphertext(
    tmp_path: Path,
) -> None:
    result = run_text(tee_text(pretrain_steps=20), tmp_path / "run")
    assert result.failure is None and result.audit.ok, failing(result.audit)
    asked = result_of(result, "alice", "ask")
    assert asked["refused"] == [] and "simulated" in asked["root_of_trust"]
    # the answers are the released model's own greedy continuations
    model = pretrained_model(20, 0)
    assert [a["output"] for a in asked["answers"]] == [
        generate(model, p, 24)[len(p) :] for p in PROMPTS
    ]
    (canary,) = [c for c in result.audit.claims if c.name == "canary prompt:alice"]
    assert canary.ok and canary.checked > 0
    # the host's log: prompts and answers only ever as ciphertext, and each
    # admitted payload is the blob the log names
    entries, problems = read_entries(tmp_path / "run/parties/deployer", "deployer")
    assert not problems
    carrying = [
        e
        for e in entries
        if any(label["asset"].startswith(("prompt:", "output:")) for label in e["labels"])
    ]
    assert {e["step"] for e in carrying} == {
        "sealed_prompt",
        "enclave_prompt",
        "enclave_answer",
        "sealed_answer",
    }
    assert {label["form"] for e in carrying for label in e["labels"]} == {"ciphertext"}
    for entry in entries:
        if entry["blob"]:
            blob = (tmp_path / "run/parties/deployer/blobs" / entry["payload_sha256"]).read_bytes()
            assert hashlib.sha256(blob).hexdigest() == entry["payload_sha256"]
            assert PROMPTS[0].encode() not in blob


@pytest.mark.parametrize(
    ("adversary", "reason"),
    [
        ("swap_model", "measurement does not match"),
        ("modified_code", "measurement does not match"),
        ("rogue_vendor", "unknown vendor key"),
    ],
)
def test_a_host_adversary_gets_no_prompt(tmp_path: Path, adversary: str, reason: str) -> None:
    result = run_text(tee_text(adversary=adversary), tmp_path / "run")
    assert result.failure is None and result.audit.ok, failing(result.audit)
    asked = result_of(result, "alice", "ask")
    assert asked["answers"] == [] and len(asked["refused"]) == 2
    assert all(reason in refusal for refusal in asked["refused"])
    sent = read_entries(tmp_path / "run/parties/alice", "alice")[0]
    assert not [e for e in sent if e["step"] == "sealed_prompt"]


def test_a_replayed_quote_is_refused(tmp_path: Path) -> None:
    result = run_text(tee_text(adversary="replay_quote"), tmp_path / "run")
    asked = result_of(result, "alice", "ask")
    # the first evidence was fresh; the second prompt got it again
    assert [a["prompt"] for a in asked["answers"]] == PROMPTS[:1]
    (refusal,) = asked["refused"]
    assert refusal.startswith(repr(PROMPTS[1])) and "replayed quote" in refusal


@pytest.fixture
def serving(tmp_path: Path):
    roles = {
        "alice": Role.END_USER,
        "deployer": Role.DEPLOYER,
        "enclave": Role.ENCLAVE,
    }
    with running_parties(tmp_path, roles=roles, protocol="tee") as started:
        yield started


def test_bad_input_gets_a_clear_refusal_and_the_enclave_keeps_serving(serving) -> None:
    deployer = serving["deployer"]
    nonce_label = [Label("nonce:alice", Form.PUBLIC)]

    def refusal(step: str, labels: list[Label], payload: bytes) -> str:
        with pytest.raises(Refused) as refused:
            deployer.deliver("enclave", "tee", step, labels, payload)
        assert refused.value.reason == pb.HANDLER_FAILED
        return refused.value.detail

    assert "no model is loaded" in refusal("evidence_request", nonce_label, b'{"nonce": "00"}')
    model = CharTransformer(seed=0)
    load = pack({"image": ENCLAVE_IMAGE.hex()}, model.to_bytes())
    load_labels = [
        Label("weights:model_creator", Form.PLAINTEXT),
        Label("enclave_image:deployer", Form.PUBLIC),
    ]
    assert "safetensors" in refusal("enclave_load", load_labels, pack({"image": ""}, b"junk"))
    deployer.deliver("enclave", "tee", "enclave_load", load_labels, load)
    assert "16 to 64 bytes" in refusal("evidence_request", nonce_label, b'{"nonce": "00"}')
    prompt_label = [Label("prompt:alice", Form.CIPHERTEXT)]
    garbage = pack({"user": "alice", "request": "1"}, bytes(80))
    assert "does not open" in refusal("enclave_prompt", prompt_label, garbage)
    assert "payload" in refusal("enclave_prompt", prompt_label, b"\x00")
    # still serving: fresh evidence for a good nonce
    reply = deployer.deliver(
        "enclave", "tee", "evidence_request", nonce_label, json.dumps({"nonce": "ab" * 16}).encode()
    )
    assert reply is not None and json.loads(reply.payload)["claims"]["nonce"] == "ab" * 16


def test_a_plaintext_prompt_to_the_host_is_refused(serving) -> None:
    """A misconfigured client: the prompt guarantee refuses it at the boundary."""
    request = json.dumps({"prompt": "hello", "max_new_tokens": 4}).encode()
    with pytest.raises(Refused) as refused:
        serving["alice"].deliver(
            "deployer", "tee", "plain_prompt", [Label("prompt:alice", Form.PLAINTEXT)], request
        )
    assert refused.value.reason == pb.GUARANTEE_VIOLATED

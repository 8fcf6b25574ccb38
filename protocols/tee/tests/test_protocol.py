"""The tee protocol between real parties (in-process, real gRPC with mutual
TLS): answers come through the enclave and the host holds only ciphertext;
each host adversary makes the end user refuse to send its prompt, evidence
from any vendor but the run's own included; receipts count only under the
attested key; the content scan finds any prompt or answer the host got in
the clear; bad input gets a clear refusal and the enclave keeps serving."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from models.transformer import Transformer, generate
from models.corpus import pretrained_model
from orchestrator.scenario import load_scenario
from parties.errors import Refused
from parties.labels import Form, Label
from parties.log import read_entries
from parties.payload import pack
from parties.roles import Role
from parties.wire import airlock_pb2 as pb
from protocols.tee.evidence import ENCLAVE_IMAGE, provision
from tests.helpers import failing, result_of, run_text, running_parties, with_adversary

PROMPTS = ["first line for asthma is", "for diabetes, start"]


def tee_text(
    pretrain_steps: int = 0, adversary: str | None = None, enclave: str | None = None
) -> str:
    """The tee-inference scenario; `adversary` played by the deployer, `enclave` by the enclave."""
    _, text = load_scenario("tee-inference")
    text = text.replace("pretrain_steps = 150", f"pretrain_steps = {pretrain_steps}")
    for party, played in (("deployer", adversary), ("enclave", enclave)):
        if played:
            text = with_adversary(text, party, played)
    return text


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
    assert len(asked["vendor_roots"]) == 1
    # the scan searched the host's bytes for every prompt and every answer
    scans = {c.name: c for c in result.audit.claims}
    for name in (
        "canary prompt:alice",
        "content scan: prompt:alice (fingerprints from alice)",
        "content scan: output:alice (fingerprints from alice)",
    ):
        assert scans[name].ok and scans[name].checked > 0
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


def test_evidence_from_a_vendor_the_host_made_is_refused(tmp_path: Path) -> None:
    """The host makes a simulated vendor and chip of its own (anyone can) and
    quotes its own keys with the right measurement: the run's vendor root,
    minted in the orchestrator, does not endorse it, so no prompt is sealed
    to the host and it opens none."""
    result = run_text(tee_text(adversary="rogue_vendor"), tmp_path / "run")
    assert result.failure is None and result.audit.ok, failing(result.audit)
    asked = result_of(result, "alice", "ask")
    assert asked["answers"] == [] and len(asked["refused"]) == 2
    assert all("unknown vendor key" in refusal for refusal in asked["refused"])
    assert result_of(result, "deployer", "show_opened_prompts") == {"opened_prompts": []}
    sent = read_entries(tmp_path / "run/parties/alice", "alice")[0]
    assert not [e for e in sent if e["step"] == "sealed_prompt"]


def test_each_run_has_its_own_vendor_root(tmp_path: Path) -> None:
    roots = []
    for run in ("first", "second"):
        result = run_text(tee_text(), tmp_path / run)
        assert result.failure is None, result.failure
        (root,) = result_of(result, "alice", "ask")["vendor_roots"]
        roots.append(root)
    assert roots[0] != roots[1]


def test_a_receipt_signed_outside_the_evidence_is_refused(tmp_path: Path) -> None:
    """The enclave signs receipts with its party key (which the host's runtime
    holds), not the receipt key its evidence binds: no answer is accepted."""
    result = run_text(tee_text(enclave="unattested_receipt_key"), tmp_path / "run")
    assert result.failure is None, result.failure
    asked = result_of(result, "alice", "ask")
    assert asked["answers"] == [] and len(asked["refused"]) == 2
    assert all(
        refusal.endswith("inference receipt: signature does not verify")
        for refusal in asked["refused"]
    ), asked["refused"]


def test_the_content_scan_catches_an_answer_the_host_got_in_the_clear(tmp_path: Path) -> None:
    """The enclave also hands the host each answer in the clear, labelled
    ciphertext: the boundary cannot tell, the audit's scan of the host's
    bytes for every answer does."""
    result = run_text(tee_text(enclave="mislabeled_answer"), tmp_path / "run")
    assert result.failure is None, result.failure
    asked = result_of(result, "alice", "ask")
    assert len(asked["answers"]) == 2 and asked["refused"] == []
    failed = failing(result.audit)
    assert list(failed) == ["content scan: output:alice (fingerprints from alice)"], failed
    findings = failed["content scan: output:alice (fingerprints from alice)"]
    assert len(findings) == 2 and all("deployer" in f and "ciphertext" in f for f in findings)


SERVING = {"alice": Role.END_USER, "deployer": Role.DEPLOYER, "enclave": Role.ENCLAVE}


@pytest.fixture
def serving(tmp_path: Path):
    with running_parties(
        tmp_path, roles=SERVING, protocol="tee", provisions=provision(SERVING, {})
    ) as started:
        yield started


def test_bad_input_gets_a_clear_refusal_and_the_enclave_keeps_serving(serving) -> None:
    deployer = serving["deployer"]
    nonce_label = [Label("nonce:alice", Form.PUBLIC)]

    def refusal(
        step: str, labels: list[Label], payload: bytes, reason: int = pb.HANDLER_FAILED
    ) -> str:
        with pytest.raises(Refused) as refused:
            deployer.deliver("enclave", "tee", step, labels, payload)
        assert refused.value.reason == reason
        return refused.value.detail

    before_load = refusal("evidence_request", nonce_label, b'{"nonce": "00"}', pb.OUT_OF_STEP)
    assert "needs the role to be loaded, it is awaiting_load" in before_load
    model = Transformer(seed=0)
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


def test_an_enclave_without_a_provisioned_device_key_does_not_load(tmp_path: Path) -> None:
    with running_parties(tmp_path, roles=SERVING, protocol="tee") as started:
        load = pack({"image": ENCLAVE_IMAGE.hex()}, Transformer(seed=0).to_bytes())
        labels = [
            Label("weights:model_creator", Form.PLAINTEXT),
            Label("enclave_image:deployer", Form.PUBLIC),
        ]
        with pytest.raises(Refused) as refused:
            started["deployer"].deliver("enclave", "tee", "enclave_load", labels, load)
    assert refused.value.reason == pb.HANDLER_FAILED
    assert "no device attestation key" in refused.value.detail


def test_the_model_and_the_reference_values_come_once_per_run(tmp_path: Path) -> None:
    """A second release would change what the host loads, second reference
    values what the verifier approves: each is refused as out of step."""
    roles = {"model_creator": Role.MODEL_CREATOR, "deployer": Role.DEPLOYER}
    roles["verifier"] = Role.VERIFIER
    with running_parties(tmp_path, roles=roles, protocol="tee") as started:
        creator = started["model_creator"]
        creator.act("tee", "release_model", {"pretrain_steps": 0})
        with pytest.raises(Refused) as again:  # the reference values go first
            creator.act("tee", "release_model", {"pretrain_steps": 0})
        assert again.value.reason == pb.OUT_OF_STEP
        assert "reference values needs the role to be awaiting_reference" in again.value.detail
        weights = [Label("weights:model_creator", Form.PLAINTEXT)]
        model = Transformer(seed=0).to_bytes()
        with pytest.raises(Refused) as released:
            creator.deliver("deployer", "tee", "model_release", weights, model)
        assert released.value.reason == pb.OUT_OF_STEP
        assert "a model release needs the role to be awaiting_model" in released.value.detail

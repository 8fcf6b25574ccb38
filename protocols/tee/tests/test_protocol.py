"""The tee protocol between real parties (in-process, real gRPC with mutual
TLS): the model creator releases the weights only to the appraised
enclave, sealed to its attested key; answers come through the enclave and
the host holds only ciphertext (weights, prompts, answers); each host
adversary makes the creator withhold the weights and the end user refuse
to send its prompt, evidence from any vendor but the run's own included;
receipts count only under the attested key; the content scan finds any
prompt or answer the host got in the clear; bad input (a weights release
sealed to another key, for another enclave or root, or out of step; a
prompt not padded to the enclave's buckets) gets a clear refusal and the
enclave keeps serving. Padding itself: test_padding.py."""

from __future__ import annotations

import base64
import hashlib
import json
import tomllib
from pathlib import Path

import pytest

from evidence.weights import float32_weights_root
from models.checkpoint import served_model, shipped_tokenizer
from models.transformer import Transformer, generate
from orchestrator.scenario import load_scenario
from orchestrator.verify import verify_run
from parties.errors import OutOfStep, Refused
from parties.labels import Form, Label
from parties.log_check import read_entries
from parties.payload import pack
from parties.roles import Role
from parties.wire import airlock_pb2 as pb
from protocols.tee import channel, verify
from protocols.tee.creator import FINGERPRINTED
from protocols.tee.enclave import request_aad, weights_aad
from protocols.tee.evidence import ENCLAVE_IMAGE
from tests.helpers import failing, result_of, run_text, running_parties, with_adversary

_, SCENARIO = load_scenario("tee-inference")
PROMPTS: list[str] = tomllib.loads(SCENARIO)["parties"]["alice"]["prompts"]


def tee_text(adversary: str | None = None, enclave: str | None = None) -> str:
    """The tee-inference scenario; `adversary` played by the deployer, `enclave` by the enclave."""
    text = SCENARIO
    for party, played in (("deployer", adversary), ("enclave", enclave)):
        if played:
            text = with_adversary(text, party, played)
    return text


def weights_windows() -> list[bytes]:
    """Raw windows of the shipped weights, as the creator reports them to the audit."""
    state = served_model().state_dict()
    return [state[name].detach().numpy().tobytes()[:32] for name in FINGERPRINTED]


def steps_sent(run: Path, party: str) -> set[str]:
    entries = read_entries(run / "parties" / party, party)[0]
    return {e["step"] for e in entries if e["direction"] == "out" and e["outcome"] == "delivered"}


def test_prompts_are_answered_by_the_enclave_and_the_host_sees_ciphertext(
    tmp_path: Path,
) -> None:
    result = run_text(tee_text(), tmp_path / "run")
    assert result.failure is None and result.audit.ok, failing(result.audit)
    released = result_of(result, "model_creator", "release_weights")
    assert released["released"] is True and released["enclave"] == "enclave"
    asked = result_of(result, "alice", "ask")
    assert asked["refused"] == [] and "simulated" in asked["root_of_trust"]
    # the answers are the shipped model's own greedy answers, to the end of the line
    model, tokenizer = served_model(), shipped_tokenizer()
    plaintext = [generate(model, tokenizer, p, 24, stop="\n")[len(p) :] for p in PROMPTS]
    assert [a["output"] for a in asked["answers"]] == [
        text.split("\n")[0].strip() for text in plaintext
    ]
    assert asked["answers"][0]["output"] == "start budesonide 200 mg once daily"
    assert len(asked["vendor_roots"]) == 1
    # the vendor root alice appraised against is the one the simulated vendor published
    manifest = json.loads((tmp_path / "run/manifest.json").read_text())
    assert asked["vendor_roots"] == [manifest["provisioned"]["tee"]["root_sha256"]]
    assert "SIMULATED" in manifest["provisioned"]["tee"]["vendor"]
    # airlock verify re-appraised the evidence behind each affirming result
    verified = {c.name: c for c in verify_run(tmp_path / "run").claims}
    assert all(c.ok for c in verified.values()), failing(verify_run(tmp_path / "run"))
    assert verified[verify.REAPPRAISED_CLAIM].checked == 3  # the creator's one, alice's two
    # the scan searched the host's bytes for every prompt, every answer and the weights
    scans = {c.name: c for c in result.audit.claims}
    for name in (
        "canary prompt:alice",
        "content scan: prompt:alice (fingerprints from alice)",
        "content scan: output:alice (fingerprints from alice)",
        "content scan: weights:model_creator (fingerprints from model_creator)",
    ):
        assert scans[name].ok and scans[name].checked > 0
    # the host's log: weights, prompts and answers only ever as ciphertext
    # (and the weights' root as a digest), and each admitted payload is the
    # blob the log names
    run = tmp_path / "run/parties/deployer"
    entries, problems = read_entries(run, "deployer")
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
    weights = {
        (e["step"], label["form"])
        for e in entries
        for label in e["labels"]
        if label["asset"].startswith("weights:")
    }
    assert weights == {
        ("model_root", "digest"),
        ("enclave_load", "digest"),
        ("model_release", "ciphertext"),
        ("enclave_weights", "ciphertext"),
    }
    windows = weights_windows()
    for entry in entries:
        if entry["blob"]:
            blob = (run / "blobs" / entry["payload_sha256"]).read_bytes()
            assert hashlib.sha256(blob).hexdigest() == entry["payload_sha256"]
            assert PROMPTS[0].encode() not in blob
            assert not any(window in blob for window in windows)


def test_the_deployer_cannot_open_the_weights_it_relays(tmp_path: Path) -> None:
    """The release the host relayed is HPKE ciphertext to the enclave's
    per-boot key: it opens with no key the host could make, and the enclave
    got exactly the bytes the creator sealed."""
    result = run_text(tee_text(), tmp_path / "run")
    assert result.failure is None, result.failure
    run = tmp_path / "run/parties/deployer"
    entries = read_entries(run, "deployer")[0]
    (release,) = [e for e in entries if e["step"] == "model_release" and e["direction"] == "in"]
    sealed = (run / "blobs" / release["payload_sha256"]).read_bytes()
    root = bytes.fromhex(result_of(result, "model_creator", "publish_model")["model_root"])
    with pytest.raises(channel.ChannelError, match="does not open"):
        channel.open_weights(channel.new_key_pair(), sealed, weights_aad("enclave", root))
    enclave = read_entries(tmp_path / "run/parties/enclave", "enclave")[0]
    (relayed,) = [e for e in enclave if e["step"] == "enclave_weights"]
    assert relayed["payload_sha256"] == release["payload_sha256"]


@pytest.mark.parametrize(
    ("adversary", "reason"),
    [
        ("swap_model", "measurement does not match"),
        ("modified_code", "measurement does not match"),
    ],
)
def test_a_host_adversary_gets_no_prompt(tmp_path: Path, adversary: str, reason: str) -> None:
    """Other weights (the host's own, sealed by it to the enclave) or other
    code: the measurement differs, so the creator releases no weights and
    the end user sends no prompt."""
    result = run_text(tee_text(adversary=adversary), tmp_path / "run")
    assert result.failure is None and result.audit.ok, failing(result.audit)
    released = result_of(result, "model_creator", "release_weights")
    assert released["released"] is False and reason in released["refused"]
    assert "model_release" not in steps_sent(tmp_path / "run", "model_creator")
    asked = result_of(result, "alice", "ask")
    assert asked["answers"] == [] and len(asked["refused"]) == 2
    assert all(reason in refusal for refusal in asked["refused"])
    assert "sealed_prompt" not in steps_sent(tmp_path / "run", "alice")
    if adversary == "swap_model":  # the enclave serves the host's own weights
        enclave = read_entries(tmp_path / "run/parties/enclave", "enclave")[0]
        (installed,) = [e for e in enclave if e["step"] == "enclave_weights"]
        assert installed["outcome"] == "admitted"
        assert installed["labels"][0]["asset"] == "weights:deployer"


def test_a_replayed_quote_is_refused(tmp_path: Path) -> None:
    result = run_text(tee_text(adversary="replay_quote"), tmp_path / "run")
    assert result_of(result, "model_creator", "release_weights")["released"] is True
    asked = result_of(result, "alice", "ask")
    # the first evidence was fresh; the second prompt got it again
    assert [a["prompt"] for a in asked["answers"]] == PROMPTS[:1]
    (refusal,) = asked["refused"]
    assert refusal.startswith(repr(PROMPTS[1])) and "replayed quote" in refusal


def test_evidence_from_a_vendor_the_host_made_is_refused(tmp_path: Path) -> None:
    """The host makes a simulated vendor and chip of its own (anyone can) and
    quotes its own keys with the right measurement: the run's vendor root,
    minted in the orchestrator, does not endorse it, so no weights and no
    prompt are sealed to the host, and it opens none."""
    result = run_text(tee_text(adversary="rogue_vendor"), tmp_path / "run")
    assert result.failure is None and result.audit.ok, failing(result.audit)
    released = result_of(result, "model_creator", "release_weights")
    assert released["released"] is False and "unknown vendor key" in released["refused"]
    asked = result_of(result, "alice", "ask")
    assert asked["answers"] == [] and len(asked["refused"]) == 2
    assert all("unknown vendor key" in refusal for refusal in asked["refused"])
    opened = result_of(result, "deployer", "show_opened_prompts")
    assert opened == {"opened_prompts": [], "opened_weights": False}
    assert "sealed_prompt" not in steps_sent(tmp_path / "run", "alice")


def test_a_verifier_colluding_with_the_host_gets_it_neither_weights_nor_prompts(
    tmp_path: Path,
) -> None:
    """The verifier affirms the host's own chip (`rogue_vendor`, a vendor
    the host made): each relying party appraises the evidence itself,
    against the vendor root the run published and the creator's reference
    values, and refuses it. So the creator releases no weights and alice
    sends no prompt; the host opens nothing. `airlock verify` names the
    verifier's affirming results for evidence that does not appraise."""
    text = with_adversary(tee_text(adversary="rogue_vendor"), "verifier", "colluding_verifier")
    result = run_text(text, tmp_path / "run")
    assert result.failure is None and result.audit.ok, failing(result.audit)
    released = result_of(result, "model_creator", "release_weights")
    assert released["released"] is False, released
    assert "own appraisal" in released["refused"] and "unknown vendor key" in released["refused"]
    assert "model_release" not in steps_sent(tmp_path / "run", "model_creator")
    asked = result_of(result, "alice", "ask")
    assert asked["answers"] == [] and len(asked["refused"]) == 2, asked
    assert all("unknown vendor key" in refusal for refusal in asked["refused"])
    assert "sealed_prompt" not in steps_sent(tmp_path / "run", "alice")
    opened = result_of(result, "deployer", "show_opened_prompts")
    assert opened == {"opened_prompts": [], "opened_weights": False}
    verified = verify_run(tmp_path / "run")
    (findings,) = failing(verified).values()
    assert len(findings) == 3, findings  # the creator's one result, alice's two
    assert all("unknown vendor key" in f and "verifier affirmed" in f for f in findings)
    assert not any("then sent" in f for f in findings), findings


def test_verify_finds_a_relying_party_that_acts_on_the_verifiers_word_alone(
    tmp_path: Path,
) -> None:
    """As above, but alice skips her own appraisal (`trusts_the_verifier`):
    she seals both prompts to the host's key and the host opens them (it has
    no weights to answer with: the creator appraised and released none).
    The audit cannot see it (the prompts crossed labelled ciphertext);
    `airlock verify` re-appraises the evidence behind each affirming result
    alice admitted, fails it, and says she then sent her prompt."""
    text = with_adversary(tee_text(adversary="rogue_vendor"), "verifier", "colluding_verifier")
    text = with_adversary(text, "alice", "trusts_the_verifier")
    result = run_text(text, tmp_path / "run")
    assert result.failure is None, result.failure
    assert result_of(result, "model_creator", "release_weights")["released"] is False
    asked = result_of(result, "alice", "ask")
    assert asked["answers"] == [] and len(asked["refused"]) == 2, asked
    opened = result_of(result, "deployer", "show_opened_prompts")
    assert opened == {"opened_prompts": PROMPTS, "opened_weights": False}
    verified = verify_run(tmp_path / "run")
    (findings,) = failing(verified).values()
    sent = [f for f in findings if f.startswith("alice") and "alice then sent sealed_prompt" in f]
    assert len(sent) == 2 and len(findings) == 3, findings
    (creator,) = [f for f in findings if f.startswith("model_creator")]
    assert "unknown vendor key" in creator and "then sent" not in creator


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


def test_an_answer_handed_to_the_host_in_the_clear_is_refused_by_its_boundary(
    tmp_path: Path,
) -> None:
    """The enclave also hands the host each answer in the clear, in a field
    the answer's message definition does not have: the host's boundary
    refuses the reply (BAD_PAYLOAD) before anything reads it, so no
    plaintext is admitted, and alice gets no answer from it."""
    result = run_text(tee_text(enclave="mislabeled_answer"), tmp_path / "run")
    assert result.failure is None, result.failure
    asked = result_of(result, "alice", "ask")
    assert asked["answers"] == [] and len(asked["refused"]) == 2, asked
    assert all("BAD_PAYLOAD: tee.enclave_answer: output:" in r for r in asked["refused"])
    assert not failing(result.audit)
    refused = [b for b in result.audit.blocked if b["step"] == "enclave_answer"]
    assert [b["refusal"] for b in refused] == ["BAD_PAYLOAD"] * 2, result.audit.blocked


SERVING = {"alice": Role.END_USER, "deployer": Role.DEPLOYER, "enclave": Role.ENCLAVE}


@pytest.fixture
def serving(tmp_path: Path):
    with running_parties(tmp_path, roles=SERVING, protocol="tee", provision=True) as started:
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

    good_nonce = "ab" * 32

    def evidence() -> dict:
        request = json.dumps({"nonce": good_nonce}).encode()
        reply = deployer.deliver("enclave", "tee", "evidence_request", nonce_label, request)
        assert reply is not None
        return json.loads(reply.payload)

    # what breaks a step's message definition never reaches the role (parties.message)
    short_nonce = json.dumps({"nonce": "00"}).encode()
    assert "nonce" in refusal("evidence_request", nonce_label, short_nonce, pb.BAD_PAYLOAD)
    asked = json.dumps({"nonce": good_nonce}).encode()
    before_load = refusal("evidence_request", nonce_label, asked, pb.OUT_OF_STEP)
    assert "needs the role to be awaiting_weights or serving, it is awaiting_load" in before_load
    weights_label = [Label("weights:model_creator", Form.CIPHERTEXT)]
    early = refusal("enclave_weights", weights_label, bytes(80), pb.OUT_OF_STEP)
    assert "a weights release needs the role to be awaiting_weights, it is awaiting_load" in early
    model = Transformer(seed=0)
    root = float32_weights_root(model.state_dict())
    load_labels = [
        Label("weights:model_creator", Form.DIGEST),
        Label("enclave_image:deployer", Form.PUBLIC),
    ]
    load = json.dumps({"image": ENCLAVE_IMAGE.hex(), "model_root": root.hex()}).encode()
    bad_load = json.dumps({"image": ENCLAVE_IMAGE.hex(), "model_root": "00"}).encode()
    assert "model_root" in refusal("enclave_load", load_labels, bad_load, pb.BAD_PAYLOAD)
    deployer.deliver("enclave", "tee", "enclave_load", load_labels, load)
    prompt_label = [Label("prompt:alice", Form.CIPHERTEXT)]
    garbage = pack({"user": "alice", "request": "01" * 16}, bytes(80))
    unserved = refusal("enclave_prompt", prompt_label, garbage, pb.OUT_OF_STEP)
    assert "a prompt needs the role to be serving, it is awaiting_weights" in unserved
    key = bytes.fromhex(evidence()["claims"]["hpke_public_key"])
    # key release: sealed to a key that is not this enclave's, or for another
    # enclave, or weights whose root is not the one it booted with
    elsewhere = channel.public_bytes(channel.new_key_pair())
    for sealed in (
        channel.seal_weights(elsewhere, model.to_bytes(), weights_aad("enclave", root)),
        channel.seal_weights(key, model.to_bytes(), weights_aad("enclave_2", root)),
    ):
        detail = refusal("enclave_weights", weights_label, sealed)
        assert detail.startswith("enclave_weights refused: "), detail
        assert "weights release" in detail and "does not open" in detail
    assert "bytes" in refusal("enclave_weights", weights_label, bytes(16), pb.BAD_PAYLOAD)
    other = Transformer(seed=1).to_bytes()
    sealed = channel.seal_weights(key, other, weights_aad("enclave", root))
    assert "not the root" in refusal("enclave_weights", weights_label, sealed)
    junk = channel.seal_weights(key, b"junk", weights_aad("enclave", root))
    assert "safetensors" in refusal("enclave_weights", weights_label, junk)
    release = channel.seal_weights(key, model.to_bytes(), weights_aad("enclave", root))
    deployer.deliver("enclave", "tee", "enclave_weights", weights_label, release)
    again = refusal("enclave_weights", weights_label, release, pb.OUT_OF_STEP)
    assert "a weights release needs the role to be awaiting_weights, it is serving" in again
    assert "does not open" in refusal("enclave_prompt", prompt_label, garbage)
    # sealed to the enclave's key but not padded to its request buckets
    aad = request_aad("alice", "01" * 16)
    for buckets, reason in (
        ((1000,), "the padded request is 1000 bytes, not one of the buckets [512, 2048, 8192]"),
        ((2048,), "the request is not padded to the smallest bucket that holds it"),
    ):
        sealed, _ = channel.seal_request(key, b"{}", aad, buckets)
        relay = pack({"user": "alice", "request": "01" * 16}, sealed)
        assert refusal("enclave_prompt", prompt_label, relay) == f"enclave_prompt refused: {reason}"
    assert "payload" in refusal("enclave_prompt", prompt_label, b"\x00", pb.BAD_PAYLOAD)
    # still serving: fresh evidence for a good nonce, measuring the booted root
    assert evidence()["claims"]["nonce"] == good_nonce


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
        root = float32_weights_root(Transformer(seed=0).state_dict())
        load = json.dumps({"image": ENCLAVE_IMAGE.hex(), "model_root": root.hex()}).encode()
        labels = [
            Label("weights:model_creator", Form.DIGEST),
            Label("enclave_image:deployer", Form.PUBLIC),
        ]
        with pytest.raises(Refused) as refused:
            started["deployer"].deliver("enclave", "tee", "enclave_load", labels, load)
    assert refused.value.reason == pb.HANDLER_FAILED
    assert "no device attestation key" in refused.value.detail


def test_the_model_and_the_reference_values_come_once_per_run(tmp_path: Path) -> None:
    """A second root would change what the host boots, second reference
    values what the verifier approves, a weights release before the enclave
    is booted has nowhere to go: each is refused as out of step."""
    roles = {"model_creator": Role.MODEL_CREATOR, "deployer": Role.DEPLOYER}
    roles["verifier"] = Role.VERIFIER
    with running_parties(tmp_path, roles=roles, protocol="tee") as started:
        creator = started["model_creator"]
        with pytest.raises(OutOfStep, match="needs the role to be published, it is unpublished"):
            creator.act("tee", "release_weights")
        creator.act("tee", "publish_model")
        with pytest.raises(OutOfStep, match="needs the role to be unpublished, it is published"):
            creator.act("tee", "publish_model")
        root = json.dumps({"model_root": "00" * 32}).encode()
        # a statement of the right form: the verifier refuses it for its step
        statement = {
            "payload": base64.b64encode(b"{}").decode(),
            "payloadType": "application/vnd.in-toto+json",
            "signatures": [{"keyid": "00" * 32, "sig": base64.b64encode(bytes(64)).decode()}],
        }
        for step, labels, payload, detail in (
            (
                "reference_values",
                [Label("reference:model_creator", Form.PUBLIC)],
                json.dumps(statement).encode(),
                "reference values needs the role to be awaiting_reference",
            ),
            (
                "model_root",
                [Label("weights:model_creator", Form.DIGEST)],
                root,
                "a model root needs the role to be awaiting_root, it is holding_root",
            ),
            (
                "model_release",
                [Label("weights:model_creator", Form.CIPHERTEXT)],
                bytes(80),
                "a model release needs the role to be launched, it is holding_root",
            ),
        ):
            receiver = "verifier" if step == "reference_values" else "deployer"
            with pytest.raises(Refused) as refused:
                creator.deliver(receiver, "tee", step, labels, payload)
            assert refused.value.reason == pb.OUT_OF_STEP
            assert detail in refused.value.detail

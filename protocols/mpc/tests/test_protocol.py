"""The mpc protocol between real parties. Two-party inference runs on Ray
(CrypTen's state is per process, so each compute party needs its own), on
the shipped checkpoint; the refusals are checked in-process, most with the
small test model shared in its place."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import asdict, fields
from pathlib import Path

import pytest
import torch

from evidence.weights import float32_weights_root
from models.checkpoint import served_model, shipped_tokenizer
from models.transformer import BadPrompt, ModelConfig, Transformer, generate
from orchestrator.scenario import load_scenario
from parties.errors import Refused
from parties.labels import Form, Label
from parties.log_check import read_entries
from parties.wire import airlock_pb2 as pb
from protocols.mpc.communicator import pack_tensors
from protocols.mpc.messages import WeightShares
from protocols.mpc.model import encode, split, weight_shapes
from protocols.mpc.roles import Settings, check_prompt, model_to_share, served_config
from protocols.mpc.tests.conftest import share_instead
from tests.helpers import Parties, airlock, refusal, run_text, with_adversary

_, SCENARIO = load_scenario("mpc-inference")
(PROMPT,) = tomllib.loads(SCENARIO)["parties"]["alice"]["prompts"]
PROMPT_SHARE = [Label("prompt:alice", Form.SHARE)]
OLD_SHAPE = ModelConfig(vocab=48, context=64, width=64, layers=2, heads=2, hidden=192)


def mpc_text(tokens: int = 2, prompt: str = PROMPT, fault: str = "") -> str:
    text = re.sub(r"params = \{.*\}", f"params = {{ max_new_tokens = {tokens} }}", SCENARIO)
    prompts = f"prompts = [{json.dumps(prompt)}]"
    return text.replace(f"prompts = [{json.dumps(PROMPT)}]", prompts) + fault


def test_the_scenario_prompt_is_its_canary_and_the_model_answers_it() -> None:
    scenario = tomllib.loads(SCENARIO)
    assert [c["value"] for c in scenario["canaries"]] == [PROMPT]
    tokens = scenario["stages"][0]["params"]["max_new_tokens"]
    answer = generate(served_model(), shipped_tokenizer(), PROMPT, tokens)[len(PROMPT) :]
    assert answer == " start budesonide 20 mg weekly"  # the guideline's advice, in full


@pytest.mark.ray
def test_mpc_generation_matches_plaintext_and_parties_hold_only_shares(tmp_path: Path) -> None:
    path = tmp_path / "mpc.toml"
    path.write_text(mpc_text(tokens=3))
    run_dir = tmp_path / "run"
    done = airlock("run", str(path), "--out", str(run_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = json.loads((run_dir / "manifest.json").read_text())
    (generated,) = [a["result"] for a in manifest["actions"] if a["action"] == "generate"]
    model, tokenizer = served_model(), shipped_tokenizer()  # what the creator shared
    assert generated["outputs"] == [
        {"prompt": PROMPT, "output": generate(model, tokenizer, PROMPT, 3)[len(PROMPT) :]}
    ]
    with torch.no_grad():
        plain = model(torch.tensor([tokenizer.encode(PROMPT)]))[0, -1]
    assert torch.allclose(torch.tensor(generated["first_logits"]), plain, atol=0.05)
    audit = json.loads(airlock("audit", str(run_dir), "--format", "json").stdout)
    assert audit["ok"], audit
    for party in ("deployer", "compute", "dealer"):
        seen = audit["visibility"][party]
        assert {f for a, f in seen.items() if a.startswith(("prompt:", "weights:"))} <= {"share"}
    scans = [c for c in audit["claims"] if c["claim"].startswith(("canary", "content scan"))]
    assert len(scans) == 3 and all(c["ok"] and c["checked"] > 0 for c in scans)
    # every MPC message the deployer received is in its log, as a blob
    entries, problems = read_entries(run_dir / "parties/deployer", "deployer")
    assert not problems
    messages = [e for e in entries if e["step"] == "mpc_message" and e["direction"] == "in"]
    assert messages and all(e["blob"] for e in messages)


@pytest.mark.ray
def test_a_compute_party_killed_mid_inference_ends_the_run_cleanly(tmp_path: Path) -> None:
    fault = '\n[[faults]]\nkill = "compute"\nduring = "generate"\nafter_s = 1.5\n'
    path = tmp_path / "mpc.toml"
    path.write_text(mpc_text(tokens=20, fault=fault))
    run_dir = tmp_path / "run"
    done = airlock("run", str(path), "--out", str(run_dir))
    assert done.returncode == 1
    output = done.stdout + done.stderr
    assert "Traceback" not in output and "fault injected: killed compute" in output
    manifest = json.loads((run_dir / "manifest.json").read_text())
    # the run ends naming the party it lost (alice's generate failed for want of it)
    assert manifest["outcome"] == "failed"
    assert "lost compute (killed by an injected fault)" in manifest["failure"]
    assert "alice generate failed" in output
    assert not [a for a in manifest["actions"] if a["action"] == "generate"]  # no partial output
    report = json.loads(airlock("audit", str(run_dir), "--format", "json").stdout)
    integrity = report["claims"][0]
    assert [f["party"] for f in integrity["findings"]] == ["compute"]  # only the unsealed head


def test_a_bad_prompt_is_refused_before_anything_is_shared(tmp_path: Path) -> None:
    config, tokenizer = served_config(), shipped_tokenizer()
    with pytest.raises(BadPrompt, match="outside the model's vocabulary"):
        check_prompt("price in €", tokenizer, config)
    with pytest.raises(BadPrompt, match="prompt of 100 tokens exceeds the context of 96"):
        check_prompt("x" * 100, tokenizer, config)
    with pytest.raises(BadPrompt, match="empty prompt"):
        check_prompt("", tokenizer, config)
    with pytest.raises(BadPrompt, match=r"gives token \d+, past the model's 48"):
        check_prompt("asthma in adults", tokenizer, OLD_SHAPE)
    result = run_text(mpc_text(prompt="dose in µg"), tmp_path / "run")
    assert result.failure is not None and "outside the model's vocabulary" in result.failure
    entries, _ = read_entries(tmp_path / "run/parties/alice", "alice")
    assert not [e for e in entries if e["step"] == "prompt_shares"]


def test_shares_may_go_only_where_the_protocol_says(mpc_parties) -> None:
    deployer = mpc_parties["deployer"]
    share = [Label("prompt:alice", Form.SHARE)]
    plaintext = [Label("prompt:alice", Form.PLAINTEXT)]
    # each refused by the deployer's own boundary, and by the receiver's when sent past it;
    # the prompt in the clear even between the compute parties
    sends = [(receiver, share) for receiver in ("model_creator", "alice", "dealer")]
    for receiver, labels in [*sends, ("compute", plaintext)]:
        for check in (True, False):
            with pytest.raises(Refused) as refused:
                deployer.deliver(receiver, "mpc", "mpc_message", labels, b"x", check=check)
            assert refused.value.reason == pb.RULE_NOT_PERMITTED, (receiver, check)
        entries, _ = read_entries(mpc_parties[receiver].log.directory, receiver)
        assert [e["outcome"] for e in entries if e["step"] == "mpc_message"] == ["refused"]
    # the leak_share adversary, played by the deployer (past its own boundary)
    deployer.adversary = "leak_share"
    assert "RULE_NOT_PERMITTED" in deployer.act("mpc", "leak_share", {})["refused"]


def test_compute_parties_refuse_prompt_shares_before_weight_shares(mpc_parties: Parties) -> None:
    # (the test directory's prompt guarantee caps the deployer at ciphertext,
    # so the shares go to the other compute party)
    share = pack_tensors({}, {"prompt": torch.zeros(3, ModelConfig().vocab, dtype=torch.long)})
    with pytest.raises(Refused) as refused:
        mpc_parties["alice"].deliver("compute", "mpc", "prompt_shares", PROMPT_SHARE, share)
    assert refused.value.reason == pb.OUT_OF_STEP
    assert "a prompt share needs the role to be ready, it is awaiting_weights" in (
        refused.value.detail
    )


def test_compute_parties_take_one_set_of_weight_shares(
    mpc_parties: Parties, small_model: Transformer
) -> None:
    mpc_parties["model_creator"].act("mpc", "share_weights", {})
    with pytest.raises(Refused) as refused:
        mpc_parties["model_creator"].act("mpc", "share_weights", {})
    assert refused.value.reason == pb.OUT_OF_STEP
    assert "weight shares needs the role to be awaiting_weights, it is ready" in (
        refused.value.detail
    )


def test_compute_parties_refuse_malformed_prompt_shares(
    mpc_parties: Parties, small_model: Transformer
) -> None:
    config = small_model.config
    mpc_parties["model_creator"].act("mpc", "share_weights", {})
    shape = rf"a prompt share is a \(length, {config.vocab}\) tensor"
    rows = f"a prompt share has 1 to {config.context} int64 rows"
    junk = refusal(mpc_parties["alice"], "compute", "mpc", "prompt_shares", PROMPT_SHARE, b"junk")
    assert junk.reason == pb.BAD_PAYLOAD and "payload header runs past" in junk.detail
    # shares that fit the message but not the model: the compute party's to refuse
    malformed = {
        pack_tensors({}, {}): shape,  # no prompt share at all
        pack_tensors({}, {"prompt": torch.zeros(config.vocab, dtype=torch.long)}): shape,
        pack_tensors({}, {"prompt": torch.zeros(3, config.vocab + 1, dtype=torch.long)}): shape,
        pack_tensors({}, {"prompt": torch.zeros(config.context + 1, config.vocab).long()}): rows,
        pack_tensors({}, {"prompt": torch.zeros(0, config.vocab, dtype=torch.long)}): rows,
        pack_tensors({}, {"prompt": torch.zeros(3, config.vocab)}): rows,  # float, not int64
    }
    for payload, reason in malformed.items():
        with pytest.raises(Refused) as refused:
            mpc_parties["alice"].deliver("compute", "mpc", "prompt_shares", PROMPT_SHARE, payload)
        assert refused.value.reason == pb.HANDLER_FAILED
        assert re.search(reason, refused.value.detail), (reason, refused.value.detail)


def test_the_forward_pass_reads_the_models_weights() -> None:
    for config in (ModelConfig(), OLD_SHAPE, served_config()):
        expected = {k: tuple(v.shape) for k, v in Transformer(config).state_dict().items()}
        assert weight_shapes(config) == expected


def weight_meta(model: Transformer, config: ModelConfig | None = None) -> dict[str, str]:
    return {k: str(v) for k, v in asdict(config or model.config).items()}


def weight_shares(
    model: Transformer, config: ModelConfig | None = None, *, root: bool = True
) -> bytes:
    """Share 1 of `model`'s weights, sent as carrying `config` (its own by
    default) and, if `root`, the root of the weights."""
    meta = weight_meta(model, config)
    if root:
        meta["model_sha256"] = float32_weights_root(model.state_dict()).hex()
    shares = {k: split(encode(v.detach()))[1] for k, v in model.state_dict().items()}
    return pack_tensors(meta, shares)


def test_weight_shares_that_do_not_fit_their_configuration_are_refused(
    mpc_parties: Parties,
) -> None:
    model = Transformer(ModelConfig())
    wider = ModelConfig(width=64)
    weights = [Label("weights:model_creator", Form.SHARE)]
    truncated = {k: v for k, v in model.state_dict().items() if not k.startswith("blocks.1.")}
    refusals = {
        weight_shares(model, wider): (
            r"do not fit the configuration they carry .*token_embedding.weight is "
            r"torch.int64 \(512, 32\), not int64 \(512, 64\)"
        ),
        weight_shares(model, ModelConfig(heads=3)): "impossible model configuration",
        weight_shares(Transformer(ModelConfig(layers=1)), model.config): (
            r"missing \['blocks.1.attention.out.bias'"
        ),
        pack_tensors(  # float weights, not shares
            {**weight_meta(model), "model_sha256": "00" * 32}, model.state_dict()
        ): r"torch.float32 \(512, 32\), not int64",
    }
    # no configuration, or no root: the message definition's to refuse
    for payload, field in (
        (pack_tensors({}, {k: encode(v) for k, v in truncated.items()}), "vocab"),
        (weight_shares(model, root=False), "model_sha256"),
    ):
        bad = refusal(
            mpc_parties["model_creator"], "compute", "mpc", "weight_shares", weights, payload
        )
        assert bad.reason == pb.BAD_PAYLOAD and f"{field}: Field required" in bad.detail
    for payload, reason in refusals.items():
        with pytest.raises(Refused) as refused:
            mpc_parties["model_creator"].deliver(
                "compute", "mpc", "weight_shares", weights, payload
            )
        assert refused.value.reason == pb.HANDLER_FAILED
        assert re.search(reason, refused.value.detail), (reason, refused.value.detail)
    # none of them was taken: shares that fit still are
    mpc_parties["model_creator"].deliver(
        "compute", "mpc", "weight_shares", weights, weight_shares(model)
    )


def test_a_model_of_another_shape_than_the_public_checkpoint_is_refused_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The creator shares a model of the old shape (vocabulary 48); alice
    shares her prompt for the checkpoint's (512): the compute parties refuse
    it, naming the vocabulary, before any MPC starts (so in-process)."""
    share_instead(monkeypatch, Transformer(OLD_SHAPE))
    result = run_text(mpc_text(tokens=1), tmp_path / "run")
    assert result.failure is not None
    assert re.search(r"HANDLER_FAILED.*a prompt share is a \(length, 48\)", result.failure)


def test_the_weight_shares_message_names_every_field_of_the_configuration() -> None:
    configured = {f.name for f in fields(ModelConfig)}
    assert configured == set(WeightShares.model_fields) - {"model_sha256"}


def test_a_random_shape_is_the_checkpoints_but_for_width_and_context() -> None:
    settings = Settings.model_validate({"random_shape": {"width": 64, "context": 16}})
    assert settings.random_shape is not None
    config = settings.random_shape.config()
    assert asdict(config) == {**asdict(served_config()), "width": 64, "context": 16, "hidden": 192}
    # no party context: a random shape reads nothing from the creator's store
    model = model_to_share(None, settings)  # type: ignore[arg-type]
    assert model.config == config
    for bad, why in (
        ({"random_shape": {"width": 60, "context": 16}}, "multiple of 8"),
        ({"random_shape": {"width": 64, "context": 1}}, "greater than or equal to 2"),
        ({"random_shape": {"width": 64, "context": 16}, "log_receipts": True}, "receipts"),
        ({"random_shape": {"width": 64, "context": 16}, "model": "trained"}, "trained model"),
    ):
        with pytest.raises(ValueError, match=why):
            Settings.model_validate(bad)


@pytest.mark.ray
def test_a_rank_steering_the_dealer_gets_no_answer_out(tmp_path: Path) -> None:
    """The last rank asks for a B2A pair in place of its first Beaver
    triple (adversaries.steer_tuples), on Ray: the dealer deals it, bound to
    that request; rank 0's check of the tuples it drew by is refused, so it
    sends no logit share and the run stops naming why. On the code before
    tuples were bound, the run answered (wrongly) and rank 1 held rank 0's
    mask words."""
    path = tmp_path / "steer.toml"
    path.write_text(with_adversary(mpc_text(tokens=1), "compute", "steer_tuples"))
    run_dir = tmp_path / "run"
    done = airlock("run", str(path), "--out", str(run_dir))
    assert done.returncode != 0
    assert "other tuples than rank 0 used" in done.stdout + done.stderr
    entries, problems = read_entries(run_dir / "parties/deployer", "deployer")
    assert not problems
    checks = [e["detail"] for e in entries if e["step"] == "tuple_check" and e["detail"]]
    assert len(checks) == 1 and "other tuples than rank 0 used" in checks[0]
    alice, _ = read_entries(run_dir / "parties/alice", "alice")
    answers = [e for e in alice if e["step"] == "logit_shares" and e["outcome"] == "admitted"]
    assert [e["peer"] for e in answers] == ["compute"]  # the deployer's share never left

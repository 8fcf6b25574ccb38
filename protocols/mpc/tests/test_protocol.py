"""The mpc protocol between real parties. Two-party inference runs on Ray
(CrypTen's state is per process, so each compute party needs its own);
the refusals are checked in-process."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from models.transformer import TOKENIZER, BadPrompt, ModelConfig, generate
from models.corpus import pretrained_model
from orchestrator.scenario import load_scenario
from parties.errors import Refused
from parties.labels import Form, Label
from parties.log import read_entries
from parties.wire import airlock_pb2 as pb
from protocols.mpc.communicator import pack_tensors
from protocols.mpc.roles import check_prompt
from tests.helpers import airlock, run_text

PROMPT = "first line for asthma is"
PROMPT_SHARE = [Label("prompt:alice", Form.SHARE)]


def mpc_text(tokens: int = 2, prompt: str = PROMPT, fault: str = "") -> str:
    _, text = load_scenario("mpc-inference")
    text = text.replace(
        "params = { pretrain_steps = 150, max_new_tokens = 4 }",
        f"params = {{ pretrain_steps = 20, max_new_tokens = {tokens} }}",
    )
    return text.replace(f'prompts = ["{PROMPT}"]', f"prompts = [{json.dumps(prompt)}]") + fault


@pytest.mark.ray
def test_mpc_generation_matches_plaintext_and_parties_hold_only_shares(tmp_path: Path) -> None:
    path = tmp_path / "mpc.toml"
    path.write_text(mpc_text(tokens=3))
    run_dir = tmp_path / "run"
    done = airlock("run", str(path), "--out", str(run_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = json.loads((run_dir / "manifest.json").read_text())
    (generated,) = [a["result"] for a in manifest["actions"] if a["action"] == "generate"]
    model = pretrained_model(20, 0)
    assert generated["outputs"] == [
        {"prompt": PROMPT, "output": generate(model, PROMPT, 3)[len(PROMPT) :]}
    ]
    with torch.no_grad():
        plain = model(torch.tensor([TOKENIZER.encode(PROMPT)]))[0, -1]
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
    assert manifest["outcome"] == "failed" and "alice" in manifest["failure"]
    assert not [a for a in manifest["actions"] if a["action"] == "generate"]  # no partial output
    report = json.loads(airlock("audit", str(run_dir), "--format", "json").stdout)
    integrity = report["claims"][0]
    assert [f["party"] for f in integrity["findings"]] == ["compute"]  # only the unsealed head


def test_a_bad_prompt_is_refused_before_anything_is_shared(tmp_path: Path) -> None:
    config = ModelConfig()
    with pytest.raises(BadPrompt, match="outside the model's vocabulary"):
        check_prompt("price in €", config, 2)
    with pytest.raises(BadPrompt, match="exceeds the context"):
        check_prompt("a" * (config.context + 1), config, 2)
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


def test_compute_parties_refuse_prompt_shares_before_weight_shares(mpc_parties) -> None:
    # (the test directory's prompt guarantee caps the deployer at ciphertext,
    # so the shares go to the other compute party)
    share = pack_tensors({}, {"prompt": torch.zeros(3, ModelConfig().vocab, dtype=torch.long)})
    with pytest.raises(Refused) as refused:
        mpc_parties["alice"].deliver("compute", "mpc", "prompt_shares", PROMPT_SHARE, share)
    assert refused.value.reason == pb.OUT_OF_STEP
    assert "a prompt share needs the role to be ready, it is awaiting_weights" in (
        refused.value.detail
    )


def test_compute_parties_take_one_set_of_weight_shares(mpc_parties) -> None:
    mpc_parties["model_creator"].act("mpc", "share_weights", {"pretrain_steps": 0})
    with pytest.raises(Refused) as refused:
        mpc_parties["model_creator"].act("mpc", "share_weights", {"pretrain_steps": 0})
    assert refused.value.reason == pb.OUT_OF_STEP
    assert "weight shares needs the role to be awaiting_weights, it is ready" in (
        refused.value.detail
    )


def test_compute_parties_refuse_malformed_prompt_shares(mpc_parties) -> None:
    config = ModelConfig()
    mpc_parties["model_creator"].act("mpc", "share_weights", {"pretrain_steps": 0})
    shape = rf"a prompt share is a \(length, {config.vocab}\) tensor"
    rows = f"a prompt share has 1 to {config.context} int64 rows"
    malformed = {
        b"junk": "payload header runs past the payload",
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

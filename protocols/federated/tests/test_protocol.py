"""The federated protocol between real parties (in-process, real gRPC with
mutual TLS): secure aggregation end to end, dropouts, bad updates, and the
boundary refusing what the aggregator may not see."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load as load_arrays

from models.transformer import BadPrompt
from orchestrator.audit import audit_run
from orchestrator.scenario import load_scenario, parse_scenario
from parties.errors import ConfigError, Refused
from parties.labels import Form, Label
from parties.log_check import read_entries
from parties.payload import pack, unpack
from parties.roles import Role
from parties.wire import airlock_pb2 as pb
from protocols.federated.scenario import federated_scenario
from protocols.federated.tests.federation import FAST
from tests.helpers import (
    failing,
    refusal,
    result_of,
    run_text,
    running_parties,
    with_adversary,
)


def scenario(
    mode: str = "secagg",
    rounds: int = 1,
    threshold: int = 2,
    contributors: int = 3,
    update_form: str = "masked",
    adversaries: dict[str, str] | None = None,
    faults: str = "",
) -> str:
    params = {"mode": mode, "rounds": rounds, "threshold": threshold, **FAST}
    text = federated_scenario(contributors, params, update_form=update_form, notes=20)
    for party, adversary in (adversaries or {}).items():
        text = with_adversary(text, party, adversary)
    return text + faults


def rounds_of(result) -> list[dict]:
    return result_of(result, "model_creator", "publish_model")["rounds"]


def log_of(run_dir: Path, party: str) -> list[dict]:
    entries, problems = read_entries(run_dir / "parties" / party, party)
    assert not problems
    return entries


def test_secagg_trains_and_the_aggregator_holds_only_masked_updates(tmp_path: Path) -> None:
    result = run_text(scenario(rounds=2), tmp_path / "run")
    assert result.failure is None and result.audit.ok, failing(result.audit)
    history = rounds_of(result)
    assert [r["survivors"] for r in history] == [["hospital_1", "hospital_2", "hospital_3"]] * 2
    assert history[0]["utility_bits_per_char"] != history[1]["utility_bits_per_char"]
    # the content scan looked for each contributor's canary and raw-update windows
    scans = {c.name: c for c in result.audit.claims if c.name.startswith("content scan")}
    assert len(scans) == 6 and all(c.ok and c.checked > 0 for c in scans.values())
    # what the aggregator received is what its log says: each admitted update
    # blob has the logged digest and size, and holds a masked uint32 vector
    parameters = result_of(result, "model_creator", "load_model")["parameters"]
    updates = [
        e
        for e in log_of(tmp_path / "run", "model_creator")
        if e["direction"] == "in" and e["step"] in ("masked_update", "plain_update")
    ]
    assert len(updates) == 6
    for entry in updates:
        assert entry["outcome"] == "admitted" and entry["step"] == "masked_update"
        assert [label["form"] for label in entry["labels"]] == ["masked"]
        blob = (tmp_path / "run/parties/model_creator/blobs" / entry["payload_sha256"]).read_bytes()
        assert hashlib.sha256(blob).hexdigest() == entry["payload_sha256"]
        assert len(blob) == entry["size"]
        masked = load_arrays(unpack(blob)[1])["masked"]
        assert masked.dtype == np.uint32 and masked.shape == (parameters,)
    report = (tmp_path / "run" / "report.md").read_text()
    assert "Mode `secagg`" in report and "| hospital_3 |" in report


def test_dp_rounds_report_a_growing_epsilon(tmp_path: Path) -> None:
    result = run_text(scenario(mode="secagg+dp", rounds=2), tmp_path / "run")
    assert result.failure is None and result.audit.ok
    epsilons = [r["epsilon"] for r in rounds_of(result)]
    assert 0 < epsilons[0] < epsilons[1]
    assert result_of(result, "model_creator", "publish_model")["epsilon"] == epsilons[1]


def test_plain_updates_need_guarantees_that_allow_them(tmp_path: Path) -> None:
    allowed = run_text(scenario(mode="plain", update_form="plaintext"), tmp_path / "allowed")
    assert allowed.failure is None and allowed.audit.ok
    assert allowed.audit.visibility["model_creator"]["update:hospital_1"] == "plaintext"

    forbidden = run_text(scenario(mode="plain"), tmp_path / "forbidden")
    assert forbidden.failure is not None
    assert "round 1 aborted after collecting updates: 0 contributor(s) remain" in forbidden.failure
    assert "reply withheld by hospital_1: GUARANTEE_VIOLATED" in forbidden.failure
    # each honest contributor's own boundary withheld its plaintext update
    withheld = forbidden.audit.blocked
    assert {(b["party"], b["step"], b["refusal"], b["withheld"]) for b in withheld} == {
        (f"hospital_{i}", "plain_update", "GUARANTEE_VIOLATED", True) for i in (1, 2, 3)
    }
    assert forbidden.audit.ok, failing(forbidden.audit)


def test_an_unmasked_update_is_refused_at_the_boundary(tmp_path: Path) -> None:
    text = scenario(adversaries={"hospital_2": "unmasked_update"})
    result = run_text(text, tmp_path / "run")
    assert result.failure is None
    # refused, but its bytes reached the aggregator: the audit says so
    assert list(failing(result.audit)) == ["guarantee: updates reach the aggregator at most masked"]
    (blocked,) = result.audit.blocked
    assert (blocked["party"], blocked["from"], blocked["refusal"]) == (
        "model_creator",
        "hospital_2",
        "RULE_NOT_PERMITTED",
    )
    # the round completes without it: its masks are removed via its peers' shares
    (history,) = rounds_of(result)
    assert history["survivors"] == ["hospital_1", "hospital_3"]
    assert "RULE_NOT_PERMITTED" in history["dropped"]["hospital_2"]


def test_a_mislabeled_plain_update_is_caught_by_the_content_scan(tmp_path: Path) -> None:
    text = scenario(adversaries={"hospital_2": "mislabeled_update"})
    result = run_text(text, tmp_path / "run")
    (history,) = rounds_of(result)
    assert "must hold exactly one array named 'masked'" in history["rejected"]["hospital_2"]
    problems = failing(result.audit)
    assert list(problems) == ["content scan: update:hospital_2 (fingerprints from hospital_2)"]
    assert problems[list(problems)[0]][0].startswith("model_creator entry")


def test_bad_plain_updates_are_rejected_with_a_reason_and_the_round_goes_on(
    tmp_path: Path,
) -> None:
    faulty = {"hospital_1": "nan_update", "hospital_2": "misshapen_update"}
    faulty["hospital_3"] = "out_of_range_update"
    text = scenario(mode="plain", contributors=4, update_form="plaintext", adversaries=faulty)
    result = run_text(text, tmp_path / "run")
    assert result.failure is None
    (history,) = rounds_of(result)
    assert history["survivors"] == ["hospital_4"]
    size = result_of(result, "model_creator", "load_model")["parameters"]
    assert history["rejected"] == {
        "hospital_1": "the update holds NaN or infinite values",
        "hospital_2": f"the update is float32[{size - 1}], expected float32[{size}]",
        "hospital_3": "the update holds values beyond +-8.0",
    }
    # each faulty contributor was told why, in a signed envelope
    for party, reason in history["rejected"].items():
        assert result_of(result, party, "evaluate_leakage")["rejections"] == [reason]


def test_bad_masked_updates_drop_out_or_discard_the_round(tmp_path: Path) -> None:
    faulty = {"hospital_1": "misshapen_update", "hospital_2": "out_of_range_update"}
    text = scenario(contributors=4, threshold=3, adversaries=faulty)
    result = run_text(text, tmp_path / "run")
    assert result.failure is None
    (history,) = rounds_of(result)
    # the misshapen one is left out and unmasked around; the out-of-range one
    # cannot be told apart under the masks, but its sum can: the round is dropped
    assert history["survivors"] == ["hospital_2", "hospital_3", "hospital_4"]
    assert "expected uint32" in history["rejected"]["hospital_1"]
    assert "out of range" in history["discarded"]


def test_a_dropout_after_key_sharing_leaves_enough_survivors(tmp_path: Path) -> None:
    _, text = load_scenario("federated-dropout")
    fast = ", ".join(f"{k} = {v}" for k, v in FAST.items())
    text = text.replace("rounds = 3,", "rounds = 2,").replace("local_steps = 30", fast)
    result = run_text(text, tmp_path / "run")
    assert result.failure is None and result.audit.ok, failing(result.audit)
    history = rounds_of(result)
    assert history[1]["survivors"] == ["hospital_1", "hospital_2"]
    assert "hospital_3" in history[1]["dropped"]
    # the dead party's log was salvaged: an unsealed log, noted, not a failure
    (integrity,) = [c for c in result.audit.claims if c.name == "log integrity"]
    # (and what it logged after its last signed checkpoint, if anything, is unconfirmed)
    assert {n.party for n in integrity.notes} == {"hospital_3"}
    assert "it dropped out" in integrity.notes[0].detail
    assert all("unconfirmed" in n.detail for n in integrity.notes[1:])


def test_too_few_survivors_abort_the_run_with_a_message(tmp_path: Path) -> None:
    fault = '\n[[faults]]\nkill = "hospital_3"\nbefore = "collect_updates"\n'
    result = run_text(scenario(threshold=3, faults=fault), tmp_path / "run")
    assert result.failure is not None
    assert "round 1 aborted after collecting updates: 2 contributor(s) remain, 3 needed" in (
        result.failure
    )
    report = (tmp_path / "run" / "report.md").read_text()
    assert "Outcome: failed" in report and "What an outsider holding the model learns" not in report
    # the logs written so far still verify
    assert audit_run(tmp_path / "run").claims[0].ok


def test_stage_params_are_checked_when_the_scenario_is_parsed() -> None:
    text = scenario().replace('mode = "secagg"', 'mode = "magic"')
    with pytest.raises(ConfigError, match=r"stages\[0\]\.params\.mode"):
        parse_scenario(text, "bad.toml")
    text = scenario().replace("rounds = 1,", "rounds = 0,")
    assert "rounds = 0," in text
    with pytest.raises(ConfigError, match=r"stages\[0\]\.params\.rounds"):
        parse_scenario(text, "bad.toml")


@pytest.mark.parametrize("mode", ["secagg", "secagg+dp"])
def test_a_secure_threshold_below_two_is_refused_when_the_scenario_is_parsed(mode: str) -> None:
    text = scenario(mode=mode, threshold=1)
    with pytest.raises(ConfigError, match=r"stages\[0\]\.params\.threshold: .*at least 2"):
        parse_scenario(text, "bad.toml")
    # plain mode has no sharing: one contributor is enough
    parse_scenario(scenario(mode="plain", update_form="plaintext", threshold=1), "plain.toml")


@pytest.fixture
def pair(tmp_path: Path):
    roles = {"hospital_1": Role.DATA_CONTRIBUTOR, "model_creator": Role.MODEL_CREATOR}
    with running_parties(
        tmp_path,
        roles=roles,
        protocol="federated",
        holdings={"hospital_1": {"synthetic_notes": 5}},
        settings={"mode": "plain"},
    ) as started:
        yield started


def test_contributors_refuse_malformed_and_out_of_protocol_requests(pair) -> None:
    creator = pair["model_creator"]
    control = [Label("federated:model_creator", Form.PUBLIC)]
    weights = control + [Label("weights:model_creator", Form.PLAINTEXT)]
    masks = [Label("mask_seeds:hospital_1", Form.CIPHERTEXT), *control]
    unmask = pack({"survivors": [], "dropped": [], "signatures": {}})
    update = pack({"survivors": [], "ciphertexts": {}})
    cases = [
        # what breaks a step's message definition never reaches the role
        ("round_start", weights, b"garbage", pb.BAD_PAYLOAD, "payload header runs past"),
        ("round_start", weights, pack({"round": 1}), pb.BAD_PAYLOAD, "context: Field required"),
        ("update_request", masks, b"", pb.BAD_PAYLOAD, "payload too short"),
        # before its training data is prepared, a contributor is in no round: out of step
        ("unmask_request", control, unmask, pb.OUT_OF_STEP, "it is unprepared"),
        ("update_request", masks, update, pb.OUT_OF_STEP, "it is unprepared"),
    ]
    for step, labels, payload, reason, detail in cases:
        with pytest.raises(Refused) as refused:
            creator.deliver("hospital_1", "federated", step, labels, payload)
        assert refused.value.reason == reason, step
        assert detail in refused.value.detail, step
    # a contributor never speaks unasked: an unsolicited update is refused
    masked = [Label("update:hospital_1", Form.MASKED)]
    unasked = refusal(
        pair["hospital_1"], "model_creator", "federated", "masked_update", masked, b""
    )
    assert unasked.reason == pb.RULE_NOT_PERMITTED
    # and the contributor still serves
    pair["hospital_1"].act("federated", "prepare_data", {"mode": "plain"})
    creator.deliver("hospital_1", "federated", "update_rejected", control, pack({"reason": "x"}))
    assert pair["hospital_1"].state["federated"].rejections == ["x"]


def test_a_record_the_tokenizer_cannot_encode_is_refused_before_training(tmp_path: Path) -> None:
    records = [
        {"source": "ward 3", "text": "Fever, paracetamol 500 mg."},  # lower-cased: fine
        {"source": "ward 4", "text": "rash after ibuprofen \u2013 stop it."},
    ]
    with running_parties(
        tmp_path,
        roles={"hospital_1": Role.DATA_CONTRIBUTOR, "model_creator": Role.MODEL_CREATOR},
        protocol="federated",
        holdings={"hospital_1": {"records": records}},
        settings={"mode": "plain"},
    ) as started:
        with pytest.raises(BadPrompt, match="character '\u2013' at position 21"):
            started["hospital_1"].act("federated", "prepare_data", {"mode": "plain"})

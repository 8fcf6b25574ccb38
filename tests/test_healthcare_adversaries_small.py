"""Small variants, in `make test`, of adversary runs that are otherwise only
in deselected suites: the healthcare adversaries of
tests/test_healthcare_adversaries.py (`pytest -m slow`: a whole healthcare
run on Ray each) and the fuzzing of every federated step
(tests/test_protocol_fuzz.py, `pytest -m fuzz`).

Each keeps only the parties and stages its adversary needs, with fewer
documents, tokens, notes and training steps, every party in this process
(real gRPC with mutual TLS), and checks the same outcome as the whole run."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from orchestrator.launcher import RunResult
from protocols import get_protocol
from protocols.federated.scenario import federated_scenario
from tests.helpers import failing, result_of, run_text, with_adversary
from tests.test_protocol_fuzz import Fuzzer


def run(text: str, out: Path) -> RunResult:
    result = run_text(text, out)
    assert result.failure is None, result.failure
    assert result.audit.ok, failing(result.audit)
    return result


# -- healthcare-prompt-hungry: the enclave stage's parties -----------------------------------

PROMPT_HUNGRY = """extends = "tee-inference"
name = "small-prompt-hungry"

[parties.deployer]
adversary = "prompt_hungry"

[[stages]]
name = "serve"
protocol = "tee"
params = { max_new_tokens = 4 }
"""


def test_prompt_hungry_deployer_is_stopped_at_the_boundaries(tmp_path: Path) -> None:
    result = run(PROMPT_HUNGRY, tmp_path / "run")
    hungry = result_of(result, "deployer", "exfiltrate_prompts")
    assert hungry["kept"] == 2 and hungry["opened"] == 0
    # no rule lets a deployer send the verifier a prompt, in any form: the
    # ciphertext is refused at the verifier's boundary, the "plaintext"
    # withheld by the deployer's own
    refusals = [attempt["refused"] for attempt in hungry["forwarded"]]
    assert refusals == ["RULE_NOT_PERMITTED"] * 4
    forwarded = [b for b in result.audit.blocked if b["from"] == "deployer"]
    assert sorted(b["withheld"] for b in forwarded) == [False, False, True, True]
    assert all(b["to"] == "verifier" for b in forwarded)
    assert result.audit.visibility["deployer"]["prompt:alice"] == "ciphertext"
    assert len(result_of(result, "alice", "ask")["answers"]) == 2  # service went on


# -- healthcare-curious-db: the retrieval stage's parties ------------------------------------

CURIOUS_DB = """extends = "private-rag"
name = "small-curious-db"

[parties.guidelines_a]
adversary = "curious_db"
synthetic_documents = 48

[parties.guidelines_b]
synthetic_documents = 48

[parties.alice]
prompts = [
  "how should asthma be treated in children?",
  "what is the plan for gout in kidney disease?",
]

[[stages]]
name = "retrieve"
protocol = "pir"
params = { scheme = "xor", clusters = 4, top_k = 2, answer = false }
"""


def test_curious_database_learns_nothing_beyond_pir_queries(tmp_path: Path) -> None:
    result = run(CURIOUS_DB, tmp_path / "run")
    assert len(result_of(result, "alice", "retrieve")["answers"]) == 2
    analysis = result_of(result, "guidelines_a", "analyse_queries")
    assert analysis["batches"] >= 2 and analysis["terms_searched"] > 10
    assert analysis["terms_found"] == []
    assert result.audit.visibility["guidelines_a"]["query:alice"] == "share"


# -- healthcare-extraction: training and the enclave stage -----------------------------------

# Two hospitals (1 and 3: their canaries' names differ), one round of
# secure aggregation long enough for the model to memorise the canaries
# without DP, then the enclave serving the trained model to alice, who asks
# it to complete each hospital's canary prefix.
EXTRACTION = """name = "small-extraction"

[parties.hospital_1]
role = "data_contributor"
site = "training"
synthetic_notes = 20
canaries = 1
canary_repeats = 20

[parties.hospital_3]
role = "data_contributor"
site = "training"
synthetic_notes = 20
canaries = 1
canary_repeats = 20

[parties.model_creator]
role = "model_creator"
site = "training"

[parties.deployer]
role = "deployer"
site = "serving"

[parties.enclave]
role = "enclave"
site = "serving"

[parties.verifier]
role = "verifier"
site = "verification"

[parties.alice]
role = "end_user"
site = "clients"
adversary = "extraction"
prompts = []

[[stages]]
name = "training"
protocol = "federated"

[stages.params]
mode = "secagg+dp"
rounds = 1
threshold = 2
local_steps = 10
batch = 8
learning_rate = 5e-3
exposure_samples = 50

[[stages]]
name = "enclave"
protocol = "tee"
params = { model = "trained", max_new_tokens = 8 }

[[guarantees]]
name = "updates reach the model creator only masked"
asset = "update:*"
viewers = ["model_creator"]
max_form = "masked"

[[guarantees]]
name = "patient notes leave a hospital only as digests"
asset = "train:*"
viewers = ["model_creator", "deployer", "enclave", "verifier", "end_user"]
max_form = "digest"

[[guarantees]]
name = "the deployer, verifier and end user see the weights only as ciphertext"
asset = "weights:*"
viewers = ["deployer", "verifier", "end_user"]
max_form = "ciphertext"
"""


def test_extraction_through_the_enclave_with_and_without_dp(tmp_path: Path) -> None:
    """The same attack on a model trained with DP and without (mode =
    secagg): no secret comes out with DP, and the hospitals' own measurement
    of exposure is higher without it."""
    without_dp = EXTRACTION.replace('mode = "secagg+dp"', 'mode = "secagg"')
    assert without_dp != EXTRACTION
    exposure = {}
    for label, text in (("dp", EXTRACTION), ("no-dp", without_dp)):
        result = run(text, tmp_path / label)
        attack = result_of(result, "alice", "extract_canaries")
        assert set(attack["completions"]) == {"hospital_1", "hospital_3"}
        if label == "dp":
            assert attack["extracted"] == []
        measured = [
            bits
            for hospital in ("hospital_1", "hospital_3")
            for bits in result_of(result, hospital, "evaluate_leakage")["exposure_bits"]
        ]
        exposure[label] = statistics.mean(measured)
    assert exposure["no-dp"] > exposure["dp"] + 1.0, exposure


# -- federated: every step refuses a payload that breaks its definition ----------------------

FEDERATED_STEPS = {f"federated.{step}" for step in get_protocol("federated").steps}
PLAIN_ONLY = {"federated.plain_update", "federated.update_rejected"}
SECURE_ONLY = {
    f"federated.{step}"
    for step in (
        "key_directory encrypted_shares masked_update consistency_request"
        " consistency_signature unmask_request unmask_shares"
    ).split()
}
FAST = {"rounds": 1, "threshold": 2, "local_steps": 1, "batch": 4, "exposure_samples": 10}


@pytest.mark.parametrize(
    "mode, steps",
    [("secagg+dp", FEDERATED_STEPS - PLAIN_ONLY), ("plain", FEDERATED_STEPS - SECURE_ONLY)],
    ids=["secagg+dp", "plain"],
)
def test_every_federated_step_refuses_a_payload_that_breaks_its_definition(
    mode: str, steps: set[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The protocol fuzzer of tests/test_protocol_fuzz.py, a few examples a
    step: the first time each step is about to cross, its sender first sends
    wrong payloads, well signed and honestly labelled, each of which must be
    refused as BAD_PAYLOAD; the honest one then goes, and the run ends with
    every claim holding. In plain mode hospital_1 sends NaNs, so that the
    aggregator tells it so (update_rejected, which no honest run sends)."""
    secure = mode != "plain"
    text = federated_scenario(
        2 if secure else 3,
        {"mode": mode, **FAST},
        update_form="masked" if secure else "plaintext",
        notes=5,
    )
    if not secure:
        text = with_adversary(text, "hospital_1", "nan_update")
    fuzzer = Fuzzer(examples=3)
    fuzzer.install(monkeypatch)
    result = run(text, tmp_path / "run")
    assert not fuzzer.problems, "\n".join(fuzzer.problems)
    assert set(fuzzer.reports) == steps
    assert all(report.examples > 0 for report in fuzzer.reports.values())
    if not secure:
        (history,) = result_of(result, "model_creator", "publish_model")["rounds"]
        assert set(history["rejected"]) == {"hospital_1"}
    # real steps, and apart: the two runs together fuzz every step
    assert SECURE_ONLY | PLAIN_ONLY <= FEDERATED_STEPS and not SECURE_ONLY & PLAIN_ONLY

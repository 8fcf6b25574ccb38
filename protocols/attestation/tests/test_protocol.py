"""The attestation protocol between parties: the `attest` scenario verifies;
a swapped model, a ledger rewriting history and excluded-domain data are each
caught by the parties and by `airlock verify`; bad submissions are refused."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from securesystemslib.signer import CryptoSigner

from evidence.receipts import RECEIPT_PREDICATE, sha256_hex
from evidence.statements import sign_statement
from orchestrator.audit import audit_run
from orchestrator.launcher import RunResult
from orchestrator.scenario import load_scenario
from orchestrator.verify import verify_run
from parties.errors import ConfigError, Refused
from parties.labels import Form, Label
from parties.log_check import read_entries
from parties.roles import Role
from parties.wire import airlock_pb2 as pb
from protocols.attestation.ledger_server import logged_entries
from protocols.attestation.rules import DATASET_PREDICATE
from protocols.attestation.signed_model import bundle_digest
from protocols.attestation.verify import RECEIPTS_CLAIM
from tests.helpers import (
    airlock,
    failing,
    refusal,
    result_of,
    run_text,
    start_parties,
    with_adversary,
)


def run_attest(out: Path, edit: Callable[[str], str] = lambda text: text) -> RunResult:
    _, text = load_scenario("attest")
    return run_text(edit(text), out)


def adversary(party: str, name: str) -> Callable[[str], str]:
    return lambda text: with_adversary(text, party, name)


def test_attest_scenario_verifies(tmp_path: Path) -> None:
    result = run_attest(tmp_path / "run")
    assert result.failure is None and result.audit.ok
    assert result_of(result, "alice", "query") == {"accepted": 2, "rejected": []}
    assert result_of(result, "model_creator", "commit_model")["datasets"] == [
        "train:hospital_1",
        "train:hospital_2",
    ]
    assert result_of(result, "hospital_1", "attest_dataset")["exclusions_proved"] == ["nytimes.com"]
    report = verify_run(tmp_path / "run")
    assert report.ok, failing(report)
    assert all(claim.checked > 0 for claim in report.claims)
    # what crossed the boundary was only digests and public material
    forms = {
        form for seen in audit_run(tmp_path / "run").visibility.values() for form in seen.values()
    }
    assert forms <= {"digest", "public"}


def test_a_swapped_model_is_rejected_by_the_end_user_and_by_verify(tmp_path: Path) -> None:
    result = run_attest(tmp_path / "run", adversary("deployer", "swap_model"))
    query = result_of(result, "alice", "query")
    assert query["accepted"] == 0 and all("not the committed" in r for r in query["rejected"])
    problems = failing(verify_run(tmp_path / "run"))
    assert list(problems) == [RECEIPTS_CLAIM]
    assert any(
        p.startswith("alice entry") and "not the committed" in p for p in problems[RECEIPTS_CLAIM]
    )


SHADOW = '[parties.shadow]\nrole = "deployer"\nsite = "serving"\n\n'


def test_receipts_from_a_server_the_creator_did_not_deploy_to_are_refused(tmp_path: Path) -> None:
    """A second deployer serves the committed model without the creator's
    endorsement (a pirated copy) and signs receipts naming the committed root.
    The scenario's creator deploys to `deploy_to = ["deployer"]` only."""
    result = run_attest(
        tmp_path / "run",
        lambda t: t.replace("[parties.alice]", SHADOW + "[parties.alice]"),
    )
    assert result_of(result, "model_creator", "commit_model")["servers"] == ["deployer"]
    query = result_of(result, "alice", "query")
    assert query["accepted"] == 2 and len(query["rejected"]) == 2
    assert all(
        "shadow is not a server the commitment to 'airlock-tiny' endorses" in reason
        for reason in query["rejected"]
    )
    problems = failing(verify_run(tmp_path / "run"))
    assert list(problems) == [RECEIPTS_CLAIM]
    shadow_findings = [p for p in problems[RECEIPTS_CLAIM] if "shadow is not a server" in p]
    assert len(shadow_findings) == 4  # the two alice received and the two the ledger logged


@pytest.mark.parametrize(
    ("params", "message"),
    [('deploy_to = ["alice"]', "['alice'] are not deployers"), ("deploy = 1", "deploy")],
)
def test_bad_deployment_params_are_clear_errors(tmp_path: Path, params: str, message: str) -> None:
    _, text = load_scenario("attest")
    text = text.replace('deploy_to = ["deployer"]', params)
    try:
        result = run_text(text, tmp_path / "run")
    except ConfigError as error:  # refused when the scenario is parsed
        assert message in str(error)
    else:
        assert result.failure is not None and message in result.failure


def ledger_statements(run: Path) -> list[dict]:
    """Every statement the ledger received, decoded from its DSSE envelope."""
    return [
        json.loads(base64.b64decode(json.loads(payload)["statement"]["payload"]))
        for _, payload in _received(run, "ledger", "submit")
    ]


def test_the_ledger_never_holds_a_guessable_prompt_or_output_digest(tmp_path: Path) -> None:
    """A dictionary attack on the log: hash each candidate prompt (and answer)
    and look for it in everything the ledger received. Salted digests defeat it,
    and differ from run to run."""
    prompts = ["What is the first-line treatment for asthma?", "Who needs a flu vaccine?"]
    digests = []
    for number in (1, 2):
        result = run_attest(tmp_path / f"run{number}")
        assert result_of(result, "alice", "query") == {"accepted": 2, "rejected": []}
        outputs = [
            json.loads(payload)["output"]
            for _, payload in _received(tmp_path / f"run{number}", "alice", "inference_response")
        ]
        statements = ledger_statements(tmp_path / f"run{number}")
        seen = json.dumps(statements)
        guesses = [sha256_hex(p.encode()) for p in prompts + outputs]
        assert len(outputs) == 2 and not any(guess in seen for guess in guesses)
        receipts = [s for s in statements if s["predicateType"] == RECEIPT_PREDICATE]
        assert len(receipts) == 2
        digests.append({r["predicate"]["input_sha256"] for r in receipts})
        assert not digests[-1] & {sha256_hex(p.encode()) for p in prompts}
    assert len(digests[0]) == 2 and not digests[0] & digests[1]


def _received(run: Path, party: str, step: str) -> list[tuple[dict, bytes]]:
    directory = run / "parties" / party
    return [
        (e, (directory / "blobs" / e["payload_sha256"]).read_bytes())
        for e in read_entries(directory, party)[0]
        if (e["direction"], e["outcome"], e["step"]) == ("in", "admitted", step)
    ]


def test_a_ledger_rewriting_history_is_caught(tmp_path: Path) -> None:
    result = run_attest(tmp_path / "run", adversary("ledger", "rewrite_history"))
    for party in ("hospital_1", "hospital_2", "model_creator"):
        audit = result_of(result, party, "audit_ledger")
        assert (
            audit["consistent"] is False and "consistency proof does not link" in audit["rejected"]
        )
    problems = failing(verify_run(tmp_path / "run"))
    assert list(problems) == ["ledger's signed heads and proofs match what it received"]
    assert all(
        "history rewritten" in p
        for p in problems["ledger's signed heads and proofs match what it received"]
    )


def test_data_from_the_excluded_domain_cannot_be_proved_absent(tmp_path: Path) -> None:
    nyt = '  { source = "nytimes.com/2023/12/27/ai", text = "A newspaper article." },\n'
    result = run_attest(
        tmp_path / "run",
        lambda t: t.replace(
            'records = [\n  { source = "bmj.com', "records = [\n" + nyt + '  { source = "bmj.com'
        ),
    )
    attested = result_of(result, "hospital_2", "attest_dataset")
    assert (
        attested["exclusions_proved"] == []
        and "nytimes.com" in attested["exclusions_unprovable"][0]
    )
    assert result_of(result, "model_creator", "commit_model")["datasets"] == ["train:hospital_1"]
    problems = failing(verify_run(tmp_path / "run"))
    assert list(problems) == ["dataset attestations and exclusion proofs"]
    assert (
        "no proof that the data excludes 'nytimes.com'"
        in problems["dataset attestations and exclusion proofs"][0]
    )


NYT_RECORD = '  { source = "nytimes.com/2023/12/27/ai", text = "A newspaper article." },\n'


def with_nyt_record(text: str) -> str:
    """hospital_2 holds a nytimes.com record (it sorts between bmj.com and who.int)."""
    return text.replace(
        'records = [\n  { source = "bmj.com', "records = [\n" + NYT_RECORD + '  { source = "bmj.com'
    )


def test_a_contributor_hiding_excluded_records_out_of_order_is_caught(tmp_path: Path) -> None:
    """The attack of issue 11 item 6: the nytimes.com record is placed first,
    out of key order, and "exclusion" is proved from its sorted neighbours."""
    result = run_attest(
        tmp_path / "run",
        lambda t: with_adversary(with_nyt_record(t), "hospital_2", "hide_excluded"),
    )
    attested = result_of(result, "hospital_2", "attest_dataset")
    assert attested["exclusions_proved"] == ["nytimes.com"]  # the forged proof was shown
    assert result_of(result, "model_creator", "commit_model")["datasets"] == ["train:hospital_1"]
    problems = failing(verify_run(tmp_path / "run"))
    assert list(problems) == ["dataset attestations and exclusion proofs"]
    (finding,) = problems["dataset attestations and exclusion proofs"]
    assert finding.startswith("model_creator entry")
    assert "from train:hospital_2: keys out of order: 'nytimes.com/" in finding


def test_a_ledger_logging_a_forged_statement_fails_the_signature_claim(tmp_path: Path) -> None:
    """hospital_2 submits a statement signed with a key not its own. An honest
    ledger refuses it (and verify does not count it as logged); one that logs
    without checking is caught by the claim that logged statements are signed."""
    forged = run_attest(tmp_path / "honest", adversary("hospital_2", "forge_statement"))
    rejected = result_of(forged, "hospital_2", "attest_dataset")["rejected"]
    assert "the ledger refused the statement (HANDLER_FAILED" in rejected
    assert list(failing(verify_run(tmp_path / "honest"))) == []

    run_attest(
        tmp_path / "colluding",
        lambda t: with_adversary(
            with_adversary(t, "hospital_2", "forge_statement"), "ledger", "log_unverified"
        ),
    )
    problems = failing(verify_run(tmp_path / "colluding"))
    claim = "statements logged by ledger are signed by their senders"
    (finding,) = problems[claim]
    assert re.fullmatch(
        r"ledger entry \d+: statement from hospital_2: signature does not verify", finding
    )


def test_a_ledger_showing_each_party_its_own_history_is_caught(tmp_path: Path) -> None:
    """Split view: every party's own checks pass, but the ledger gave one index
    to several statements, and its heads are not the tree of what it received."""
    result = run_attest(tmp_path / "run", adversary("ledger", "split_view"))
    for party in ("hospital_1", "hospital_2", "model_creator"):
        assert result_of(result, party, "audit_ledger")["consistent"] is True
    problems = failing(verify_run(tmp_path / "run"))
    order = "ledger gave each log index to one statement"
    assert set(problems) == {order, "ledger's signed heads and proofs match what it received"}
    assert any("ledger gave index 0 to two statements" in p for p in problems[order])


def test_a_model_statement_naming_an_unattested_dataset_fails_verify(tmp_path: Path) -> None:
    run_attest(tmp_path / "run", adversary("model_creator", "unattested_dataset"))
    problems = failing(verify_run(tmp_path / "run"))
    claim = "model commitment binds logged, verified datasets"
    assert list(problems) == [claim]
    (finding,) = problems[claim]
    assert "airlock-tiny names train:web_scrape" in finding
    assert "not a logged dataset whose attestation holds" in finding


def test_verify_cli_exit_codes_and_json(tmp_path: Path) -> None:
    run_attest(tmp_path / "good")
    run_attest(tmp_path / "bad", adversary("deployer", "swap_model"))
    good = airlock("verify", str(tmp_path / "good"))
    assert good.returncode == 0, good.stdout
    bad = airlock("verify", str(tmp_path / "bad"), "--format", "json")
    assert bad.returncode == 1
    report = json.loads(bad.stdout)
    assert [c["claim"] for c in report["claims"] if not c["ok"]] == [RECEIPTS_CLAIM]


def test_tampered_material_in_a_log_fails_verify(tmp_path: Path) -> None:
    run_attest(tmp_path / "run")
    log = tmp_path / "run" / "parties" / "ledger" / "log.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    edited = lines[0].replace(b'"size":', b'"size":1', 1)
    assert edited != lines[0]
    lines[0] = edited
    log.write_bytes(b"".join(lines))
    assert "log integrity" in failing(verify_run(tmp_path / "run"))


LEDGER_ROLES = {"hospital_1": Role.DATA_CONTRIBUTOR, "ledger": Role.LEDGER}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        # what breaks the submission's message definition never leaves the
        # sender (its own boundary withholds it), nor would reach the ledger's role
        (b"not json", pb.BAD_PAYLOAD),
        (json.dumps({"since": 0}).encode(), pb.BAD_PAYLOAD),  # no statement
        (
            json.dumps(
                {"statement": {"payload": "e30=", "payloadType": "x", "signatures": []}, "since": 0}
            ).encode(),
            pb.BAD_PAYLOAD,
        ),
        (
            json.dumps(
                {
                    "statement": sign_statement(
                        "train:hospital_1",
                        "ab" * 32,
                        DATASET_PREDICATE,
                        {"n": 1},
                        CryptoSigner(ed25519.Ed25519PrivateKey.generate()),
                    ),
                    "since": 0,
                }
            ).encode(),
            pb.HANDLER_FAILED,  # well formed: the ledger's role checks the signature
        ),
    ],
    ids=["not JSON", "no statement", "unsigned statement", "signed by another key"],
)
def test_the_ledger_refuses_bad_submissions_and_keeps_serving(
    tmp_path: Path, payload: bytes, reason: int
) -> None:
    parties = start_parties(tmp_path, roles=LEDGER_ROLES, protocol="attestation")
    try:
        label = [Label("train:hospital_1", Form.DIGEST)]
        with pytest.raises(Refused) as caught:
            parties["hospital_1"].deliver("ledger", "attestation", "submit", label, payload)
        assert caught.value.reason == reason
        assert not logged_entries(parties["ledger"].store)
        # a plaintext dataset is refused at the boundary: only digests may reach the ledger
        plain = [Label("train:hospital_1", Form.PLAINTEXT)]
        refused = refusal(parties["hospital_1"], "ledger", "attestation", "submit", plain, b"{}")
        assert refused.reason == pb.RULE_NOT_PERMITTED
        # (refused by the ledger's boundary, or by the sender's own before it left)
        entries, _ = read_entries(parties["ledger"].log.directory, "ledger")
        admitted = [e for e in entries if e["outcome"] == "admitted"]
        assert len(admitted) == (reason == pb.HANDLER_FAILED)
    finally:
        for runtime in parties.runtimes.values():
            runtime.stop()


def test_bom_is_valid_cyclonedx_1_6_naming_model_and_datasets(tmp_path: Path) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    run_attest(tmp_path / "run")
    done = airlock("bom", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr
    document = (tmp_path / "run" / "bom.cdx.json").read_text()
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(document) is None
    bom = json.loads(document)
    model = bom["metadata"]["component"]
    assert (model["type"], model["name"]) == ("machine-learning-model", "airlock-tiny")
    assert {c["name"] for c in bom["components"] if c["type"] == "data"} == {
        "train:hospital_1",
        "train:hospital_2",
    }
    roots = {p["name"]: p["value"] for p in model["properties"]}
    assert len(roots["airlock:weights-merkle-root-sha256"]) == 64
    card = model["modelCard"]["modelParameters"]
    assert {d["ref"] for d in card["datasets"]} == {"train:hospital_1", "train:hospital_2"}
    assert card["task"] == "text-generation"


def test_bom_of_a_run_without_a_ledger_is_a_clear_error(default_run: Path) -> None:
    done = airlock("bom", str(default_run))
    assert done.returncode == 2
    assert "no ledger" in done.stderr and "Traceback" not in done.stderr


def test_what_the_ledger_and_creator_hold_is_what_their_logs_say(tmp_path: Path) -> None:
    """The ledger's entries are exactly the statements its log admitted, and
    the creator accepted exactly the datasets its log shows it received."""
    from protocols import get_protocol
    from protocols.attestation.ledger import entry_bytes

    scenario, _ = load_scenario("attest")
    parties = start_parties(
        tmp_path,
        roles={name: scenario.role_of(name) for name in scenario.parties},
        protocol="attestation",
        holdings={name: spec.holdings_values for name, spec in scenario.parties.items()},
    )
    try:
        for role, action in get_protocol("attestation").stage:
            for runtime in parties.runtimes.values():
                if runtime.role == role:
                    runtime.act("attestation", action, {})
        ledger, creator = parties["ledger"], parties["model_creator"]
        admitted = [
            json.loads((ledger.log.directory / "blobs" / e["payload_sha256"]).read_bytes())[
                "statement"
            ]
            for e in read_entries(ledger.log.directory, "ledger")[0]
            if e["direction"] == "in" and e["outcome"] == "admitted" and e["step"] == "submit"
        ]
        held = logged_entries(ledger.store)
        assert len(held) == 5 and sorted(held) == sorted(entry_bytes(s) for s in admitted)
        shown = {
            e["peer"]
            for e in read_entries(creator.log.directory, "model_creator")[0]
            if e["outcome"] == "admitted" and e["step"] == "dataset_attestation"
        }
        assert set(creator.state["attestation"].datasets) == shown == {"hospital_1", "hospital_2"}
    finally:
        for runtime in parties.runtimes.values():
            runtime.stop()


SIGNED_MODEL_CLAIM = "published model files are signed as the model statement says"


def test_the_committed_model_is_published_signed_with_openssf_model_signing(
    tmp_path: Path,
) -> None:
    """RUN/model/ (weights and card), RUN/model.sig and the creator's public
    key: `model_signing verify key` (the package's own CLI) accepts them, and
    refuses them once one byte of the weights is flipped; so does `airlock
    verify`, which also checks the logged model statement names that key
    and that model."""
    run = tmp_path / "run"
    assert run_attest(run).failure is None
    for name in ("model/model.safetensors", "model/model_card.json"):
        assert (run / name).is_file(), name
    command = [
        str(Path(sys.executable).parent / "model_signing"),
        "verify",
        "key",
        str(run / "model"),
        "--signature",
        str(run / "model.sig"),
        "--public_key",
        str(run / "model_creator.pub.pem"),
    ]
    verified = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert verified.returncode == 0, verified.stderr
    assert SIGNED_MODEL_CLAIM not in failing(verify_run(run))
    weights = run / "model" / "model.safetensors"
    flipped = bytearray(weights.read_bytes())
    flipped[-1] ^= 0x01
    weights.write_bytes(bytes(flipped))
    refused = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "model.safetensors" in refused.stderr
    (finding,) = failing(verify_run(run))[SIGNED_MODEL_CLAIM]
    assert "do not verify" in finding


def test_model_files_signed_again_under_another_key_fail_verify(tmp_path: Path) -> None:
    """Someone re-signs the published model files, unchanged, with a key of
    its own and publishes that key beside them: `model_signing` accepts the
    files under the key they come with, and the bundle names the same model;
    `airlock verify` refuses them, since the logged statement names the
    creator's key."""
    from model_signing import hashing, signing, verifying

    run = tmp_path / "run"
    assert run_attest(run).failure is None
    key = ec.generate_private_key(ec.SECP256R1())
    private = tmp_path / "another.pem"
    private.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    model, bundle, public = run / "model", run / "model.sig", run / "model_creator.pub.pem"
    signed_before = bundle_digest(bundle.read_bytes())
    signing.Config().use_elliptic_key_signer(private_key=private).set_hashing_config(
        hashing.Config().set_ignored_paths(paths=[])
    ).sign(model, bundle)
    public.write_bytes(
        key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    verifying.Config().use_elliptic_key_verifier(public_key=public).verify(model, bundle)
    assert bundle_digest(bundle.read_bytes()) == signed_before
    assert failing(verify_run(run))[SIGNED_MODEL_CLAIM] == [
        "run: model_creator.pub.pem is not the key the model statement names"
    ]

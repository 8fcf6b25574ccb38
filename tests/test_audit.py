"""The audit proves a clean run and names the party and entry of every
tampering: an edited byte, a deleted entry, a truncated file, a reordered
pair, an edited blob, a forged head."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.audit import AuditError, audit_run
from orchestrator.audit.checks import check_agreement
from parties.log import BLOB_DIR, HEAD_FILE, LOG_FILE
from tests.helpers import airlock, failing, rewrite_entry


def log_lines(run: Path, party: str) -> list[bytes]:
    return (run / "parties" / party / LOG_FILE).read_bytes().splitlines(keepends=True)


def write_lines(run: Path, party: str, lines: list[bytes]) -> None:
    (run / "parties" / party / LOG_FILE).write_bytes(b"".join(lines))


def integrity_findings(run: Path) -> list[tuple[str | None, int | None, str]]:
    report = audit_run(run)
    assert not report.ok
    claim = next(c for c in report.claims if c.name == "log integrity")
    return [(f.party, f.entry, f.detail) for f in claim.findings]


def test_default_run_audits_clean_and_shows_the_blocked_attempts(default_run: Path) -> None:
    report = audit_run(default_run)
    assert report.ok, [str(f) for c in report.claims for f in c.findings]
    blocked = {(b["from"], b["to"], b["withheld"], b["refusal"]) for b in report.blocked}
    assert blocked == {
        ("alice", "deployer", True, "GUARANTEE_VIOLATED"),  # her own boundary withheld it
        ("deployer", "guidelines_db", False, "RULE_NOT_PERMITTED"),
    }
    assert report.visibility["deployer"]["prompt:alice"] == "ciphertext"
    # the forwarded prompt was refused, but it reached the database
    assert report.visibility["guidelines_db"]["prompt:alice"] == "ciphertext"
    assert report.visibility["model_creator"] == {
        "train:hospital_1": "digest",
        "train:hospital_2": "digest",
    }
    assert all(claim.checked > 0 for claim in report.claims)


def test_one_edited_byte_names_party_and_entry(run_copy: Path) -> None:
    lines = log_lines(run_copy, "deployer")
    edited = lines[1].replace(b'"size":1', b'"size":2', 1)
    assert edited != lines[1]
    lines[1] = edited
    write_lines(run_copy, "deployer", lines)
    assert ("deployer", 1, "entry hash does not match its contents") in integrity_findings(run_copy)


def test_a_deleted_entry_is_found(run_copy: Path) -> None:
    lines = log_lines(run_copy, "alice")
    del lines[2]
    write_lines(run_copy, "alice", lines)
    findings = integrity_findings(run_copy)
    assert ("alice", 2, "hash chain broken (entry missing or moved)") in findings
    assert any(p == "alice" and "signed head covers" in d for p, _, d in findings)


def test_a_truncated_file_is_found(run_copy: Path) -> None:
    path = run_copy / "parties" / "deployer" / LOG_FILE
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])
    findings = integrity_findings(run_copy)
    last = len(data.splitlines()) - 1
    assert ("deployer", last, "log file is truncated mid-entry") in findings


def test_a_log_cut_at_an_entry_boundary_is_found(run_copy: Path) -> None:
    write_lines(run_copy, "deployer", log_lines(run_copy, "deployer")[:-1])
    assert any(
        p == "deployer" and "signed head covers" in d for p, _, d in integrity_findings(run_copy)
    )


def test_a_reordered_pair_is_found(run_copy: Path) -> None:
    lines = log_lines(run_copy, "alice")
    lines[1], lines[2] = lines[2], lines[1]
    write_lines(run_copy, "alice", lines)
    findings = integrity_findings(run_copy)
    assert ("alice", 1, "out of order (claims index 2)") in findings
    assert ("alice", 1, "hash chain broken (entry missing or moved)") in findings


def test_an_edited_blob_is_found(run_copy: Path) -> None:
    entry = json.loads(log_lines(run_copy, "deployer")[1])
    blob = run_copy / "parties" / "deployer" / BLOB_DIR / entry["payload_sha256"]
    data = blob.read_bytes()
    blob.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # same size, one bit flipped
    assert ("deployer", 1, "payload blob does not match its digest") in integrity_findings(run_copy)


def test_a_rewritten_log_with_a_fresh_chain_fails_the_signed_head(run_copy: Path) -> None:
    """Recomputing every hash after an edit does not help: the head is signed."""
    from parties.log import GENESIS, entry_hash

    previous = GENESIS
    rewritten = []
    for number, line in enumerate(log_lines(run_copy, "deployer")):
        entry = json.loads(line)
        if number == 0:
            entry["size"] += 1
        entry["prev"] = previous
        entry["hash"] = previous = entry_hash(entry)
        rewritten.append((json.dumps(entry, sort_keys=True) + "\n").encode())
    write_lines(run_copy, "deployer", rewritten)
    findings = integrity_findings(run_copy)
    assert any(p == "deployer" and d == "last entry is not the signed head" for p, _, d in findings)


def test_a_forged_head_signature_is_found(run_copy: Path) -> None:
    path = run_copy / "parties" / "alice" / HEAD_FILE
    head = json.loads(path.read_text())
    head["signature"] = "00" * 64
    path.write_text(json.dumps(head))
    assert ("alice", None, "signed head does not verify") in integrity_findings(run_copy)


def test_a_deleted_received_entry_breaks_agreement(run_copy: Path) -> None:
    """Even a consistent log that leaves out a delivery is caught by the sender's side."""
    report = audit_run(run_copy)
    assert report.ok
    lines = log_lines(run_copy, "model_creator")
    write_lines(run_copy, "model_creator", lines[:1])
    report = audit_run(run_copy)
    agreement = next(c for c in report.claims if c.name == "deliveries agree")
    assert any(
        f.party == "hospital_2" and "model_creator's log has no entry" in f.detail
        for f in agreement.findings
    )


def test_audit_cli_exits_1_naming_party_and_entry(run_copy: Path) -> None:
    lines = log_lines(run_copy, "deployer")
    lines[0] = lines[0].replace(b'"in"', b'"ix"', 1)
    write_lines(run_copy, "deployer", lines)
    done = airlock("audit", str(run_copy))
    assert done.returncode == 1
    assert "deployer entry 0" in done.stdout and "FAILS" in done.stdout
    as_json = airlock("audit", str(run_copy), "--format", "json")
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert report["ok"] is False
    assert {
        "party": "deployer",
        "entry": 0,
        "detail": "entry hash does not match its contents",
    } in report["claims"][0]["findings"]


def test_audit_of_a_folder_that_is_not_a_run_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AuditError, match="not a run directory"):
        audit_run(tmp_path)
    done = airlock("audit", str(tmp_path))
    assert done.returncode == 2
    assert "not a run directory" in done.stderr and "Traceback" not in done.stderr


def admitted_entry(run: Path, party: str) -> dict:
    entries = (json.loads(line) for line in log_lines(run, party))
    return next(e for e in entries if (e["direction"], e["outcome"]) == ("in", "admitted"))


def test_a_forged_sender_signature_fails_its_claim(run_copy: Path) -> None:
    """The deployer's log claims an envelope alice never signed."""
    entry = admitted_entry(run_copy, "deployer")
    rewrite_entry(run_copy, "deployer", entry["index"], signature="00" * 64)
    findings = failing(audit_run(run_copy))["sender signatures"]
    where = f"deployer entry {entry['index']}"
    assert findings == [f"{where}: admitted envelope's signature does not verify"]


def test_an_entry_that_misstates_its_header_fails_the_signature_claim(run_copy: Path) -> None:
    """The header bytes are alice's, but the entry names another step."""
    entry = admitted_entry(run_copy, "deployer")
    rewrite_entry(run_copy, "deployer", entry["index"], step=entry["step"] + "_elsewhere")
    findings = failing(audit_run(run_copy))["sender signatures"]
    where = f"deployer entry {entry['index']}"
    assert findings == [f"{where}: log entry disagrees with the signed header"]


def outgoing(run: Path, party: str, step: str, outcome: str) -> dict:
    return next(
        e
        for e in map(json.loads, log_lines(run, party))
        if (e["direction"], e["step"], e["outcome"]) == ("out", step, outcome)
    )


def test_a_sender_killed_mid_send_still_agrees_with_its_receiver(run_copy: Path) -> None:
    """Alice's log ends its delivery at `sending` (as if killed before the
    deployer answered): the deployer's admitted entry still has its twin, and
    only alice's chain and head, which were rewritten here, fail."""
    delivered = outgoing(run_copy, "alice", "sealed_prompt", "delivered")
    rewrite_entry(run_copy, "alice", delivered["index"], outcome="sending")
    failed = failing(audit_run(run_copy))
    assert "deliveries agree" not in failed and set(failed) == {"log integrity"}


def test_an_undelivered_envelope_does_not_count_as_seen_but_a_lone_sending_does(
    run_copy: Path,
) -> None:
    """A `sending` entry followed by its outcome is judged by the outcome; one
    with no outcome (the sender died mid-send) may have left, and counts."""
    sending = outgoing(run_copy, "alice", "sealed_prompt", "sending")
    delivered = outgoing(run_copy, "alice", "sealed_prompt", "delivered")
    plaintext = [{"asset": "prompt:alice", "form": "plaintext"}]
    # the outcome says undelivered: the labels never reached the deployer
    rewrite_entry(run_copy, "alice", sending["index"], labels=plaintext)
    rewrite_entry(run_copy, "alice", delivered["index"], outcome="undelivered", labels=plaintext)
    seen = audit_run(run_copy).visibility["deployer"]
    assert seen["prompt:alice"] != "plaintext"
    # no outcome after `sending`: it may have reached the deployer
    rewrite_entry(run_copy, "alice", delivered["index"], outcome="sending", labels=plaintext)
    assert audit_run(run_copy).visibility["deployer"]["prompt:alice"] == "plaintext"


def test_an_admission_by_a_lost_party_agrees_with_an_undelivered_send() -> None:
    """A receiver that admitted an envelope and died before its answer got
    back: the sender logged `undelivered`. That agrees when the receiver was
    lost (a dropout, its log unsealed), and only then."""
    send = {"direction": "out", "peer": "hospital_2", "header_sha256": "ab" * 32}
    logs = {
        "model_creator": [
            {**send, "index": 0, "outcome": "sending"},
            {**send, "index": 1, "outcome": "undelivered"},
        ],
        "hospital_2": [
            {
                "index": 0,
                "direction": "in",
                "outcome": "admitted",
                "peer": "model_creator",
                "header_sha256": "ab" * 32,
            }
        ],
    }
    assert check_agreement(logs, frozenset({"hospital_2"})).ok
    refuted = check_agreement(logs)
    assert not refuted.ok and "undelivered for it" in str(refuted.findings)

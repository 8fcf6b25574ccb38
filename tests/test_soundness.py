"""The runtime's soundness holes of issue 11, each played through the real
runtime (parties over gRPC with mutual TLS, or a run directory written by a
real run). Each test failed on the code before the fix."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator import launcher
from orchestrator.audit import audit_run
from orchestrator.hosts import LocalHosts
from orchestrator.launcher import _write_log_files, party_configs
from orchestrator.scenario import load_scenario
from parties.actor import ControlCall, ControlRefused
from parties.directory import Directory
from parties.envelope import Envelope, signed_message, to_messages
from parties.errors import AirlockError, Refused
from parties.identity import RunAuthority, ca_fingerprint
from parties.labels import Form, Label
from parties.log import BLOB_DIR, HEAD_FILE, LOG_FILE
from parties.log_check import read_entries
from parties.runtime import PartyRuntime
from parties.transport import REFUSAL_KEY
from parties.wire import airlock_pb2 as pb
from tests.helpers import Parties, failing, rewrite_entry, run_default, run_text, running_parties
from tests.test_boundary import CATALOG, catalog_request, client_of, send

PROMPT = [Label("prompt:alice", Form.CIPHERTEXT)]

# -- 3. the sender's own boundary -------------------------------------------


def test_an_honest_party_withholds_what_the_receiver_may_not_see(parties: Parties) -> None:
    """Before: the envelope left and only the receiver's boundary stood in the way."""
    with pytest.raises(Refused) as caught:
        parties["alice"].deliver(
            "deployer", "walkthrough", "sealed_prompt", [Label("prompt:alice", Form.PLAINTEXT)], b""
        )
    assert caught.value.reason == pb.GUARANTEE_VIOLATED
    sent = read_entries(parties["alice"].log.directory, "alice")[0][-1]
    assert (sent["direction"], sent["outcome"]) == ("out", "withheld")
    assert read_entries(parties["deployer"].log.directory, "deployer")[0] == []


def test_only_an_adversary_may_bypass_its_own_boundary(parties: Parties) -> None:
    ctx = parties["alice"].context("walkthrough")
    with pytest.raises(AirlockError, match="honest"):
        ctx.deliver_unchecked("guidelines_db", "catalog_request", CATALOG, b"{}")


# -- 4. Ray's control plane and the run directory ----------------------------


def test_a_control_call_the_orchestrator_did_not_sign_is_refused(tmp_path: Path) -> None:
    """Before: any code that reached a party's actor could export its log;
    then, a control key went to each party as an actor argument, which any
    process that reads Ray's GCS or the worker's memory could take. Now the
    key never leaves the orchestrator: each call carries its signature."""
    scenario, text = load_scenario("walkthrough")
    hosts = LocalHosts(party_configs(scenario, "keyrun", text))
    deployer, control = hosts.hosts["deployer"], hosts.control
    try:
        forged = ControlCall(10**9, b"\0" * 64)
        with pytest.raises(ControlRefused, match="not signed"):
            deployer.call(forged, "export_log")
        with pytest.raises(ControlRefused, match="not signed"):  # another party's call
            deployer.call(control.sign("alice", "export_log"), "export_log")
        with pytest.raises(ControlRefused, match="not signed"):  # another method's
            deployer.call(control.sign("deployer", "node"), "export_log")
        signed = control.sign("deployer", "act", ("walkthrough", "send_prompt", {}))
        with pytest.raises(ControlRefused, match="not signed"):  # other arguments
            deployer.call(signed, "act", "walkthrough", "send_prompt", {"leak": True})
        with pytest.raises(ControlRefused, match="no method"):
            deployer.call(control.sign("deployer", "stop"), "stop")  # not a control method
        node = control.sign("deployer", "node")
        assert "hostname" in deployer.call(node, "node")
        with pytest.raises(ControlRefused, match="replayed"):
            deployer.call(node, "node")
    finally:
        hosts.close()


def test_no_private_key_passes_through_the_control_plane(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tee run in this process, every control call recorded as the hosts
    carry it: no party's TLS, signing or device key, nor the orchestrator's
    control key, is in what any party is created with or called with.
    Before, the enclave's device key and each party's control key were
    actor arguments (through Ray's GCS on Ray)."""
    calls: list[tuple[object, ...]] = []
    made: list[LocalHosts] = []

    class Recording(LocalHosts):
        def __init__(self, configs: Any) -> None:
            super().__init__(configs)
            calls.append(tuple(configs.values()))
            made.append(self)

        def gather(self, calls_: Any, timeout: float, alive_within: float | None = None) -> Any:
            calls.append(tuple(calls_.items()))
            return super().gather(calls_, timeout, alive_within)

    monkeypatch.setattr(launcher, "LocalHosts", Recording)
    _, text = load_scenario("tee-inference")
    result = run_text(text, tmp_path / "run")
    assert result.failure is None and result.audit.ok
    (hosts,) = made
    carried = pickle.dumps(calls)  # what Ray would pickle: configs and every call's arguments
    runtimes = {name: host._host._runtime for name, host in hosts.hosts.items()}
    device = runtimes["enclave"].provisions["tee"]
    secrets = [device.private_key, hosts.control._key.private_bytes_raw()]
    for runtime in runtimes.values():
        tls = runtime.keys.tls_key.private_numbers().private_value.to_bytes(32, "big")
        secrets += [tls, runtime.keys.signing_key.private_bytes_raw()]
    assert all(len(secret) >= 32 and secret not in carried for secret in secrets)


@pytest.mark.parametrize("name", ["../escaped", "/tmp/airlock-absolute-escape", "blobs/../../x"])
def test_collected_files_stay_inside_the_partys_folder(tmp_path: Path, name: str) -> None:
    """Before: a party's file names were joined to the run directory as given."""
    target = tmp_path / "run" / "parties" / "deployer"
    said: list[str] = []
    _write_log_files(target, "deployer", {name: b"owned", LOG_FILE: b""}, said.append)
    assert said == [f"refused a file deployer handed over: {name!r} is outside its log"]
    assert not (tmp_path / "run" / "escaped").exists() and not (tmp_path / "run" / "x").exists()
    assert not Path("/tmp/airlock-absolute-escape").exists()
    assert (target / LOG_FILE).exists()


# -- 8. what the signed heads bind -------------------------------------------


def test_an_edited_scenario_fails_the_signed_heads(run_copy: Path) -> None:
    """Relaxing a guarantee in scenario.toml. Before: the audit used it as written."""
    path = run_copy / "scenario.toml"
    path.write_text(path.read_text().replace('max_form = "ciphertext"', 'max_form = "plaintext"'))
    findings = failing(audit_run(run_copy))["log integrity"]
    assert "alice: signed head binds another scenario sha256" in findings
    assert len([f for f in findings if "scenario sha256" in f]) == 6  # every party's head


def test_a_replaced_ca_fails_the_heads_and_the_pin(run_copy: Path, default_run: Path) -> None:
    """Before: a new CA in manifest.json (and logs re-signed under it) passed."""
    pinned = audit_run(default_run).ca_fingerprint
    assert len(pinned) == 64 and audit_run(default_run, pinned).ok
    manifest_path = run_copy / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["ca_pem"] = RunAuthority("forged").certificate_pem.decode()
    manifest_path.write_text(json.dumps(manifest))
    findings = failing(audit_run(run_copy, pinned))["log integrity"]
    assert "run: the run's CA is not the one pinned with --ca-fingerprint" in findings
    assert not audit_run(default_run, "0" * 64).ok


def test_a_head_bound_to_another_ca_fails_the_audit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """alice's runtime binds another CA into its log than the run's: its
    head and checkpoints are signed by its own certified key, for this run
    and this scenario, and name the other CA. A log from a run under
    another CA is not this run's, whatever else verifies."""
    other = ca_fingerprint(RunAuthority("another run").certificate_pem)
    join = PartyRuntime.join

    def joined_elsewhere(runtime: PartyRuntime, directory: Directory) -> None:
        join(runtime, directory)
        if runtime.name == "alice":
            runtime.log.bindings["ca_sha256"] = other

    monkeypatch.setattr(PartyRuntime, "join", joined_elsewhere)
    run = tmp_path / "run"
    assert run_default(run).failure is None
    head = json.loads((run / "parties" / "alice" / HEAD_FILE).read_text())
    assert head["ca_sha256"] == other != audit_run(run).ca_fingerprint
    findings = failing(audit_run(run))["log integrity"]
    assert "alice: signed head binds another ca sha256" in findings
    # and each checkpoint it signed, if the run lasted long enough for one
    others = [f for f in findings if f != "alice: signed head binds another ca sha256"]
    assert all(re.fullmatch(r"alice: checkpoint \d+ is of another run", f) for f in others)


def test_a_vendor_root_swapped_in_the_run_directory_fails_the_audit(tmp_path: Path) -> None:
    """What the trusted setup published (the simulated TEE vendor's root, in
    the manifest) is bound into every party's signed head: a root rewritten
    afterwards, for `airlock verify` to appraise against, is caught."""
    _, text = load_scenario("tee-inference")
    run = tmp_path / "run"
    assert run_text(text, run).failure is None
    assert audit_run(run).ok
    manifest_path = run / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["provisioned"]["tee"]["root_sha256"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))
    findings = failing(audit_run(run))["log integrity"]
    assert "alice: signed head binds another setup sha256" in findings
    assert "enclave: signed head binds another setup sha256" in findings


# -- 9. blob names in log entries --------------------------------------------


def admitted_index(run: Path, party: str) -> int:
    entries = read_entries(run / "parties" / party, party)[0]
    return next(e["index"] for e in entries if e["outcome"] == "admitted")


def test_a_blob_name_outside_the_store_is_never_read(run_copy: Path) -> None:
    """Before: the audit opened whatever path an entry named (/etc/hostname
    was read; /dev/zero hung it)."""
    index = admitted_index(run_copy, "deployer")
    rewrite_entry(run_copy, "deployer", index, payload_sha256="../../../../../../etc/hostname")
    findings = failing(audit_run(run_copy))["log integrity"]
    assert f"deployer entry {index}: payload digest is not 64 hex digits" in findings


def test_a_linked_blob_is_refused(run_copy: Path) -> None:
    index = admitted_index(run_copy, "deployer")
    entry = read_entries(run_copy / "parties" / "deployer", "deployer")[0][index]
    blob = run_copy / "parties" / "deployer" / BLOB_DIR / entry["payload_sha256"]
    blob.unlink()
    blob.symlink_to("/dev/zero")
    findings = failing(audit_run(run_copy))["log integrity"]
    assert f"deployer entry {index}: payload blob is not a regular file of its signed size" in (
        findings
    )


def test_an_admitted_entry_without_its_blob_fails(run_copy: Path) -> None:
    """Before: `blob: false` on an admitted entry skipped the content scan."""
    index = admitted_index(run_copy, "deployer")
    rewrite_entry(run_copy, "deployer", index, blob=False)
    findings = failing(audit_run(run_copy))["log integrity"]
    assert f"deployer entry {index}: admitted payload was not kept as a blob" in findings


# -- 10. resource limits -----------------------------------------------------


def test_the_header_is_judged_before_the_payload_is_read(parties: Parties) -> None:
    """A forbidden step with a payload that does not match its digest: the
    rule refuses it from the header alone. Before: the payload was read and
    hashed first (DIGEST_MISMATCH)."""
    envelope = parties["alice"].boundary.seal(
        "guidelines_db", "walkthrough", "exfiltrate", CATALOG, b"x" * 1000, check=False
    )
    envelope = Envelope(envelope.header, envelope.header_bytes, envelope.signature, b"y" * 1000)
    with pytest.raises(Refused) as caught:
        send(parties, "alice", "guidelines_db", envelope)
    assert caught.value.reason == pb.UNKNOWN_STEP


def test_kept_payloads_have_a_quota(tmp_path: Path) -> None:
    """Before: blobs had no bound; a peer could fill the receiver's disk."""
    with running_parties(tmp_path) as parties:
        parties["guidelines_db"].log._max_kept = 3000
        send(parties, "alice", "guidelines_db", catalog_request(parties, b"{}" + b" " * 998))
        send(parties, "alice", "guidelines_db", catalog_request(parties, b" {}" + b" " * 997))
        with pytest.raises(Refused) as caught:
            send(parties, "alice", "guidelines_db", catalog_request(parties, b"{}" + b" " * 1498))
        assert caught.value.reason == pb.OVERLOADED
        # the same bytes again cost nothing: blobs are content-addressed
        send(parties, "alice", "guidelines_db", catalog_request(parties, b"{}" + b" " * 998))


def slow_stream(envelope: Envelope, release: threading.Event) -> Iterator[pb.Envelope]:
    first, *rest = list(to_messages(envelope))
    yield first
    release.wait(20)
    yield from rest


def test_a_step_has_its_own_size_limit(parties: Parties) -> None:
    """A catalogue request is a few bytes; 100 KiB of one is refused from its
    header, far below the run's limit. Before: only the run's limit applied."""
    with pytest.raises(Refused) as caught:
        send(parties, "alice", "guidelines_db", catalog_request(parties, b" " * (100 << 10)))
    assert caught.value.reason == pb.OVERSIZED
    assert "walkthrough.catalog_request carries at most 65536 bytes" in caught.value.detail


def test_one_peer_cannot_hold_every_delivery_thread(parties: Parties) -> None:
    """Nine slow deliveries at once from alice: the ninth is refused
    (OVERLOADED) while the deployer still serves others. Before: the
    sixteen server threads were anyone's."""
    client = client_of(parties["alice"])
    address = parties.directory.entry("deployer").address
    method = client._method("deployer", address)
    release = threading.Event()
    outcomes: list[str] = []

    def deliver() -> None:
        envelope = parties["alice"].boundary.seal(
            "deployer", "walkthrough", "sealed_prompt", PROMPT, os.urandom(2 << 20)
        )
        try:
            list(method(slow_stream(envelope, release), timeout=30))
            outcomes.append("admitted")
        except Exception as error:  # noqa: BLE001 - the gRPC error carries the refusal
            metadata = dict(error.trailing_metadata() or ())  # type: ignore[attr-defined]
            outcomes.append(pb.Refusal.FromString(metadata[REFUSAL_KEY]).detail)

    threads = [threading.Thread(target=deliver) for _ in range(9)]
    for thread in threads:
        thread.start()
        time.sleep(0.05)
    deadline = time.monotonic() + 10
    while not outcomes and time.monotonic() < deadline:
        time.sleep(0.05)
    with pytest.raises(Refused) as other:  # another peer is still served, and judged
        parties["hospital_1"].deliver(
            "deployer", "walkthrough", "sealed_prompt", PROMPT, b"sealed", check=False
        )
    release.set()
    for thread in threads:
        thread.join(30)
    client.close()
    assert outcomes.count("admitted") == 8
    assert [o for o in outcomes if o != "admitted"] == ["'alice' has 8 deliveries in progress"]
    assert other.value.reason == pb.RULE_NOT_PERMITTED  # by rule, as usual: not by load


# -- 13. labels are names, not patterns --------------------------------------


def test_a_label_cannot_be_a_pattern(parties: Parties) -> None:
    """`prompt:*` in a label would match (and so escape) a guarantee about
    prompt:alice. Before: admitted as a label like any other."""
    with pytest.raises(ValueError, match="malformed asset"):
        Label("prompt:*", Form.PLAINTEXT)
    signer = parties["alice"]
    header = pb.EnvelopeHeader(
        sender="alice",
        receiver="guidelines_db",
        run_id=parties.run_id,
        protocol="walkthrough",
        step="catalog_request",
        sequence=99,
        payload_size=2,
        payload_sha256=hashlib.sha256(b"{}").digest(),
        labels=[pb.Label(asset="catalog:*", form=pb.PUBLIC)],
    ).SerializeToString()
    message = pb.Envelope(
        header=header, signature=signer.keys.sign(signed_message(header)), payload=b"{}"
    )
    with pytest.raises(Refused) as caught:
        parties["guidelines_db"].boundary.admit("alice", iter([message.SerializeToString()]))
    assert caught.value.reason == pb.MALFORMED

"""Protocol fuzzing, property-based (hypothesis), in live runs.

The built-in scenarios run in this process (every party a real gRPC
server with mutual TLS), every party honest. The first time each step of a
protocol is about to cross, its sender first sends wrong payloads of that
step, generated from the step's message definition over the honest
payload (tests/message_fuzz.py), each in a well-signed envelope with the
honest labels, which the rules admit. Each must be refused as BAD_PAYLOAD,
the receiver keeps serving, the honest message then succeeds, and so does
the run, its audit holding.

A reply rides its request's call, so a reply step is fuzzed through the
caller's boundary admission, signed by the replier, right after the honest
reply was admitted.

Only payloads that break the definition are sent: one that fits it but is
wrong (another round's number, a valid key directory with fewer members)
is, to the receiver, the sender's real message, and taking it in place of
the honest one is right; the roles' own checks of such messages are the
protocols' negative tests. MPC's compute parties need a process each
(CrypTen), so its steps do not run in this process and are not fuzzed here.
"""

from __future__ import annotations

import os
import threading
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings

from orchestrator.launcher import run_scenario
from orchestrator.scenario import load_scenario, parse_scenario
from parties.boundary import Boundary
from parties.envelope import Envelope, Header, header_from_bytes, to_messages
from parties.errors import Refused
from parties.log_check import blob_path, read_entries
from parties.wire import airlock_pb2 as pb
from protocols import get_protocol
from tests.helpers import Parties, running_parties
from tests.message_fuzz import breaks, wrong_payloads

# per step and direction; AIRLOCK_FUZZ_EXAMPLES for a longer run
EXAMPLES = int(os.environ.get("AIRLOCK_FUZZ_EXAMPLES", "25"))


Send = Callable[[Boundary, Envelope], Envelope | None]
Deliver = Callable[[bytes], None]


@dataclass
class StepReport:
    key: str  # protocol.step
    examples: int = 0  # each refused as BAD_PAYLOAD


class Fuzzer:
    """Patches Boundary.send for one run: fuzz each step once, then let the
    honest envelope go."""

    def __init__(self, examples: int = EXAMPLES) -> None:
        self.examples = examples
        self.boundaries: dict[str, Boundary] = {}
        self.reports: dict[str, StepReport] = {}
        self.problems: list[str] = []
        self._started: set[str] = set()
        self._lock = threading.Lock()
        self._inside = threading.local()

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original_init, original_send = Boundary.__init__, Boundary.send

        def init(boundary: Boundary, **kwargs: Any) -> None:
            original_init(boundary, **kwargs)
            self.boundaries[kwargs["party"]] = boundary

        def send(boundary: Boundary, envelope: Envelope) -> Envelope | None:
            if getattr(self._inside, "fuzzing", False):
                return original_send(boundary, envelope)
            header = envelope.header
            self._once(
                f"{header.protocol}.{header.step}",
                lambda: self._request(original_send, boundary, envelope),
            )
            try:
                reply = original_send(boundary, envelope)
            except Refused as refusal:
                self.problems.append(
                    f"{header.protocol}.{header.step}: the honest message was refused: {refusal}"
                )
                raise
            if reply is not None:
                key = f"{header.protocol}.{reply.header.step}"
                self._once(key, lambda: self._reply(boundary, envelope, reply))
            return reply

        monkeypatch.setattr(Boundary, "__init__", init)
        monkeypatch.setattr(Boundary, "send", send)

    def _once(self, key: str, fuzz: Callable[[], None]) -> None:
        with self._lock:
            if key in self._started:
                return
            self._started.add(key)
        self.reports[key] = StepReport(key)
        self._inside.fuzzing = True
        try:
            fuzz()
        except Exception as error:  # hypothesis raises the shrunk falsifying example
            self.problems.append(f"{key}: {type(error).__name__}: {error}")
        finally:
            self._inside.fuzzing = False

    def _request(self, send: Send, sender: Boundary, honest: Envelope) -> None:
        """Over gRPC to the receiver, which must refuse each and keep serving."""
        header = honest.header

        def deliver(payload: bytes) -> None:
            send(sender, resealed(sender, header, header.receiver, payload))

        key = f"{header.protocol}.{header.step}"
        refuse_all(self.reports[key], honest.payload, deliver, self.examples)

    def _reply(self, caller: Boundary, request: Envelope, honest: Envelope) -> None:
        """Through the caller's admission of replies, signed by the replier."""
        header = honest.header
        replier = self.boundaries[header.sender]

        def deliver(payload: bytes) -> None:
            admit(caller, resealed(replier, header, caller.party, payload), request.header.step)

        key = f"{header.protocol}.{header.step}"
        refuse_all(self.reports[key], honest.payload, deliver, self.examples)


def resealed(sender: Boundary, header: Header, receiver: str, payload: bytes) -> Envelope:
    """`header`'s step and labels with another payload, signed by `sender`
    past its own boundary."""
    return sender.seal(
        receiver,
        header.protocol,
        header.step,
        header.labels,
        payload,
        header.session_id,
        check=False,
    )


def admit(receiver: Boundary, envelope: Envelope, answering: str | None) -> None:
    """Through `receiver`'s admission directly, as a stream off the wire."""
    stream = [m.SerializeToString() for m in to_messages(envelope)]
    receiver.admit(envelope.header.sender, iter(stream), answering=answering)


def refuse_all(report: StepReport, honest: bytes, deliver: Deliver, examples: int) -> None:
    """Deliver wrong payloads of one step: each must be refused as BAD_PAYLOAD."""
    protocol, step = report.key.split(".")
    message = get_protocol(protocol).messages[step]

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,  # the same examples in every CI run
        suppress_health_check=list(HealthCheck),
    )
    @given(wrong_payloads(message, honest).filter(lambda payload: breaks(message, payload)))
    def example(payload: bytes) -> None:
        report.examples += 1
        with pytest.raises(Refused) as refused:
            deliver(payload)
        assert refused.value.reason == pb.BAD_PAYLOAD, str(refused.value)

    example()


def honest(text: str, where: Path) -> str:
    """The scenario, laid over the built-in it extends, with every party
    honest: the fuzzer is the one misbehaving."""
    where.write_text(text)
    data = tomllib.loads(load_scenario(str(where))[1])
    for values in data.get("parties", {}).values():
        values.pop("adversary", None)
    return tomli_w.dumps(data)


def fuzz_run(text: str, out: Path, monkeypatch: pytest.MonkeyPatch) -> Fuzzer:
    fuzzer = Fuzzer()
    fuzzer.install(monkeypatch)
    text = honest(text, out.parent / "scenario.toml")
    scenario = parse_scenario(text, "fuzzed")
    result = run_scenario(scenario, text, out=out, in_process=True)
    assert not fuzzer.problems, "\n".join(fuzzer.problems)
    assert result.failure is None, result.failure
    failing = [c.name for c in result.audit.claims if not c.ok]
    assert not failing, failing
    return fuzzer


FAST_TRAINING = "rounds = 1, threshold = 2, local_steps = 2, batch = 8, exposure_samples = 20"
# The built-in scenarios that run in one process, and variants that reach
# the steps those do not: plaintext federated updates, SimplePIR, ranking
# under HE, and tee with receipts logged and a plaintext baseline. Every
# party is honest.
SCENARIOS = {
    "walkthrough": 'extends = "walkthrough"\n',
    "attest": 'extends = "attest"\n',
    "private-rag": 'extends = "private-rag"\n',
    "private-rag-simplepir": """extends = "private-rag"
[[stages]]
name = "retrieve"
protocol = "pir"
params = { scheme = "simplepir", clusters = 8, top_k = 2 }
""",
    "private-rag-he": """extends = "private-rag-he"
[parties.guidelines_a]
synthetic_documents = 300
[parties.guidelines_b]
synthetic_documents = 300
""",
    "tee-inference": 'extends = "tee-inference"\n',
    "tee-logged-with-baseline": """extends = "tee-inference"
[parties.ledger]
role = "ledger"
site = "verification"
[parties.hospital_1]
role = "data_contributor"
site = "training"
synthetic_notes = 5
[[stages]]
name = "attest"
protocol = "attestation"
part = "datasets"
[[stages]]
name = "commit"
protocol = "attestation"
part = "commitment"
[[stages]]
name = "serve"
protocol = "tee"
params = { max_new_tokens = 8, log_receipts = true, baseline = true }
[[stages]]
name = "ledger"
protocol = "attestation"
part = "ledger_audit"
[[guarantees]]  # the baseline sends weights and prompts to the host in the clear
name = "training data leaves a contributor only as digests"
asset = "train:*"
viewers = ["model_creator", "ledger"]
max_form = "digest"
""",
    "federated": f"""extends = "federated"
[[stages]]
name = "train"
protocol = "federated"
params = {{ mode = "secagg+dp", {FAST_TRAINING} }}
""",
    "federated-plain": f"""extends = "federated"
[[stages]]
name = "train"
protocol = "federated"
params = {{ mode = "plain", {FAST_TRAINING} }}
[[guarantees]]
name = "training data never leaves a contributor"
asset = "train:*"
viewers = ["model_creator", "data_contributor"]
max_form = "digest"
""",
}
# steps no honest run sends
NEVER_HONEST = {
    "federated.update_rejected": "sent only about an update that broke the round's bounds",
}
FUZZED: dict[str, StepReport] = {}
RAN: set[str] = set()


def _steps(protocol: str, names: str) -> set[str]:
    return {f"{protocol}.{name}" for name in names.split()}


# The steps each scenario's run fuzzes: its test checks it fuzzed every one,
# and test_every_step_of_every_protocol_was_fuzzed that these, the mpc steps
# (fuzzed apart, each one) and NEVER_HONEST are every step of every protocol.
TEE_SERVING = _steps(
    "tee",
    "reference_values model_root enclave_load attestation_request evidence_request evidence"
    " appraisal_request attestation_result model_release enclave_weights sealed_prompt"
    " enclave_prompt enclave_answer sealed_answer",
)
FEDERATED_ROUND = _steps(
    "federated", "round_start round_keys update_request final_model model_countersignature"
)
FUZZES = {
    "walkthrough": _steps(
        "walkthrough",
        "dataset_commitment model_card catalog_request catalog sealed_prompt prompt_receipt",
    ),
    "attest": _steps(
        "attestation",
        "submit logged dataset_attestation model_attestation inference_request"
        " inference_response head_request",
    ),
    "private-rag": _steps("pir", "catalog_request catalog pir_query pir_answer"),
    "private-rag-simplepir": _steps("pir", "catalog_request catalog pir_query pir_answer"),
    "private-rag-he": _steps(
        "pir",
        "catalog_request catalog evaluation_keys rank_request rank_answer pir_query pir_answer",
    ),
    "tee-inference": TEE_SERVING,
    "tee-logged-with-baseline": TEE_SERVING
    | _steps("tee", "plain_weights submit logged plain_prompt plain_answer")
    | _steps("attestation", "submit logged dataset_attestation model_attestation head_request"),
    "federated": FEDERATED_ROUND
    | _steps(
        "federated",
        "key_directory encrypted_shares masked_update consistency_request"
        " consistency_signature unmask_request unmask_shares",
    ),
    "federated-plain": FEDERATED_ROUND | _steps("federated", "plain_update"),
}


# `make test` runs these; `pytest -m fuzz` the others (minutes each)
SAMPLE = ("walkthrough", "attest", "private-rag", "tee-inference")
PROTOCOLS = ("walkthrough", "attestation", "federated", "pir", "tee", "mpc")


@pytest.mark.parametrize(
    "name", [n if n in SAMPLE else pytest.param(n, marks=pytest.mark.fuzz) for n in SCENARIOS]
)
def test_every_step_refuses_wrong_payloads_and_the_run_goes_on(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fuzzer = fuzz_run(SCENARIOS[name], tmp_path / "run", monkeypatch)
    assert set(fuzzer.reports) == FUZZES[name], "the steps it fuzzed are not its FUZZES"
    for key, report in fuzzer.reports.items():
        assert report.examples > 0, key
        FUZZED.setdefault(key, report)
    RAN.add(name)
    print(f"\n{name}: " + ", ".join(f"{r.key} {r.examples}" for r in fuzzer.reports.values()))


MPC_WITH_RECEIPTS = """extends = "mpc-inference"
[parties.model_creator]
model = "airlock-tiny"
[parties.ledger]
role = "ledger"
site = "serving"
[[stages]]
name = "commit"
protocol = "attestation"
part = "commitment"
[[stages]]
name = "infer"
protocol = "mpc"
params = { max_new_tokens = 1, log_receipts = true }
"""


def admitted_samples(run: Path, protocol: str) -> dict[str, dict[str, Any]]:
    """The first admitted envelope of each of `protocol`'s steps in a run's
    logs, with its payload (kept by the receiver's log)."""
    found: dict[str, dict[str, Any]] = {}
    for directory in sorted((run / "parties").iterdir()):
        entries, problems = read_entries(directory, directory.name)
        assert not problems
        for entry in entries:
            step = entry.get("step", "")
            if entry["outcome"] == "admitted" and entry["protocol"] == protocol:
                path = blob_path(directory, entry)
                if step not in found and path is not None and path.exists():
                    found[step] = {**entry, "payload": path.read_bytes()}
    return found


@pytest.mark.ray
def test_mpc_steps_refuse_wrong_payloads_at_admission(tmp_path: Path) -> None:
    """MPC needs a process per compute party (on Ray), so its steps are
    fuzzed apart from its run: over each step's first admitted payload in
    the run's logs, through the receiving boundary's admission in parties
    of the same names and roles."""
    scenario = parse_scenario(MPC_WITH_RECEIPTS, "mpc")
    result = run_scenario(scenario, MPC_WITH_RECEIPTS, out=tmp_path / "run")
    assert result.failure is None, result.failure
    protocol = get_protocol("mpc")
    samples = admitted_samples(tmp_path / "run", "mpc")
    assert set(samples) == protocol.steps
    roles = {name: scenario.role_of(name) for name in scenario.parties}
    with running_parties(tmp_path / "fuzz", roles=roles, protocol="mpc") as started:
        for step, sample in samples.items():
            report = StepReport(f"mpc.{step}")
            fuzz_admission(started, sample, report)
            assert report.examples > 0
            FUZZED[report.key] = report
    RAN.add("mpc")


def fuzz_admission(started: Parties, sample: dict[str, Any], report: StepReport) -> None:
    """Wrong payloads of a logged envelope's step, from its sender to its
    receiver, each through the receiver's admission (as a reply where the
    step is one)."""
    header = header_from_bytes(bytes.fromhex(sample["header"]))
    sender, receiver = started[header.sender], started[header.receiver]
    rule = get_protocol(header.protocol).rule_for(header.step, sender.role, receiver.role)
    assert rule is not None
    answering = rule.reply_to[0] if rule.reply_to else None

    def deliver(payload: bytes) -> None:
        fuzzed = resealed(sender.boundary, header, receiver.name, payload)
        admit(receiver.boundary, fuzzed, answering)

    refuse_all(report, sample["payload"], deliver, EXAMPLES)


# in `make test` and under `pytest -m fuzz` alike (one is "not fuzz", the other "fuzz")
@pytest.mark.parametrize("selection", ["sample", pytest.param("fuzz", marks=pytest.mark.fuzz)])
def test_every_step_of_every_protocol_was_fuzzed(selection: str) -> None:
    """Every step of every protocol is fuzzed by one of the runs above (each
    run checks that it fuzzed its FUZZES: the sample and mpc in `make test`,
    the others under `pytest -m fuzz`), but those no honest run sends; the
    runs of this session fuzzed each of theirs."""
    steps = {f"{p}.{step}" for p in PROTOCOLS for step in get_protocol(p).steps}
    mpc = _steps("mpc", " ".join(get_protocol("mpc").steps))
    covered = set().union(*FUZZES.values()) | mpc
    assert not covered - steps, f"FUZZES names steps no protocol has: {covered - steps}"
    assert steps - covered == set(NEVER_HONEST), (
        f"no run fuzzes {steps - covered - set(NEVER_HONEST)}: add a scenario that sends each"
        " to SCENARIOS and FUZZES (or the step to NEVER_HONEST)"
    )
    assert set(SCENARIOS) == set(FUZZES)
    ran = set().union(*(FUZZES[name] for name in RAN & set(SCENARIOS)))
    assert ran | (mpc if "mpc" in RAN else set()) <= set(FUZZED)
    print(f"\n{len(FUZZED)} steps, {sum(r.examples for r in FUZZED.values())} examples")

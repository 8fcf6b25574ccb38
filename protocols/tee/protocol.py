"""The tee protocol, assembled: the honest roles by side (creator.py,
host.py, enclave.py, verifier.py, user.py; relying.py is the attestation
both relying parties run), the adversaries' overrides in adversaries.py,
and the trusted setup (`evidence.provision`) that runs in the orchestrator
once per run.

A stage: the creator publishes (reference values to the verifier and the
end users, the model root to the deployer); the deployer boots the enclave
with the image and that root; the creator has the enclave appraised, by the
verifier and by itself, and releases the weights sealed to it (key
release); the end user asks, after the same two appraisals per prompt."""

from collections.abc import Mapping
from typing import Any

from evidence.claims import OfflineChecks
from parties.protocol import Artifacts, Protocol
from parties.roles import Role
from parties.store import Kept
from protocols.artifacts import COMMITTED_MODEL, RETRIEVED, TRAINED_MODEL
from protocols.attestation.serving_log import ServingLogState, on_submit
from protocols.tee import creator, host, user, verifier, verify
from protocols.tee.adversaries import ADVERSARIES
from protocols.tee.enclave import (
    EnclaveState,
    on_enclave_load,
    on_enclave_prompt,
    on_enclave_weights,
    on_evidence_request,
)
from protocols.tee.evidence import provision, provision_request
from protocols.tee.messages import MESSAGES
from protocols.tee.report import report
from protocols.tee.rules import (
    CREATOR,
    DEPLOYER,
    ENCLAVE,
    LEDGER,
    NAME,
    RULES,
    USER,
    VERIFIER,
    Step,
)
from protocols.tee.settings import Settings


def artifacts(params: Mapping[str, Any], part: str | None) -> Artifacts:
    """What the settings make the stage take from earlier stages."""
    s = Settings.model_validate(params)
    needs: tuple[tuple[Role, Kept[Any]], ...] = ()
    if s.model == "trained":
        needs += ((CREATOR, TRAINED_MODEL),)
    if s.prompts == "retrieved":
        needs += ((USER, RETRIEVED),)
    if s.require_commitment:
        needs += ((USER, COMMITTED_MODEL),)
    return Artifacts(needs=needs)


PROTOCOL = Protocol(
    name=NAME,
    rules=RULES,
    messages=MESSAGES,
    handlers={
        (DEPLOYER, Step.MODEL_ROOT): host.on_model_root,
        (DEPLOYER, Step.MODEL_RELEASE): host.on_model_release,
        (DEPLOYER, Step.ATTESTATION_REQUEST): host.on_attestation_request,
        (DEPLOYER, Step.SEALED_PROMPT): host.on_sealed_prompt,
        (DEPLOYER, Step.PLAIN_WEIGHTS): host.on_plain_weights,
        (DEPLOYER, Step.PLAIN_PROMPT): host.on_plain_prompt,
        (ENCLAVE, Step.ENCLAVE_LOAD): on_enclave_load,
        (ENCLAVE, Step.ENCLAVE_WEIGHTS): on_enclave_weights,
        (ENCLAVE, Step.EVIDENCE_REQUEST): on_evidence_request,
        (ENCLAVE, Step.ENCLAVE_PROMPT): on_enclave_prompt,
        (VERIFIER, Step.REFERENCE_VALUES): verifier.on_reference_values,
        (VERIFIER, Step.APPRAISAL_REQUEST): verifier.on_appraisal_request,
        (USER, Step.REFERENCE_VALUES): user.on_reference_values,
        (LEDGER, Step.SUBMIT): on_submit,
    },
    actions={
        (CREATOR, "publish_model"): creator.publish_model,
        (DEPLOYER, "launch_enclave"): host.launch_enclave,
        (CREATOR, "release_weights"): creator.release_weights,
        (USER, "ask"): user.ask,
    },
    stage=(
        (CREATOR, "publish_model"),
        (DEPLOYER, "launch_enclave"),
        (CREATOR, "release_weights"),
        (USER, "ask"),
    ),
    adversaries=ADVERSARIES,
    states={
        CREATOR: creator.CreatorState,
        DEPLOYER: host.HostState,
        ENCLAVE: EnclaveState,
        VERIFIER: verifier.VerifierState,
        USER: user.UserState,
        LEDGER: ServingLogState,
    },
    params=Settings,
    artifacts=artifacts,
    provision=provision,
    provision_request=provision_request,
    verify=OfflineChecks(claims=verify.verify_claims),
    report=report,
)

"""The tee protocol, assembled: the honest roles by side (creator.py,
host.py, enclave.py, verifier.py, user.py), the adversaries' overrides in
adversaries.py, and the trusted setup (`evidence.provision`) that runs in
the orchestrator once per run."""

from parties.protocol import Protocol
from protocols.tee import creator, host, user, verifier
from protocols.tee.adversaries import ADVERSARIES
from protocols.tee.enclave import (
    EnclaveState,
    on_enclave_load,
    on_enclave_prompt,
    on_evidence_request,
)
from protocols.tee.evidence import provision
from protocols.tee.rules import CREATOR, DEPLOYER, ENCLAVE, NAME, RULES, USER, VERIFIER, Step
from protocols.tee.settings import Settings

PROTOCOL = Protocol(
    name=NAME,
    rules=RULES,
    handlers={
        (DEPLOYER, Step.MODEL_RELEASE): host.on_model_release,
        (DEPLOYER, Step.ATTESTATION_REQUEST): host.on_attestation_request,
        (DEPLOYER, Step.SEALED_PROMPT): host.on_sealed_prompt,
        (DEPLOYER, Step.PLAIN_PROMPT): host.on_plain_prompt,
        (ENCLAVE, Step.ENCLAVE_LOAD): on_enclave_load,
        (ENCLAVE, Step.EVIDENCE_REQUEST): on_evidence_request,
        (ENCLAVE, Step.ENCLAVE_PROMPT): on_enclave_prompt,
        (VERIFIER, Step.REFERENCE_VALUES): verifier.on_reference_values,
        (VERIFIER, Step.APPRAISAL_REQUEST): verifier.on_appraisal_request,
    },
    actions={
        (CREATOR, "release_model"): creator.release_model,
        (DEPLOYER, "launch_enclave"): host.launch_enclave,
        (USER, "ask"): user.ask,
    },
    stage=((CREATOR, "release_model"), (DEPLOYER, "launch_enclave"), (USER, "ask")),
    adversaries=ADVERSARIES,
    states={
        DEPLOYER: host.HostState,
        ENCLAVE: EnclaveState,
        VERIFIER: verifier.VerifierState,
    },
    params=Settings,
    provision=provision,
)

"""The tee protocol: inference inside a (simulated) enclave on the
deployer's premises, with remote attestation in the RATS roles (RFC 9334)
and end-to-end HPKE (RFC 9180) into the enclave: the model creator's
weights (key release, to an appraised enclave only) and the end user's
prompts.

Files: rules.py (the steps, what may cross); the roles by side, each with
its typed state: creator.py (the model creator, reference value provider
and relying party before key release), host.py (the deployer), enclave.py
(the measured enclave code), verifier.py (the verifier), user.py (the end
user, relying party), relying.py (the attestation both relying parties
run); adversaries.py (the
misbehaviours, as overrides of the honest handlers and actions);
protocol.py (the protocol, assembled); evidence.py (the SIMULATED hardware
root of trust, minted per run by the orchestrator; evidence and appraisal),
channel.py (HPKE), settings.py (the stage params), tests/.
"""

from protocols.tee.protocol import PROTOCOL

__all__ = ["PROTOCOL"]

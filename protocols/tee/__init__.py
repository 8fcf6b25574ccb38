"""The tee protocol: inference inside a (simulated) enclave on the
deployer's premises, with remote attestation in the RATS roles (RFC 9334)
and an end-to-end HPKE channel (RFC 9180) from the end user to the enclave.

Files: rules.py (what may cross), roles.py (each role's logic and the
protocol), host.py (the deployer), enclave.py (the measured enclave code),
evidence.py (the SIMULATED hardware root of trust, minted per run by the
orchestrator; evidence and appraisal), channel.py (HPKE), settings.py (the
stage params), adversaries.py, tests/.
"""

from protocols.tee.roles import PROTOCOL

__all__ = ["PROTOCOL"]

"""The verifier's appraisal as an EAT Attestation Result (EAR,
draft-ietf-rats-ear-04), serialized as a JWT signed with the verifier's
party key (EdDSA, Ed25519), so that any JOSE library can check it.

One submodule, `enclave`, carries the status tier and the AR4SI
trustworthiness vector of what was appraised:

- affirming: `instance-identity` 2 (a device key the vendor endorsed signed
  the evidence, for this nonce), `executables` 2 and `configuration` 2 (the
  measurement of code and model is the reference value); `hardware` 0, no
  claim: the root of trust is simulated (protocols/tee/evidence.py), so no
  verifier could vouch for genuine hardware, and the result says so;
- contraindicated: 96 for the claim the refusal contradicts (the
  measurement: `executables`; anything else about the evidence:
  `instance-identity`).

What the relying party uses (the enclave's name, the keys the evidence
binds, the model root, the vendor root) travels in one extension claim,
`airlock_appraisal` (the draft's extension rule: a map, ignored by readers
that do not know it). The JWT is assembled around the party's signing
callable (its key never leaves the runtime); PyJWT checks it.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ed25519

from parties.errors import ClaimFailed

PROFILE = "tag:ietf.org,2026:rats/ear#04"
MEDIA_TYPE = 'application/eat+jwt; eat_profile="tag:ietf.org,2026:rats/ear#04"'
SUBMODULE = "enclave"
APPRAISAL = "airlock_appraisal"
POLICY = "urn:airlock:policy:tee-reference-values:v1"
VERIFIER_ID = {"developer": "Airlock", "build": "airlock tee verifier (simulated root of trust)"}
AFFIRMING_VECTOR = {"instance-identity": 2, "configuration": 2, "executables": 2, "hardware": 0}
CONTRAINDICATED = 96
# AR4SI tiers by value (this verifier writes 0..127 only): none below 2, then
# affirming, warning, contraindicated
TIERS = ((96, "contraindicated"), (32, "warning"), (2, "affirming"))


def tier(vector: Mapping[str, int]) -> str:
    """The status a trustworthiness vector implies: its worst claim's tier."""
    worst = max(vector.values(), default=0)
    return next((name for bound, name in TIERS if worst >= bound), "none")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def issue_ear(
    nonce: bytes,
    vector: Mapping[str, int],
    appraisal: Mapping[str, Any],
    sign: Callable[[bytes], bytes],
) -> str:
    """The compact JWT of one appraisal, for `nonce` (the relying party's)."""
    status = tier(vector)
    claims = {
        "eat_profile": PROFILE,
        "iat": int(time.time()),
        "ear_verifier_id": VERIFIER_ID,
        "ear_status": status,
        "eat_nonce": _b64url(nonce),
        "submods": {
            SUBMODULE: {
                "ear_status": status,
                "ear_trustworthiness_vector": dict(vector),
                "ear_appraisal_policy_ids": [POLICY],
                APPRAISAL: dict(appraisal),
            }
        },
    }
    header = {"alg": "EdDSA", "typ": "JWT"}
    signing_input = ".".join(
        _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    return f"{signing_input}.{_b64url(sign(signing_input.encode()))}"


@dataclass(frozen=True)
class Appraisal:
    """What an EAR says of the enclave: the nonce it answers (base64url, as
    in the EAR), its status tier and its `airlock_appraisal` claims."""

    nonce: str
    status: str
    claims: dict[str, Any]

    def answers(self, nonce: bytes) -> bool:
        return self.nonce == _b64url(nonce)


def open_ear(token: str, verifier_key: ed25519.Ed25519PublicKey, claim: str) -> Appraisal:
    """An EAR the verifier signed, read. Raises ClaimFailed."""
    try:
        claims = jwt.decode(
            token,
            verifier_key,
            algorithms=["EdDSA"],
            options={"require": ["iat", "eat_profile", "submods", "eat_nonce"]},
        )
    except jwt.PyJWTError as exc:
        raise ClaimFailed(claim, f"not an EAR the verifier signed: {exc}") from None
    if claims["eat_profile"] != PROFILE:
        raise ClaimFailed(claim, f"the attestation result has profile {claims['eat_profile']!r}")
    submodule = claims["submods"].get(SUBMODULE) if isinstance(claims["submods"], dict) else None
    if not isinstance(submodule, dict) or not isinstance(submodule.get(APPRAISAL), dict):
        raise ClaimFailed(claim, f"the attestation result has no {SUBMODULE} appraisal")
    vector = submodule.get("ear_trustworthiness_vector")
    if not isinstance(vector, dict) or not all(
        type(v) is int and 0 <= v <= 127 for v in vector.values()
    ):
        raise ClaimFailed(claim, "the attestation result's trustworthiness vector is malformed")
    status = submodule.get("ear_status")
    # the status may be no better than its vector says (the draft's rule)
    if status != tier(vector) or claims.get("ear_status") != status:
        raise ClaimFailed(claim, "the attestation result's status contradicts its vector")
    return Appraisal(str(claims["eat_nonce"]), str(status), dict(submodule[APPRAISAL]))

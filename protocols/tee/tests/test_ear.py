"""The verifier's attestation results as EARs (protocols/tee/ear.py): read by
an independent JOSE library (jwcrypto), and every forged, altered or
inconsistent result refused by the relying party's check (PyJWT); a
genuine result replayed for another nonce refused by the relying party in
a run (protocols/tee/relying.py)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwcrypto import jwk, jwt

from parties.errors import ClaimFailed
from protocols.tee import verifier, verify
from protocols.tee.ear import AFFIRMING_VECTOR, PROFILE, issue_ear, open_ear, tier
from protocols.tee.evidence import SimulatedVendor
from protocols.tee.tests.appraised_run import AppraisedRun
from protocols.tee.tests.test_protocol import tee_text
from tests.helpers import result_of, run_text

KEY = ed25519.Ed25519PrivateKey.generate()
NONCE = os.urandom(32)
APPRAISAL = {"enclave": "enclave", "model_root": "ab" * 32}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def resigned(token: str, change: Any) -> str:
    """`token` with its claims changed by `change`, signed again by KEY."""
    header, claims, _ = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(claims + "=="))
    change(body)
    signing_input = f"{header}.{b64url(json.dumps(body).encode())}"
    return f"{signing_input}.{b64url(KEY.sign(signing_input.encode()))}"


def test_an_ear_is_a_jwt_any_jose_library_checks() -> None:
    token = issue_ear(NONCE, AFFIRMING_VECTOR, APPRAISAL, KEY.sign)
    raw = KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    key = jwk.JWK(kty="OKP", crv="Ed25519", x=b64url(raw))
    claims = json.loads(jwt.JWT(jwt=token, key=key, algs=["EdDSA"]).claims)
    assert claims["eat_profile"] == PROFILE == "tag:ietf.org,2026:rats/ear#04"
    assert claims["eat_nonce"] == b64url(NONCE) and isinstance(claims["iat"], int)
    enclave = claims["submods"]["enclave"]
    assert enclave["ear_status"] == claims["ear_status"] == "affirming"
    assert enclave["ear_trustworthiness_vector"]["hardware"] == 0  # simulated: no claim
    assert enclave["airlock_appraisal"] == APPRAISAL
    opened = open_ear(token, KEY.public_key(), "test")
    assert opened.answers(NONCE) and not opened.answers(os.urandom(32))
    assert (opened.status, opened.claims) == ("affirming", APPRAISAL)


@pytest.mark.parametrize(
    ("vector", "status"),
    [
        ({"hardware": 0}, "none"),
        (AFFIRMING_VECTOR, "affirming"),
        ({**AFFIRMING_VECTOR, "configuration": 32}, "warning"),
        ({**AFFIRMING_VECTOR, "executables": 96}, "contraindicated"),
        ({"instance-identity": 99, "configuration": 32}, "contraindicated"),
    ],
)
def test_the_status_is_the_worst_tier_of_the_vector(vector: dict[str, int], status: str) -> None:
    assert tier(vector) == status
    token = issue_ear(NONCE, vector, APPRAISAL, KEY.sign)
    assert open_ear(token, KEY.public_key(), "test").status == status


def _affirming_despite_vector(claims: dict[str, Any]) -> None:
    claims["submods"]["enclave"]["ear_trustworthiness_vector"]["executables"] = 96


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda c: c.update(eat_profile="tag:github.com,2023:veraison/ear"), "profile"),
        (_affirming_despite_vector, "contradicts its vector"),
        (lambda c: c["submods"]["enclave"].update(ear_trustworthiness_vector={"x": "2"}), "vector"),
        (lambda c: c["submods"].pop("enclave"), "no enclave appraisal"),
        (lambda c: c.pop("eat_nonce"), "eat_nonce"),
        (lambda c: c.update(ear_status="affirming", submods={}), "no enclave appraisal"),
    ],
)
def test_a_result_not_as_the_draft_says_is_refused(change: Any, expected: str) -> None:
    token = resigned(issue_ear(NONCE, AFFIRMING_VECTOR, APPRAISAL, KEY.sign), change)
    with pytest.raises(ClaimFailed, match=expected):
        open_ear(token, KEY.public_key(), "test")


def test_a_result_signed_by_another_key_or_unsigned_is_refused() -> None:
    other = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(ClaimFailed, match="not an EAR the verifier signed"):
        open_ear(issue_ear(NONCE, AFFIRMING_VECTOR, APPRAISAL, other.sign), KEY.public_key(), "t")
    header, claims, _ = issue_ear(NONCE, AFFIRMING_VECTOR, APPRAISAL, KEY.sign).split(".")
    unsigned = f"{b64url(json.dumps({'alg': 'none'}).encode())}.{claims}."
    for token in (unsigned, f"{header}.{claims}", "not a token"):
        with pytest.raises(ClaimFailed, match="not an EAR the verifier signed"):
            open_ear(token, KEY.public_key(), "test")


RECEIPT_KEY = ed25519.Ed25519PrivateKey.generate().public_key()
ROOT = bytes.fromhex(APPRAISAL["model_root"])


def test_verify_finds_a_result_for_a_nonce_the_relying_party_never_sent() -> None:
    run: Any = AppraisedRun(KEY, NONCE, NONCE, RECEIPT_KEY, ROOT)
    holds, reappraised, cose = verify.verify_claims(run)
    assert holds.ok and holds.checked == 1
    assert reappraised.ok and reappraised.checked == 1
    # an affirming EAR, then no receipt published: worth a note, not a failure
    assert cose.ok and [str(n) for n in cose.notes] == [
        "alice: admitted an affirming EAR but published no COSE receipt"
    ]
    run = AppraisedRun(KEY, NONCE, os.urandom(32), RECEIPT_KEY, ROOT)
    broken, _, _ = verify.verify_claims(run)
    assert [str(f) for f in broken.findings] == [
        "alice entry 7: answers no nonce alice sent verifier"
    ]


def test_verify_re_appraises_the_evidence_behind_an_affirming_result() -> None:
    """A result the verifier signed, affirming, for the right nonce, is not
    taken on its word: evidence from a chip of a vendor the run did not
    publish, a run that published no vendor root, or a result that names a
    key the evidence does not bind, each fails the re-appraisal, and the
    result attests nothing (so no receipt can count under it)."""
    other: Any = AppraisedRun(KEY, NONCE, NONCE, RECEIPT_KEY, ROOT, chip_vendor=SimulatedVendor())
    _, reappraised, _ = verify.verify_claims(other)
    assert [str(f) for f in reappraised.findings] == [
        "alice entry 7: verifier affirmed: the evidence does not appraise: the attestation "
        "key is not endorsed by a trusted vendor (unknown vendor key)"
    ]
    unpublished: Any = AppraisedRun(KEY, NONCE, NONCE, RECEIPT_KEY, ROOT, publish=False)
    _, reappraised, _ = verify.verify_claims(unpublished)
    assert [str(f) for f in reappraised.findings] == [
        "run: the run publishes no vendor root: no affirming result can be re-appraised"
    ]
    renamed: Any = AppraisedRun(KEY, NONCE, NONCE, RECEIPT_KEY, ROOT)
    renamed.ear = issue_ear(
        NONCE,
        AFFIRMING_VECTOR,
        {**renamed.appraisal, "receipt_public_key": "00" * 32},
        KEY.sign,
    )
    _, reappraised, cose = verify.verify_claims(renamed)
    assert [str(f) for f in reappraised.findings] == [
        "alice entry 7: verifier affirmed: the evidence does not appraise: the verifier's "
        "result names another receipt_public_key"
    ]
    assert cose.notes == []  # it attests nothing


def test_the_relying_party_refuses_a_genuine_result_for_another_nonce(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The verifier (in this process) answers every appraisal after the
    first with the first one's EAR: genuine, affirming, for this enclave,
    signed by the verifier, but for the model creator's nonce. The creator
    releases the weights on its own fresh result; alice refuses the stale
    one and sends no prompt."""
    issued: list[str] = []

    def replaying(*args: Any) -> str:
        issued.append(issue_ear(*args))
        return issued[0]

    monkeypatch.setattr(verifier, "issue_ear", replaying)
    result = run_text(tee_text(), tmp_path / "run")
    assert result.failure is None, result.failure
    assert result_of(result, "model_creator", "release_weights")["released"] is True
    asked = result_of(result, "alice", "ask")
    assert len(issued) > 1 and asked["answers"] == [] and len(asked["refused"]) == 2, asked
    assert all(r.endswith("the result answers another nonce") for r in asked["refused"]), asked

"""The ledger's tree heads as C2SP tlog-checkpoints in signed notes
(evidence/signed_note.py): read by sigstore's own checkpoint parser and
verifier (an independent implementation), and every note not as the specs
say, or signed by another key or under another name, refused."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from evidence.signed_note import BadNote, key_id, open_note, sign_note, verifier_key
from parties.errors import ClaimFailed
from protocols.attestation.ledger import TransparencyLog, TreeHead

KEY = ed25519.Ed25519PrivateKey.generate()
NAME = "airlock/ledger/ledger"


def checkpoint(entries: int = 3) -> str:
    log = TransparencyLog("ledger", KEY.public_key(), KEY.sign)
    for i in range(entries):
        log.submit(f"statement {i}".encode(), 0)
    note: str = log.head().to_json()["checkpoint"]
    return note


def test_a_head_is_a_tlog_checkpoint_sigstore_reads_and_verifies() -> None:
    # sigstore's parser is private API, used here only as an outside reader
    from sigstore._internal.rekor.checkpoint import SignedCheckpoint
    from sigstore._internal.trust import Keyring, RekorKeyring
    from sigstore._utils import KeyID
    from sigstore_models.common import v1 as common

    note = checkpoint()
    text, signature = note.split("\n\n")
    root = TransparencyLog("x", KEY.public_key(), KEY.sign)
    for i in range(3):
        root.tree.append(f"statement {i}".encode())
    assert text == f"{NAME}\n3\n{base64.b64encode(root.tree.root()).decode()}"
    raw = KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    expected_id = hashlib.sha256(NAME.encode() + b"\n\x01" + raw).digest()[:4]
    assert signature.startswith(f"\u2014 {NAME} ") and key_id(NAME, KEY.public_key()) == expected_id
    assert verifier_key(NAME, KEY.public_key()).split("+")[1] == expected_id.hex()

    parsed = SignedCheckpoint.from_text(note)
    assert (parsed.checkpoint.origin, parsed.checkpoint.log_size) == (NAME, 3)
    assert parsed.checkpoint.log_hash == root.tree.root().hex()
    spki = KEY.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    details = common.PublicKeyDetails.PKIX_ED25519
    ring = RekorKeyring(
        Keyring([common.PublicKey(raw_bytes=base64.b64encode(spki), key_details=details)])
    )
    parsed.signed_note.verify(ring, KeyID(expected_id))  # raises if it does not verify
    other = ed25519.Ed25519PrivateKey.generate().public_key()
    other_spki = other.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    ring = RekorKeyring(
        Keyring([common.PublicKey(raw_bytes=base64.b64encode(other_spki), key_details=details)])
    )
    with pytest.raises(Exception, match="[Ss]ignature"):
        parsed.signed_note.verify(ring, KeyID(expected_id))


def test_a_note_from_another_key_or_name_is_refused() -> None:
    note = checkpoint()
    assert open_note(note, NAME, KEY.public_key()).startswith(NAME)
    with pytest.raises(BadNote, match="no signature of airlock/ledger/other"):
        open_note(note, "airlock/ledger/other", KEY.public_key())
    other = ed25519.Ed25519PrivateKey.generate()
    with pytest.raises(BadNote, match="no signature"):
        open_note(note, NAME, other.public_key())
    # a signature line under our name and key ID, made by another key
    forged = sign_note(f"{NAME}\n3\n{'A' * 43}=\n", NAME, KEY.public_key(), other.sign)
    with pytest.raises(BadNote, match="does not verify"):
        open_note(forged, NAME, KEY.public_key())


def test_other_signatures_are_ignored_and_ours_still_counts() -> None:
    note = checkpoint()
    witness = ed25519.Ed25519PrivateKey.generate()
    text = note.split("\n\n")[0] + "\n"
    cosigned = sign_note(text, "witness.example", witness.public_key(), witness.sign)
    both = note + cosigned.split("\n\n")[1]
    assert open_note(both, NAME, KEY.public_key()) == text
    assert open_note(both, "witness.example", witness.public_key()) == text


@pytest.mark.parametrize(
    ("note", "reason"),
    [
        ("", "not a signed note"),
        ("origin\n1\nroot\n", "not a signed note"),
        ("origin\n1\nroot\n\nno dash line\n", "em dash"),
        ("origin\n1\nroot\n\n\u2014 name !!!\n", "not base64"),
        ("origin\x07\n1\nroot\n\n\u2014 name AAAA\n", "control characters"),
        ("x" * (1 << 17) + "\n\n\u2014 name AAAA\n", "not a signed note"),
    ],
)
def test_what_is_not_a_signed_note_is_refused(note: str, reason: str) -> None:
    with pytest.raises(BadNote, match=reason):
        open_note(note, "name", KEY.public_key())


@pytest.mark.parametrize("name", ["", "a+b", "a b"])
def test_a_key_name_the_spec_forbids_is_refused(name: str) -> None:
    with pytest.raises(BadNote, match="key name"):
        sign_note("text\n", name, KEY.public_key(), KEY.sign)


@pytest.mark.parametrize(
    "change",
    [
        lambda n: n.replace("\n3\n", "\n03\n", 1),  # a leading zero
        lambda n: n.replace("airlock/ledger/", "rekor/", 1),  # not a ledger's origin
        lambda n: n.replace("\n3\n", "\n3\nextra\n", 1),  # a line the ledger never writes
        lambda n: n.replace("=\n", "\n", 1),  # a root that is not 32 bytes in base64
    ],
)
def test_a_checkpoint_not_as_the_ledger_writes_it_is_malformed(change: object) -> None:
    with pytest.raises(ClaimFailed, match="malformed tree head"):
        TreeHead.from_json({"checkpoint": change(checkpoint())}, "head")  # type: ignore[operator]

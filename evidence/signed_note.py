"""C2SP signed notes (c2sp.org/signed-note) with Ed25519 signatures, the
envelope of a transparency log's checkpoint (c2sp.org/tlog-checkpoint), so
that witnesses and clients built for those specs can read a ledger's heads.

A note is UTF-8 text ending in a newline; a blank line; then one line per
signature: an em dash, a space, the key name, a space, and base64 of the
4-byte key ID and the signature. An Ed25519 key's ID is the first four bytes
of SHA-256(name || 0x0A || 0x01 || public key); what is signed is the text,
its final newline included. Written here because no maintained Python
library implements the spec (sigstore's parser is private, Rekor-specific
and does not check key names); its tests check notes with it as well.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ED25519 = b"\x01"
DASH = "\u2014 "
MAX_NOTE = 1 << 16  # verifiers must accept 16 signatures; a ledger writes one


class BadNote(ValueError):
    """Not a signed note, or not signed by the key asked for."""


def _raw(key: ed25519.Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(name: str, key: ed25519.Ed25519PublicKey) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + _raw(key)).digest()[:4]


def verifier_key(name: str, key: ed25519.Ed25519PublicKey) -> str:
    """The key as note verifiers take it: `name+keyid+base64(0x01 || key)`."""
    return f"{name}+{key_id(name, key).hex()}+{base64.b64encode(ED25519 + _raw(key)).decode()}"


def _check_name(name: str) -> None:
    if not name or "+" in name or any(c.isspace() for c in name):
        raise BadNote(f"key name {name!r} is empty or holds '+' or a space")


def sign_note(
    text: str, name: str, key: ed25519.Ed25519PublicKey, sign: Callable[[bytes], bytes]
) -> str:
    """`text` (ending in a newline) signed as a note by the key `name`."""
    _check_name(name)
    if not text.endswith("\n") or "\n\n" in text:
        raise BadNote("a note's text ends in one newline and holds no blank line")
    signature = base64.b64encode(key_id(name, key) + sign(text.encode())).decode()
    return f"{text}\n{DASH}{name} {signature}\n"


def open_note(note: str, name: str, key: ed25519.Ed25519PublicKey) -> str:
    """The text of `note` if the key `name` signed it (other signatures are
    ignored, as the spec says). Raises BadNote."""
    if len(note) > MAX_NOTE or not note.endswith("\n"):
        raise BadNote("not a signed note")
    if any(c < " " and c != "\n" for c in note):
        raise BadNote("a note holds no control characters")
    text, blank, signatures = note.rpartition("\n\n")
    if not blank or not text:
        raise BadNote("not a signed note")
    text += "\n"
    wanted = key_id(name, key)
    for line in signatures.removesuffix("\n").split("\n"):
        if not line.startswith(DASH):
            raise BadNote("a signature line begins with an em dash")
        signer, _, encoded = line.removeprefix(DASH).partition(" ")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            raise BadNote("a signature is not base64") from None
        if signer != name or raw[:4] != wanted:
            continue  # another key's signature: not ours to check
        try:
            key.verify(raw[4:], text.encode())
        except InvalidSignature:
            raise BadNote(f"the signature of {name} does not verify") from None
        return text
    raise BadNote(f"no signature of {name} with key ID {wanted.hex()}")

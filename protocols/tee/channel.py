"""The end-to-end channel from the end user to the enclave: HPKE (RFC 9180,
base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM) via
`pyhpke`, to the enclave's key from a positive attestation result.

The request is `enc || ciphertext`. The answer is sealed under a key the two
ends export from the same HPKE context (RFC 9180, section 5.3), so only the
sender of the request can read it. The deployer in between relays bytes it
cannot open. The associated data binds each message to its session.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pyhpke import AEADId, CipherSuite, KDFId, KEMId, KEMKeyPair
from pyhpke.context_interface import ContextInterface

from parties.errors import AirlockError

SUITE = CipherSuite.new(KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.AES128_GCM)
INFO = b"airlock tee prompt v1"
ENC_SIZE = 32


class ChannelError(AirlockError):
    """A sealed message that does not open."""


def new_key_pair() -> KEMKeyPair:
    return SUITE.kem.derive_key_pair(os.urandom(32))


def public_bytes(pair: KEMKeyPair) -> bytes:
    data: bytes = pair.public_key.to_public_bytes()
    return data


def seal_request(
    enclave_public: bytes, message: bytes, aad: bytes
) -> tuple[bytes, ContextInterface]:
    """The sealed request, and the context to open the answer with."""
    public = SUITE.kem.deserialize_public_key(enclave_public)
    enc, context = SUITE.create_sender_context(public, info=INFO)
    return enc + context.seal(message, aad=aad), context


def open_request(pair: KEMKeyPair, sealed: bytes, aad: bytes) -> tuple[bytes, ContextInterface]:
    if len(sealed) <= ENC_SIZE:
        raise ChannelError("sealed request too short")
    try:
        context = SUITE.create_recipient_context(sealed[:ENC_SIZE], pair.private_key, info=INFO)
        return context.open(sealed[ENC_SIZE:], aad=aad), context
    except Exception:  # pyhpke raises its own errors for bad points and tags
        raise ChannelError("the sealed request does not open") from None


def _answer_key(context: ContextInterface) -> AESGCM:
    return AESGCM(context.export(b"airlock tee answer", 16))


def seal_answer(context: ContextInterface, message: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(12)
    return nonce + _answer_key(context).encrypt(nonce, message, aad)


def open_answer(context: ContextInterface, sealed: bytes, aad: bytes) -> bytes:
    try:
        return _answer_key(context).decrypt(sealed[:12], sealed[12:], aad)
    except (InvalidTag, ValueError):
        raise ChannelError("the sealed answer does not open") from None

"""The sealed channels into the enclave: HPKE (RFC 9180, base mode,
DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-128-GCM) via `pyhpke`, to the
enclave's key from an affirming attestation result.

Two uses, each with its own HPKE `info`, so that a message sealed for one
never opens as the other:

- the end user's prompt (`seal_request`): `enc || ciphertext`. The answer
  is sealed under a key the two ends export from the same HPKE context
  (RFC 9180, section 5.3), so only the sender of the request can read it.
  Both are padded inside the seal to the scenario's size buckets
  (padding.py), so the host sees only bucket sizes;
- the model creator's weights (`seal_weights`): key release, `enc ||
  ciphertext`, one way.

The deployer in between relays bytes it cannot open. The associated data
binds each message to its session (a user's request; an enclave and the
model root it was booted with).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pyhpke import AEADId, CipherSuite, KDFId, KEMId, KEMKeyPair
from pyhpke.context_interface import ContextInterface

from parties.errors import AirlockError
from protocols.tee.padding import ANSWER_BUCKETS, REQUEST_BUCKETS, pad, unpad

SUITE = CipherSuite.new(KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.AES128_GCM)
INFO = b"airlock tee prompt v1"
WEIGHTS_INFO = b"airlock tee weights v1"
ENC_SIZE = 32


class ChannelError(AirlockError):
    """A sealed message that does not open."""


def new_key_pair() -> KEMKeyPair:
    return SUITE.kem.derive_key_pair(os.urandom(32))


def public_bytes(pair: KEMKeyPair) -> bytes:
    data: bytes = pair.public_key.to_public_bytes()
    return data


def _seal(
    enclave_public: bytes, message: bytes, aad: bytes, info: bytes
) -> tuple[bytes, ContextInterface]:
    public = SUITE.kem.deserialize_public_key(enclave_public)
    enc, context = SUITE.create_sender_context(public, info=info)
    return enc + context.seal(message, aad=aad), context


def _open(
    pair: KEMKeyPair, sealed: bytes, aad: bytes, info: bytes, what: str
) -> tuple[bytes, ContextInterface]:
    if len(sealed) <= ENC_SIZE:
        raise ChannelError(f"sealed {what} too short")
    try:
        context = SUITE.create_recipient_context(sealed[:ENC_SIZE], pair.private_key, info=info)
        return context.open(sealed[ENC_SIZE:], aad=aad), context
    except Exception:  # pyhpke raises its own errors for bad points and tags
        raise ChannelError(f"the sealed {what} does not open") from None


def seal_request(
    enclave_public: bytes,
    message: bytes,
    aad: bytes,
    buckets: Sequence[int] = REQUEST_BUCKETS,
) -> tuple[bytes, ContextInterface]:
    """The request, padded to its bucket and sealed; and the context to
    open the answer with. PaddingError if no bucket holds it."""
    return _seal(enclave_public, pad(message, buckets, "request"), aad, INFO)


def open_request(
    pair: KEMKeyPair, sealed: bytes, aad: bytes, buckets: Sequence[int] = REQUEST_BUCKETS
) -> tuple[bytes, ContextInterface]:
    """The request inside `sealed`, its padding checked and stripped."""
    padded, context = _open(pair, sealed, aad, INFO, "request")
    return unpad(padded, buckets, "request"), context


def seal_weights(enclave_public: bytes, weights: bytes, aad: bytes) -> bytes:
    """Key release: `weights` sealed to the attested enclave's HPKE key
    (not padded: the weights' size is the model's, which the model root
    and the reference values publish anyway)."""
    return _seal(enclave_public, weights, aad, WEIGHTS_INFO)[0]


def open_weights(pair: KEMKeyPair, sealed: bytes, aad: bytes) -> bytes:
    return _open(pair, sealed, aad, WEIGHTS_INFO, "weights release")[0]


def _answer_key(context: ContextInterface) -> AESGCM:
    return AESGCM(context.export(b"airlock tee answer", 16))


def seal_answer(
    context: ContextInterface, message: bytes, aad: bytes, buckets: Sequence[int] = ANSWER_BUCKETS
) -> bytes:
    """The answer, padded to its bucket and sealed. PaddingError if no bucket holds it."""
    padded = pad(message, buckets, "answer")
    nonce = os.urandom(12)
    return nonce + _answer_key(context).encrypt(nonce, padded, aad)


def open_answer(
    context: ContextInterface, sealed: bytes, aad: bytes, buckets: Sequence[int] = ANSWER_BUCKETS
) -> bytes:
    """The answer inside `sealed`, its padding checked and stripped."""
    try:
        padded = _answer_key(context).decrypt(sealed[:12], sealed[12:], aad)
    except (InvalidTag, ValueError):
        raise ChannelError("the sealed answer does not open") from None
    return unpad(padded, buckets, "answer")

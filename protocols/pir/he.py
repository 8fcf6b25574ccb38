"""Ranking under homomorphic encryption (CKKS, with TenSEAL), before the
top documents are fetched by PIR (as Tiptoe ranks, then fetches).

The end user makes a CKKS key pair and sends the database the public
context with its Galois keys (evaluation keys: public material), once. For
each question it encrypts the question's embedding; the database multiplies
it by the embeddings of *every* document (`CKKSVector.matmul`, the diagonal
method), so it never learns which documents matter, and answers with the
encrypted scores, which only the end user can decrypt.

Parameters: N = 4096 and a coefficient modulus of 38 + 32 + 39 = 109 bits,
the most the Homomorphic Encryption Security Standard
(HomomorphicEncryption.org, Albrecht et al., 2018; SEAL's `hestdparms.h`)
allows N = 4096 for 128-bit classical security with a ternary secret; SEAL
itself refuses more. The scale is 2^32: one plaintext multiplication, and
scores within about 1e-5 of the plaintext inner products (docs/pir.md);
the first prime leaves room for scores up to 2^5 in magnitude, and cosines
of unit vectors are at most 1. N = 8192 (160 bits, scale 2^40) is 25 times
more precise, but its query, scores and keys are 2.8 times the bytes and
its product 4 times the time. A ciphertext holds N/2 = 2048 slots and the
query is copied across them, so one product scores at most 2048 - 384 + 1
documents; a larger corpus is scored in chunks, one answer ciphertext
each.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import tenseal as ts
import tenseal.sealapi  # noqa: F401  (registers SEAL's types: the modulus of a context is read)

from parties.errors import BadQuery
from protocols.pir.embed import DIMENSIONS

POLY_MODULUS_DEGREE = 4096
COEFF_MOD_BIT_SIZES = (38, 32, 39)
SCALE = 2.0**32
SLOTS = POLY_MODULUS_DEGREE // 2
# the documents one product scores: the query's copies must not wrap into them
CHUNK = SLOTS - DIMENSIONS + 1
# two computations of one question's scores (two replicas', or a decrypted
# score and its plaintext inner product) differ by at most this: CKKS's own
# error here is about 5e-6 (docs/pir.md), 20 times less. A score further
# from its counterpart was not computed as the protocol says (steered).
SCORE_TOLERANCE = 1e-4
# a public context is mostly its Galois keys (about 6.2 MiB at these
# parameters); without them it still holds the public key (about 130 KB)
MIN_KEYS_BYTES, MAX_KEYS_BYTES = 64 << 10, 16 << 20


class RankingKeys:
    """The end user's CKKS keys; the secret key never leaves this object."""

    def __init__(self) -> None:
        self._context = ts.context(
            ts.SCHEME_TYPE.CKKS,
            poly_modulus_degree=POLY_MODULUS_DEGREE,
            coeff_mod_bit_sizes=list(COEFF_MOD_BIT_SIZES),
        )
        self._context.global_scale = SCALE
        self._context.generate_galois_keys()
        # the public context with the Galois keys: what a database needs to score
        self.evaluation_keys = self._context.serialize(
            save_public_key=True, save_secret_key=False, save_galois_keys=True
        )
        self.evaluation_keys_sha256 = hashlib.sha256(self.evaluation_keys).hexdigest()

    def encrypt(self, query: np.ndarray) -> bytes:
        return ts.ckks_vector(self._context, query.astype(np.float64).tolist()).serialize()

    def scores(self, chunks: Sequence[bytes], documents: int) -> np.ndarray:
        """The decrypted scores of `documents` documents, from their chunks."""
        if len(chunks) != -(-documents // CHUNK):
            raise BadQuery(f"{documents} documents are scored in {-(-documents // CHUNK)} chunks")
        decrypted: list[float] = []
        for i, chunk in enumerate(chunks):
            wanted = min(CHUNK, documents - i * CHUNK)
            try:
                values = ts.ckks_vector_from(self._context, chunk).decrypt()
            except (ValueError, RuntimeError, TypeError):
                raise BadQuery(
                    "the scores are not CKKS ciphertexts under this user's key"
                ) from None
            if len(values) != wanted:
                raise BadQuery(f"a chunk of scores holds {len(values)} scores, not {wanted}")
            decrypted += values
        return np.asarray(decrypted, dtype=np.float64)


@dataclass(frozen=True)
class EvaluationKeys:
    """A user's evaluation keys, loaded, and the digest of their bytes."""

    context: ts.Context
    sha256: str


def public_context(blob: bytes) -> EvaluationKeys:
    """A user's evaluation keys as a database loads them; BadQuery unless
    they are a public CKKS context with these parameters and Galois keys."""
    try:
        context = ts.context_from(blob)
    except (ValueError, RuntimeError, TypeError):
        raise BadQuery("the evaluation keys are not a TenSEAL context") from None
    if context.is_private():
        raise BadQuery("the evaluation keys hold a secret key: keep it, send the public context")
    parms = context.seal_context().data.key_context_data().parms()
    bits = tuple(m.bit_count() for m in parms.coeff_modulus())
    if (
        parms.scheme() != ts.SCHEME_TYPE.CKKS.value
        or parms.poly_modulus_degree() != POLY_MODULUS_DEGREE
        or bits != COEFF_MOD_BIT_SIZES
        or context.global_scale != SCALE
    ):
        raise BadQuery(
            f"the evaluation keys are for CKKS N={parms.poly_modulus_degree()} modulus {bits}, "
            f"not N={POLY_MODULUS_DEGREE} modulus {COEFF_MOD_BIT_SIZES} at scale 2^32"
        )
    if not (context.has_galois_keys() and context.has_public_key()):
        raise BadQuery("the evaluation keys lack the Galois keys or the public key")
    return EvaluationKeys(context, hashlib.sha256(blob).hexdigest())


def encrypted_query(keys: EvaluationKeys, made_under: str, body: bytes) -> ts.CKKSVector:
    """The encrypted question: one fresh ciphertext of DIMENSIONS values
    under `keys`, which its sender says it was `made_under` (their digest);
    BadQuery otherwise. (A ciphertext under other keys of the same
    parameters cannot be told from its bytes: it only gets its sender
    garbage.)"""
    if made_under != keys.sha256:
        raise BadQuery("the query was made under other evaluation keys than the ones held")
    try:
        vector = ts.ckks_vector_from(keys.context, body)
        ciphertexts = vector.ciphertext()
    except (ValueError, RuntimeError, TypeError):
        raise BadQuery("the query is not a CKKS vector under this user's evaluation keys") from None
    if vector.size() != DIMENSIONS or len(ciphertexts) != 1:
        raise BadQuery(f"the query holds {vector.size()} values, not one vector of {DIMENSIONS}")
    fresh = ciphertexts[0]
    if fresh.size() != 2 or fresh.scale != SCALE or fresh.coeff_modulus_size() != 2:
        raise BadQuery("the query is not a fresh ciphertext at scale 2^32")
    return vector


def products(query: ts.CKKSVector, embeddings: np.ndarray) -> list[ts.CKKSVector]:
    """The encrypted inner products of the query with every row of
    `embeddings`, CHUNK rows a ciphertext."""
    matrix = embeddings.astype(np.float64)
    return [query.matmul(matrix[start : start + CHUNK].T) for start in range(0, len(matrix), CHUNK)]


def score(query: ts.CKKSVector, embeddings: np.ndarray) -> list[bytes]:
    """`products`, serialized: what a database answers."""
    return [vector.serialize() for vector in products(query, embeddings)]

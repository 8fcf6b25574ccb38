"""The committed model as files any verifier can check, signed with OpenSSF
Model Signing (the `model-signing` package, key-based, offline).

The model creator writes its committed weights as `model/model.safetensors`
and its model card as `model/model_card.json`, and signs the directory with
a fresh ECDSA P-256 key (the package signs with ECDSA only; party keys are
Ed25519). The bundle (`model.sig`, a Sigstore bundle whose DSSE payload is an
in-toto statement) and the public key (`model_creator.pub.pem`) lie beside
the directory. The model statement the creator signs with its party key and
logs names both: the SHA-256 of the public key's PEM, and the bundle's model
digest (its subject: SHA-256 over the per-file SHA-256 digests in path
order). So `model_signing verify key` checks the files, and the logged
statement says whose key signed them and which model that is.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from safetensors.numpy import save as save_arrays

from evidence.weights import Tensor
from parties.errors import AirlockError

MODEL_DIR, BUNDLE, PUBLIC_KEY = "model", "model.sig", "model_creator.pub.pem"
WEIGHTS, CARD = "model.safetensors", "model_card.json"
NUMPY = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


@dataclass(frozen=True)
class SignedModel:
    """What the model statement names of the signed files."""

    files: dict[str, bytes]  # relative path -> bytes: the model directory, bundle, key
    public_key_sha256: str
    model_digest: str

    def predicate(self) -> dict[str, str]:
        return {
            "format": "OpenSSF Model Signing v1.0 (model-signing 1.1.1), ECDSA P-256",
            "public_key_sha256": self.public_key_sha256,
            "model_sha256": self.model_digest,
        }


def _safetensors(tensors: Mapping[str, Tensor]) -> bytes:
    arrays = {}
    for name, tensor in tensors.items():
        dtype = NUMPY.get(tensor.dtype)
        if dtype is None:
            raise AirlockError(f"{name}: {tensor.dtype} weights cannot be written as numpy")
        arrays[name] = np.frombuffer(tensor.data, dtype=dtype).reshape(tensor.shape)
    return save_arrays(arrays)


def sign_model(tensors: Mapping[str, Tensor], card: Mapping[str, Any]) -> SignedModel:
    """The model's files, signed with a fresh P-256 key that is then thrown
    away (its public half is what the logged statement names)."""
    from model_signing import hashing, signing  # a second of imports: only when signing

    key = ec.generate_private_key(ec.SECP256R1())  # from the OS's CSPRNG
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        model = root / MODEL_DIR
        model.mkdir()
        (model / WEIGHTS).write_bytes(_safetensors(tensors))
        (model / CARD).write_text(json.dumps(card, indent=2, sort_keys=True))
        private = root / "signing.pem"
        # the package reads keys from files only: this one lives for the signature
        descriptor = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        signing.Config().use_elliptic_key_signer(private_key=private).set_hashing_config(
            hashing.Config().set_ignored_paths(paths=[])
        ).sign(model, root / BUNDLE)
        private.unlink()
        files = {
            f"{MODEL_DIR}/{WEIGHTS}": (model / WEIGHTS).read_bytes(),
            f"{MODEL_DIR}/{CARD}": (model / CARD).read_bytes(),
            BUNDLE: (root / BUNDLE).read_bytes(),
            PUBLIC_KEY: public_pem,
        }
    return SignedModel(files, hashlib.sha256(public_pem).hexdigest(), bundle_digest(files[BUNDLE]))


def bundle_digest(bundle: bytes) -> str:
    """The model digest a bundle's statement names (its one subject)."""
    try:
        envelope = json.loads(bundle)["dsseEnvelope"]
        statement = json.loads(base64.b64decode(envelope["payload"]))
        return str(statement["subject"][0]["digest"]["sha256"])
    except (KeyError, IndexError, TypeError, ValueError):
        raise AirlockError("the model signature is not a model-signing bundle") from None


def verify_signed_model(run: Path, named: Mapping[str, Any]) -> None:
    """AirlockError unless the run's model files verify with `model_signing`
    under the public key the logged statement names (`named`: its
    `signed_model`), and are the model it names."""
    from model_signing import verifying

    key, bundle = run / PUBLIC_KEY, run / BUNDLE
    if not (run / MODEL_DIR).is_dir() or not key.is_file() or not bundle.is_file():
        raise AirlockError(
            f"the signed model files ({MODEL_DIR}/, {BUNDLE}, {PUBLIC_KEY}) are missing"
        )
    if hashlib.sha256(key.read_bytes()).hexdigest() != named.get("public_key_sha256"):
        raise AirlockError(f"{PUBLIC_KEY} is not the key the model statement names")
    if bundle_digest(bundle.read_bytes()) != named.get("model_sha256"):
        raise AirlockError(f"{BUNDLE} signs another model than the model statement names")
    try:
        verifying.Config().use_elliptic_key_verifier(public_key=key).verify(run / MODEL_DIR, bundle)
    except Exception as error:  # the package raises ValueError and cryptography's own
        raise AirlockError(f"the model files do not verify: {error}") from None

"""Model commitments and inference receipts: a swapped model is caught."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from securesystemslib.signer import CryptoSigner

from evidence.receipts import check_receipt, issue_receipt
from evidence.statements import open_statement, sign_statement
from evidence.weights import Tensor, weights_root
from parties.errors import ClaimFailed
from protocols.attestation.model import (
    DatasetReference,
    ModelCommitment,
    Server,
    model_predicate,
)
from protocols.attestation.rules import MODEL_PREDICATE

CREATOR = ed25519.Ed25519PrivateKey.generate()
SERVER = ed25519.Ed25519PrivateKey.generate()


def weights(width: int) -> dict[str, Tensor]:
    return {
        "embed.weight": Tensor("F32", (16, width), os.urandom(16 * width * 4)),
        "head.bias": Tensor("F32", (16,), os.urandom(64)),
    }


MODEL = weights(8)
SMALLER = weights(4)


def committed() -> ModelCommitment:
    predicate = model_predicate(
        "airlock-tiny",
        MODEL,
        [DatasetReference("train:h1", "cd" * 32)],
        {"protocol": "federated", "epsilon": 3.0, "delta": 1e-5},
        [Server.of("deployer", SERVER.public_key())],
    )
    envelope = sign_statement(
        "weights:model_creator",
        weights_root(MODEL).hex(),
        MODEL_PREDICATE,
        predicate,
        CryptoSigner(CREATOR),
    )
    opened = open_statement(envelope, CREATOR.public_key(), MODEL_PREDICATE, "model commitment")
    return ModelCommitment.from_statement(opened, "model commitment")


def test_commitment_binds_weights_datasets_and_training() -> None:
    commitment = committed()
    assert commitment.root == weights_root(MODEL)
    assert commitment.parameter_count == 16 * 8 + 16
    assert commitment.datasets == (DatasetReference("train:h1", "cd" * 32),)
    assert commitment.training["epsilon"] == 3.0
    assert commitment.receipt_key("deployer", "r") == SERVER.public_key()
    with pytest.raises(ClaimFailed, match="shadow is not a server the commitment"):
        commitment.receipt_key("shadow", "r")
    commitment.check_weights(MODEL, "weights")
    with pytest.raises(ClaimFailed, match="not the committed model"):
        commitment.check_weights(SMALLER, "weights")


def test_weights_root_depends_on_every_byte_name_and_shape() -> None:
    root = weights_root(MODEL)
    flipped = dict(MODEL)
    data = bytearray(MODEL["head.bias"].data)
    data[0] ^= 1
    flipped["head.bias"] = Tensor("F32", (16,), bytes(data))
    renamed = {("lm_" + k): v for k, v in MODEL.items()}
    reshaped = {**MODEL, "embed.weight": Tensor("F32", (8, 16), MODEL["embed.weight"].data)}
    assert len({root, weights_root(flipped), weights_root(renamed), weights_root(reshaped)}) == 4


def test_a_tensor_whose_bytes_do_not_fit_its_shape_is_refused() -> None:
    with pytest.raises(ValueError, match="do not hold"):
        Tensor("F32", (3,), b"\x00" * 8)


def _receipt(
    model: dict[str, Tensor], nonce: bytes, key: ed25519.Ed25519PrivateKey = SERVER
) -> dict:
    return issue_receipt(
        weights_root(model), b"prompt", b"answer", nonce, "deployer", CryptoSigner(key)
    )


def test_receipt_from_the_committed_model_is_accepted() -> None:
    receipt = check_receipt(
        _receipt(MODEL, b"n1"),
        SERVER.public_key(),
        model_root=committed().root,
        prompt=b"prompt",
        output=b"answer",
        nonce=b"n1",
    )
    assert receipt.server == "deployer"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: _receipt(SMALLER, b"n1"), "not the committed"),  # a swapped (smaller) model
        (lambda: _receipt(MODEL, b"old"), "nonce differs"),  # a replayed receipt
        (
            lambda: _receipt(MODEL, b"n1", ed25519.Ed25519PrivateKey.generate()),
            "signature does not verify",
        ),
        (
            lambda: issue_receipt(
                weights_root(MODEL), b"prompt", b"other", b"n1", "deployer", CryptoSigner(SERVER)
            ),
            "another input or output",
        ),
        (lambda: {"payload": 1}, "malformed DSSE envelope"),
    ],
)
def test_the_end_user_rejects_bad_receipts(make, message: str) -> None:
    with pytest.raises(ClaimFailed, match=message) as caught:
        check_receipt(
            make(),
            SERVER.public_key(),
            model_root=committed().root,
            prompt=b"prompt",
            output=b"answer",
            nonce=b"n1",
        )
    assert caught.value.claim == "inference receipt"

"""Data attestations: membership and exclusion proofs, honest and forged."""

from __future__ import annotations

import dataclasses

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from securesystemslib.signer import CryptoSigner

from evidence.statements import open_statement, sign_statement
from parties.errors import ClaimFailed, ConfigError
from protocols.attestation.dataset import (
    Commitment,
    Dataset,
    ExclusionProof,
    MembershipProof,
    verify_exclusion,
    verify_membership,
)
from protocols.attestation.rules import DATASET_PREDICATE

SCHEMA = ("source", "text")
SOURCES = [
    "bmj.com/a1",
    "cdc.gov/flu",
    "nejm.org/x9",
    "who.int/asthma",
    "who.int/diabetes",
    "zeit.de/z",
]
RECORDS = [{"source": s, "text": f"note from {s}"} for s in reversed(SOURCES)]
KEY = ed25519.Ed25519PrivateKey.generate()


def commit(records: list[dict]) -> tuple[Dataset, Commitment]:
    """The contributor commits; the verifier opens the signed statement."""
    dataset = Dataset("train:h1", records, SCHEMA, "source")
    envelope = sign_statement(
        dataset.name, dataset.root.hex(), DATASET_PREDICATE, dataset.predicate(), CryptoSigner(KEY)
    )
    opened = open_statement(envelope, KEY.public_key(), DATASET_PREDICATE, "dataset train:h1")
    return dataset, Commitment.from_statement(opened, "dataset train:h1")


def test_records_are_sorted_by_the_declared_key() -> None:
    dataset, commitment = commit(RECORDS)
    assert dataset.keys == SOURCES
    assert (commitment.size, commitment.sort_key, commitment.schema) == (6, "source", SCHEMA)


@pytest.mark.parametrize("record", RECORDS)
def test_every_record_proves_membership(record: dict) -> None:
    dataset, commitment = commit(RECORDS)
    proof = MembershipProof.from_json(dataset.prove_membership(record).to_json(), "m")
    verify_membership(commitment, record, proof)


def test_a_tampered_record_fails_membership() -> None:
    dataset, commitment = commit(RECORDS)
    proof = dataset.prove_membership(RECORDS[0])
    with pytest.raises(ClaimFailed, match="does not match the proved leaf"):
        verify_membership(commitment, {**RECORDS[0], "text": "edited"}, proof)
    forged_leaf = dataclasses.replace(proof, leaf=proof.leaf[:-1] + bytes([proof.leaf[-1] ^ 1]))
    with pytest.raises(ClaimFailed):
        verify_membership(commitment, RECORDS[0], forged_leaf)


def test_a_proof_from_another_dataset_fails() -> None:
    other, _ = commit(RECORDS[:3])
    _, commitment = commit(RECORDS)
    with pytest.raises(ClaimFailed):
        verify_membership(commitment, RECORDS[0], other.prove_membership(RECORDS[0]))


@pytest.mark.parametrize(
    "prefix", ["nytimes.com", "aaa.org", "zzz.net", "who.int/cancer", "cdc.gov/flux"]
)
def test_an_absent_prefix_proves_exclusion(prefix: str) -> None:
    dataset, commitment = commit(RECORDS)
    proof = ExclusionProof.from_json(dataset.prove_exclusion(prefix).to_json(), "e")
    verify_exclusion(commitment, proof)


def test_a_present_domain_cannot_be_excluded_and_forgeries_fail() -> None:
    records = [*RECORDS, {"source": "nytimes.com/2023/ai", "text": "NYT article"}]
    dataset, commitment = commit(records)
    with pytest.raises(ClaimFailed, match="has key 'nytimes.com/2023/ai'"):
        dataset.prove_exclusion("nytimes.com")
    # forgery 1: bracket with non-adjacent neighbours, skipping the NYT record
    index = dataset.keys.index("nytimes.com/2023/ai")
    skipping = ExclusionProof("nytimes.com", dataset._proof(index - 1), dataset._proof(index + 1))
    with pytest.raises(ClaimFailed, match="not adjacent"):
        verify_exclusion(commitment, skipping)
    # forgery 2: use the NYT record itself as a neighbour
    including = ExclusionProof("nytimes.com", dataset._proof(index - 1), dataset._proof(index))
    with pytest.raises(ClaimFailed, match="right neighbour does not sort after"):
        verify_exclusion(commitment, including)
    # forgery 3: claim the prefix lies past the end with only a left neighbour
    past_end = ExclusionProof("nytimes.com", dataset._proof(index - 1), None)
    with pytest.raises(ClaimFailed, match="not the last record"):
        verify_exclusion(commitment, past_end)
    # forgery 4: an honest proof against a dataset without NYT, shown for this one
    clean, _ = commit(RECORDS)
    with pytest.raises(ClaimFailed):
        verify_exclusion(commitment, clean.prove_exclusion("nytimes.com"))


def test_malformed_proofs_are_clear_errors() -> None:
    for data in ({}, {"index": "x"}, None, {"index": 0, "size": 1, "leaf": 3, "path": []}):
        with pytest.raises(ClaimFailed, match="malformed"):
            MembershipProof.from_json(data, "m")
    with pytest.raises(ClaimFailed, match="malformed"):
        ExclusionProof.from_json({"prefix": "x"}, "e")


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([{"source": "a"}], "has fields"),
        ([{"source": "a", "text": ""}, {"source": "a", "text": "b"}], "share the key"),
        ([{"source": 3, "text": ""}], "must be a string"),
    ],
)
def test_bad_datasets_are_refused(records: list[dict], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Dataset("train:h1", records, SCHEMA, "source")

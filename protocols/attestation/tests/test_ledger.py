"""The transparency log: answers verify, also under concurrent submissions;
a rewritten history and forged heads are caught."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from parties.errors import ClaimFailed
from protocols.attestation.ledger import TransparencyLog, TreeHead, check_answer

KEY = ed25519.Ed25519PrivateKey.generate()


def entry(i: int) -> bytes:
    return f"statement {i}".encode()


def test_concurrent_submissions_each_get_a_consistent_answer() -> None:
    log = TransparencyLog("ledger", KEY.public_key(), KEY.sign)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: (i, log.submit(entry(i), 0)), range(200)))
    for i, answer in answers:
        head = check_answer(answer, KEY.public_key(), entry(i), None, f"entry {i}")
        assert head.size >= answer["index"] + 1
    assert sorted(a["index"] for _, a in answers) == list(range(200))


def test_heads_chain_by_consistency_and_a_rewrite_breaks_the_chain() -> None:
    log = TransparencyLog("ledger", KEY.public_key(), KEY.sign)
    first = check_answer(log.submit(entry(0), 0), KEY.public_key(), entry(0), None, "first")
    for i in range(1, 5):
        log.submit(entry(i), 0)
    later = check_answer(log.answer(None, first.size), KEY.public_key(), None, first, "later")
    assert later.size == 5
    log.rewrite(0, b"forged")
    with pytest.raises(ClaimFailed, match="does not link"):
        check_answer(log.answer(None, first.size), KEY.public_key(), None, first, "after rewrite")


def test_a_head_signed_by_another_key_or_altered_is_refused() -> None:
    log = TransparencyLog("ledger", KEY.public_key(), ed25519.Ed25519PrivateKey.generate().sign)
    with pytest.raises(ClaimFailed, match="not signed by ledger"):
        check_answer(log.submit(entry(0), 0), KEY.public_key(), entry(0), None, "head")
    honest = TransparencyLog("ledger", KEY.public_key(), KEY.sign)
    answer = honest.submit(entry(0), 0)
    answer["head"]["checkpoint"] = answer["head"]["checkpoint"].replace("\n1\n", "\n2\n", 1)
    with pytest.raises(ClaimFailed, match="signature of airlock/ledger/ledger does not verify"):
        check_answer(answer, KEY.public_key(), entry(0), None, "head")
    with pytest.raises(ClaimFailed, match="malformed"):
        TreeHead.from_json({"size": "x"}, "head")


def test_asking_for_consistency_with_a_size_never_issued_is_an_error() -> None:
    log = TransparencyLog("ledger", KEY.public_key(), KEY.sign)
    log.submit(entry(0), 0)
    with pytest.raises(ClaimFailed, match="no head of size 7"):
        log.answer(None, 7)

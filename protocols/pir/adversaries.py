"""Malicious databases of the pir protocol: each tries to learn which
cluster a client wants, and roles.py applies it where the honest database
would declare its batch or send its answers.

small_batch: declares, and answers, batches of its smallest cluster's size.
    A client that padded to the declared batch would send exactly as many
    queries as the wanted cluster has records: the batch's size would name
    the cluster.
corrupt_first_answer, corrupt_last_answer: corrupt the answer at the first
    or last position of every batch (selective failure). A client that
    checked only the wanted cluster's records, the first `span` of a batch,
    would fail on the last position exactly when the wanted cluster is the
    largest: its failure or success would tell the database the cluster's
    size.
"""

from __future__ import annotations

from protocols.pir.index import Index

CORRUPTED_POSITION = {"corrupt_first_answer": 0, "corrupt_last_answer": -1}
DATABASE_ADVERSARIES = ("small_batch", *CORRUPTED_POSITION)


def declared_batch(adversary: str | None, index: Index) -> int:
    """The batch the database declares in its catalog and answers."""
    if adversary == "small_batch":
        return min(b - a for a, b in zip(index.starts, index.starts[1:], strict=False))
    return index.largest_cluster


def served_answers(adversary: str | None, answers: list[bytes]) -> list[bytes]:
    """The answers the database sends: one of them corrupted by a
    corrupt_*_answer adversary (the top bit of its fourth byte flipped,
    which changes a SimplePIR digit by p/2 and an XOR record's length)."""
    position = CORRUPTED_POSITION.get(adversary or "")
    if position is None:
        return answers
    served = list(answers)
    corrupted = bytearray(served[position])
    corrupted[3] ^= 0x80
    served[position] = bytes(corrupted)
    return served

"""Documents as fixed-size records: a 4-byte big-endian length, the UTF-8
text, an 8-byte tag (SHA-256 of the text, truncated), zero padding. Every PIR
answer is one whole record, so a database answers every query with the same
number of bytes; the tag makes a wrongly decoded record (a stale hint, a
faulty answer) an error rather than a wrong document."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from parties.errors import BadQuery, ConfigError

LENGTH_BYTES = 4
TAG_BYTES = 8


def _tag(text: bytes) -> bytes:
    return hashlib.sha256(b"airlock-pir-record\x00" + text).digest()[:TAG_BYTES]


def pack(items: Sequence[str | bytes], record_bytes: int | None = None) -> np.ndarray:
    """An (N, record_bytes) uint8 array; record_bytes a multiple of 8 (for
    uint64 XOR), by default the smallest that fits the longest item. Text
    is stored as UTF-8."""
    encoded = [item.encode() if isinstance(item, str) else item for item in items]
    if not encoded:
        raise ConfigError("a PIR database needs at least one document")
    needed = LENGTH_BYTES + max(len(e) for e in encoded) + TAG_BYTES
    size = record_bytes if record_bytes is not None else -(-needed // 8) * 8
    if size < needed or size % 8:
        raise ConfigError(f"record size {size} is not a multiple of 8 holding {needed} bytes")
    records = np.zeros((len(encoded), size), dtype=np.uint8)
    for index, data in enumerate(encoded):
        row = len(data).to_bytes(LENGTH_BYTES, "big") + data + _tag(data)
        records[index, : len(row)] = np.frombuffer(row, dtype=np.uint8)
    return records


def unpack(record: np.ndarray) -> str:
    """The text in one record; a record that is not one is an error."""
    return unpack_bytes(record).decode()


def unpack_bytes(record: np.ndarray) -> bytes:
    """The bytes in one record; a record that is not one is an error."""
    raw = record.astype(np.uint8).tobytes()
    length = int.from_bytes(raw[:LENGTH_BYTES], "big")
    end = LENGTH_BYTES + length
    if end + TAG_BYTES > len(raw) or raw[end : end + TAG_BYTES] != _tag(raw[LENGTH_BYTES:end]):
        raise BadQuery("the retrieved record is not a document (wrong answer or stale hint)")
    return raw[LENGTH_BYTES:end]


def version(records: np.ndarray) -> str:
    """Names one state of the database; queries made for another are refused."""
    return hashlib.sha256(records.tobytes() + str(records.shape).encode()).hexdigest()

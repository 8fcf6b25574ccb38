"""Documents as fixed-size records: a 4-byte big-endian length, the UTF-8
text, an 8-byte tag (SHA-256 of the text, truncated), zero padding. Every PIR
answer is one whole record, so a database answers every query with the same
number of bytes; the tag makes a wrongly decoded record (a stale hint, a
faulty answer) an error rather than a wrong document.

The tag is not a commitment: anyone can tag any text. What binds a position
to its content is the record's digest, which the database publishes in its
catalog for every record (`digests`); the version names the whole list."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from parties.errors import BadQuery, ConfigError

LENGTH_BYTES = 4
TAG_BYTES = 8
DIGEST_BYTES = 32


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


def digest(record: np.ndarray) -> bytes:
    """SHA-256 of one whole record (its padding too)."""
    return hashlib.sha256(b"airlock-pir-digest\x00" + record.tobytes()).digest()


def digests(records: np.ndarray) -> bytes:
    """Every record's digest, in order: what the catalog commits to."""
    return b"".join(digest(row) for row in records)


def version_of(record_digests: bytes, record_bytes: int) -> str:
    """The version that a catalog's digests and record size name; a client
    recomputes it from the catalog rather than trusting the database's word."""
    shape = f"{len(record_digests) // DIGEST_BYTES}x{record_bytes}".encode()
    return hashlib.sha256(b"airlock-pir-version\x00" + shape + record_digests).hexdigest()


def version(records: np.ndarray) -> str:
    """Names one state of the database; queries made for another are refused."""
    return version_of(digests(records), records.shape[1])

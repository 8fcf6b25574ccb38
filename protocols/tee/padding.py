"""Size buckets for what is sealed to and from the enclave.

A sealed prompt's length is the length of its plaintext plus a constant, so
without padding the host's own log gives the exact length of each prompt
(question plus the retrieved guideline: for anyone who knows the corpus,
often which guideline was retrieved, undoing PIR's padding) and of each
answer. So every request and every answer is padded, inside the seal, to
the smallest of the scenario's buckets (`request_buckets`,
`answer_buckets` in the tee stage's params) that holds it, and the host
sees only bucket sizes.

The padded form: the message's length (4 bytes, big-endian), the message,
then zero bytes up to the bucket's size. It is canonical: the receiver
accepts a padded message only if its size is one of its own buckets, the
length fits, every padding byte is zero and no smaller bucket would have
held it; anything else is refused with the reason. A message longer than
the largest bucket holds is refused, not padded to some other size: the
host never sees a size that is not a bucket.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from pydantic import Field

from parties.errors import AirlockError

LENGTH_BYTES = 4
MIN_BUCKET = 16  # the length, and room for a message
MAX_BUCKET = 1 << 20
MAX_BUCKETS = 16
# Defaults, in bytes of padded plaintext: every prompt of the shipped
# scenarios (a question and a guideline of under 160 characters, in the
# request's JSON: about 300 bytes) fits the first request bucket, and every
# answer (the output, its DSSE and COSE receipts, and with `log_receipts`
# the ledger's proofs: 1.8 to 3.0 kB) the first answer bucket.
REQUEST_BUCKETS = (512, 2048, 8192)
ANSWER_BUCKETS = (4096, 16384, 65536)

Bucket = Annotated[int, Field(strict=True, ge=MIN_BUCKET, le=MAX_BUCKET)]


class PaddingError(AirlockError):
    """A message too long for its buckets, or a padded one that is malformed."""


def check_buckets(buckets: Sequence[int]) -> tuple[int, ...]:
    """`buckets` as a tuple; ValueError unless they are 1 to MAX_BUCKETS
    strictly increasing sizes of MIN_BUCKET to MAX_BUCKET bytes."""
    sizes = tuple(buckets)
    if not 1 <= len(sizes) <= MAX_BUCKETS:
        raise ValueError(f"give 1 to {MAX_BUCKETS} bucket sizes, not {len(sizes)}")
    for size in sizes:
        if isinstance(size, bool) or not MIN_BUCKET <= size <= MAX_BUCKET:
            raise ValueError(f"a bucket holds {MIN_BUCKET} to {MAX_BUCKET} bytes, not {size}")
    if any(later <= earlier for earlier, later in zip(sizes, sizes[1:], strict=False)):
        raise ValueError(f"bucket sizes must strictly increase, not {list(sizes)}")
    return sizes


def bucket_for(size: int, buckets: Sequence[int]) -> int | None:
    """The smallest bucket that holds a message of `size` bytes padded, if any."""
    return next((b for b in buckets if LENGTH_BYTES + size <= b), None)


def pad(message: bytes, buckets: Sequence[int], what: str = "message") -> bytes:
    """`message`, padded to the smallest bucket that holds it."""
    bucket = bucket_for(len(message), buckets)
    if bucket is None:
        raise PaddingError(
            f"the {what} is {len(message)} bytes, more than the largest padding bucket "
            f"({buckets[-1]} bytes, {LENGTH_BYTES} of them its length) holds"
        )
    zeros = bucket - LENGTH_BYTES - len(message)
    return len(message).to_bytes(LENGTH_BYTES, "big") + message + bytes(zeros)


def unpad(padded: bytes, buckets: Sequence[int], what: str = "message") -> bytes:
    """The message inside `padded`; PaddingError unless it is padded as
    `pad` pads it to these buckets."""
    if len(padded) not in buckets:
        raise PaddingError(
            f"the padded {what} is {len(padded)} bytes, not one of the buckets {list(buckets)}"
        )
    size = int.from_bytes(padded[:LENGTH_BYTES], "big")
    end = LENGTH_BYTES + size
    if end > len(padded):
        raise PaddingError(f"the padded {what} declares {size} bytes, more than it holds")
    if any(padded[end:]):
        raise PaddingError(f"the padding of the {what} is not all zero bytes")
    if bucket_for(size, buckets) != len(padded):
        raise PaddingError(f"the {what} is not padded to the smallest bucket that holds it")
    return padded[LENGTH_BYTES:end]


def cost(sizes: Sequence[int], buckets: Sequence[int]) -> dict[str, object]:
    """What padding messages of `sizes` bytes to `buckets` costs: how many
    went to each bucket, and their bytes before and after (a size no bucket
    holds, never sent, counts as no bytes after)."""
    padded = [bucket_for(size, buckets) or 0 for size in sizes]
    added = [p - s for p, s in zip(padded, sizes, strict=True) if p]
    return {
        "buckets": list(buckets),
        "count": len(sizes),
        "per_bucket": {str(b): padded.count(b) for b in buckets if b in padded},
        "plaintext_bytes": sum(sizes),
        "padded_bytes": sum(padded),
        "added_bytes": sum(added),
        "added_min": min(added, default=0),
        "added_max": max(added, default=0),
    }

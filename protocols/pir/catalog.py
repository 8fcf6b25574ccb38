"""A database's catalog: the public part of its index, which a client
downloads before it queries: the scheme, the record count and size, the
cluster boundaries and centroids, every record's digest, the version, and
for SimplePIR the hint (with its plaintext modulus and digit count).

A client trusts none of it on the database's word. It refuses a catalog
whose boundaries do not split the records into non-empty clusters, that has
more clusters than its own settings name, whose declared batch is not the
largest cluster, whose body does not hold exactly what the counts say,
whose version does not name its digests, or whose SimplePIR parameters are
not the ones the client derives itself. The batch matters most: every
fetch is padded to it, so it must be at least the largest cluster or the
batch's size tells the database which cluster is wanted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import Field, StrictInt, StrictStr, ValidationError

from parties.errors import AirlockError, BadQuery, ConfigError, Refused
from parties.message import Fields
from parties.wire import airlock_pb2 as pb
from protocols.pir.embed import DIMENSIONS
from protocols.pir.index import Index, largest_cluster
from protocols.pir.records import DIGEST_BYTES, LENGTH_BYTES, TAG_BYTES, version_of
from protocols.pir.simplepir import LWE_N, Setup, plaintext_bits, seed_for

Scheme = Literal["xor", "simplepir"]


class BadCatalog(AirlockError):
    """A catalog that the client refuses before sending any query."""


class StaleCatalog(BadQuery):
    """A query made from a catalog the database no longer serves (it
    changed since the client's download). The database raises it, which
    refuses the query on the wire (HANDLER_FAILED, with MESSAGE as the
    reason); the client reads that refusal back with `from_refusal`, the
    one place that does, and downloads the catalog again."""

    MESSAGE = "stale catalog: the database changed since the client's download"

    @classmethod
    def from_refusal(cls, refusal: Refused) -> StaleCatalog | None:
        """The signal a database's refusal carries, if it is this one."""
        _, _, reason = refusal.detail.partition(" refused: ")  # "<step> refused: <reason>"
        if refusal.reason == pb.HANDLER_FAILED and reason == cls.MESSAGE:
            return cls(str(refusal))
        return None


class Declared(Fields):
    """The catalog's header as the database declares it (JSON)."""

    scheme: Scheme
    count: StrictInt = Field(ge=1)
    record_bytes: StrictInt = Field(ge=LENGTH_BYTES + TAG_BYTES, multiple_of=8)
    starts: list[StrictInt] = Field(min_length=2)
    batch: StrictInt
    version: StrictStr
    seed: StrictStr | None = None
    bits: StrictInt | None = None
    digits: StrictInt | None = None


@dataclass(frozen=True)
class Catalog:
    """A catalog that passed every check. `batch` is computed here, from the
    cluster boundaries, not taken from the database."""

    scheme: Scheme
    count: int
    record_bytes: int
    starts: tuple[int, ...]
    centroids: np.ndarray  # (clusters, 384) float32
    digests: bytes  # count * 32
    version: str
    setup: Setup | None  # SimplePIR only
    batch: int  # queries a batch holds: the largest cluster, or top_k after ranking

    @property
    def answer_bytes(self) -> int:
        """The size of one answer: a record (XOR) or its digits mod 2^32 (SimplePIR)."""
        return self.record_bytes if self.setup is None else 4 * self.setup.hint.shape[0]

    def cluster(self, number: int) -> range:
        return range(self.starts[number], self.starts[number + 1])

    def digest(self, index: int) -> bytes:
        return self.digests[index * DIGEST_BYTES : (index + 1) * DIGEST_BYTES]

    def same_as(self, other: Catalog) -> bool:
        return (
            self.version == other.version
            and self.starts == other.starts
            and np.array_equal(self.centroids, other.centroids)
        )


def publish(
    scheme: Scheme,
    index: Index,
    *,
    batch: int,
    record_bytes: int,
    digests: bytes,
    version: str,
    setup: Setup | None,
) -> tuple[dict[str, Any], bytes]:
    """The catalog's header and body, as a database serves them; an honest
    database's `batch` is its largest cluster."""
    meta: dict[str, Any] = {
        "scheme": scheme,
        "count": len(index.documents),
        "record_bytes": record_bytes,
        "starts": index.starts,
        "batch": batch,
        "version": version,
    }
    body = index.centroids.astype("<f4").tobytes() + digests
    if setup is not None:
        meta.update(seed=setup.seed.hex(), bits=setup.bits, digits=int(setup.hint.shape[0]))
        body += setup.hint.astype("<u4").tobytes()
    return meta, body


def read(
    database: str,
    meta: dict[str, Any],
    body: bytes,
    scheme: Scheme,
    clusters: int,
    batch: int | None = None,
) -> Catalog:
    """The catalog `database` served, checked against this client's own
    `scheme` and `clusters` settings and the `batch` it sends (None: the
    largest cluster, as it fetches whole clusters); BadCatalog naming the
    first check it fails."""
    try:
        declared = Declared.model_validate(meta)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise BadCatalog(f"{database}'s catalog is malformed: {where}: {first['msg']}") from None
    try:
        return _checked(declared, body, scheme, clusters, batch)
    except BadCatalog as exc:
        raise BadCatalog(f"{database}'s catalog is refused: {exc}") from None


def _checked(d: Declared, body: bytes, scheme: Scheme, clusters: int, batch: int | None) -> Catalog:
    if d.scheme != scheme:
        raise BadCatalog(f"it serves {d.scheme}, this client is configured for {scheme}")
    starts = tuple(d.starts)
    if starts[0] != 0 or starts[-1] != d.count:
        raise BadCatalog(f"its cluster boundaries do not span its {d.count} records")
    if any(a >= b for a, b in zip(starts, starts[1:], strict=False)):
        raise BadCatalog("its cluster boundaries are not strictly increasing")
    found = len(starts) - 1
    if found > clusters:
        raise BadCatalog(f"it has {found} clusters, more than the {clusters} configured")
    if batch is not None and d.batch != batch:
        raise BadCatalog(f"its batch of {d.batch} queries is not the {batch} this client sends")
    if batch is None and d.batch != largest_cluster(starts):
        raise BadCatalog(
            f"its batch of {d.batch} queries is not its largest cluster "
            f"({largest_cluster(starts)} records), so a batch's size would tell the cluster"
        )
    hint_digits = _hint_digits(d) if scheme == "simplepir" else 0
    centroid_bytes = found * DIMENSIONS * 4
    digest_bytes = d.count * DIGEST_BYTES
    expected = centroid_bytes + digest_bytes + hint_digits * LWE_N * 4
    if len(body) != expected:
        raise BadCatalog(
            f"its body is {len(body)} bytes, not the {expected} that {found} clusters "
            f"and {d.count} records take"
        )
    centroids = np.frombuffer(body[:centroid_bytes], dtype="<f4").reshape(found, DIMENSIONS)
    if not np.isfinite(centroids).all():
        raise BadCatalog("a centroid is not finite")
    digests = body[centroid_bytes : centroid_bytes + digest_bytes]
    if d.version != version_of(digests, d.record_bytes):
        raise BadCatalog("its version does not name its records' digests")
    setup = None
    if scheme == "simplepir":
        if d.seed != seed_for(d.version).hex():
            raise BadCatalog("the seed of A is not the one its version names")
        hint = np.frombuffer(body[centroid_bytes + digest_bytes :], dtype="<u4")
        setup = Setup(
            seed_for(d.version),
            hint.reshape(hint_digits, LWE_N),
            d.count,
            plaintext_bits(d.count),
            d.record_bytes,
            d.version,
        )
    return Catalog(
        scheme, d.count, d.record_bytes, starts, centroids, digests, d.version, setup, d.batch
    )


def _hint_digits(d: Declared) -> int:
    """The digits per record that SimplePIR needs for this count and record
    size; the client derives the plaintext modulus itself (a larger one
    would make decryption fail)."""
    try:
        bits = plaintext_bits(d.count)
    except ConfigError as exc:
        raise BadCatalog(str(exc)) from None
    digits = math.ceil(d.record_bytes * 8 / bits)
    if (d.bits, d.digits) != (bits, digits):
        raise BadCatalog(
            f"its SimplePIR parameters (p = 2^{d.bits}, {d.digits} digits) are not "
            f"p = 2^{bits}, {digits} digits for {d.count} records of {d.record_bytes} bytes"
        )
    return digits

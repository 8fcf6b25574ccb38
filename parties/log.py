"""The visibility log: what a party sent, received or refused.

Append-only JSON lines, each entry carrying the hash of the one before it
(a hash chain); payloads kept as content-addressed blobs; a head signed with
the party's Ed25519 key when the run ends, and signed checkpoints of the
head every N entries or T seconds before that, so that the log of a party
that crashed is still verifiable up to its last checkpoint. Reading and
verifying a log is `parties/log_check.py`.

An entry is written whole or not at all: if the disk refuses it (full, or
unwritable), the file is cut back to the entry before and the delivery is
refused; nothing is admitted that the log does not hold.
"""

from __future__ import annotations

import contextlib
import datetime
import enum
import errno
import hashlib
import json
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from evidence.canonical import canonical_json
from parties.envelope import Envelope, Header
from parties.errors import AirlockError, Refused
from parties.store import STORE_DIR
from parties.wire import airlock_pb2 as pb

LOG_FILE = "log.jsonl"
HEAD_FILE = "head.json"
CHECKPOINT_FILE = "checkpoints.jsonl"
BLOB_DIR = "blobs"
# files a party makes public beside its log (ctx.publish): laid in the run directory
PUBLISHED_DIR = "published"
GENESIS = "0" * 64
HEAD_CONTEXT = b"airlock-log-head-v1\x00"
CHECKPOINT_CONTEXT = b"airlock-log-checkpoint-v1\x00"
DEFAULT_MAX_KEPT = 4 << 30  # bytes of payload blobs a party keeps at most
DEFAULT_CHECKPOINT_ENTRIES = 64
DEFAULT_CHECKPOINT_SECONDS = 5.0
DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")


class LogSealed(AirlockError):
    """An entry after the party signed its log's head (a delivery racing the
    end of the run): refused, never appended."""


class LogUnwritable(Refused):
    """The party cannot write its log or a payload's blob (disk full, no
    permission): the delivery is refused, and the log stays as it was."""

    def __init__(self, party: str, error: OSError) -> None:
        super().__init__(pb.OVERLOADED, f"{party} cannot write its log: {error.strerror or error}")


class Direction(enum.StrEnum):
    IN = "in"
    OUT = "out"


class Outcome(enum.StrEnum):
    ADMITTED = "admitted"  # in: passed the boundary
    REFUSED = "refused"  # in: refused by me; out: refused by the peer
    SENDING = "sending"  # out: about to leave (its outcome is a later entry)
    DELIVERED = "delivered"  # out: the peer admitted it
    REPLIED = "replied"  # out: sent as a reply; the peer's log records its fate
    UNDELIVERED = "undelivered"  # out: never reached the peer's boundary
    WITHHELD = "withheld"  # out: my own boundary refused to send it; it never left


def entry_hash(entry: Mapping[str, Any]) -> str:
    """SHA-256 of the entry's canonical JSON, without its `hash`. ValueError
    for an entry JSON cannot hold (a NaN edited into a log)."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def head_message(head: Mapping[str, Any], context: bytes = HEAD_CONTEXT) -> bytes:
    """What the head (or, with CHECKPOINT_CONTEXT, a checkpoint) signs."""
    return context + canonical_json({k: v for k, v in head.items() if k != "signature"})


def labels_text(labels: list[dict[str, str]]) -> str:
    """Labels of a log entry as "asset@form, ..."."""
    return ", ".join(f"{label['asset']}@{label['form']}" for label in labels)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds")


def header_fields(header: Header | None) -> dict[str, Any]:
    if header is None:
        return {}
    return {
        "sender": header.sender,
        "receiver": header.receiver,
        "run_id": header.run_id,
        "session": header.session_id,
        "protocol": header.protocol,
        "step": header.step,
        "sequence": header.sequence,
        "labels": [{"asset": lb.asset, "form": str(lb.form)} for lb in header.labels],
        "size": header.payload_size,
        "payload_sha256": header.payload_sha256.hex(),
    }


class VisibilityLog:
    """One party's log, written where the party runs."""

    def __init__(
        self,
        directory: Path,
        party: str,
        run_id: str,
        sign: Callable[[bytes], bytes],
        max_kept: int = DEFAULT_MAX_KEPT,
        checkpoint_entries: int = DEFAULT_CHECKPOINT_ENTRIES,
        checkpoint_seconds: float = DEFAULT_CHECKPOINT_SECONDS,
    ) -> None:
        self.directory = directory
        self.party = party
        self.run_id = run_id
        # what the signed head binds besides the entries: the digests of the
        # scenario this party was configured with and of the run's CA, so
        # that neither can be swapped in the run directory afterwards
        self.bindings: dict[str, str] = {}
        self._sign = sign
        self._max_kept = max_kept
        self._kept = 0
        self._lock = threading.Lock()
        self._count = 0
        self._head = GENESIS
        self._sealed = False
        self._checkpoint_entries = checkpoint_entries
        self._checkpointed = 0  # entries the last checkpoint covers
        self._blobs = str(directory / BLOB_DIR)
        os.makedirs(self._blobs, exist_ok=True)
        # unbuffered: an entry is on disk when record returns, or cut off
        self._file = _AppendOnly(directory / LOG_FILE)
        self._checkpoints = _AppendOnly(directory / CHECKPOINT_FILE)
        self._stopped = threading.Event()
        if checkpoint_seconds > 0:
            threading.Thread(
                target=self._checkpoint_every,
                args=(checkpoint_seconds,),
                name=f"log-checkpoints-{party}",
                daemon=True,
            ).start()

    def record(
        self,
        *,
        direction: Direction,
        outcome: Outcome,
        peer: str,
        envelope: Envelope | None = None,
        header: Header | None = None,
        header_bytes: bytes = b"",
        refusal: str = "",
        detail: str = "",
    ) -> dict[str, Any]:
        """Append one entry. The payload of an admitted incoming envelope is
        kept as a blob: the audit scans what a party actually received."""
        if envelope is not None:
            header = envelope.header
            header_bytes = envelope.header_bytes
        keep = envelope is not None and direction == Direction.IN and outcome == Outcome.ADMITTED
        entry: dict[str, Any] = {
            "time": _now(),
            "direction": str(direction),
            "outcome": str(outcome),
            "peer": peer,
            **header_fields(header),
            "header": header_bytes.hex(),
            "header_sha256": hashlib.sha256(header_bytes).hexdigest() if header_bytes else "",
            "signature": envelope.signature.hex() if envelope else "",
            "blob": keep,
            "refusal": refusal,
            "detail": detail,
        }
        try:
            if keep and envelope is not None:
                self._store_blob(envelope.payload, entry["payload_sha256"])
            with self._lock:
                if self._sealed:
                    raise LogSealed(f"log of {self.party} is sealed: the run has ended for it")
                entry = {"index": self._count, **entry, "prev": self._head}
                # every key is ours and no value a float; the line is the
                # hashed bytes with the hash added (one encoding, not two)
                body = canonical_json(entry, plain=True)
                entry["hash"] = hashlib.sha256(body).hexdigest()
                self._file.append(b'%s,"hash":"%s"}\n' % (body[:-1], entry["hash"].encode()))
                self._count += 1
                self._head = entry["hash"]
                if self._count - self._checkpointed >= self._checkpoint_entries:
                    self._checkpoint()
        except OSError as error:
            raise LogUnwritable(self.party, error) from None
        return entry

    def _checkpoint(self) -> None:
        """Sign the head as it is now (the lock held). A checkpoint the disk
        refuses is skipped: the entries since the last one stay unconfirmed
        until the next."""
        checkpoint: dict[str, Any] = {
            "party": self.party,
            "run_id": self.run_id,
            "entries": self._count,
            "head": self._head,
            "time": _now(),
            **self.bindings,
        }
        checkpoint["signature"] = self._sign(head_message(checkpoint, CHECKPOINT_CONTEXT)).hex()
        line = json.dumps(checkpoint, sort_keys=True) + "\n"
        with contextlib.suppress(OSError):
            self._checkpoints.append(line.encode("ascii"))
            self._checkpointed = self._count

    def _checkpoint_every(self, seconds: float) -> None:
        while not self._stopped.wait(seconds):
            with self._lock:
                if self._sealed:
                    return
                if self._count > self._checkpointed:
                    self._checkpoint()

    @contextlib.contextmanager
    def reserve(self, size: int, digest: str) -> Iterator[None]:
        """Room for a payload about to be read and kept; refused (OVERLOADED)
        when the party's quota of kept bytes would be exceeded. Released if
        the payload is then refused."""
        fresh = not os.path.exists(os.path.join(self._blobs, digest))
        charge = size if fresh else 0
        with self._lock:
            if self._kept + charge > self._max_kept:
                raise Refused(
                    pb.OVERLOADED, f"no room to keep {size} more payload bytes (quota reached)"
                )
            self._kept += charge
        try:
            yield
        except BaseException:
            with self._lock:
                self._kept -= charge
            raise

    def _store_blob(self, payload: bytes, digest: str) -> None:
        # os calls on string paths: pathlib's own work was a third of a
        # small blob's time, one per admitted envelope
        path = os.path.join(self._blobs, digest)
        if os.path.exists(path):  # content-addressed: the same bytes are kept once
            return
        tmp = f"{path}.tmp{threading.get_ident()}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                view = memoryview(payload)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)  # a blob half-written is no blob
            raise

    def seal(self) -> dict[str, Any]:
        """Sign the head; no entry may follow."""
        with self._lock:
            self._sealed = True
            self._stopped.set()
            self._file.close()
            self._checkpoints.close()
            head: dict[str, Any] = {
                "party": self.party,
                "run_id": self.run_id,
                "entries": self._count,
                "head": self._head,
                "sealed_at": _now(),
                **self.bindings,
            }
            head["signature"] = self._sign(head_message(head)).hex()
            (self.directory / HEAD_FILE).write_text(json.dumps(head, indent=2, sort_keys=True))
            return head

    def export(self) -> dict[str, bytes]:
        """Every file of the log, by relative path, for collection by the orchestrator."""
        return export_directory(self.directory)


class _AppendOnly:
    """A file that grows by whole records: a record the disk refuses part of
    is cut off again, so that the file ends with the record before."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "ab", buffering=0)  # noqa: SIM115 - open for the log's life
        self._size = self._file.seek(0, 2)

    def append(self, record: bytes) -> None:
        view = memoryview(record)
        try:
            while view:
                written = self._file.write(view)
                if not written:
                    raise OSError(errno.EIO, "the file took no byte")
                view = view[written:]
        except OSError:
            self._file.truncate(self._size)
            raise
        self._size += len(record)

    def close(self) -> None:
        self._file.close()


def export_directory(directory: Path) -> dict[str, bytes]:
    """The files of a log directory by relative path (blobs half-written
    excluded). The party's own store lives beside the log and never leaves."""
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
        and ".tmp" not in path.name
        and path.relative_to(directory).parts[0] != STORE_DIR
    }

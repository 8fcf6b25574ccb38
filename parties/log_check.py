"""Reading and verifying a party's visibility log (parties/log.py writes
it): entries parse and hash, the chain links, the signed head covers exactly
these entries, every signed checkpoint names an entry the log still has, and
every blob matches its name. This is the check the audit runs, entry by entry.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from parties.log import (
    BLOB_DIR,
    CHECKPOINT_CONTEXT,
    CHECKPOINT_FILE,
    DIGEST_RE,
    GENESIS,
    HEAD_CONTEXT,
    HEAD_FILE,
    LOG_FILE,
    entry_hash,
    head_message,
)


@dataclass(frozen=True)
class LogProblem:
    party: str
    entry: int | None  # None: the log as a whole
    problem: str
    # a note, not a failure: what cannot be confirmed (entries after the last
    # checkpoint of a log never sealed), as opposed to what is wrong
    note: bool = False

    def __str__(self) -> str:
        where = f"entry {self.entry}" if self.entry is not None else "log"
        return f"{self.party} {where}: {self.problem}"


def read_entries(directory: Path, party: str) -> tuple[list[dict[str, Any]], list[LogProblem]]:
    """Parse a log file; each line that does not parse is a problem naming its entry."""
    entries: list[dict[str, Any]] = []
    problems: list[LogProblem] = []
    path = directory / LOG_FILE
    if not path.exists():
        return entries, [LogProblem(party, None, "log file is missing")]
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        problems.append(LogProblem(party, raw.count(b"\n"), "log file is truncated mid-entry"))
    with _collector_paused():
        for number, line in enumerate(raw.splitlines()):
            entries.append(_parsed(party, number, line, problems))
    return entries, problems


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Parsed entries hold no reference cycles, yet each few hundred of them
    set off the cyclic collector, which rescans the growing list: a log of a
    million entries took 45 µs an entry to verify instead of 25."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _parsed(party: str, number: int, line: bytes, problems: list[LogProblem]) -> dict[str, Any]:
    try:
        entry = json.loads(line)
        if not isinstance(entry, dict):
            raise ValueError("not an object")
    except ValueError as exc:
        problems.append(LogProblem(party, number, f"entry does not parse ({exc})"))
        entry = {"index": number, "unparsed": True}
    return entry


UNSEALED = "signed head is missing (log never sealed)"


def _hash_matches(entry: Mapping[str, Any]) -> bool:
    try:
        return entry.get("hash") == entry_hash(entry)
    except ValueError:  # no canonical form (a NaN edited in): it matches no hash
        return False


@dataclass(frozen=True)
class Signer:
    """Whose log it must be: what its signed head and checkpoints must name."""

    party: str
    run_id: str
    public_key: ed25519.Ed25519PublicKey
    bindings: Mapping[str, str]

    def verifies(self, signed: Mapping[str, Any], context: bytes) -> bool:
        try:
            signature = bytes.fromhex(signed["signature"])
            self.public_key.verify(signature, head_message(signed, context))
        except (ValueError, KeyError, TypeError, AttributeError, InvalidSignature):
            return False
        return True

    def names_this_run(self, signed: Mapping[str, Any]) -> bool:
        return signed.get("party") == self.party and signed.get("run_id") == self.run_id


def verify_log(
    directory: Path,
    party: str,
    run_id: str,
    public_key: ed25519.Ed25519PublicKey,
    bindings: Mapping[str, str] | None = None,
) -> tuple[list[dict[str, Any]], list[LogProblem]]:
    """Verify a party's log: entries parse and hash, the chain links, the
    signed head covers exactly these entries and binds `bindings` (e.g. the
    scenario's and the CA's digests), and every blob matches its name.
    Returns the entries and every problem found."""
    entries, problems = read_entries(directory, party)
    previous: str | None = GENESIS
    for number, entry in enumerate(entries):
        if entry.get("unparsed"):
            previous = None  # the chain cannot be followed across an unparsed line
            continue
        if entry.get("index") != number:
            problems.append(
                LogProblem(party, number, f"out of order (claims index {entry.get('index')})")
            )
        if not _hash_matches(entry):
            problems.append(LogProblem(party, number, "entry hash does not match its contents"))
        if previous is not None and entry.get("prev") != previous:
            problems.append(LogProblem(party, number, "hash chain broken (entry missing or moved)"))
        previous = entry.get("hash")
        kept = entry.get("direction") == "in" and entry.get("outcome") == "admitted"
        if kept and not entry.get("blob"):
            problems.append(LogProblem(party, number, "admitted payload was not kept as a blob"))
        if entry.get("blob"):
            problem = _blob_problem(directory, entry)
            if problem:
                problems.append(LogProblem(party, number, problem))
    signer = Signer(party, run_id, public_key, bindings or {})
    head_problems = _verify_head(directory, signer, entries)
    problems.extend(head_problems)
    sealed = not any(p.problem == UNSEALED for p in head_problems)
    problems.extend(_verify_checkpoints(directory, signer, entries, sealed))
    return entries, problems


def _verify_checkpoints(
    directory: Path, signer: Signer, entries: list[dict[str, Any]], sealed: bool
) -> list[LogProblem]:
    """Each signed checkpoint must name an entry count the log reaches and
    the hash of the entry at that count: an entry edited, dropped or cut off
    before a checkpoint is named. In a log never sealed, the entries after
    its last checkpoint are noted as unconfirmed."""
    party = signer.party
    path = directory / CHECKPOINT_FILE
    lines = path.read_bytes().splitlines() if path.is_file() else []
    problems, confirmed = [], 0
    for number, line in enumerate(lines):
        try:
            checkpoint = json.loads(line)
        except ValueError:
            checkpoint = None
        if not (
            isinstance(checkpoint, dict)
            and isinstance(checkpoint.get("entries"), int)
            and checkpoint["entries"] >= 0
            and signer.verifies(checkpoint, CHECKPOINT_CONTEXT)
        ):
            problems.append(LogProblem(party, None, f"checkpoint {number} does not verify"))
            continue
        covered = checkpoint["entries"]
        if not signer.names_this_run(checkpoint) or any(
            checkpoint.get(name) != value for name, value in signer.bindings.items()
        ):
            problems.append(LogProblem(party, None, f"checkpoint {number} is of another run"))
        elif covered > len(entries):
            problems.append(
                LogProblem(
                    party,
                    len(entries),
                    f"log cut short: checkpoint {number} signed {covered} entries, "
                    f"the log has {len(entries)}",
                )
            )
        elif (entries[covered - 1].get("hash") if covered else GENESIS) != checkpoint["head"]:
            problems.append(
                LogProblem(
                    party,
                    covered - 1,
                    f"not the entry checkpoint {number} signed: the log was changed before it",
                )
            )
        else:
            confirmed = max(confirmed, covered)
    if not sealed and len(entries) > confirmed:
        last = len(entries) - 1
        span = f"entry {last}" if confirmed == last else f"entries {confirmed} to {last}"
        problems.append(
            LogProblem(
                party,
                confirmed,
                f"{span} came after its last checkpoint: unconfirmed",
                note=True,
            )
        )
    return problems


def blob_path(directory: Path, entry: Mapping[str, Any]) -> Path | None:
    """The blob an entry names, or None if the name is not a SHA-256 digest
    (a log entry must not point the audit at another file)."""
    digest = entry.get("payload_sha256")
    if not isinstance(digest, str) or not DIGEST_RE.match(digest):
        return None
    return directory / BLOB_DIR / digest


def _blob_problem(directory: Path, entry: Mapping[str, Any]) -> str | None:
    path = blob_path(directory, entry)
    if path is None:
        return "payload digest is not 64 hex digits"
    try:
        info = path.lstat()
    except OSError:
        return "payload blob is missing"
    # a regular file of the signed size: no link, device or fifo to follow or hang on
    if not stat.S_ISREG(info.st_mode) or info.st_size != entry.get("size"):
        return "payload blob is not a regular file of its signed size"
    if hashlib.sha256(path.read_bytes()).hexdigest() != path.name:
        return "payload blob does not match its digest"
    return None


def _verify_head(
    directory: Path, signer: Signer, entries: list[dict[str, Any]]
) -> list[LogProblem]:
    party = signer.party
    path = directory / HEAD_FILE
    if not path.exists():
        return [LogProblem(party, None, UNSEALED)]
    try:
        head = json.loads(path.read_text())
    except ValueError:
        head = None
    if not isinstance(head, dict) or not signer.verifies(head, HEAD_CONTEXT):
        return [LogProblem(party, None, "signed head does not verify")]
    problems = []
    if not signer.names_this_run(head):
        problems.append(LogProblem(party, None, "signed head names another party or run"))
    for name, value in signer.bindings.items():
        if head.get(name) != value:
            problems.append(
                LogProblem(party, None, f"signed head binds another {name.replace('_', ' ')}")
            )
    if head.get("entries") != len(entries):
        problems.append(
            LogProblem(
                party,
                min(len(entries), int(head.get("entries", 0))),
                f"signed head covers {head.get('entries')} entries, log has {len(entries)}",
            )
        )
    last = entries[-1].get("hash") if entries else GENESIS
    if head.get("head") != last:
        problems.append(
            LogProblem(
                party, len(entries) - 1 if entries else None, "last entry is not the signed head"
            )
        )
    return problems

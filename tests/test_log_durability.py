"""A party's log when the party dies or its disk fills.

Checkpoints: a log never sealed (its party crashed) verifies up to its last
signed checkpoint; an entry edited, dropped or cut off before it is named,
and the entries after it are noted as unconfirmed.

A full disk: nothing is admitted that the log does not hold. The delivery
is refused with a reason, the log stays whole, and once there is room again
the next delivery is admitted.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from parties.errors import Refused
from parties.log import CHECKPOINT_FILE, LOG_FILE, Direction, Outcome, VisibilityLog, entry_hash
from parties.log_check import UNSEALED, verify_log
from parties.wire import airlock_pb2 as pb
from tests.helpers import running_parties
from tests.test_boundary import CATALOG

RUN = "run-1"
KEY = ed25519.Ed25519PrivateKey.generate()


def _log(directory: Path, entries: int = 4, seconds: float = 3600) -> VisibilityLog:
    return VisibilityLog(directory, "alice", RUN, KEY.sign, 1 << 20, entries, seconds)


def _write(log: VisibilityLog, count: int) -> None:
    for number in range(count):
        log.record(direction=Direction.OUT, outcome=Outcome.SENDING, peer=f"peer{number}")


def _problems(
    directory: Path, key: ed25519.Ed25519PrivateKey = KEY
) -> list[tuple[int | None, str, bool]]:
    _, problems = verify_log(directory, "alice", RUN, key.public_key())
    return [(p.entry, p.problem, p.note) for p in problems]


def _rewrite(directory: Path, change: dict[int, dict]) -> None:
    """Edit entries and recompute the whole hash chain, as someone holding
    the file could: only a signed checkpoint or head can tell."""
    path = directory / LOG_FILE
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    previous = "0" * 64
    for entry in entries:
        entry.update(change.get(entry["index"], {}))
        entry["prev"] = previous
        entry["hash"] = previous = entry_hash(entry)
    path.write_text("".join(json.dumps(e, sort_keys=True) + "\n" for e in entries))


UNCONFIRMED_8_9 = (8, "entries 8 to 9 came after its last checkpoint: unconfirmed", True)


def test_an_unsealed_log_verifies_up_to_its_last_checkpoint(tmp_path: Path) -> None:
    _write(_log(tmp_path), 10)
    assert len((tmp_path / CHECKPOINT_FILE).read_text().splitlines()) == 2  # at 4 and 8
    assert _problems(tmp_path) == [(None, UNSEALED, False), UNCONFIRMED_8_9]


def test_a_sealed_log_has_nothing_unconfirmed(tmp_path: Path) -> None:
    log = _log(tmp_path)
    _write(log, 10)
    log.seal()
    assert _problems(tmp_path) == []


def test_an_entry_edited_before_a_checkpoint_is_named(tmp_path: Path) -> None:
    _write(_log(tmp_path), 10)
    _rewrite(tmp_path, {2: {"peer": "someone else"}})
    assert _problems(tmp_path) == [
        (None, UNSEALED, False),
        (3, "not the entry checkpoint 0 signed: the log was changed before it", False),
        (7, "not the entry checkpoint 1 signed: the log was changed before it", False),
        (0, "entries 0 to 9 came after its last checkpoint: unconfirmed", True),
    ]


def test_a_log_cut_before_a_checkpoint_is_named(tmp_path: Path) -> None:
    _write(_log(tmp_path), 10)
    path = tmp_path / LOG_FILE
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:6]))
    assert _problems(tmp_path) == [
        (None, UNSEALED, False),
        (6, "log cut short: checkpoint 1 signed 8 entries, the log has 6", False),
        (4, "entries 4 to 5 came after its last checkpoint: unconfirmed", True),
    ]


def test_an_entry_edited_after_the_last_checkpoint_is_only_unconfirmed(tmp_path: Path) -> None:
    _write(_log(tmp_path), 10)
    _rewrite(tmp_path, {9: {"peer": "someone else"}})
    assert _problems(tmp_path) == [(None, UNSEALED, False), UNCONFIRMED_8_9]


def test_a_checkpoint_signed_by_another_key_does_not_verify(tmp_path: Path) -> None:
    _write(_log(tmp_path), 10)
    other = ed25519.Ed25519PrivateKey.generate()
    assert _problems(tmp_path, other) == [
        (None, UNSEALED, False),
        (None, "checkpoint 0 does not verify", False),
        (None, "checkpoint 1 does not verify", False),
        (0, "entries 0 to 9 came after its last checkpoint: unconfirmed", True),
    ]


def test_an_idle_log_is_checkpointed_after_its_seconds(tmp_path: Path) -> None:
    log = _log(tmp_path, entries=1000, seconds=0.1)
    _write(log, 3)
    deadline = time.monotonic() + 5
    while not (tmp_path / CHECKPOINT_FILE).read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert json.loads((tmp_path / CHECKPOINT_FILE).read_text())["entries"] == 3
    assert _problems(tmp_path) == [(None, UNSEALED, False)]  # nothing unconfirmed


# -- a full disk ------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs at tmp_path/guidelines_db (the database's workdir)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "guidelines_db"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_full_disk_refuses_the_delivery_and_keeps_the_log_whole(
    tiny_disk: Path, tmp_path: Path
) -> None:
    # valid JSON, about 48 KiB each, each distinct: blobs are kept by content
    payloads = (b"{}" + b" " * ((48 << 10) + number) for number in range(100))
    with running_parties(tmp_path) as parties:
        database = parties["guidelines_db"]
        admitted, refusal = 0, None
        for payload in payloads:
            try:
                parties["alice"].deliver(
                    "guidelines_db", "walkthrough", "catalog_request", CATALOG, payload
                )
                admitted += 1
            except Refused as error:
                refusal = error
                break
        assert refusal is not None and admitted > 0
        assert refusal.reason == pb.OVERLOADED
        assert "guidelines_db cannot write its log: No space left on device" in refusal.detail
        # the log holds exactly the admitted deliveries and their replies, whole
        entries, problems = verify_log(
            tiny_disk, "guidelines_db", parties.run_id, database.keys.signing_key.public_key()
        )
        assert [p.problem for p in problems if not p.note] == [UNSEALED]
        outcomes = [e["outcome"] for e in entries]
        assert outcomes.count("admitted") == admitted and outcomes.count("replied") == admitted
        assert (tiny_disk / LOG_FILE).read_bytes().endswith(b"\n")
        assert not [p for p in (tiny_disk / "blobs").iterdir() if ".tmp" in p.name]
        # alice's own log says the delivery was refused, and why
        mine, _ = verify_log(
            parties["alice"].log.directory,
            "alice",
            parties.run_id,
            parties["alice"].keys.signing_key.public_key(),
        )
        assert mine[-1]["outcome"] == "refused" and mine[-1]["refusal"] == "OVERLOADED"
        # still serving: with room again, the next delivery is admitted
        subprocess.run(["mount", "-o", "remount,size=4m", str(tiny_disk)], check=True)
        reply = parties["alice"].deliver(
            "guidelines_db", "walkthrough", "catalog_request", CATALOG, b"{}"
        )
        assert reply is not None and reply.header.step == "catalog"
        entries, problems = verify_log(
            tiny_disk, "guidelines_db", parties.run_id, database.keys.signing_key.public_key()
        )
        assert [p.problem for p in problems if not p.note] == [UNSEALED]
        assert [e["outcome"] for e in entries].count("admitted") == admitted + 1

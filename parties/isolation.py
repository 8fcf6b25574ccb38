"""One OS user per party on one machine (`[run] isolation = "user"`).

Processes of one OS user can read each other's memory (`/proc/PID/mem`,
ptrace) and files: on one machine, every Ray worker runs as the same user,
so one party's code could read another's keys, store and log. With user
isolation the party runs in a process of its own under a user id of its
own, drawn at random for the run, in a working folder only that user can
enter (0700); the host (the Ray actor, or the test's process) is a thin
supervisor that relays the orchestrator's control calls to it and holds
nothing of the party. The party's keys, code, log and store live in that
process only.

Switching users needs root, and the Python installation and the project
readable by other users (a Python under a home folder of mode 0700, such as
pyenv's under /root, is not: `chmod o+x` on that folder lets others reach
it without listing it). The user ids have no account on the system (no
passwd entry is made): nothing outside the run's folders changes.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import secrets
import shutil
import stat
import sys
import sysconfig
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parties.errors import AirlockError

if TYPE_CHECKING:
    from parties.protocol import Protocol
    from parties.runtime import PartyConfig

# user ids drawn for parties: far above any account a system makes
FIRST_UID, LAST_UID = 1 << 24, 1 << 30


def unreachable_by_others() -> list[str]:
    """The folders of this Python and of the project that a user other than
    their owner cannot reach and read: a party under its own user could not
    import from them."""
    import parties

    needed = {
        Path(sysconfig.get_paths()[key]) for key in ("stdlib", "platstdlib", "purelib", "platlib")
    }
    needed |= {Path(sys.executable).resolve().parent, Path(parties.__file__).parent}
    blocked = []
    for folder in sorted(needed):
        if not folder.exists():
            continue
        if not folder.stat().st_mode & stat.S_IROTH:
            blocked.append(str(folder))
        blocked += [
            str(above)
            for above in (folder, *folder.parents)
            if not above.stat().st_mode & stat.S_IXOTH
        ]
    return sorted(set(blocked))


class PartyProcessDied(AirlockError):
    """The party's own process ended under its supervisor."""


def _serve(
    connection: Connection,
    config: PartyConfig,
    resolve: Callable[[str], Protocol],
    uid: int,
    workdir: str,
) -> None:
    """The party's process: drop to its own user first, then build the party
    and answer each relayed call in a thread of its own (a ping beside a
    long action, as on a Ray actor)."""
    from parties.actor import PartyHost  # its imports, before the user changes

    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    os.umask(0o077)
    home = Path(workdir)
    for variable, folder in (
        ("HOME", "home"),
        ("TMPDIR", "tmp"),
        ("XDG_CACHE_HOME", "cache"),
        ("MPLCONFIGDIR", "matplotlib"),
        ("NUMBA_CACHE_DIR", "numba"),
    ):
        (home / folder).mkdir(exist_ok=True)
        os.environ[variable] = str(home / folder)
    tempfile.tempdir = None  # TMPDIR is read again
    host = PartyHost(config, resolve, home / "party")
    sending = threading.Lock()

    def answer(ident: int, method: str, args: tuple[Any, ...]) -> None:
        try:
            reply: tuple[int, bool, Any] = (ident, True, getattr(host, method)(*args))
        except Exception as error:  # noqa: BLE001 - told to the supervisor, which raises it
            reply = (ident, False, error)
        with sending:
            try:
                connection.send(reply)
            except Exception as error:  # noqa: BLE001 - an error that does not pickle
                connection.send((ident, False, AirlockError(f"{type(error).__name__}: {error}")))

    while True:
        try:
            ident, method, args = connection.recv()
        except (EOFError, OSError):  # the supervisor is gone: so is the party
            os._exit(0)
        threading.Thread(target=answer, args=(ident, method, args), daemon=True).start()


class IsolatedHost:
    """PartyHost's methods, run in the party's own process under its own
    user. `on_death` runs if that process ends while the host is up (a
    Ray actor then exits, so that Ray reports the party lost)."""

    def __init__(
        self,
        config: PartyConfig,
        resolve: Callable[[str], Protocol],
        on_death: Callable[[], None] = lambda: None,
    ) -> None:
        if os.geteuid() != 0:
            raise AirlockError(
                'isolation = "user" runs each party under an OS user of its own: it needs root'
            )
        blocked = unreachable_by_others()
        if blocked:
            raise AirlockError(
                'isolation = "user": other users cannot reach '
                + ", ".join(blocked)
                + " (a party under its own user imports from there): allow them to pass "
                "with `chmod o+x` on each folder, or install Python outside a private home"
            )
        self.uid = FIRST_UID + secrets.randbelow(LAST_UID - FIRST_UID)
        self._workdir = Path(tempfile.mkdtemp(prefix=f"airlock-{config.run_id}-{config.name}-"))
        os.chown(self._workdir, self.uid, self.uid)
        os.chmod(self._workdir, 0o700)
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: nothing inherited
        self._connection, theirs = context.Pipe()
        self._process = context.Process(
            target=_serve,
            args=(theirs, config, resolve, self.uid, str(self._workdir)),
            name=f"airlock party {config.name}",
            daemon=True,
        )
        self._process.start()
        theirs.close()
        self._pending: dict[int, Future[tuple[bool, Any]]] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._stopping = False
        self._on_death = on_death
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                ident, ok, value = self._connection.recv()
            except (EOFError, OSError):
                break
            with self._lock:
                future = self._pending.pop(ident, None)
            if future is not None:
                future.set_result((ok, value))
        with self._lock:
            waiting, self._pending = list(self._pending.values()), {}
        for future in waiting:
            future.set_result((False, PartyProcessDied("the party's process ended")))
        if not self._stopping:
            self._on_death()

    def _call(self, method: str, *args: Any) -> Any:
        future: Future[tuple[bool, Any]] = Future()
        with self._lock:
            if not self._process.is_alive():
                raise PartyProcessDied("the party's process ended")
            ident = next(self._ids)
            self._pending[ident] = future
            self._connection.send((ident, method, args))
        ok, value = future.result()
        if not ok:
            raise value
        return value

    # PartyHost's methods (but stop), relayed to the party's process

    def node(self) -> dict[str, Any]:
        from parties.actor import ray_location  # the supervisor's node is the party's

        return {**self._call("node"), **ray_location()}

    def certificate_requests(self) -> tuple[bytes, bytes]:
        return self._call("certificate_requests")  # type: ignore[no-any-return]

    def provision_requests(self) -> dict[str, bytes]:
        return self._call("provision_requests")  # type: ignore[no-any-return]

    def start(self, *args: Any) -> str:
        return self._call("start", *args)  # type: ignore[no-any-return]

    def join(self, *args: Any) -> None:
        self._call("join", *args)

    def act(self, *args: Any) -> dict[str, Any]:
        return self._call("act", *args)  # type: ignore[no-any-return]

    def seal(self) -> dict[str, Any]:
        return self._call("seal")  # type: ignore[no-any-return]

    def export_log(self) -> dict[str, bytes]:
        return self._call("export_log")  # type: ignore[no-any-return]

    def halt(self) -> None:
        self._call("halt")

    def stop(self) -> None:
        self._stopping = True
        try:
            self._call("stop")
        except (AirlockError, OSError):
            pass  # already gone
        self._connection.close()
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()
        shutil.rmtree(self._workdir, ignore_errors=True)

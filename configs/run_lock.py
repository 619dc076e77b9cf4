"""One process per run directory: an ``fcntl.flock`` on ``DIR/.lock``, held for the whole run.

``train`` takes it on its logdir and ``compare`` on its ``--out`` before any other work. The file
holds its holder as JSON (``host``, ``pid``, ``start`` = start time in clock ticks, ``since`` = UTC
time); a second process gets ``LockHeld`` (one line naming the holder). The kernel releases a
``flock`` when its holder dies, however it dies, so a lock file left by a SIGKILLed run is free: the
next holder takes it over and reports what the file still named (``RunLock.taken_over``). A clean
release empties the file, so "taken over" means the previous holder did not exit cleanly; a lock next
to which nothing new was written (a refused start) removes the file it created, so a refused start
leaves an existing directory as it found it.
The descriptor is close-on-exec: processes the holder starts (Ray, the watchdog) do not inherit it.
Standard library only.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path

LOCK_NAME = ".lock"


class LockError(ValueError):
    """The directory or its lock file cannot be created (one-line message)."""


class LockHeld(LockError):
    """Another live process holds the directory (one-line message naming it)."""


class RunLock:
    """``RunLock(directory, what)``: acquire on construction (creating ``directory`` if needed),
    ``release()`` at the end. ``what`` names the option in messages (``run.logdir``, ``--out``)."""

    def __init__(self, directory: str | os.PathLike, what: str = "run.logdir") -> None:
        self.directory = Path(directory)
        self.name = str(directory)                  # as given, for messages
        self.path = self.directory / LOCK_NAME
        self.created = not self.directory.exists()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise _unwritable(what, self.name, e) from None
        self.fd, self.created_file = self._lock(what)
        self.entries = set(os.listdir(self.directory))   # what was there: release() removes a lock that added nothing
        old = _read(self.fd)
        self.taken_over = old or None        # what a holder that died without releasing left
        me = {"host": socket.gethostname(), "pid": os.getpid(), "start": _start_time(os.getpid()),
              "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, json.dumps(me).encode(), 0)
        os.fsync(self.fd)
        self.holder = me

    def _lock(self, what: str) -> tuple[int, bool]:
        """Opens (creating it if needed) and flocks the lock file: ``(fd, whether this call created it)``.
        A file unlinked by its releasing holder between our open and our flock is not the lock any more:
        then we try again on the file now at the path."""
        while True:
            try:
                fd, created = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644), True
            except FileExistsError:
                try:
                    fd, created = os.open(self.path, os.O_RDWR | os.O_CLOEXEC), False
                except FileNotFoundError:
                    continue                               # unlinked between the two opens
                except OSError as e:
                    raise _unwritable(what, self.name, e) from None
            except OSError as e:
                raise _unwritable(what, self.name, e) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                holder = _describe(_read(fd))
                os.close(fd)
                if e.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                    raise LockError(f"{what}={self.name!r}: cannot lock {self.path} ({e})") from None
                raise LockHeld(f"{what}={self.name!r} is in use by {holder}; wait for that run to end (or "
                               f"stop it), or use another {what}") from None
            if _same_file(fd, self.path):
                return fd, created
            os.close(fd)

    def release(self) -> None:
        """Empties the file and unlocks. A lock that created its file and next to which nothing new was
        written (a refused start) removes the file again, and the directory too if it created that."""
        if self.fd < 0:
            return
        os.ftruncate(self.fd, 0)
        if self.created_file and set(os.listdir(self.directory)) <= self.entries:
            self.path.unlink()                             # while still holding it: see _lock
            if self.created and not os.listdir(self.directory):
                self.directory.rmdir()
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = -1

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _unwritable(what: str, name: str, e: OSError) -> LockError:
    return LockError(f"{what}={name!r} cannot be created or locked ({e.strerror or e}); "
                     f"set {what} to a directory you can write")


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (st.st_dev, st.st_ino)


def _read(fd: int) -> dict:
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        return {"unreadable": True}
    return data if isinstance(data, dict) else {"unreadable": True}


def _describe(holder: dict) -> str:
    if not holder.get("pid"):
        return "another process (its lock file names no holder yet)"
    return f"pid {holder['pid']} on host {holder.get('host', '?')} since {holder.get('since', '?')}"


def _start_time(pid: int) -> int | None:
    from actors.ray_reaper import start_time   # noqa: PLC0415 - the one /proc/PID/stat parser

    return start_time(pid)

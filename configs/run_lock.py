"""One process per run directory: an ``fcntl.flock`` on ``DIR/.lock``, held for the whole run.

``train`` takes it on its logdir and ``compare`` on its ``--out`` before any other work. The file
holds its holder as JSON (``host``, ``pid``, ``start`` = start time in clock ticks, ``since`` = UTC
time); a second process gets ``LockHeld`` (one line naming the holder). The kernel releases a
``flock`` when its holder dies, however it dies, so a lock file left by a SIGKILLed run is free: the
next holder takes it over and reports what the file still named (``RunLock.taken_over``). A clean
release empties the file, so "taken over" means the previous holder did not exit cleanly.
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
        self.path = self.directory / LOCK_NAME
        self.created = not self.directory.exists()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise LockError(f"{what}={str(directory)!r} cannot be created or locked ({e.strerror or e}); "
                           f"set {what} to a directory you can write") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _describe(_read(self.fd))
            os.close(self.fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise LockError(f"{what}={str(directory)!r}: cannot lock {self.path} ({e})") from None
            raise LockHeld(f"{what}={str(directory)!r} is in use by {holder}; wait for that run to end (or "
                           f"stop it), or use another {what}") from None
        old = _read(self.fd)
        self.taken_over = old or None        # what a holder that died without releasing left
        me = {"host": socket.gethostname(), "pid": os.getpid(), "start": _start_time(os.getpid()),
              "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, json.dumps(me).encode(), 0)
        os.fsync(self.fd)
        self.holder = me

    def release(self) -> None:
        """Empties the file and unlocks; removes the directory again if this lock created it and
        nothing else was written there."""
        if self.fd < 0:
            return
        os.ftruncate(self.fd, 0)
        if self.created and os.listdir(self.directory) == [LOCK_NAME]:
            self.path.unlink()
            self.directory.rmdir()
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = -1

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


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

"""A crashed run's local Ray cluster must not outlive it.

When the process that started a local Ray cluster dies without ``ray.shutdown()`` (SIGKILL, the
OOM killer), Ray's head processes follow it, but its dashboard and runtime-env agents stay
(about 210 MB per crash, piling up). So the launcher, right after ``ray.init``:

* writes ``<logdir>/ray_session-<pid>.json``: its own pid and start time, the cluster's session
  directory and node id, and the pid of
* a watchdog: this file run as a script, in its own session (a signal to the launcher's process
  group does not reach it), which waits for the launcher to die and then ends the processes of
  THAT cluster only: those whose command line names its session directory, that have files open in
  it (Ray sends every process's output to the session's logs) or whose environment carries its node
  id (``RAY_NODE_ID``, set by its raylet for some). Other clusters on the machine (other
  runs, other users) have other sessions and node ids and are never touched.

A clean exit stops the watchdog and removes the record (``stop_watchdog``). If the watchdog was
killed too, the next start in the same logdir reaps what the records of dead owners name
(``reap_leftovers``).
Linux only (``/proc``); elsewhere these functions do nothing. Imports only the standard library.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

RECORD = "ray_session-{pid}.json"   # one per process that started a cluster with this logdir
_watchdogs: dict[str, subprocess.Popen] = {}


def stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (``state, ppid, pgrp, session, ...``:
    field 3 of proc(5) is index 0 here); None if the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2:].split()


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (tells a pid apart from its reuse); None if
    it is gone or a zombie."""
    fields = stat_fields(pid)
    return None if fields is None or fields[0] in ("Z", "X") else int(fields[19])


def alive(pid: int, started: int | None = None) -> bool:
    now = start_time(pid)
    return now is not None and (started is None or now == started)


def session_processes(session_dir: str | None, node_id: str | None) -> list[int]:
    """Live processes of one Ray cluster: those whose command line names its session directory, that
    write into it (Ray sends every process's output to the session's logs), or that carry its node id."""
    marker = f"\0RAY_NODE_ID={node_id}\0".encode() if node_id else None
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        if _belongs(int(entry), session_dir, marker) and alive(int(entry)):
            found.append(int(entry))
    return sorted(found)


def _belongs(pid: int, session_dir: str | None, marker: bytes | None) -> bool:
    try:
        if session_dir and session_dir.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
            return True
        if marker and marker in b"\0" + Path(f"/proc/{pid}/environ").read_bytes() + b"\0":
            return True
        if session_dir:
            prefix = session_dir.rstrip("/") + "/"
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(prefix):
                        return True
                except OSError:
                    continue
    except OSError:
        pass
    return False


def reap(session_dir: str | None, node_id: str | None, grace: float = 2.0) -> list[int]:
    """SIGTERM the cluster's processes, SIGKILL those still there after ``grace`` seconds; returns them."""
    if not (session_dir or node_id) or not os.path.isdir("/proc"):
        return []
    pids = session_processes(session_dir, node_id)
    starts = {pid: start_time(pid) for pid in pids}
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(alive(p, starts[p]) for p in pids):
        time.sleep(0.1)
    for pid in pids:
        if alive(pid, starts[pid]):
            _signal(pid, signal.SIGKILL)
    return pids


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def start_watchdog(logdir: str | os.PathLike, session_dir: str | None, node_id: str | None) -> None:
    """Records this process's cluster in ``logdir`` and starts its watchdog."""
    if not os.path.isdir("/proc"):
        return
    os.makedirs(logdir, exist_ok=True)
    record = Path(logdir) / RECORD.format(pid=os.getpid())
    info = {"owner": os.getpid(), "owner_start": start_time(os.getpid()), "session_dir": session_dir,
            "node_id": node_id, "watchdog": None, "watchdog_start": None}
    _write(record, info)
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), str(record)], start_new_session=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _watchdogs[str(record)] = proc
    _write(record, {**info, "watchdog": proc.pid, "watchdog_start": start_time(proc.pid)})


def stop_watchdog(logdir: str | os.PathLike) -> None:
    """After a clean ``ray.shutdown()``: ends this process's watchdog and removes the record."""
    record = Path(logdir) / RECORD.format(pid=os.getpid())
    proc = _watchdogs.pop(str(record), None)
    if proc is not None:
        proc.kill()
        proc.wait()
    record.unlink(missing_ok=True)


def reap_leftovers(logdir: str | os.PathLike) -> list[int]:
    """At a start in ``logdir``: for each record whose owner is dead, ends what is left of its
    cluster (and its watchdog) and removes the record. Returns the pids it signalled."""
    reaped: list[int] = []
    for record in sorted(Path(logdir).glob(RECORD.format(pid="*"))):
        try:
            info = json.loads(record.read_text())
        except (OSError, ValueError):
            continue
        if alive(info["owner"], info.get("owner_start")):
            continue   # that run is still going: not a leftover
        if info.get("watchdog") and alive(info["watchdog"], info.get("watchdog_start")):
            _signal(info["watchdog"], signal.SIGKILL)
            reaped.append(info["watchdog"])
        reaped += reap(info.get("session_dir"), info.get("node_id"))
        record.unlink(missing_ok=True)
    return reaped


def _write(path: Path, info: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, path)


def watch(record: str, poll: float = 0.5, settle: float = 1.0) -> None:
    """The watchdog: waits for the owner to die, lets Ray's own fate-sharing run, then reaps."""
    info = json.loads(Path(record).read_text())
    while alive(info["owner"], info["owner_start"]):
        time.sleep(poll)
    time.sleep(settle)
    reap(info["session_dir"], info["node_id"])
    Path(record).unlink(missing_ok=True)


if __name__ == "__main__":
    watch(sys.argv[1])

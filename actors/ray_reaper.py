"""A crashed run's local Ray cluster must not outlive it, and nothing else may be touched.

When the process that started a local Ray cluster dies without ``ray.shutdown()`` (SIGKILL, the
OOM killer), Ray's head processes follow it, but its dashboard and runtime-env agents stay
(about 210 MB per crash, piling up). So the launcher, right after ``ray.init``:

* writes ``<logdir>/ray_session-<pid>.json``: its own pid and start time, the cluster's session
  directory and node id, the pids and start times of the cluster's processes at that moment
  (``members``), and the pid of
* a watchdog: this file run as a script, in its own session (a signal to the launcher's process
  group does not reach it), which waits for the launcher to die and then ends the processes of
  THAT cluster only.

A process is the cluster's (``session_processes``) only if it runs under our uid, started no
earlier than the launcher, and either (a) is in the record's ``members`` at exactly the recorded
start time (a reused pid is not it), (b) has one whole command-line element exactly
``--session-dir=<dir>`` / ``--session_dir=<dir>`` / ``--node-id=<id>`` / ``--node_id=<id>`` of THIS
cluster (how Ray starts its head processes), or (c) descends from such a process (Ray's agents and
workers retitle themselves ``ray::...``; the watchdog adds them to ``members`` while the launcher
lives, since they outlive the raylet that started them). A path that merely appears in a command
line, a file held open in the session directory, or another cluster's session never makes a
process a member.

A record is read only if the current user owns the file and it has the form we write: a session
directory of Ray's form (``.../session_YYYY-MM-DD_HH-MM-SS_<micro>_<pid>``), a 56-hex-digit node
id, integer pids. Anything else (a ``"/"`` session, ``{}``, another user's file) is refused with a
one-line reason (``RecordError``) and nothing is signalled.

A clean exit stops the watchdog and removes the record (``stop_watchdog``). If the watchdog was
killed too, the next start in the same logdir reaps what the records of dead owners name
(``reap_leftovers``).
Linux only (``/proc``); elsewhere these functions do nothing. Imports only the standard library.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

RECORD = "ray_session-{pid}.json"   # one per process that started a cluster with this logdir
SESSION_NAME = re.compile(r"session_\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}_\d{6}_\d+")   # Ray's session dirs
NODE_ID = re.compile(r"[0-9a-f]{56}")
_watchdogs: dict[str, subprocess.Popen] = {}


class RecordError(ValueError):
    """A cluster record that is not ours or not of the form we write (one-line reason)."""


@dataclass(frozen=True)
class Cluster:
    """What identifies one local Ray cluster's processes (see the module docstring)."""
    session_dir: str
    node_id: str | None
    since: int                                            # the launcher's start time (clock ticks)
    members: Mapping[int, int] = field(default_factory=dict)   # pid -> start time, recorded at start

    def __post_init__(self) -> None:
        check_session_dir(self.session_dir)
        if self.node_id is not None and not (isinstance(self.node_id, str) and NODE_ID.fullmatch(self.node_id)):
            raise RecordError(f"node_id={self.node_id!r} is not a Ray node id (56 hex digits)")

    @property
    def markers(self) -> frozenset[str]:
        """The exact command-line elements that name this cluster."""
        marks = {f"--session-dir={self.session_dir}", f"--session_dir={self.session_dir}"}
        if self.node_id:
            marks |= {f"--node-id={self.node_id}", f"--node_id={self.node_id}"}
        return frozenset(marks)


def check_session_dir(session_dir: object) -> str:
    """``session_dir`` if it is an absolute, normalised path whose last part has Ray's session form."""
    if not (isinstance(session_dir, str) and os.path.isabs(session_dir)
            and os.path.normpath(session_dir) == session_dir and SESSION_NAME.fullmatch(os.path.basename(session_dir))):
        raise RecordError(f"session_dir={session_dir!r} is not a Ray session directory "
                          "(an absolute path ending in session_YYYY-MM-DD_HH-MM-SS_<micro>_<pid>)")
    return session_dir


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


def uids(pid: int) -> tuple[int, int] | None:
    """The process's (real, effective) uid, from ``/proc/PID/status``; None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Uid:"):
                real, effective = line.split()[1:3]
                return int(real), int(effective)
    except (OSError, ValueError):
        pass
    return None


def argv(pid: int) -> list[str]:
    """The process's command line, one element per argument ([] if it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="surrogateescape") for a in raw.split(b"\0")[:-1]]


def is_member(pid: int, cluster: Cluster) -> bool:
    """True only for a live process of ``cluster`` under our uid (module docstring: all must hold)."""
    started = start_time(pid)
    if started is None or started < cluster.since or cluster.members.get(pid, started) != started:
        return False
    me = os.getuid()
    if uids(pid) != (me, me):
        return False
    return pid in cluster.members or not cluster.markers.isdisjoint(argv(pid))


def session_processes(cluster: Cluster) -> dict[int, int]:
    """{pid: start time} of the live processes of ``cluster`` (never this process): the recorded
    members and the processes named by its markers, plus their descendants under our uid started
    since the launcher (Ray's agents and workers: ``ray::...`` titles, no markers in their argv)."""
    me, children = os.getuid(), {}
    for pid in map(int, filter(str.isdigit, os.listdir("/proc"))):
        if (fields := stat_fields(pid)) is not None:
            children.setdefault(int(fields[1]), []).append(pid)
    found = {pid: start_time(pid) for pid in set(cluster.members) | {p for ps in children.values() for p in ps}
             if pid != os.getpid() and is_member(pid, cluster)}
    stack = list(found)
    while stack:
        for child in children.get(stack.pop(), []):
            started = start_time(child)
            if child in found or child == os.getpid() or started is None or started < cluster.since:
                continue
            if uids(child) == (me, me):
                found[child] = started
                stack.append(child)
    return {pid: started for pid, started in found.items() if started is not None}


def reap(cluster: Cluster, grace: float = 2.0) -> list[int]:
    """SIGTERM the cluster's processes, SIGKILL those still there after ``grace`` seconds; returns them.
    Each signal goes to a pid only while it is still the same process (start time re-checked)."""
    if not os.path.isdir("/proc"):
        return []
    targets = session_processes(cluster)
    for pid, started in targets.items():
        _signal(pid, started, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(alive(p, s) for p, s in targets.items()):
        time.sleep(0.1)
    for pid, started in targets.items():
        if alive(pid, started):
            _signal(pid, started, signal.SIGKILL)
    return sorted(targets)


def _signal(pid: int, started: int, sig: int) -> None:
    if start_time(pid) != started:
        return      # gone, or the pid now names another process
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def start_watchdog(logdir: str | os.PathLike, session_dir: str, node_id: str | None,
                   members: Mapping[int, int] | None = None) -> None:
    """Records this process's cluster in ``logdir`` and starts its watchdog. ``members``: the pids
    (-> start times) of the cluster's processes now; by default every process that ``is_member``."""
    if not os.path.isdir("/proc"):
        return
    since = start_time(os.getpid())
    cluster = Cluster(session_dir, node_id, since)
    members = dict(members) if members is not None else session_processes(cluster)
    os.makedirs(logdir, exist_ok=True)     # (train creates it first, with its lock, before Ray starts)
    record = Path(logdir) / RECORD.format(pid=os.getpid())
    info = {"owner": os.getpid(), "owner_start": since, "session_dir": session_dir, "node_id": node_id,
            "members": {str(pid): started for pid, started in members.items()},
            "watchdog": None, "watchdog_start": None}
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


def read_record(path: str | os.PathLike) -> tuple[dict, Cluster]:
    """The record at ``path`` and its cluster; ``RecordError`` (one line) unless we own the file and it
    has exactly the form ``start_watchdog`` writes."""
    path = Path(path)
    try:
        owner_uid = path.stat().st_uid
        info = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise RecordError(f"unreadable ({type(e).__name__}: {e})") from None
    if owner_uid != os.getuid():
        raise RecordError(f"the file belongs to uid {owner_uid}, not to this user (uid {os.getuid()})")
    if not isinstance(info, dict):
        raise RecordError(f"holds {type(info).__name__}, not a record object")
    for key in ("owner", "owner_start"):
        if not _is_int(info.get(key)):
            raise RecordError(f"{key}={info.get(key)!r} is not a pid / start time")
    for key in ("watchdog", "watchdog_start"):
        if info.get(key) is not None and not _is_int(info[key]):
            raise RecordError(f"{key}={info[key]!r} is not a pid / start time")
    members = info.get("members", {})
    if not isinstance(members, dict) or not all(k.isdigit() and _is_int(v) for k, v in members.items()):
        raise RecordError(f"members={members!r} is not a mapping of pids to start times")
    cluster = Cluster(info.get("session_dir"), info.get("node_id"), info["owner_start"],   # type: ignore[arg-type]
                      {int(k): v for k, v in members.items()})
    return info, cluster


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_our_watchdog(info: dict, record: Path) -> bool:
    """The record's watchdog is still the process we started: same start time, our uid, our argv."""
    pid, started = info.get("watchdog"), info.get("watchdog_start")
    me = os.getuid()
    return (pid is not None and alive(pid, started) and uids(pid) == (me, me)
            and argv(pid)[-2:] == [os.path.abspath(__file__), str(record)])


def reap_leftovers(logdir: str | os.PathLike, warn: Callable[[str], None] | None = None) -> list[int]:
    """At a start in ``logdir``: for each record whose owner is dead, ends what is left of its
    cluster (and its watchdog) and removes the record. A record that ``read_record`` refuses is left
    in place and reported to ``warn`` in one line. Returns the pids it signalled."""
    reaped: list[int] = []
    for record in sorted(Path(logdir).glob(RECORD.format(pid="*"))):
        try:
            info, cluster = read_record(record)
        except RecordError as e:
            if warn is not None:
                warn(f"ignored Ray cluster record {record}: {e}; nothing was signalled (remove the file)")
            continue
        if alive(info["owner"], info["owner_start"]):
            continue   # that run is still going: not a leftover
        if _is_our_watchdog(info, record):
            _signal(info["watchdog"], info["watchdog_start"], signal.SIGKILL)
            reaped.append(info["watchdog"])
        reaped += reap(cluster)
        record.unlink(missing_ok=True)
    return reaped


def _write(path: Path, info: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, path)


def watch(record: str, poll: float = 0.5, settle: float = 1.0) -> None:
    """The watchdog: waits for the owner to die (meanwhile adding the processes the cluster starts to the
    record's members), lets Ray's own fate-sharing run, then reaps."""
    try:
        info, cluster = read_record(record)
    except RecordError as e:
        sys.exit(f"ray_reaper: {record}: {e}")
    while alive(info["owner"], info["owner_start"]):
        time.sleep(poll)
        members = session_processes(cluster)      # agents and workers the cluster started since
        if not members.keys() <= cluster.members.keys():
            cluster = Cluster(cluster.session_dir, cluster.node_id, cluster.since, {**cluster.members, **members})
            info = {**info, "members": {str(pid): started for pid, started in cluster.members.items()}}
            _write(Path(record), info)
    time.sleep(settle)
    reap(cluster)
    Path(record).unlink(missing_ok=True)


if __name__ == "__main__":
    watch(sys.argv[1])

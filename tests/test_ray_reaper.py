"""The reaper of a crashed run's Ray cluster, on stand-in processes (no Ray for the run's cluster).

Stand-ins for a cluster's processes are real sleeping processes started after the run's owner,
with the cluster's exact ``--session-dir=`` / ``--node-id=`` argument (as Ray's head processes
have) or descending from one (as Ray's agents do). Bystanders are real processes that a reaper
matching substrings, open files or missing uids would end: they must survive, as must another
real Ray cluster. With Ray itself as the run's cluster: tests/test_faults.py.
"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from actors import ray_reaper
from conftest import ROOT, process_tree, wait_for


@pytest.fixture
def session(tmp_path):
    """A real session directory of Ray's form, with a log file in it."""
    path = tmp_path / "ray" / "session_2026-01-01_00-00-00_000000_1"
    (path / "logs").mkdir(parents=True)
    (path / "logs" / "raylet.out").write_text("started\n")
    (tmp_path / "ray" / (path.name + "x") / "logs").mkdir(parents=True)     # a look-alike beside it
    (tmp_path / "ray" / (path.name + "x") / "logs" / "raylet.out").write_text("other\n")
    return str(path)


NODE = "a" * 56
SLEEP = "import time; time.sleep(120)"
procs: list[subprocess.Popen] = []


def start(args, **kwargs):
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, **kwargs)
    procs.append(proc)
    return proc


@pytest.fixture(autouse=True)
def _end_what_we_started():
    yield
    # their descendants first (the stand-in head process starts an agent)
    for pid in {child for p in procs if p.poll() is None for child in process_tree(p.pid)}:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    while procs:
        p = procs.pop()
        if p.poll() is None:
            p.kill()
        p.wait()


def owner(logdir, session_dir):
    """A process that records a cluster and starts its watchdog, like actors.ray_cluster.start_ray."""
    code = (f"import sys, time; sys.path.insert(0, {str(ROOT)!r}); from actors import ray_reaper; "
            f"ray_reaper.start_watchdog({str(logdir)!r}, {session_dir!r}, {NODE!r}); print('ready', flush=True); "
            "time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-S", "-c", code], stdout=subprocess.PIPE, text=True)
    procs.append(proc)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def members_of(session_dir):
    """A head process (exact --session-dir=), a raylet (--node_id=), and an agent that the head
    process started (no marker in its argv, like ray::DashboardAgent)."""
    head = start([sys.executable, "-S", "-c",
                  f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-S', '-c', {SLEEP!r}]); "
                  "time.sleep(120)", f"--session-dir={session_dir}"])
    raylet = start([sys.executable, "-S", "-c", SLEEP, f"--node_id={NODE}"])
    agent = wait_for(lambda: list(process_tree(head.pid)), 10, "the agent")[0]
    return [head.pid, raylet.pid, agent]


def gone(pid, started):
    return not ray_reaper.alive(pid, started)


def crash(boss, logdir):
    """SIGKILLs the owner and its watchdog, as a kill -9 of the whole job would."""
    info = json.loads(next(logdir.glob("ray_session-*.json")).read_text())
    os.kill(info["watchdog"], signal.SIGKILL)
    boss.kill()
    boss.wait()
    # SIGKILL is delivered asynchronously: on a loaded machine the watchdog can still be running when
    # the reaper looks, and the reaper rightly ends it (and lists its pid). Wait until it is gone.
    wait_for(lambda: not ray_reaper.alive(info["watchdog"], info["watchdog_start"]), 10, "the watchdog to end")


BYSTANDERS = {
    "tail -f on a session log": lambda s: ["tail", "-f", f"{s}/logs/raylet.out"],
    "a process holding a file open in the session dir": lambda s: [
        sys.executable, "-S", "-c", f"f = open({s + '/logs/raylet.out'!r}); import time; time.sleep(120)"],
    "a process whose argv names the session dir": lambda s: [
        sys.executable, "-S", "-c", SLEEP, s, f"--logs={s}/logs", f"--session-dir={s}/logs"],
    "a look-alike session dir": lambda s: ["tail", "-f", f"{s}x/logs/raylet.out"],
    "a look-alike --session-dir= argument": lambda s: [sys.executable, "-S", "-c", SLEEP, f"--session-dir={s}x"],
}


@pytest.mark.parametrize("kind", list(BYSTANDERS))
def test_next_start_reaps_the_cluster_and_spares_a_bystander(tmp_path, session, kind):
    boss = owner(tmp_path, session)
    members = members_of(session)
    bystander = start(BYSTANDERS[kind](session))
    starts = {pid: ray_reaper.start_time(pid) for pid in members + [bystander.pid]}
    assert ray_reaper.reap_leftovers(tmp_path) == []            # its owner lives: not a leftover
    crash(boss, tmp_path)
    reaped = ray_reaper.reap_leftovers(tmp_path)
    assert bystander.pid not in reaped, f"{kind} was signalled"
    assert bystander.poll() is None, f"{kind} ended ({bystander.returncode})"
    assert set(members) <= set(reaped)
    wait_for(lambda: all(gone(p, starts[p]) for p in members), 10, "the cluster's processes to end")
    assert not list(tmp_path.glob("ray_session-*.json"))


def test_watchdog_ends_the_cluster_and_spares_bystanders(tmp_path, session):
    boss = owner(tmp_path, session)
    members = members_of(session)
    bystanders = [start(make(session)) for make in BYSTANDERS.values()]
    starts = {pid: ray_reaper.start_time(pid) for pid in members}
    record = next(tmp_path.glob("ray_session-*.json"))
    wait_for(lambda: set(map(str, members)) <= set(json.loads(record.read_text())["members"]), 10,
             "the watchdog to record the agent the head process started")
    time.sleep(1.0)
    assert not any(gone(p, starts[p]) for p in members), "the watchdog must wait while the owner lives"
    boss.kill()
    boss.wait()
    wait_for(lambda: all(gone(p, starts[p]) for p in members), 20, "the watchdog to end the cluster's processes")
    assert [b.args for b in bystanders if b.poll() is not None] == []
    wait_for(lambda: not record.exists(), 10, "the watchdog to remove the record")


def test_a_process_of_another_uid_is_never_signalled(tmp_path, session):
    if os.getuid() != 0:
        pytest.skip("needs root to start a process as nobody")
    boss = owner(tmp_path, session)
    # (/bin/sh: nobody cannot run this venv's python; the loop keeps sh itself, with this argv, alive)
    foreign = start(["/bin/sh", "-c", "while :; do sleep 1; done", "sh", f"--session-dir={session}"], user="nobody")
    wait_for(lambda: os.stat(f"/proc/{foreign.pid}").st_uid == 65534 and "sh" in open(f"/proc/{foreign.pid}/cmdline")
             .read(), 10, "the foreign process to run as nobody")
    mine = start([sys.executable, "-S", "-c", SLEEP, f"--session-dir={session}"])
    crash(boss, tmp_path)
    reaped = ray_reaper.reap_leftovers(tmp_path)
    assert reaped == [mine.pid]
    assert foreign.poll() is None


def write_record(logdir, info, pid=999999999):
    path = logdir / ray_reaper.RECORD.format(pid=pid)
    path.write_text(json.dumps(info))
    return path


def dead_owner():
    """A pid and start time of a process that has ended."""
    proc = subprocess.Popen([sys.executable, "-S", "-c", "pass"])
    started = ray_reaper.start_time(proc.pid)
    proc.wait()
    return proc.pid, started or 0


@pytest.mark.parametrize("session_dir", ["/", "/tmp", "/tmp/ray/session_latest", "/tmp/ray/../ray/session_2026"
                                         "-01-01_00-00-00_000000_1", "tmp/ray/session_2026-01-01_00-00-00_000000_1"])
def test_a_record_that_names_no_ray_session_is_refused(tmp_path, session_dir, monkeypatch):
    signalled = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: signalled.append(pid))   # whatever it would do: record it
    pid, started = dead_owner()
    path = write_record(tmp_path, {"owner": pid, "owner_start": 0, "session_dir": session_dir, "node_id": None,
                                   "watchdog": None, "watchdog_start": None})
    warnings = []
    assert ray_reaper.reap_leftovers(tmp_path, warn=warnings.append) == []
    assert signalled == []
    [warning] = warnings
    assert "\n" not in warning and str(path) in warning and repr(session_dir) in warning
    assert path.exists()                                           # left for the user to look at


def test_a_malformed_or_foreign_record_is_a_one_line_warning(tmp_path, session, monkeypatch):
    signalled = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: signalled.append(pid))
    pid, started = dead_owner()
    good = {"owner": pid, "owner_start": started, "session_dir": session, "node_id": NODE,
            "watchdog": None, "watchdog_start": None}
    write_record(tmp_path, {}, pid=1)
    write_record(tmp_path, {**good, "owner": "1"}, pid=2)
    write_record(tmp_path, {**good, "node_id": "../x"}, pid=3)
    foreign = write_record(tmp_path, good, pid=4)
    if os.getuid() == 0:
        os.chown(foreign, 65534, 65534)                            # a record another user wrote
    mine = start([sys.executable, "-S", "-c", SLEEP, f"--session-dir={session}"])
    warnings = []
    assert ray_reaper.reap_leftovers(tmp_path, warn=warnings.append) == []
    assert mine.poll() is None and signalled == []
    assert len(warnings) == (4 if os.getuid() == 0 else 3) and all("\n" not in w for w in warnings)
    if os.getuid() == 0:
        assert "belongs to uid 65534" in warnings[-1]


def test_a_reused_pid_is_not_the_recorded_member(tmp_path, session):
    """A recorded member whose pid now names a process with another start time is left alone."""
    pid, started = dead_owner()
    other = start([sys.executable, "-S", "-c", SLEEP])
    cluster = ray_reaper.Cluster(session, None, since=0, members={other.pid: ray_reaper.start_time(other.pid) - 1})
    assert ray_reaper.session_processes(cluster) == {}


def test_clean_shutdown_stops_the_watchdog(tmp_path, session):
    members = members_of(session)
    ray_reaper.start_watchdog(tmp_path, session, NODE)
    info = json.loads(next(tmp_path.glob("ray_session-*.json")).read_text())
    ray_reaper.stop_watchdog(tmp_path)
    assert not ray_reaper.alive(info["watchdog"], info["watchdog_start"])
    assert not list(tmp_path.glob("ray_session-*.json"))
    assert all(ray_reaper.alive(p) for p in members)


@pytest.fixture(scope="module")
def other_cluster():
    """Another user's / run's real local Ray cluster on this machine; {pid: start} of its processes."""
    code = ("import ray, sys; ray.init(address='local', num_cpus=0, include_dashboard=False, "
            "logging_level='ERROR'); print(ray._private.worker._global_node.get_session_dir_path(), flush=True); "
            "sys.stdin.readline(); ray.shutdown()")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        session_dir = proc.stdout.readline().strip()
        time.sleep(2)
        tree = ray_reaper.session_processes(ray_reaper.Cluster(session_dir, None, ray_reaper.start_time(proc.pid)))
        yield session_dir, tree
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.heavy(13)
def test_another_real_ray_cluster_survives(tmp_path, session, other_cluster):
    other_session, tree = other_cluster
    assert len(tree) >= 2, tree                                   # gcs_server, raylet, ... of the other cluster
    boss = owner(tmp_path, session)
    members = members_of(session)
    crash(boss, tmp_path)
    reaped = ray_reaper.reap_leftovers(tmp_path)
    assert set(members) <= set(reaped) and not set(tree) & set(reaped)
    assert all(ray_reaper.alive(pid, started) for pid, started in tree.items())

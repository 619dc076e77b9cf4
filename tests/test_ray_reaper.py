"""The reaper of a crashed run's Ray cluster, on stand-in processes (no Ray, a few seconds).

Stand-ins for a cluster's processes are real sleeping processes named by its session directory
or carrying its node id (as Ray's head processes and raylet-started agents do); a bystander of
another cluster must survive. With Ray itself: tests/test_faults.py.
"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from actors import ray_reaper
from conftest import ROOT, wait_for

SESSION, NODE = "/tmp/ray/session_2026-01-01_00-00-00_000000_1", "a" * 56


def spawn(session="-", node="-"):
    return subprocess.Popen([sys.executable, "-S", "-c", "import time; time.sleep(120)", f"--session-dir={session}"],
                            env=dict(os.environ, RAY_NODE_ID=node))


def owner(logdir):
    """A process that records a cluster and starts its watchdog, like launch.start_ray."""
    code = (f"import sys, time; sys.path.insert(0, {str(ROOT)!r}); from actors import ray_reaper; "
            f"ray_reaper.start_watchdog({str(logdir)!r}, {SESSION!r}, {NODE!r}); print('ready', flush=True); "
            "time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-S", "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def gone(proc):
    return proc.poll() is not None


@pytest.fixture
def cluster():
    members = [spawn(session=SESSION), spawn(node=NODE)]   # a head process, an agent
    bystanders = [spawn(session="/tmp/ray/session_other"), spawn(node="b" * 56)]
    yield members, bystanders
    for p in members + bystanders:
        if p.poll() is None:
            p.kill()
        p.wait()


def test_watchdog_ends_the_cluster_of_a_killed_owner_only(tmp_path, cluster):
    members, bystanders = cluster
    boss = owner(tmp_path)
    record = next(tmp_path.glob("ray_session-*.json"))
    assert json.loads(record.read_text())["owner"] == boss.pid
    time.sleep(1.0)
    assert not any(gone(p) for p in members), "the watchdog must wait while the owner lives"
    boss.kill()
    boss.wait()
    wait_for(lambda: all(gone(p) for p in members), 20, "the watchdog to end the cluster's processes")
    assert not any(gone(p) for p in bystanders)
    wait_for(lambda: not record.exists(), 10, "the watchdog to remove the record")


def test_next_start_reaps_when_the_watchdog_died_too(tmp_path, cluster):
    members, bystanders = cluster
    boss = owner(tmp_path)
    info = json.loads(next(tmp_path.glob("ray_session-*.json")).read_text())
    assert ray_reaper.reap_leftovers(tmp_path) == []            # its owner lives: not a leftover
    os.kill(info["watchdog"], signal.SIGKILL)
    boss.kill()
    boss.wait()
    time.sleep(1.0)
    assert not any(gone(p) for p in members)                      # nothing else would end them
    reaped = ray_reaper.reap_leftovers(tmp_path)
    assert sorted(reaped) == sorted(p.pid for p in members)
    wait_for(lambda: all(gone(p) for p in members), 10, "the leftovers to end")
    assert not any(gone(p) for p in bystanders)
    assert not list(tmp_path.glob("ray_session-*.json"))


def test_clean_shutdown_stops_the_watchdog(tmp_path, cluster):
    members, _ = cluster
    ray_reaper.start_watchdog(tmp_path, SESSION, NODE)
    info = json.loads(next(tmp_path.glob("ray_session-*.json")).read_text())
    ray_reaper.stop_watchdog(tmp_path)
    assert not ray_reaper.alive(info["watchdog"], info["watchdog_start"])
    assert not list(tmp_path.glob("ray_session-*.json"))
    assert not any(gone(p) for p in members)

"""``actors.overlap``: the actor whose envs step in a child process, one half while the network acts on
the other. What its unrolls hold is checked with today's actor in test_actor_path.py,
test_actor_fast_path.py and test_actor_truncation.py; here: the child's failures and lifetime (real
processes, real signals), the config check, and a Ray run whose env raises in the child."""
import json
import os
import signal
import subprocess
import sys

import pytest
import ray.cloudpickle

import flaky_suite
import scripted_suite as ss
from actors.overlap import EnvProcessError, OverlapWorker
from actors.ray_reaper import alive, start_time
from agent import AgentConfig
from conftest import ROOT, TINY, events_of, wait_for
from configs.schema import load_config
from configs.suites import resolve_suite
from training import run as training_run

SMALL = AgentConfig(head="shared", instruction_buckets=100, torso="small", core_size=16, torso_out=16)


def test_an_env_that_raises_in_the_child_is_named_and_the_child_has_exited(tmp_path):
    suite = flaky_suite.FlakySuite(ss.counting_suite([(50,), (50,)]), str(tmp_path / "raised"), fail_at=3)
    actor = OverlapWorker(suite, SMALL, [0, 1], unroll_length=4, seed=0, actor_id=0)
    child = actor.process.proc
    try:
        with pytest.raises(EnvProcessError, match=r"^an env raised RuntimeError: simulated env crash"):
            actor.unroll()
        assert child.poll() == 1                                       # the child reported, then exited
        assert int((tmp_path / "raised").read_text()) == child.pid     # the env ran in the child
    finally:
        actor.close()


def test_a_child_killed_from_outside_fails_the_next_unroll():
    actor = OverlapWorker(ss.counting_suite([(5,), (7,)]), SMALL, [0, 1], unroll_length=4, seed=0, actor_id=0)
    try:
        actor.unroll()
        child = actor.process.proc
        child.send_signal(signal.SIGKILL)          # our own child, not yet reaped: its pid cannot be reused
        with pytest.raises(EnvProcessError, match=rf"env process \(pid {child.pid}\) exited with code -9"):
            actor.unroll()
    finally:
        actor.close()


def test_close_ends_the_child_cleanly_and_twice_is_harmless(tmp_path):
    actor = OverlapWorker(ss.counting_suite([(3,), (2,)], log_dir=str(tmp_path)), SMALL, [0, 1],
                          unroll_length=4, seed=0, actor_id=0)
    actor.unroll()
    child = actor.process.proc
    actor.close()
    actor.close()
    assert child.returncode == 0                                  # it exited on "Q", not killed
    assert [log["pid"] for log in ss.read_logs(tmp_path)] == [child.pid] * 2   # and closed both envs there
    state = actor.get_state()
    assert state["episodes"] is None and "child process" in state["not_copyable"]
    assert "cannot be restored" in actor.set_state(state)


PARENT = """
import sys, time
sys.path[:0] = [{root!r}, {tests!r}]
import scripted_suite as ss
from actors.overlap import OverlapWorker
from agent import AgentConfig
actor = OverlapWorker(ss.counting_suite([(5,), (7,)]), AgentConfig(torso="small", core_size=16, torso_out=16,
                      instruction_buckets=100), [0, 1], unroll_length=4, seed=0, actor_id=0)
actor.unroll()
print(actor.process.pid, flush=True)
time.sleep(600)
"""


def test_the_child_exits_when_its_parent_is_sigkilled(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(PARENT.format(root=str(ROOT), tests=str(ROOT / "tests")))
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        started = start_time(child)
        assert started is not None and os.getppid() != child
        parent.send_signal(signal.SIGKILL)                   # our own child: the test started it
        parent.wait()
        # its pipe to the child closed: the child leaves its loop and exits (reaped by init)
        wait_for(lambda: not alive(child, started), 15, "the env process to exit after its parent died")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_the_config_needs_two_envs_per_actor_to_overlap():
    with pytest.raises(ValueError, match=r"^actors.overlap=true needs actors.envs_per_actor >= 2 \(got 1\)"):
        load_config(None, ["actors.overlap=true", "envs_per_actor=1"])
    with pytest.raises(ValueError, match=r"^actors.overlap='yes' must be true or false"):
        load_config(None, ["actors.overlap='yes'"])
    assert load_config(None, ["actors.overlap=true"]).actors.overlap is True


@pytest.mark.heavy(15)
def test_ray_run_with_overlap_restarts_the_actor_whose_env_raised_and_finishes(tmp_path):
    ray.cloudpickle.register_pickle_by_value(flaky_suite)     # tests/ is not importable in Ray workers
    logdir, raised = tmp_path / "run", tmp_path / "crashed"
    cfg = load_config(None, TINY + [f"logdir={logdir}", "total_frames=6000", "num_actors=1", "envs_per_actor=4",
                                    "actors.overlap=true", "actors.cpus_per_actor=2"])
    inner, task_ids = resolve_suite(cfg)
    suite = flaky_suite.FlakySuite(inner, str(raised), fail_at=40)
    training_run.train(cfg, suite=suite, task_ids=task_ids, install_signal_handlers=False)
    pid = int(raised.read_text())
    restarts = events_of(logdir, "actor_restart")
    started = events_of(logdir, "actor_started")
    assert len(restarts) == 1 and "an env raised RuntimeError: simulated env crash" in restarts[0]["error"]
    assert [e["incarnation"] for e in started] == [0, 1]
    assert pid == started[0]["env_pid"] != started[0]["pid"]    # it raised in the first env process
    metrics = [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["frames"] >= 6000
    # the actors are gone, and so are their env processes
    wait_for(lambda: not any(alive(e["env_pid"]) for e in started), 10, "the env processes to exit")

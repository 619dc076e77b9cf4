"""Fault tolerance with real Ray: an actor process SIGKILLed, an env that raises, a lost node.
In each case the dead actor is restarted as a new incarnation, its partial unroll is dropped
and training goes on. When it cannot go on (too many restarts, actors that cannot be rebuilt)
the run ends with a final checkpoint, the error in events.jsonl and a non-zero exit."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import ray
import ray.cloudpickle
from ray.cluster_utils import Cluster

from actors.ray_reaper import start_time
from configs.errors import TrainingError
from conftest import (ROOT, TINY, events_of, frames_now, launch as launch_proc, process_tree, read_jsonl,
                      stop_process_group, wait_for)
from configs.schema import load_config
from configs.suites import resolve_suite
from learner.checkpoint import Checkpointer
from training import run as training_run

RAY = TINY + ["num_actors=2", "envs_per_actor=2", "run.report_every_seconds=1"]


@pytest.mark.heavy(31)
def test_sigkilled_actor_is_restarted_then_too_many_restarts_exit_1_with_a_final_checkpoint(run_dir, tmp_path):
    # one run proves both (one Ray start-up instead of two): with actors.max_restarts=1 the first
    # SIGKILL is survived (a new incarnation, training goes on), the second stops the run with exit 1
    proc = launch_proc(RAY + [f"logdir={run_dir}", "total_frames=100000000", "actors.max_restarts=1"],
                       log=tmp_path / "log")
    try:
        started = wait_for(lambda: len(events_of(run_dir, "actor_started")) == 2 and frames_now(run_dir) > 0
                           and events_of(run_dir, "actor_started"), 240, "both actors and a report", proc)
        victim = next(e for e in started if e["actor"] == 1)
        os.kill(victim["pid"], signal.SIGKILL)
        restart = wait_for(lambda: events_of(run_dir, "actor_restart"), 120, "the restart", proc)[0]
        assert restart["actor"] == 1 and restart["new_incarnation"] == 1
        reborn = wait_for(lambda: [e for e in events_of(run_dir, "actor_started")
                                   if e["actor"] == 1 and e["incarnation"] == 1], 120, "the new incarnation to start", proc)
        assert reborn[0]["pid"] != victim["pid"]
        after = frames_now(run_dir)
        wait_for(lambda: frames_now(run_dir) > after + 200, 120, "training to go on", proc)
        assert proc.poll() is None and read_jsonl(run_dir / "metrics.jsonl")[-1]["actor_restarts"] == 1
        os.kill(next(e for e in started if e["actor"] == 0)["pid"], signal.SIGKILL)   # the second restart: too many
        assert proc.wait(timeout=120) == 1
    finally:
        stop_process_group(proc)
    last_line = (tmp_path / "log").read_text().strip().splitlines()[-1]
    assert last_line.startswith("error: training stopped at ") and "actors.max_restarts=1" in last_line
    assert "2 actor restarts exceed" in last_line
    [error] = events_of(run_dir, "error")
    state, path = Checkpointer(run_dir / "checkpoints").load_latest()
    assert error["checkpoint"] == str(path) and f"final checkpoint {path}" in last_line
    assert state["updates"] == error["updates"] > 0 and state["frames"] >= frames_now(run_dir) > after
    assert events_of(run_dir, "checkpoint")[-1]["why"] == "error"


@pytest.mark.heavy(43)
def test_lost_node_actors_move_and_training_finishes(run_dir, tmp_path):
    # Actors request the custom resource actor_slot, which only worker nodes have, so both start on
    # the worker for certain; when it is lost they restart on its replacement.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker = cluster.add_node(num_cpus=1, resources={"actor_slot": 2})
    cluster.wait_for_nodes()
    proc = None
    try:
        args = RAY + [f"logdir={run_dir}", "total_frames=100000000", f"ray_address={cluster.address}",
                      "actors.cpus_per_actor=0.5", "actors.resources={actor_slot: 1}"]
        # more actors than the cluster's CPUs or slots can hold: refused up front, nothing written
        too_many = launch_proc(args + ["num_actors=5"], log=tmp_path / "too_many.log")
        assert too_many.wait(timeout=120) == 2
        assert "has 2 CPUs but num_actors x cpus_per_actor needs 2.5" in (tmp_path / "too_many.log").read_text()
        no_slot = launch_proc(args + ["num_actors=3"], log=tmp_path / "no_slot.log")
        assert no_slot.wait(timeout=120) == 2
        assert "has 2 of resource 'actor_slot' but num_actors x actors.resources.actor_slot needs 3" in \
            (tmp_path / "no_slot.log").read_text()
        assert not run_dir.exists()
        # a local run (no ray_address) started while this cluster is up gets a Ray of its own
        code = ("import ray; from actors import ray_cluster; from configs.schema import load_config; "
                f"ray_cluster.start_ray(load_config(None, ['num_actors=1', 'logdir={tmp_path / 'local'}'])); "
                "print('GCS', ray.get_runtime_context().gcs_address); ray.shutdown()")
        local = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=180)
        assert local.returncode == 0, local.stderr[-2000:]
        assert "GCS " in local.stdout and cluster.address not in local.stdout
        proc = launch_proc(args, log=tmp_path / "log")
        started = wait_for(lambda: len(events_of(run_dir, "actor_started")) == 2 and frames_now(run_dir) > 0
                           and events_of(run_dir, "actor_started"), 240, "both actors and a report", proc)
        assert all(e["node"] == worker.node_id for e in started), started
        replacement = cluster.add_node(num_cpus=1, resources={"actor_slot": 2})
        cluster.wait_for_nodes()
        cluster.remove_node(worker)
        restarts = wait_for(lambda: len(events_of(run_dir, "actor_restart")) >= 2 and
                            events_of(run_dir, "actor_restart"), 180, "restarts after node loss", proc)
        assert {r["actor"] for r in restarts} == {0, 1}
        moved = wait_for(lambda: len([e for e in events_of(run_dir, "actor_started") if e["incarnation"] == 1]) == 2
                         and [e for e in events_of(run_dir, "actor_started") if e["incarnation"] == 1],
                         180, "the restarted actors to start", proc)
        assert all(e["node"] == replacement.node_id for e in moved), moved
        after = frames_now(run_dir)
        wait_for(lambda: frames_now(run_dir) > after + 200, 180, "training to go on on the replacement node", proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 128 + signal.SIGTERM
    finally:
        if proc is not None:
            stop_process_group(proc)
        cluster.shutdown()


# ------------------------------------------------------------------ a SIGKILLed run's local Ray cluster
def still_running(tree):
    return [pid for pid, start in tree.items() if start_time(pid) == start]


def cmdline(pid):
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def crash_a_run(run_dir, tmp_path, kill_watchdog_first):
    """Starts a Ray run, SIGKILLs it (and first its watchdog, if asked); returns what it had started."""
    # (actors.resources: a local cluster must declare the custom resources its actors request)
    proc = launch_proc(RAY + [f"logdir={run_dir}", "total_frames=100000000", "actors.resources={actor_slot: 1}"],
                       log=tmp_path / "log")
    try:
        wait_for(lambda: len(events_of(run_dir, "actor_started")) == 2 and frames_now(run_dir) > 0,
                 240, "both actors and a report", proc)
        tree = process_tree(proc.pid)
        names = " | ".join(cmdline(p) for p in tree)
        assert "raylet" in names and "ray::RayActor" in names, names     # Ray's processes, the actors
        if kill_watchdog_first:
            record = json.loads(next(run_dir.glob("ray_session-*.json")).read_text())
            assert record["owner"] == proc.pid and record["watchdog"] in tree
            os.kill(record["watchdog"], signal.SIGKILL)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        return tree
    finally:
        stop_process_group(proc)


def end_leftovers(tree):
    left = {pid: cmdline(pid)[:120] for pid in still_running(tree)}
    for pid in left:                     # only if the test failed: these are this test's processes
        os.kill(pid, signal.SIGKILL)
    assert not left, f"left running: {left}"


@pytest.mark.heavy(17)
def test_sigkilled_run_leaves_no_ray_processes(run_dir, tmp_path):
    tree = crash_a_run(run_dir, tmp_path, kill_watchdog_first=False)
    try:
        wait_for(lambda: not still_running(tree), 60, "the crashed run's Ray processes to end")
        assert not list(run_dir.glob("ray_session-*.json"))       # the watchdog cleaned up after itself
    finally:
        end_leftovers(tree)


@pytest.mark.heavy(18)
def test_next_start_reaps_a_crashed_cluster_whose_watchdog_died_too(run_dir, tmp_path):
    from actors import ray_reaper

    tree = crash_a_run(run_dir, tmp_path, kill_watchdog_first=True)
    try:
        time.sleep(2)
        records = [p.read_text() for p in run_dir.glob("ray_session-*.json")]
        reaped = ray_reaper.reap_leftovers(run_dir)                   # what ray_cluster.start_ray does at a start
        assert set(reaped) <= set(tree), "only the crashed run's own processes may be signalled"
        wait_for(lambda: not still_running(tree), 30,
                 f"the crashed run's Ray processes to end (reaped {reaped}, records {records})")
        assert not list(run_dir.glob("ray_session-*.json"))
        assert ray_reaper.reap_leftovers(run_dir) == []
    finally:
        end_leftovers(tree)


@pytest.mark.heavy(30)
def test_env_that_raises_restarts_its_actor_and_actors_that_cannot_be_rebuilt_stop_the_run(tmp_path):
    # one Ray run proves both: an env raises once (its actor restarts, training goes on); later the
    # envs can no longer be built (a node lost its install) and an actor is SIGKILLed: 3 failed
    # rebuilds in a row stop the run with a final checkpoint
    import flaky_suite

    ray.cloudpickle.register_pickle_by_value(flaky_suite)
    logdir, raised, broken = tmp_path / "run", tmp_path / "crashed", tmp_path / "no-more-envs"
    cfg = load_config(None, RAY + [f"logdir={logdir}", "total_frames=100000000"])
    inner, task_ids = resolve_suite(cfg)
    suite = flaky_suite.BreakableSuite(flaky_suite.FlakySuite(inner, str(raised), fail_at=30), str(broken))
    seen = {}

    def break_envs_after_the_restart(loop):
        if broken.exists() or not events_of(logdir, "actor_restart"):
            return
        seen.setdefault("updates", loop.learner.num_updates)      # the first step after the env raised
        if loop.learner.num_updates == seen["updates"] + 3:        # training went on after the restart
            pid = loop.source.actor_info()[1]["pid"]     # waits until both actors are built
            seen["frames"] = loop.learner.num_frames
            broken.touch()
            os.kill(pid, signal.SIGKILL)

    with pytest.raises(TrainingError, match="actor 1 failed to start 3 times in a row") as info:
        training_run.train(cfg, suite=suite, task_ids=task_ids, on_step=break_envs_after_the_restart,
                           install_signal_handlers=False)
    assert raised.exists()                       # the env did raise, in an actor process
    assert int(raised.read_text()) != os.getpid()
    restarts = events_of(logdir, "actor_restart")
    assert "simulated env crash" in restarts[0]["error"]
    assert [r["actor"] for r in restarts[1:]] == [1, 1, 1, 1]      # the kill, then 3 failed rebuilds
    assert all("cannot build env" in r["error"] for r in restarts[2:])
    state, path = Checkpointer(logdir / "checkpoints").load_latest()
    assert info.value.checkpoint == str(path) and state["updates"] >= seen["updates"] + 3
    assert state["frames"] >= seen["frames"] > 0
    assert events_of(logdir, "error")[0]["checkpoint"] == str(path)

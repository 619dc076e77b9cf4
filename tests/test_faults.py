"""Fault tolerance with real Ray: an actor process SIGKILLed, an env that raises, a lost node.
In each case the dead actor is restarted as a new incarnation, its partial unroll is dropped
and training goes on."""
import os
import signal
import sys

import pytest
import ray
import ray.cloudpickle
from ray.cluster_utils import Cluster

import launch
from conftest import TINY, launch as launch_proc, read_jsonl, stop_process_group, wait_for
from configs.schema import load_config

RAY = TINY + ["num_actors=2", "envs_per_actor=2", "run.report_every_seconds=1"]


def events_of(run_dir, kind):
    return [e for e in read_jsonl(run_dir / "events.jsonl") if e["event"] == kind]


def frames_now(run_dir):
    records = read_jsonl(run_dir / "metrics.jsonl")
    return records[-1]["frames"] if records else 0


def test_sigkilled_actor_is_restarted_and_training_continues(run_dir, tmp_path):
    proc = launch_proc(RAY + [f"logdir={run_dir}", "total_frames=100000000"], log=tmp_path / "log")
    try:
        started = wait_for(lambda: len(events_of(run_dir, "actor_started")) == 2 and frames_now(run_dir) > 0
                           and events_of(run_dir, "actor_started"), 240, "both actors and a report", proc)
        victim = next(e for e in started if e["actor"] == 1)
        os.kill(victim["pid"], signal.SIGKILL)
        restart = wait_for(lambda: events_of(run_dir, "actor_restart"), 120, "the restart", proc)[0]
        assert restart["actor"] == 1 and restart["new_incarnation"] == 1
        wait_for(lambda: any(e["actor"] == 1 and e["incarnation"] == 1 for e in events_of(run_dir, "actor_started")),
                 120, "the new incarnation to start", proc)
        after = frames_now(run_dir)
        wait_for(lambda: frames_now(run_dir) > after + 200, 120, "training to go on", proc)
        new_pid = next(e["pid"] for e in events_of(run_dir, "actor_started") if e["incarnation"] == 1)
        assert new_pid != victim["pid"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 128 + signal.SIGTERM
    finally:
        stop_process_group(proc)
    assert read_jsonl(run_dir / "metrics.jsonl")[-1]["actor_restarts"] == 1


def test_env_that_raises_restarts_its_actor(tmp_path):
    import flaky_suite

    ray.cloudpickle.register_pickle_by_value(flaky_suite)
    logdir, marker = tmp_path / "flaky", tmp_path / "crashed"
    cfg = load_config(None, RAY + [f"logdir={logdir}", "total_frames=800"])
    inner, task_ids = launch.build_suite(cfg)
    suite = flaky_suite.FlakySuite(inner, str(marker), fail_at=30)
    assert launch.train(cfg, suite=suite, task_ids=task_ids, install_signal_handlers=False) == "done"
    assert marker.exists()                       # the env did raise, in an actor process
    assert int(marker.read_text()) != os.getpid()
    restarts = events_of(logdir, "actor_restart")
    assert len(restarts) == 1 and "simulated env crash" in restarts[0]["error"]
    assert read_jsonl(logdir / "metrics.jsonl")[-1]["frames"] >= 800


def test_lost_node_actors_move_and_training_finishes(run_dir, tmp_path):
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    proc = None
    try:
        args = RAY + [f"logdir={run_dir}", "total_frames=100000000", f"ray_address={cluster.address}",
                      "actors.cpus_per_actor=0.5"]
        # more actors than the cluster's CPUs can hold: refused up front, nothing written
        too_many = launch_proc(args + ["num_actors=5"], log=tmp_path / "too_many.log")
        assert too_many.wait(timeout=120) == 2
        assert "has 2 CPUs but num_actors x cpus_per_actor needs 2.5" in (tmp_path / "too_many.log").read_text()
        assert not run_dir.exists()
        proc = launch_proc(args, log=tmp_path / "log")
        started = wait_for(lambda: len(events_of(run_dir, "actor_started")) == 2 and frames_now(run_dir) > 0
                           and events_of(run_dir, "actor_started"), 240, "both actors and a report", proc)
        on_worker = [e for e in started if e["node"] == worker.node_id]
        assert on_worker, f"SPREAD placed no actor on the worker node: {started}"
        cluster.remove_node(worker)
        restarts = wait_for(lambda: len(events_of(run_dir, "actor_restart")) >= len(on_worker) and
                            events_of(run_dir, "actor_restart"), 180, "restarts after node loss", proc)
        assert {r["actor"] for r in restarts} == {e["actor"] for e in on_worker}
        moved = wait_for(lambda: [e for e in events_of(run_dir, "actor_started") if e["incarnation"] == 1],
                         180, "the restarted actors to start", proc)
        assert all(e["node"] != worker.node_id for e in moved)
        after = frames_now(run_dir)
        wait_for(lambda: frames_now(run_dir) > after + 200, 180, "training to go on on the head node", proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 128 + signal.SIGTERM
    finally:
        if proc is not None:
            stop_process_group(proc)
        cluster.shutdown()

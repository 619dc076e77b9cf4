"""End to end with real Ray: launch.py trains, writes TensorBoard/metrics/checkpoints, stops on
SIGTERM with a checkpoint, and resumes in the same logdir."""
import signal

import pytest

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import TINY, launch, read_jsonl, stop_process_group, wait_for

RAY = TINY + ["num_actors=2", "envs_per_actor=2"]


def test_train_sigterm_resume_and_outputs(run_dir, tmp_path):
    args = RAY + [f"logdir={run_dir}", "total_frames=100000000"]
    proc = launch(args, log=tmp_path / "first.log")
    try:
        # train until a few reports exist, then preempt it like a cluster scheduler would
        wait_for(lambda: len(read_jsonl(run_dir / "metrics.jsonl")) >= 3 and
                 {e["actor"] for e in read_jsonl(run_dir / "events.jsonl") if e["event"] == "actor_started"} == {0, 1},
                 240, "three reports and both actors started", proc)   # on a loaded machine an actor can be late
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 128 + signal.SIGTERM
    finally:
        stop_process_group(proc)
    log = (tmp_path / "first.log").read_text()
    assert "SIGTERM received" in log and "frames " in log   # progress lines were printed

    events = read_jsonl(run_dir / "events.jsonl")
    last_ckpt = [e for e in events if e["event"] == "checkpoint"][-1]
    assert last_ckpt["why"] == "SIGTERM"
    started = [e for e in events if e["event"] == "actor_started"]
    assert sorted(e["actor"] for e in started) == [0, 1]
    stopped_at = last_ckpt["frames"]
    assert stopped_at > 0

    records = read_jsonl(run_dir / "metrics.jsonl")
    last = records[-1]
    for key in ("frames", "fps", "mean_capped_score", "tasks", "policy_lag", "learner"):
        assert key in last
    assert {"total_loss", "entropy", "learning_rate"} <= set(last["learner"])
    # unrolls_in_flight x num_actors requests exist at any time: finished (waiting) or being acted
    fetched = [r for r in records if r["unrolls_ready"] is not None]
    assert fetched and all(r["unrolls_ready"] + r["requests_in_flight"] == pytest.approx(2 * 2) for r in fetched)
    assert all(0 <= r["learner_wait_fraction"] <= 1 for r in records)

    acc = EventAccumulator(str(run_dir)).Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"throughput/frames_per_second", "learner/total_loss", "learner/learning_rate",
            "learner/entropy", "actors/policy_lag", "actors/unrolls_ready",
            "actors/requests_in_flight", "throughput/learner_wait_fraction"} <= tags
    assert any(t.startswith("task/") and t.endswith("/episode_return") for t in tags)

    # resume: same command, larger budget; counters continue where they stopped
    total = stopped_at + 4 * 8 * 20
    proc = launch(RAY + [f"logdir={run_dir}", f"total_frames={total}"], log=tmp_path / "second.log")
    try:
        assert proc.wait(timeout=300) == 0, (tmp_path / "second.log").read_text()[-3000:]
    finally:
        stop_process_group(proc)
    events = read_jsonl(run_dir / "events.jsonl")
    resume = [e for e in events if e["event"] == "resume"]
    assert len(resume) == 1 and resume[0]["frames"] == stopped_at
    new_records = read_jsonl(run_dir / "metrics.jsonl")[len(records):]
    assert new_records and all(r["frames"] > stopped_at for r in new_records)
    assert new_records[-1]["frames"] >= total
    incarnations = {e["incarnation"] for e in events if e["event"] == "actor_started"}
    assert incarnations == {0, 1}                 # resumed actors are new incarnations
    acc = EventAccumulator(str(run_dir)).Reload()
    steps = [s.step for s in acc.Scalars("learner/total_loss")]
    assert max(steps) >= total and min(steps) < stopped_at


def test_bad_override_fails_before_any_work(run_dir, tmp_path):
    proc = launch([f"logdir={run_dir}", "learner.batchsize=8"], log=tmp_path / "bad.log")
    assert proc.wait(timeout=60) == 2
    out = (tmp_path / "bad.log").read_text()
    assert "learner.batchsize" in out and "learner.batch_size" in out
    assert not run_dir.exists()


def test_unreachable_ray_address_fails_before_any_work(run_dir, tmp_path):
    proc = launch(TINY + [f"logdir={run_dir}", "ray_address=127.0.0.1:9"], log=tmp_path / "bad.log")
    assert proc.wait(timeout=60) == 2
    out = (tmp_path / "bad.log").read_text()
    assert "ray_address='127.0.0.1:9'" in out and "ray start --head" in out
    assert not run_dir.exists()

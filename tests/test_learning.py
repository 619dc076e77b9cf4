"""The real system (Ray actors, default embedded config) clearly learns an easy task in minutes on 2 cores,
across a preemption: stopped with SIGTERM part-way (a checkpoint, exit 143), the same command resumes it,
and its counters, metrics and TensorBoard steps continue where they stopped. One run proves both, so the
suite trains it once."""
import signal
import subprocess
import time

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import events_of, frames_now, launch, read_jsonl, stop_process_group, wait_for

RUN_SECONDS = 450      # both segments; then the run is stopped (SIGTERM: a checkpoint and a last report) and judged
MIN_FRAMES = 160_000   # where it must have got to by then; a CI run reached 0.57 there
PREEMPT_AT = 60_000    # frames at which the scheduler's SIGTERM comes


@pytest.mark.heavy(115)
@pytest.mark.timeout(RUN_SECONDS + 300)
def test_agent_learns_goto_goal_across_a_preemption(run_dir, tmp_path):
    # goto_goal: random policy 0.077, solved (oracle) 0.895 (docs/ENVS.md). With the default entropy cost
    # (0.001) runs reached 0.85 at 128K frames (docs/LEARNING.md) and 0.83 at 123K, 0.86 at 161K (2026-12-07,
    # this test, 240K budget then); with the older 0.01 a CI run had 0.57 at 160K. The bar, 0.4, is five
    # times the random return; the budget, 200K frames (80-150 s on an idle 2-core machine), leaves a margin.
    args = [f"logdir={run_dir}", "tasks=[goto_goal]", "total_frames=200000", "seed=0", "run.report_every_seconds=5"]
    deadline = time.monotonic() + RUN_SECONDS
    proc = launch(args, log=tmp_path / "first.log")
    try:    # train past PREEMPT_AT with both actors up, then preempt it like a cluster scheduler would
        wait_for(lambda: frames_now(run_dir) >= PREEMPT_AT and
                 {e["actor"] for e in events_of(run_dir, "actor_started")} == {0, 1},
                 RUN_SECONDS / 2, f"{PREEMPT_AT} frames and both actors started", proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 128 + signal.SIGTERM
    finally:
        stop_process_group(proc)
    log = (tmp_path / "first.log").read_text()
    assert "SIGTERM received" in log and "frames " in log   # progress lines were printed
    last_ckpt = events_of(run_dir, "checkpoint")[-1]
    assert last_ckpt["why"] == "SIGTERM"
    stopped_at = last_ckpt["frames"]
    assert stopped_at >= PREEMPT_AT
    first_segment = read_jsonl(run_dir / "metrics.jsonl")
    last = first_segment[-1]
    for key in ("frames", "fps", "mean_capped_score", "tasks", "policy_lag", "learner"):
        assert key in last
    assert {"total_loss", "entropy", "learning_rate"} <= set(last["learner"])
    # unrolls_in_flight (2) x num_actors (2) requests exist at any time: finished (waiting) or being acted
    fetched = [r for r in first_segment if r["unrolls_ready"] is not None]
    assert fetched and all(r["unrolls_ready"] + r["requests_in_flight"] == pytest.approx(2 * 2) for r in fetched)
    assert all(0 <= r["learner_wait_fraction"] <= 1 for r in first_segment)
    acc = EventAccumulator(str(run_dir)).Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"throughput/frames_per_second", "learner/total_loss", "learner/learning_rate",
            "learner/entropy", "actors/policy_lag", "actors/unrolls_ready",
            "actors/requests_in_flight", "throughput/learner_wait_fraction"} <= tags
    assert "task/goto_goal/episode_return" in tags

    proc = launch(args, log=tmp_path / "second.log")      # the same command resumes
    try:
        try:
            code = proc.wait(timeout=max(deadline - time.monotonic(), 60))
        except subprocess.TimeoutExpired:                 # a slow or busy machine: judge what it reached
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=90)
            assert code == 128 + signal.SIGTERM, code
    finally:
        stop_process_group(proc)
    assert code in (0, 128 + signal.SIGTERM), (tmp_path / "second.log").read_text()[-3000:]

    # the resume continued the counters where the preemption stopped them
    [resume] = events_of(run_dir, "resume")
    assert resume["frames"] == stopped_at
    records = read_jsonl(run_dir / "metrics.jsonl")
    resumed = records[len(first_segment):]
    assert resumed and all(r["frames"] > stopped_at for r in resumed)
    assert [r["frames"] for r in records] == sorted(r["frames"] for r in records)
    incarnations = [(e["actor"], e["incarnation"]) for e in events_of(run_dir, "actor_started")]
    assert sorted(incarnations) == [(0, 0), (0, 1), (1, 0), (1, 1)]   # resumed actors are new incarnations
    acc = EventAccumulator(str(run_dir)).Reload()
    steps = [s.step for s in acc.Scalars("learner/total_loss")]
    assert min(steps) < stopped_at < max(steps) and max(steps) >= records[-1]["frames"] - 32 * 20

    # and it learned
    assert records[-1]["frames"] >= MIN_FRAMES, f"only {records[-1]['frames']} frames in {RUN_SECONDS} s"
    # the first report whose window holds 30 episodes (an earlier one can average 2 lucky short episodes: 0.76)
    first = next(r["tasks"]["goto_goal"] for r in records if r["tasks"]["goto_goal"]["episodes"] >= 30)
    last = records[-1]["tasks"]["goto_goal"]
    assert first["return"] < 0.3, first                  # starts near the random policy
    assert last["return"] > 0.4, last                     # well past it: most episodes reach the goal
    assert last["length"] < first["length"]               # and it gets there faster

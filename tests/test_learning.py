"""The real system (Ray actors, default embedded config) clearly learns an easy task in minutes on 2 cores."""
import signal
import subprocess

import pytest

from conftest import launch, read_jsonl, stop_process_group

RUN_SECONDS = 450      # then the run is stopped (SIGTERM: a checkpoint and a last report) and judged
MIN_FRAMES = 160_000   # where it must have got to by then; a CI run reached 0.57 there


@pytest.mark.timeout(RUN_SECONDS + 120)
def test_agent_learns_goto_goal(run_dir, tmp_path):
    # goto_goal: random policy 0.077, solved (oracle) 0.895 (docs/ENVS.md). 240K frames take 100-200 s
    # on an idle 2-core machine; runs ended at 0.57 (at 160K), 0.86 and 0.87. The bar, 0.4, is five
    # times the random return and leaves a margin below the slowest run.
    proc = launch([f"logdir={run_dir}", "tasks=[goto_goal]", "total_frames=240000", "seed=0",
                   "run.report_every_seconds=5"], log=tmp_path / "log")
    try:
        try:
            code = proc.wait(timeout=RUN_SECONDS)
        except subprocess.TimeoutExpired:                 # a slow or busy machine: judge what it reached
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=90)
            assert code == 128 + signal.SIGTERM, code
    finally:
        stop_process_group(proc)
    assert code in (0, 128 + signal.SIGTERM), (tmp_path / "log").read_text()[-3000:]
    records = [r for r in read_jsonl(run_dir / "metrics.jsonl") if "goto_goal" in r["tasks"]]
    assert records[-1]["frames"] >= MIN_FRAMES, f"only {records[-1]['frames']} frames in {RUN_SECONDS} s"
    first, last = records[0]["tasks"]["goto_goal"], records[-1]["tasks"]["goto_goal"]
    assert first["return"] < 0.3, first                  # starts near the random policy
    assert last["return"] > 0.4, last                     # well past it: most episodes reach the goal
    assert last["length"] < first["length"]               # and it gets there faster

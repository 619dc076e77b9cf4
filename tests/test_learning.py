"""The real system (Ray actors, default embedded config) clearly learns an easy task in minutes on 2 cores."""
import pytest

from conftest import launch, read_jsonl, stop_process_group

RANDOM, SOLVED = 0.077, 0.895     # goto_goal's random-policy and oracle returns (docs/ENVS.md)
RUN_SECONDS = 420                 # the run's own limit, well inside the test's timeout


@pytest.mark.timeout(RUN_SECONDS + 120)
def test_agent_learns_goto_goal(run_dir, tmp_path):
    # About 100-200 s of training here. Runs ended at 0.57 (a CI run), 0.86 and 0.87 (issue 11);
    # the bar, 0.4, is five times the random return and leaves a margin below the slowest run.
    proc = launch([f"logdir={run_dir}", "tasks=[goto_goal]", "total_frames=240000", "seed=0",
                   "run.report_every_seconds=5"], log=tmp_path / "log")
    try:
        code = proc.wait(timeout=RUN_SECONDS)
    except Exception:
        last = (read_jsonl(run_dir / "metrics.jsonl") or [{"frames": 0}])[-1]["frames"]
        raise AssertionError(f"the run reached only {last} of 240000 frames in {RUN_SECONDS} s: "
                             "this machine is too slow or too busy for the learning test") from None
    finally:
        stop_process_group(proc)
    assert code == 0, (tmp_path / "log").read_text()[-3000:]
    records = [r for r in read_jsonl(run_dir / "metrics.jsonl") if "goto_goal" in r["tasks"]]
    first, last = records[0]["tasks"]["goto_goal"], records[-1]["tasks"]["goto_goal"]
    assert first["return"] < 0.3, first                  # starts near the random policy
    assert last["return"] > 0.4, last                     # well past it: most episodes reach the goal
    assert last["length"] < first["length"]               # and it gets there faster

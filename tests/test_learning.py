"""The real system (Ray actors, default embedded config) clearly learns an easy task in minutes on 2 cores."""
from conftest import launch, read_jsonl, stop_process_group


def test_agent_learns_goto_goal(run_dir, tmp_path):
    # goto_goal: random policy 0.077, solved (oracle) 0.895 (docs/ENVS.md). About 100 s of training here.
    proc = launch([f"logdir={run_dir}", "tasks=[goto_goal]", "total_frames=240000", "run.report_every_seconds=5"],
                  log=tmp_path / "log")
    try:
        assert proc.wait(timeout=600) == 0, (tmp_path / "log").read_text()[-3000:]
    finally:
        stop_process_group(proc)
    records = [r for r in read_jsonl(run_dir / "metrics.jsonl") if "goto_goal" in r["tasks"]]
    first, last = records[0]["tasks"]["goto_goal"], records[-1]["tasks"]["goto_goal"]
    assert first["return"] < 0.3, first                 # starts near the random policy
    assert last["return"] > 0.5, last                    # well past it: most episodes reach the goal quickly
    assert last["return"] - first["return"] > 0.3
    assert records[-1]["mean_capped_score"] > 50
    assert last["length"] < first["length"]              # and it gets there faster

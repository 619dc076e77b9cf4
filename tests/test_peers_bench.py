"""bench/peers_side_by_side.py: its learning measures (hand-computed) and a --quick run of this project's half
through the peers' harness (Sample Factory not needed)."""
import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "peers_side_by_side.py"
spec = importlib.util.spec_from_file_location("peers_side_by_side", BENCH)
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)

# (wall time, return, length)
EPISODES = [(1.0, 0.5, 10), (2.0, 0.9, 20), (3.0, 0.8, 30), (4.0, 1.0, 5), (12.5, 0.0, 7)]


def test_crossing_is_the_first_full_window_at_the_threshold():
    # windows of 2: (.5, .9) = .7, (.9, .8) = .85 -> reached at t = 3, after 10 + 20 + 30 frames
    assert bench.crossing(EPISODES, 0.5, 0.85, window=2) == {"seconds": 2.5, "frames": 60}
    assert bench.crossing(EPISODES, 0.5, 0.95, window=2) == {"seconds": None, "frames": None}
    assert bench.crossing(EPISODES[:1], 0.0, 0.1, window=2)["seconds"] is None   # window never full


def test_curve_samples_rolling_mean_and_frames_every_step():
    assert bench.curve(EPISODES, 0.5, step_s=5.0, window=2) == [
        {"t": 5.0, "frames": 65, "mean_return": 0.9},     # episodes before t = 5.5: last two .8, 1.0
        {"t": 10.0, "frames": 65, "mean_return": 0.9},
        {"t": 15.0, "frames": 72, "mean_return": 0.5},
    ]


def test_variant_parsing_and_bad_input():
    assert bench.parse_variant("adv=learner.advantage_normalization=true,learner.entropy_cost=0.003") == (
        "adv", ["learner.advantage_normalization=true", "learner.entropy_cost=0.003"])
    assert bench.parse_variant("base=") == ("base", [])
    with pytest.raises(ValueError, match="NAME=key=value"):
        bench.parse_variant("learner.entropy_cost")
    with pytest.raises(SystemExit, match="--peers-dir"):
        bench.parse_args(["--peers-dir", "/nonexistent"])


@pytest.mark.heavy(23)
@pytest.mark.skipif(bench.default_peers_dir() is None, reason="../shared/peers (the peers' harness) not found")
def test_quick_run_counts_our_frames_with_the_peers_counters(tmp_path, capsys):
    result = bench.main(["--quick", "--scratch", str(tmp_path), "--out", str(tmp_path / "out.json")])
    assert json.loads(capsys.readouterr().out) == result == json.loads((tmp_path / "out.json").read_text())
    assert result["sample_factory"] == "--no-sf" and [r["system"] for r in result["runs"]] == ["ours"]
    run = result["runs"][0]
    assert run["exit_code"] == 0 and run["env_fps"] > 0 and run["episodes"] > 0, run
    # The envs' own counters saw at least every frame the learner trained on (metrics.jsonl), and at most
    # what the actors had in flight beyond it: 2 actors x (2 queued + 1 being stepped) unrolls of 8 x 20
    # plus a batch of 32 x 20 waiting in the learner.
    records = [json.loads(line) for line in open(Path(run["run_dir"]) / "ours" / "metrics.jsonl")]
    learned = records[-1]["frames"]
    assert 0 < learned <= run["total_env_steps"] <= learned + 2 * 3 * 8 * 20 + 32 * 20 + 2 * 8 * 20, \
        (learned, run["total_env_steps"])
    frames = [point["frames"] for point in run["curve"]]
    assert frames == sorted(frames) and frames[-1] <= run["total_env_steps"]


def test_sigterm_ends_the_run_in_progress(tmp_path):
    """Killing the bench must not leave its run behind: the harness puts each run in a session of
    its own, so the bench ends every process of those sessions (train, Ray) before it exits."""
    import os
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, str(BENCH), "--quick", "--scratch", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline, sessions = time.monotonic() + 120, []
        while time.monotonic() < deadline:        # wait for launch.py train inside the run's session
            sessions = bench.child_pids(proc.pid)
            members = [m for s in sessions for m in bench.session_members(s)]
            if any(b"launch.py" in open(f"/proc/{m}/cmdline", "rb").read() for m in members
                   if os.path.exists(f"/proc/{m}/cmdline")):
                break
            time.sleep(0.5)
        assert sessions, "the bench started no run"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=150)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped by signal" in err
    assert all(bench.session_members(s) == [] for s in sessions)

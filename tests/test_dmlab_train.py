"""`launch.py train --config configs/dmlab30_local.yaml` trains on the real DeepMind Lab with Ray actors
and reports per-level returns and human-normalised scores (a tiny budget: a smoke test)."""
import os

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import TINY, launch, read_jsonl, stop_process_group
from envs import dmlab30
from test_dmlab_real import LEVEL_CACHE

# Two levels whose maps load without generation (fast resets) and whose scripts honour the engine's
# episodeLengthSeconds (rooms_collect_good_objects and rooms_keys_doors_puzzle ignore it): one-second
# episodes, so each finishes several within the budget; the config's shallow torso, narrowed.
LEVELS = ["rooms_watermaze", "rooms_select_nonmatching_object"]


@pytest.mark.heavy(24)
def test_dmlab30_local_config_trains_and_reports_each_level(real_deepmind_lab, run_dir, tmp_path):
    total = 2 * 2 * 4 * 8 * 6      # a few batches of 4 unrolls of 8 steps at action repeat 4
    tiny = [arg for arg in TINY if not arg.startswith("torso=")]   # keep the config's shallow torso
    args = ["--config", "configs/dmlab30_local.yaml", *tiny, f"logdir={run_dir}", f"total_frames={total}",
            "envs_per_actor=2", f"tasks=[{','.join(LEVELS)}]", "env.options.episode_length_seconds=1",
            f"env.options.level_cache_dir={LEVEL_CACHE}", "run.score_window_episodes=2"]
    proc = launch(args, log=tmp_path / "train.log")
    try:
        code = proc.wait(timeout=600)
    finally:
        stop_process_group(proc)
    log = (tmp_path / "train.log").read_text()
    assert code == 0, log[-3000:]
    assert "frames " in log                                   # the progress line
    records = read_jsonl(run_dir / "metrics.jsonl")
    last = records[-1]
    assert last["frames"] >= total
    for level in LEVELS:
        task = last["tasks"][level]
        assert task["episodes"] >= 1 and 1 <= task["length"] <= 15   # 1 s episodes: at most 15 agent steps
        assert task["score"] == pytest.approx(dmlab30.human_normalized_score(level, task["return"]), abs=1e-6)
    assert last["mean_capped_score"] is not None
    events = read_jsonl(run_dir / "events.jsonl")
    assert sorted(e["actor"] for e in events if e["event"] == "actor_started") == [0, 1]
    tags = set(EventAccumulator(str(run_dir)).Reload().Tags()["scalars"])
    assert {f"task/{level}/normalized_score" for level in LEVELS} <= tags
    assert os.path.isdir(LEVEL_CACHE)

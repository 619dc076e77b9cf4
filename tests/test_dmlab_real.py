"""The real DeepMind Lab through the project's own ``envs.dmlab.DmLab``, and the fake held to it.

Without ``deepmind_lab`` these tests skip, naming the build command (``real_deepmind_lab`` in
conftest.py); .ci/run builds it and makes them fail instead. Maps that levels generate go to a
level cache that persists across runs (``${IMPALA_MU_CACHE:-~/.cache/impala-mu}/dmlab-levels``),
with fixed seeds: the first run on a machine compiles them (minutes on 2 cores), later runs load them.
"""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from envs import dmlab30
from envs.dmlab import DmLab
from envs.dmlab_checks import missing_maps
from envs.instructions import encode_instruction
from envs.suites import get_suite

sys.path.insert(0, str(Path(__file__).parent))
import dmlab_trace  # noqa: E402
from conftest import FAKE_DMLAB_PATH, assert_seed_determines_rollout  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TRACE = Path(__file__).parent / "data" / "dmlab_trace.json"


def _load_warm_script():
    """scripts/warm_dmlab_levels.py: the level cache's path and the level test's env, in one place."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("warm_dmlab_levels", ROOT / "scripts" / "warm_dmlab_levels.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


warm_dmlab_levels = _load_warm_script()
LEVEL_CACHE = warm_dmlab_levels.LEVEL_CACHE


def _load_fake():
    import importlib.util

    spec = importlib.util.spec_from_file_location("deepmind_lab_fake_for_trace", FAKE_DMLAB_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _json(value):
    return json.loads(json.dumps(value))


# ------------------------------------------------------------------ the fake is faithful
def test_the_fake_replays_the_trace_recorded_from_the_real_engine():
    assert _json(dmlab_trace.record(_load_fake())) == json.loads(TRACE.read_text())


def test_the_real_engine_still_records_the_committed_trace(real_deepmind_lab):
    assert _json(dmlab_trace.record(real_deepmind_lab)) == json.loads(TRACE.read_text())


# ------------------------------------------------------------------ every level
@pytest.mark.parametrize("level", dmlab30.TRAIN_LEVELS)
def test_every_level_the_build_can_run_resets_and_steps(real_deepmind_lab, level):
    missing = missing_maps(level)
    if missing:
        pytest.skip(f"{level}: {len(missing)} of its maps are not in this build (offline archives), e.g. "
                    f"{missing[0]}; an --online build has them")
    env = warm_dmlab_levels.level_env(level, LEVEL_CACHE)        # as the CI's warm-up built it
    try:
        obs, _ = env.reset()
        raw = env.unwrapped._lab.observations()           # the engine's own view of the same moment
        assert obs["frame"].shape == (72, 96, 3) and obs["frame"].dtype == np.uint8
        assert np.array_equal(obs["frame"], raw["RGB_INTERLEAVED"]) and obs["frame"].std() > 0
        assert np.array_equal(obs["instruction"], encode_instruction(raw["INSTR"]))
        assert bool(obs["instruction"].any()) == level.startswith("language_"), raw["INSTR"]
        for action in range(9):                             # all 9 actions accepted
            obs, reward, terminated, truncated, _ = env.step(action)
            assert type(reward) is float and not terminated and not truncated
            assert env.observation_space.contains(obs)
    finally:
        env.close()


def test_missing_maps_names_exactly_the_absent_natlab_maps(real_deepmind_lab):
    maps = Path(real_deepmind_lab.__file__).parent / "baselab" / "maps"
    for level in ("natlab_fixed_large_map", "natlab_varying_map_regrowth"):
        absent = missing_maps(level)
        assert all(not (maps / f"{name}.bsp").exists() for name in absent)
    assert missing_maps("rooms_watermaze") == []


# ------------------------------------------------------------------ stepping semantics
def test_reward_is_the_engine_sum_over_the_action_repeat(real_deepmind_lab):
    level = "rooms_exploit_deferred_effects_train"   # random actions find rewards within ~10 steps
    env = DmLab(level, seed=0)
    obs, info = env.reset()
    raw = real_deepmind_lab.Lab(dmlab30.LEVEL_PREFIX + level, ["RGB_INTERLEAVED"],
                                config={"width": "96", "height": "72", "logLevel": "WARN"})
    raw.reset(seed=info["engine_seed"])
    try:
        actions = np.random.default_rng(0).integers(9, size=25)
        ours, frame_by_frame = [], []
        for action in actions:
            obs, reward, terminated, _, _ = env.step(int(action))
            assert not terminated
            ours.append(reward)
            vector = np.array(dmlab30.ACTION_SET[action], np.intc)
            frame_by_frame.append(sum(raw.step(vector, num_steps=1) for _ in range(4)))
        assert ours == frame_by_frame and sum(r != 0 for r in ours) >= 1
        assert np.array_equal(obs["frame"], raw.observations()["RGB_INTERLEAVED"])
    finally:
        raw.close()
        env.close()


def test_episode_end_is_handled(real_deepmind_lab):
    env = get_suite("dmlab30", episode_length_seconds=1).make_env(dmlab30.TRAIN_LEVELS.index("rooms_watermaze"),
                                                                    seed=2)
    try:
        env.reset()
        for step in range(1, 16):   # 1 s = 60 engine frames = 15 agent steps at action repeat 4
            obs, reward, terminated, truncated, info = env.step(0)
            if step < 15:
                assert not terminated
                previous = obs
        assert terminated and not truncated and info["episode"]["length"] == 15
        assert np.array_equal(obs["frame"], previous["frame"]) and obs["frame"] is not previous["frame"]
        with pytest.raises(RuntimeError, match="reset"):
            env.step(0)
        obs, _ = env.reset()
        assert env.step(0)[2] is False
    finally:
        env.close()


def test_same_seed_same_episode_and_different_seeds_differ(real_deepmind_lab):
    def rollout(seed):
        env = DmLab("rooms_exploit_deferred_effects_train", seed=seed)
        try:
            obs, _ = env.reset()
            frames, rewards = [obs["frame"]], []
            for action in np.random.default_rng(0).integers(9, size=20):
                obs, reward, *_ = env.step(int(action))
                frames.append(obs["frame"]), rewards.append(reward)
            return np.stack(frames), rewards
        finally:
            env.close()

    assert_seed_determines_rollout(rollout)


def test_test_mode_plays_the_hold_out_level(real_deepmind_lab):
    env = DmLab("rooms_collect_good_objects_train", seed=0, test=True)
    try:
        assert env.level == "rooms_collect_good_objects_test"
        obs, _ = env.reset()
        assert env.step(0)[0]["frame"].shape == (72, 96, 3)
    finally:
        env.close()


# ------------------------------------------------------------------ level cache and logs (processes)
_PLAY = textwrap.dedent("""
    import json, sys
    from envs import dmlab as d
    counts = {"hits": 0, "misses": 0, "writes": 0}
    fetch, write = d.LevelCache.fetch, d.LevelCache.write
    def counted_fetch(self, key, path):
        found = fetch(self, key, path)
        counts["hits" if found else "misses"] += 1
        return found
    def counted_write(self, key, path):
        counts["writes"] += 1
        return write(self, key, path)
    d.LevelCache.fetch, d.LevelCache.write = counted_fetch, counted_write
    level, cache, log_level = sys.argv[1], sys.argv[2] or None, sys.argv[3]
    env = d.DmLab(level, seed=5, level_cache_dir=cache, log_level=log_level)
    env.reset()
    env.step(0)
    env.close()
    print("COUNTS", json.dumps(counts))
""")


def _play(level, cache, log_level="warn"):
    r = subprocess.run([sys.executable, "-c", _PLAY, level, cache, log_level], cwd=ROOT, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    counts_line = [line for line in r.stdout.splitlines() if line.startswith("COUNTS ")][-1]
    return json.loads(counts_line[len("COUNTS "):]), (r.stdout.replace(counts_line, "") + r.stderr)


@pytest.mark.heavy(6)
def test_the_level_cache_is_shared_across_two_processes(real_deepmind_lab, tmp_path):
    cache = str(tmp_path / "levels")
    first, _ = _play("explore_goal_locations_small", cache)
    assert first["misses"] >= 1 and first["writes"] == first["misses"] and first["hits"] == 0
    stored = sorted(os.listdir(cache))
    assert stored and not any(name.startswith(".tmp-") for name in stored)
    second, _ = _play("explore_goal_locations_small", cache)   # same seed: loads instead of compiling
    assert second == {"hits": first["misses"], "misses": 0, "writes": 0}
    assert sorted(os.listdir(cache)) == stored


def test_level_generation_logs_are_quiet_by_default(real_deepmind_lab):
    level = "language_select_described_object"   # logs its instruction at INFO
    _, quiet = _play(level, LEVEL_CACHE)
    _, verbose = _play(level, LEVEL_CACHE, "info")
    assert "Instruction:" in verbose and "Instruction:" not in quiet
    assert len(quiet) < len(verbose)


def test_the_overlapped_actor_steps_the_real_engine_in_its_child_as_in_process(real_deepmind_lab):
    # actors.overlap: the real levels run in the actor's env process; an in-process copy of each env
    # (same seed), stepped with the actions the unroll records, sees the same frames and rewards
    from actors.actor import env_seed
    from actors.overlap import OverlapWorker
    from agent import AgentConfig

    suite = get_suite("dmlab30", level_cache_dir=LEVEL_CACHE)
    tasks = [suite.task(level).task_id for level in ("rooms_exploit_deferred_effects_train", "rooms_watermaze")]
    config = AgentConfig(torso="shallow", core_size=16, torso_out=16, instruction_buckets=1000)
    actor = OverlapWorker(suite, config, tasks, unroll_length=12, seed=4, actor_id=0)
    try:
        unroll = actor.unroll()
    finally:
        actor.close()
    assert not unroll.done[1:].any()                       # no episode ends in 12 steps: one stream per env
    for j, task in enumerate(tasks):
        env = suite.make_env(task, seed=env_seed(4, 0, j, 0))
        try:
            obs, _ = env.reset()
            frames, rewards = [obs["frame"]], [0.0]
            for t in range(1, 13):
                obs, reward, _, _, _ = env.step(int(unroll.action[t - 1, j]))
                frames.append(obs["frame"])
                rewards.append(reward)
        finally:
            env.close()
        np.testing.assert_array_equal(unroll.frame[:, j], np.stack(frames), err_msg=f"env {j}")
        np.testing.assert_array_equal(unroll.reward[1:, j], np.array(rewards[1:], np.float32), err_msg=f"env {j}")
    assert len({unroll.frame[t, 0].tobytes() for t in range(13)}) > 1   # the agent moved: the frames change

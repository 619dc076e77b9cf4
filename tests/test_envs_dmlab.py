"""The DeepMind Lab adapter, checked through its calls into a faithful fake engine."""
import copy
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from conftest import assert_seed_determines_rollout
from envs import dmlab30
from envs.dmlab import DmLab, LevelCache
from envs.instructions import encode_instruction
from envs.suites import get_suite

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake(fake_lab):
    return fake_lab


def _lab(fake):
    return fake.INSTANCES[-1]


def _calls(lab, name):
    return [kwargs for call, kwargs in lab.calls if call == name]


def _first_engine_seed(seed):
    return int(np.random.default_rng(seed).integers(0, 2**31 - 1))


# ----------------------------------------------------------------------------- construction
def test_constructs_the_engine_with_level_observations_and_string_config(fake):
    DmLab("rooms_watermaze", seed=1)
    lab = _lab(fake)
    assert lab.level == "contributed/dmlab30/rooms_watermaze"
    assert lab.observation_names == ["RGB_INTERLEAVED", "INSTR"]
    assert lab.config == {"width": "96", "height": "72", "logLevel": "WARN"}
    assert lab.renderer == "software" and lab.level_cache is None


def test_options_reach_the_config_as_strings(fake):
    DmLab("psychlab_continuous_recognition", seed=1, width=64, height=48,
          dataset_path="/data/brady", renderer="hardware")
    lab = _lab(fake)
    assert lab.config == {"width": "64", "height": "48", "datasetPath": "/data/brady", "logLevel": "WARN"}
    assert lab.renderer == "hardware"


@pytest.mark.parametrize("log_level, sent", [("info", "INFO"), ("NEVER", "NEVER"), (3, "3")])
def test_log_level_and_episode_length_reach_the_engine_config(fake, log_level, sent):
    DmLab("rooms_watermaze", seed=1, log_level=log_level, episode_length_seconds=2)
    assert _lab(fake).config["logLevel"] == sent
    assert _lab(fake).config["episodeLengthSeconds"] == "2"


@pytest.mark.parametrize("bad", ["loud", 0, -1, True, None])
def test_a_bad_log_level_is_refused_before_the_engine(fake, bad):
    with pytest.raises(ValueError, match="log_level=.*warn"):
        DmLab("rooms_watermaze", seed=1, log_level=bad)
    with pytest.raises(ValueError, match="log_level"):
        get_suite("dmlab30", log_level=bad)
    assert fake.INSTANCES == []


def test_test_mode_maps_to_the_test_level_with_holdout_and_mixer_seed(fake):
    DmLab("rooms_collect_good_objects_train", seed=1, test=True)
    lab = _lab(fake)
    assert lab.level == "contributed/dmlab30/rooms_collect_good_objects_test"
    assert lab.config["allowHoldOutLevels"] == "true"
    assert lab.config["mixerSeed"] == "1611489005"
    DmLab("explore_goal_locations_small", seed=1, test=True)
    assert _lab(fake).level == "contributed/dmlab30/explore_goal_locations_small"
    assert _lab(fake).config["mixerSeed"] == "1611489005"


def test_training_mode_sets_no_holdout_keys_but_a_test_name_still_loads(fake):
    DmLab("rooms_collect_good_objects_train", seed=1)
    assert "allowHoldOutLevels" not in _lab(fake).config and "mixerSeed" not in _lab(fake).config
    DmLab("rooms_exploit_deferred_effects_test", seed=1)
    assert _lab(fake).level == "contributed/dmlab30/rooms_exploit_deferred_effects_test"
    assert _lab(fake).config["allowHoldOutLevels"] == "true"
    assert "mixerSeed" not in _lab(fake).config


def test_unknown_level_is_rejected_before_the_engine(fake):
    with pytest.raises(ValueError, match="not a DMLab-30"):
        DmLab("lt_chasm", seed=0)
    assert fake.INSTANCES == []


def test_spaces(fake):
    env = DmLab("rooms_watermaze", seed=3)
    assert env.action_space.n == 9
    assert env.observation_space["frame"].shape == (72, 96, 3)
    assert env.observation_space["frame"].dtype == np.uint8
    assert env.observation_space["instruction"].shape == (16,)
    assert env.observation_space["instruction"].dtype == np.int64
    obs, _ = env.reset()
    assert env.observation_space.contains(obs)


# -------------------------------------------------------------------------------- stepping
@pytest.mark.parametrize("action_repeat", [4, 3])
def test_each_action_is_sent_as_an_intc_vector_with_num_steps(fake, action_repeat):
    fake.EPISODE_FRAMES = 1000
    env = DmLab("rooms_watermaze", seed=0, action_repeat=action_repeat)
    env.reset()
    for action in range(9):
        env.step(action)
        sent = _calls(_lab(fake), "step")[-1]
        assert sent["action"].dtype == np.intc and sent["action"].shape == (7,)
        assert tuple(sent["action"]) == dmlab30.ACTION_SET[action]
        assert sent["num_steps"] == action_repeat
    env.step(np.int64(6))
    assert tuple(_calls(_lab(fake), "step")[-1]["action"]) == (-20, 0, 0, 1, 0, 0, 0)
    with pytest.raises(ValueError):
        env.step(9)


def test_reward_is_the_engine_sum_over_the_repeats_and_frames_are_the_engines(fake):
    fake.EPISODE_FRAMES = 1000
    env = DmLab("rooms_watermaze", seed=11)
    obs, _ = env.reset()
    seed = _calls(_lab(fake), "reset")[-1]["seed"]
    assert np.array_equal(obs["frame"], fake.frame_at(seed, 0, 72, 96))
    rewards = [env.step(0)[1] for _ in range(30)]
    expected = [sum(fake.reward_at(seed, f) for f in range(4 * i, 4 * i + 4)) for i in range(30)]
    assert rewards == expected
    assert any(r > 0 for r in rewards) and any(r < 0 for r in rewards)
    obs = env.step(0)[0]
    assert np.array_equal(obs["frame"], fake.frame_at(seed, 124, 72, 96))


def test_episode_ends_when_the_engine_stops_without_reading_observations(fake):
    fake.EPISODE_FRAMES = 10           # 3 agent steps at action repeat 4: frames 4, 8, 12 (>= 10: ended)
    env = DmLab("rooms_watermaze", seed=5)
    env.reset()
    seed = _calls(_lab(fake), "reset")[-1]["seed"]
    obs1, _, term1, trunc1, _ = env.step(0)
    obs2, _, term2, _, _ = env.step(0)
    n_obs_calls = len(_calls(_lab(fake), "observations"))
    obs3, reward3, term3, trunc3, _ = env.step(0)
    assert (term1, trunc1, term2, term3, trunc3) == (False, False, False, True, False)
    assert len(_calls(_lab(fake), "observations")) == n_obs_calls   # not called after the end
    assert np.array_equal(obs3["frame"], obs2["frame"])              # the last observation seen
    assert reward3 == sum(fake.reward_at(seed, f) for f in range(8, 12))   # the engine runs the whole step
    with pytest.raises(RuntimeError):
        env.step(0)
    obs, _ = env.reset()
    assert env.step(0)[2] is False


# ---------------------------------------------------------------------------------- seeding
def test_every_reset_sends_an_explicit_seed_from_the_envs_generator(fake):
    env = DmLab("rooms_watermaze", seed=7)
    for _ in range(3):
        env.reset()
    seeds = [kw["seed"] for kw in _calls(_lab(fake), "reset")]
    rng = np.random.default_rng(7)
    assert seeds == [int(rng.integers(0, 2**31 - 1)) for _ in range(3)]
    assert all(type(s) is int and 0 <= s < 2**31 for s in seeds)
    assert len(set(seeds)) == 3
    env.reset(seed=123)
    assert _calls(_lab(fake), "reset")[-1]["seed"] == _first_engine_seed(123)


def test_runs_are_reproducible_and_seeds_differ(fake):
    fake.EPISODE_FRAMES = 20

    def rollout(seed):
        env = DmLab("explore_goal_locations_small", seed=seed)
        frames, rewards = [], []
        obs, _ = env.reset()
        for i in range(12):
            obs, reward, terminated, _, _ = env.step(i % 9)
            frames.append(obs["frame"]), rewards.append(reward)
            if terminated:
                obs, _ = env.reset()
        return np.stack(frames), rewards

    assert_seed_determines_rollout(rollout)


def test_gymnasium_env_checker_passes(fake):
    check_env(DmLab("rooms_watermaze", seed=0), skip_render_check=True)


# ----------------------------------------------------------------------------- instructions
def test_language_levels_give_the_encoded_instruction(fake):
    env = DmLab("language_select_described_object", seed=2)
    obs, _ = env.reset()
    seed = _calls(_lab(fake), "reset")[-1]["seed"]
    text = fake.instruction_for("contributed/dmlab30/language_select_described_object", seed)
    assert len(text.split()) == 4
    assert np.array_equal(obs["instruction"], encode_instruction(text))
    assert (obs["instruction"][:4] > 0).all() and (obs["instruction"][4:] == 0).all()
    obs, *_ = env.step(0)
    assert np.array_equal(obs["instruction"], encode_instruction(text))


def test_non_language_levels_give_an_all_zero_instruction(fake):
    obs, _ = DmLab("rooms_watermaze", seed=2).reset()
    assert obs["instruction"].dtype == np.int64 and not obs["instruction"].any()


# ----------------------------------------------------------------------- without the engine
def test_missing_deepmind_lab_raises_a_helpful_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "deepmind_lab", None)   # makes `import deepmind_lab` fail
    with pytest.raises(ImportError, match=r"scripts/build_dmlab\.sh --online .*docker build -t impala-mu \."):
        DmLab("rooms_watermaze", seed=0)
    suite = get_suite("dmlab30")                              # building the suite needs no engine
    with pytest.raises(ImportError, match="deepmind_lab"):
        suite.make_env(0, seed=0)


def test_importing_envs_does_not_import_deepmind_lab():
    code = ("import sys, envs, envs.dmlab, envs.suites, envs.dmlab30; "
            "envs.get_suite('dmlab30'); assert 'deepmind_lab' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)


# ------------------------------------------------------------------------------ level cache
def test_level_cache_fetch_and_write(tmp_path):
    cache = LevelCache(tmp_path / "cache")
    src, dst = tmp_path / "map.pk3", tmp_path / "out.pk3"
    src.write_bytes(b"pk3 contents")
    assert cache.fetch("k1.pk3", str(dst)) is False and not dst.exists()
    cache.write("k1.pk3", str(src))
    assert cache.fetch("k1.pk3", str(dst)) is True and dst.read_bytes() == b"pk3 contents"
    src.write_bytes(b"other contents")
    cache.write("k1.pk3", str(src))                            # already cached: kept
    assert (tmp_path / "cache" / "k1.pk3").read_bytes() == b"pk3 contents"
    assert os.listdir(tmp_path / "cache") == ["k1.pk3"]         # no temporary files left


def test_level_cache_write_failure_leaves_no_partial_file(tmp_path):
    cache = LevelCache(tmp_path / "cache")
    with pytest.raises(FileNotFoundError):
        cache.write("k2.pk3", str(tmp_path / "missing.pk3"))
    assert os.listdir(tmp_path / "cache") == []
    assert cache.fetch("k2.pk3", str(tmp_path / "out.pk3")) is False


def test_envs_share_generated_maps_through_the_level_cache_dir(fake, tmp_path):
    cache_dir = tmp_path / "levels"
    first = DmLab("explore_goal_locations_small", seed=9, level_cache_dir=str(cache_dir))
    first.reset()
    assert isinstance(_lab(fake).level_cache, LevelCache)
    assert (_lab(fake).cache_hits, _lab(fake).cache_misses) == (0, 1)
    second = DmLab("explore_goal_locations_small", seed=9, level_cache_dir=str(cache_dir))
    second.reset()                                             # same engine seed -> same map
    assert (_lab(fake).cache_hits, _lab(fake).cache_misses) == (1, 0)
    second.reset()                                             # next seed: a new map
    assert (_lab(fake).cache_hits, _lab(fake).cache_misses) == (1, 1)
    assert sorted(os.listdir(cache_dir)) == sorted(
        fake.map_key("contributed/dmlab30/explore_goal_locations_small", s)
        for s in (_first_engine_seed(9), _calls(_lab(fake), "reset")[-1]["seed"]))


# -------------------------------------------------------------------- through the suite API
def test_dmlab30_suite_builds_wrapped_envs_with_its_options(fake, tmp_path):
    suite = get_suite("dmlab30", action_repeat=2, level_cache_dir=str(tmp_path), dataset_path="dummy")
    env = suite.make_env(5, seed=1)
    assert _lab(fake).level == "contributed/dmlab30/language_select_described_object"
    assert _lab(fake).config == {"width": "96", "height": "72", "datasetPath": "dummy", "logLevel": "WARN"}
    env.reset()
    env.step(0)
    assert _calls(_lab(fake), "step")[-1]["num_steps"] == 2
    suite.make_env(1, seed=1, test=True)
    assert _lab(fake).level == "contributed/dmlab30/rooms_exploit_deferred_effects_test"


def test_episode_statistics_through_dmlab(fake):
    fake.EPISODE_FRAMES = 10
    env = get_suite("dmlab30").make_env(3, seed=4)
    env.reset()
    seed = _calls(_lab(fake), "reset")[-1]["seed"]
    infos = [env.step(0)[4] for _ in range(3)]
    assert "episode" not in infos[0] and "episode" not in infos[1]
    assert infos[2]["episode"] == {"return": sum(fake.reward_at(seed, f) for f in range(10)),
                                   "length": 3, "task_id": 3}


# ---------------------------------------------------------------------- the fake is faithful
def test_fake_engine_rejects_what_the_real_one_rejects(fake):
    L = "contributed/dmlab30/rooms_watermaze"
    with pytest.raises(TypeError):
        fake.Lab(L, ["RGB_INTERLEAVED"], config={"width": 96})
    with pytest.raises(ValueError):
        fake.Lab(L, ["RGB_INTERLACEDX"])
    with pytest.raises(RuntimeError):
        fake.Lab("contributed/dmlab30/rooms_collect_good_objects_test", ["RGB_INTERLEAVED"])
    lab = fake.Lab(L, ["RGB_INTERLEAVED", "INSTR"], config={"width": "8", "height": "6"})
    assert [a["name"] for a in lab.action_spec()] == [
        "LOOK_LEFT_RIGHT_PIXELS_PER_FRAME", "LOOK_DOWN_UP_PIXELS_PER_FRAME", "STRAFE_LEFT_RIGHT",
        "MOVE_BACK_FORWARD", "FIRE", "JUMP", "CROUCH"]
    lab.reset(seed=1)
    assert lab.observations()["RGB_INTERLEAVED"].shape == (6, 8, 3)
    with pytest.raises(ValueError):
        lab.step(np.zeros(7, np.int64))
    with pytest.raises(ValueError):
        lab.step(np.zeros(8, np.intc))
    lab.step(np.zeros(7, np.intc), num_steps=40)
    assert not lab.is_running()
    with pytest.raises(RuntimeError):
        lab.observations()
    with pytest.raises(RuntimeError):
        lab.step(np.zeros(7, np.intc))


def test_render_rgb_array_returns_the_agent_view(fake):
    env = get_suite("dmlab30").make_env(1, seed=2, test=True, render_mode="rgb_array")
    assert _lab(fake).level == "contributed/dmlab30/rooms_exploit_deferred_effects_test"
    obs, _ = env.reset()
    picture = env.render()
    assert picture.dtype == np.uint8 and np.array_equal(picture, obs["frame"])
    picture[...] = 0                                   # a copy: the env's observation is untouched
    obs, *_ = env.step(0)
    assert np.array_equal(env.render(), obs["frame"])
    assert get_suite("dmlab30").make_env(1, seed=2).render() is None
    with pytest.raises(ValueError, match="render_mode"):
        DmLab("rooms_watermaze", seed=1, render_mode="human")


def test_fake_lab_cannot_be_pickled_or_copied_like_the_real_c_object(fake):
    # the real deepmind_lab.Lab is a C type (python/dmlab_module.c) without pickle support
    lab = fake.Lab("contributed/dmlab30/rooms_watermaze", ["RGB_INTERLEAVED"])
    for copy_it in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(TypeError, match="cannot pickle 'deepmind_lab.Lab' object"):
            copy_it(lab)
    with pytest.raises(TypeError, match="deepmind_lab.Lab"):
        copy.deepcopy(get_suite("dmlab30").make_env(0, seed=1))   # nor an env holding one

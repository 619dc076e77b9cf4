"""get_suite, Suite scoring (same for both suites), EpisodeStatistics, pickling, instructions."""
import pickle

import gymnasium as gym
import numpy as np
import pytest

from envs import dmlab30, embedded
from envs.instructions import MAX_WORDS, encode_instruction, word_id
from envs.suites import EpisodeStatistics, Suite, TaskSpec, get_suite


def test_unknown_suite_and_options():
    with pytest.raises(ValueError, match="embedded, dmlab30"):
        get_suite("atari")
    with pytest.raises(TypeError, match="tile_size"):
        get_suite("dmlab30", tile_size=4)
    with pytest.raises(ValueError):
        get_suite("embedded", tile_size=0)
    with pytest.raises(ValueError):
        get_suite("dmlab30", renderer="gpu")


def test_embedded_suite_fields():
    suite = get_suite("embedded")
    assert (suite.name, suite.num_actions, suite.frame_shape) == ("embedded", 7, (28, 28, 3))
    assert (suite.instruction_length, suite.action_repeat, suite.num_tasks) == (MAX_WORDS, 1, 8)
    assert suite.task_names == embedded.TASK_NAMES
    for i, (spec, task) in enumerate(zip(suite.tasks, embedded.TASKS)):
        assert spec.task_id == i
        assert (spec.human_score, spec.random_score) == (task.solved_score, task.random_score)
    assert get_suite("embedded", tile_size=8).frame_shape == (56, 56, 3)


def test_dmlab30_suite_fields():
    suite = get_suite("dmlab30")
    assert (suite.num_actions, suite.frame_shape, suite.action_repeat) == (9, (72, 96, 3), 4)
    assert suite.instruction_length == MAX_WORDS
    assert suite.task_names == dmlab30.TRAIN_LEVELS
    assert suite.tasks[0].aliases == ("rooms_collect_good_objects_test",)
    assert suite.tasks[2].aliases == ()
    assert suite.tasks[0].human_score == 10.0 and suite.tasks[0].random_score == 0.073
    assert suite.tasks[5].human_score == 389.5 and suite.tasks[5].random_score == -0.07
    assert suite.task("rooms_exploit_deferred_effects_test").task_id == 1
    assert get_suite("dmlab30", action_repeat=8).action_repeat == 8


def test_dmlab30_suite_scores_like_the_dmlab30_module():
    suite = get_suite("dmlab30")
    rng = np.random.default_rng(0)
    returns = {name: float(rng.uniform(-5, 300)) for name in dmlab30.TRAIN_LEVELS}
    for name, value in returns.items():
        assert suite.normalized_score(name, value) == pytest.approx(
            dmlab30.human_normalized_score(name, value))
    assert suite.normalized_score("rooms_collect_good_objects_test", 5.0365) == pytest.approx(50.0)
    for cap in (100.0, None):
        assert suite.mean_capped_score(returns, cap) == pytest.approx(
            dmlab30.mean_capped_human_normalized_score(returns, cap))


def test_embedded_mean_capped_score_hand_computed():
    suite = get_suite("embedded")
    solved = {t.name: t.solved_score for t in embedded.TASKS}
    assert suite.mean_capped_score(solved) == pytest.approx(100.0)
    assert suite.mean_capped_score({t.name: t.random_score for t in embedded.TASKS}) == pytest.approx(0.0)
    returns = dict(solved)
    c = embedded.task_by_name("collect_red")
    returns["collect_red"] = 2 * c.solved_score - c.random_score                   # 200
    returns["collect_green"] = c.random_score - 0.5 * (c.solved_score - c.random_score)  # -50
    assert suite.normalized_score("collect_red", returns["collect_red"]) == pytest.approx(200.0)
    assert suite.normalized_score(5, returns["collect_red"]) == pytest.approx(200.0)
    assert suite.mean_capped_score(returns) == pytest.approx((6 * 100 + 100 - 50) / 8)
    assert suite.mean_capped_score(returns, cap=None) == pytest.approx((6 * 100 + 200 - 50) / 8)
    g = embedded.task_by_name("goto_goal")
    half = g.random_score + 0.5 * (g.solved_score - g.random_score)
    assert suite.normalized_score("goto_goal", half) == pytest.approx(50.0)


def test_mean_capped_score_errors():
    suite = get_suite("embedded")
    returns = {name: 0.5 for name in suite.task_names}
    del returns["memory"]
    with pytest.raises(ValueError, match="missing 1: memory"):
        suite.mean_capped_score(returns)
    returns["memory"] = 0.5
    returns[2] = 0.5
    with pytest.raises(ValueError, match="twice"):
        suite.mean_capped_score(returns)
    with pytest.raises(ValueError, match="unknown task"):
        suite.normalized_score("nope", 1.0)
    with pytest.raises(ValueError, match="out of range"):
        suite.normalized_score(8, 1.0)
    d = get_suite("dmlab30")
    both = {name: 1.0 for name in dmlab30.TRAIN_LEVELS}
    both["rooms_collect_good_objects_test"] = 1.0
    with pytest.raises(ValueError, match="twice"):
        d.mean_capped_score(both)


def test_suite_rejects_misnumbered_tasks():
    with pytest.raises(ValueError, match="task_id"):
        Suite("x", (TaskSpec("a", 1, 1.0, 0.0),), 2, (4, 4, 3), 16, 1)


# --------------------------------------------------------------------------- episode stats
class _Countdown(gym.Env):
    """Rewards 1, 2, 3, ... and truncates after 3 steps."""
    observation_space = gym.spaces.Discrete(1)
    action_space = gym.spaces.Discrete(1)

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return 0, {}

    def step(self, action):
        self.t += 1
        return 0, float(self.t), False, self.t == 3, {"t": self.t}


def test_episode_statistics_on_truncation_and_reset():
    env = EpisodeStatistics(_Countdown(), task_id=6)
    for _ in range(2):
        env.reset()
        infos = [env.step(0)[4] for _ in range(3)]
        assert ["episode" in i for i in infos] == [False, False, True]
        assert infos[2] == {"t": 3, "episode": {"return": 6.0, "length": 3, "task_id": 6}}


def test_episode_statistics_on_an_embedded_task():
    suite = get_suite("embedded")
    env = suite.make_env(7, seed=3)                     # goto_door: "done" ends the episode
    env.reset()
    rewards = [env.step(2)[1] for _ in range(2)]
    _, reward, terminated, _, info = env.step(6)
    assert terminated
    assert info["episode"] == {"return": sum(rewards) + reward, "length": 3, "task_id": 7}


# ------------------------------------------------------------------------------- pickling
def test_suites_pickle_and_build_the_same_envs():
    suite = get_suite("embedded", tile_size=5)
    clone = pickle.loads(pickle.dumps(suite))
    assert clone == suite and clone.frame_shape == (35, 35, 3)
    for task_id in range(suite.num_tasks):
        a, _ = suite.make_env(task_id, seed=9).reset()
        b, _ = clone.make_env(task_id, seed=9).reset()
        assert np.array_equal(a["frame"], b["frame"]) and a["frame"].shape == (35, 35, 3)
    d = get_suite("dmlab30", level_cache_dir="/tmp/x", action_repeat=2)
    clone = pickle.loads(pickle.dumps(d))
    assert clone.tasks[3].factory.keywords["level_cache_dir"] == "/tmp/x"
    assert clone.tasks[3].factory.keywords["action_repeat"] == 2


# ----------------------------------------------------------------------------- instructions
def test_encode_instruction_hand_values():
    ids = encode_instruction("go to the red door")
    assert ids.dtype == np.int64 and ids.shape == (16,)
    # 1 + crc32(word) % 1000, crc32 values computed by hand with zlib
    assert ids[:6].tolist() == [775, 757, 79, 456, 102, 0] and not ids[5:].any()
    assert word_id("green") == 434 and word_id("ball") == 380
    assert np.array_equal(encode_instruction("  get a\tgreen\nball "),
                          np.array([161, 908, 434, 380] + [0] * 12))
    assert not encode_instruction("").any()
    long = encode_instruction(" ".join(["red"] * 20))
    assert long.tolist() == [456] * 16
    assert encode_instruction("red door", max_words=3).tolist() == [456, 102, 0]

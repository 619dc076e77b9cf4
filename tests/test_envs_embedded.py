"""The embedded MiniGrid suite: tasks, spaces, determinism, reference scores, interference."""
import math

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from minigrid.core.actions import Actions
from minigrid.core.world_object import Ball

from envs.embedded import TASK_NAMES, TASKS, make_task_env, task_by_name
from envs.instructions import encode_instruction
from envs.minigrid_render import ViewRenderer
from envs.minigrid_view import egocentric_view
from minigrid.minigrid_env import MiniGridEnv
from envs.reference_scores import episode_returns
from envs.scripted import agent_state, facing, optimal_first_actions, oracle_action

LANGUAGE = [t.name for t in TASKS if t.language]
NON_LANGUAGE = [t.name for t in TASKS if not t.language]


def test_task_table():
    assert 6 <= len(TASKS) <= 12
    assert TASK_NAMES == ("goto_goal", "goal_locations", "memory", "door_key", "collect_green",
                          "collect_red", "fetch_object", "goto_door")
    assert {t.family for t in TASKS} == {"navigation", "memory", "keys_doors", "rooms", "language"}
    assert LANGUAGE == ["fetch_object", "goto_door"]
    for t in TASKS:
        assert t.solved_score > t.random_score + 0.5 * abs(t.solved_score)   # real headroom
    with pytest.raises(ValueError, match="goto_goal"):
        task_by_name("nope")


@pytest.mark.parametrize("name", TASK_NAMES)
def test_spaces_and_observations(name):
    env = make_task_env(name, seed=0)
    assert env.action_space.n == 7
    assert env.observation_space["frame"].shape == (28, 28, 3)
    obs, info = env.reset()
    assert env.observation_space.contains(obs)
    assert obs["frame"].dtype == np.uint8 and obs["instruction"].dtype == np.int64
    assert obs["frame"].std() > 0
    if name in LANGUAGE:
        assert np.array_equal(obs["instruction"], encode_instruction(info["mission"]))
        assert obs["instruction"][:4].all()
    else:
        assert not obs["instruction"].any()
    obs, reward, terminated, truncated, _ = env.step(2)
    assert env.observation_space.contains(obs) and isinstance(reward, float)


def test_tile_size_option_changes_the_frame():
    env = make_task_env("door_key", seed=0, tile_size=8)
    obs, _ = env.reset()
    assert obs["frame"].shape == (56, 56, 3) == env.observation_space["frame"].shape


def test_language_missions_vary_with_the_layout():
    env = make_task_env("goto_door", seed=0)
    missions = {env.reset()[1]["mission"] for _ in range(20)}
    assert len(missions) >= 3 and all(m.startswith("go to the ") for m in missions)


def _rollout(name, seed, steps=150, test=False):
    env = make_task_env(name, seed=seed, test=test)
    rng = np.random.default_rng(0)
    obs, _ = env.reset()
    frames, rewards = [obs["frame"]], []
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(int(rng.integers(7)))
        frames.append(obs["frame"]), rewards.append(reward)
        if terminated or truncated:
            obs, _ = env.reset()
            frames.append(obs["frame"])
    return np.stack(frames), rewards


@pytest.mark.parametrize("name", ["goal_locations", "door_key", "collect_green", "fetch_object"])
def test_deterministic_under_a_seed(name):
    f1, r1 = _rollout(name, seed=5)
    f2, r2 = _rollout(name, seed=5)
    assert np.array_equal(f1, f2) and r1 == r2
    assert not np.array_equal(_rollout(name, seed=6)[0][0], f1[0]) or \
        not np.array_equal(_rollout(name, seed=6)[0], f1)
    assert not np.array_equal(_rollout(name, seed=5, test=True)[0], f1)   # a separate seed stream


def test_reset_with_seed_reseeds():
    env = make_task_env("fetch_object", seed=1)
    first = [env.reset()[0]["frame"] for _ in range(3)]
    again = [env.reset(seed=1)[0]["frame"]] + [env.reset()[0]["frame"] for _ in range(2)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], first[1])
    other = make_task_env("fetch_object", seed=1)
    other.reset(seed=2)                                   # an explicit seed replaces the first one
    fresh = make_task_env("fetch_object", seed=2)
    fresh.reset()
    assert np.array_equal(other.reset()[0]["frame"], fresh.reset()[0]["frame"])


def test_gymnasium_env_checker_passes():
    check_env(make_task_env("goto_goal", seed=0), skip_render_check=True)


def test_step_after_episode_end_and_invalid_action_raise():
    env = make_task_env("goto_door", seed=0)
    env.reset()
    with pytest.raises(ValueError):
        env.step(7)
    while not env.step(int(Actions.done))[2]:
        pass
    with pytest.raises(RuntimeError):
        env.step(0)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_fast_view_equals_minigrids_own_gen_obs(name):
    env = make_task_env(name, seed=8)
    env.reset()
    rng = np.random.default_rng(2)
    for _ in range(400):
        assert np.array_equal(egocentric_view(env.env), MiniGridEnv.gen_obs(env.env)["image"])
        if any(env.step(int(rng.integers(7)))[2:4]):
            env.reset()


@pytest.mark.parametrize("tile_size", [4, 7])
@pytest.mark.parametrize("name", ["door_key", "memory", "fetch_object"])
def test_frames_are_minigrids_own_tiles_of_the_visible_cells(name, tile_size):
    """The table renderer equals MiniGrid's Grid.render of the agent's view, hidden cells black."""
    env = make_task_env(name, seed=3, tile_size=tile_size)
    env.reset()
    rng = np.random.default_rng(1)
    for _ in range(25):
        grid, visible = env.env.gen_obs_grid()
        ref = grid.render(tile_size, agent_pos=(3, 6), agent_dir=3,
                          highlight_mask=np.zeros((7, 7), bool))
        ref = ref * np.kron(visible.T, np.ones((tile_size, tile_size), bool))[..., None]
        assert np.array_equal(ViewRenderer(tile_size)(env.env.gen_obs()["image"]), ref)
        if any(env.step(int(rng.integers(3)))[2:4]):
            env.reset()


# ------------------------------------------------------------------------ reference scores
def _within(returns, reference, slack=0.01):
    stderr = returns.std() / math.sqrt(len(returns))
    return abs(returns.mean() - reference) <= 4 * stderr + slack


@pytest.mark.parametrize("name", TASK_NAMES)
def test_oracle_reaches_the_solved_score(name):
    task = task_by_name(name)
    episodes = 8 if name == "goal_locations" else 25
    returns = episode_returns(name, "oracle", episodes, seed=77)
    assert _within(returns, task.solved_score), (returns.mean(), task.solved_score)
    assert (returns > 0).mean() >= 0.9        # MiniGrid's Fetch can wall the agent in (~1%)


@pytest.mark.parametrize("name", ["goto_goal", "fetch_object", "collect_green"])
def test_random_policy_mean_is_near_the_random_reference(name):
    task = task_by_name(name)
    returns = episode_returns(name, "random", 150 if name == "collect_green" else 200, seed=78)
    assert _within(returns, task.random_score), (returns.mean(), task.random_score)


def test_collect_solved_score_is_two_balls_every_time():
    assert task_by_name("collect_green").solved_score == task_by_name("collect_red").solved_score == 2.0
    assert (episode_returns("collect_red", "oracle", 100, seed=79) == 2.0).all()


# ------------------------------------------------------------------------ the task mechanics
def test_goal_locations_respawns_after_each_goal():
    env = make_task_env("goal_locations", seed=2)
    env.reset()
    mg, total, goals = env.env, 0.0, 0
    for _ in range(100):
        obs, reward, terminated, truncated, _ = env.step(oracle_action(mg))
        assert not terminated
        if reward:
            goals += 1
            assert reward == 1.0 and tuple(mg.agent_pos) != mg.goal_pos
        total += reward
        if truncated:
            break
    assert truncated and goals >= 5 and total == goals


def test_collect_rewards_and_termination():
    env = make_task_env("collect_green", seed=4)
    env.reset()
    mg = env.env
    rewards = []
    while True:
        obs, reward, terminated, truncated, _ = env.step(oracle_action(mg))
        rewards.append(reward)
        if terminated or truncated:
            break
    assert terminated and sorted(r for r in rewards if r) == [1.0, 1.0]
    balls = [mg.grid.get(x, y) for x in range(7) for y in range(7)]
    assert sorted(b.color for b in balls if isinstance(b, Ball)) == ["red", "red"]
    assert mg.carrying is None


# ---------------------------------------------------------------------- the interfering pair
def _pair(seed):
    green, red = make_task_env("collect_green", seed=seed), make_task_env("collect_red", seed=seed)
    return green, red, green.reset()[0], red.reset()[0]


def _good_balls(mg, color):
    return [(x, y) for x in range(mg.width) for y in range(mg.height)
            if isinstance(c := mg.grid.get(x, y), Ball) and c.color == color]


def test_interfering_pair_shows_identical_observations():
    for seed in range(10):
        green, red, og, orr = _pair(seed)
        assert np.array_equal(og["frame"], orr["frame"])
        assert np.array_equal(og["instruction"], orr["instruction"]) and not og["instruction"].any()
        for action in [0, 2, 2, 1, 2, 2, 0, 2]:          # turns and moves: no pickups
            og, *_ = green.step(action)
            orr, *_ = red.step(action)
            assert np.array_equal(og["frame"], orr["frame"])


def _best_actions(mg, color):
    goal = facing(_good_balls(mg, color))
    return {Actions.pickup} if goal(agent_state(mg)) else optimal_first_actions(mg, goal)


def test_interfering_pair_needs_opposite_actions():
    """Same observation, different best action: the shortest ways to a good ball start
    differently (often left vs right), or one task's best action (pickup) costs -1 in the other."""
    disjoint = opposite_turns = pickup_conflicts = 0
    for seed in range(100):
        green, red, _, _ = _pair(seed)
        best_g, best_r = _best_actions(green.env, "green"), _best_actions(red.env, "red")
        assert best_g and best_r
        disjoint += not (best_g & best_r)
        opposite_turns += {frozenset(best_g), frozenset(best_r)} == {
            frozenset({Actions.left}), frozenset({Actions.right})}
        pickup_conflicts += (Actions.pickup in best_g) != (Actions.pickup in best_r)
    assert disjoint >= 40 and opposite_turns >= 3 and pickup_conflicts >= 5


def test_interfering_pair_rewards_the_same_behaviour_oppositely():
    for seed in range(5):
        green, red, _, _ = _pair(seed)
        total_g = total_r = 0.0
        while True:                                       # act greedily for green in both
            action = oracle_action(green.env)
            _, rg, tg, _, _ = green.step(action)
            _, rr, _, _, _ = red.step(action)
            total_g, total_r = total_g + rg, total_r + rr
            if tg:
                break
        assert (total_g, total_r) == (2.0, -2.0)


def test_render_rgb_array_draws_the_whole_grid():
    from envs.suites import get_suite

    suite = get_suite("embedded")
    env = suite.make_env(3, seed=1, render_mode="rgb_array")     # door_key: a 5x5 grid
    env.reset()
    before = env.render()
    assert before.shape == (5 * 16, 5 * 16, 3) and before.dtype == np.uint8
    env.step(0)                                                   # turn left: the agent's triangle turns
    assert not np.array_equal(env.render(), before)
    assert suite.make_env(3, seed=1).render() is None

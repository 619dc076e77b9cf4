"""The embedded multitask suite: 8 MiniGrid tasks that install from PyPI and run on a CPU.

Task ids are the order of ``TASKS``. Every task shows the agent the same observation dict
as DMLab-30 (``frame``: uint8 egocentric 7x7-cell RGB view, ``tile_size`` pixels per cell;
``instruction``: hashed mission words, all zeros on non-language tasks) and takes MiniGrid's
7 actions (left, right, forward, pickup, drop, toggle, done). Rewards are raw.

| id | name            | family     | DMLab-30 analogue                    |
|---:|-----------------|------------|--------------------------------------|
| 0  | goto_goal       | navigation | explore_goal_locations (one trial)   |
| 1  | goal_locations  | navigation | explore_goal_locations (respawns)    |
| 2  | memory          | memory     | rooms_select_nonmatching_object (*)  |
| 3  | door_key        | keys_doors | rooms_keys_doors_puzzle              |
| 4  | collect_green   | rooms      | rooms_collect_good_objects           |
| 5  | collect_red     | rooms      | rooms_collect_good_objects           |
| 6  | fetch_object    | language   | language_select_described_object     |
| 7  | goto_door       | language   | language_select_located_object       |

(*) MiniGrid's memory task asks for the matching object, DMLab's for the non-matching one.

Interference: ``collect_green`` and ``collect_red`` are the same room with the same balls
(identical observations under the same seed, empty instruction), but one rewards green
balls (+1) and punishes red ones (-1), the other the reverse, so the optimal actions are
opposite. Only the task id tells them apart at the start of an episode; after the first
pickup the reward it brought (fed back to the agent as its last reward) is a cue a
learnt-context head can pick up. A shared head that ignores both can do no better than
chance on the first ball. (The two language tasks also share room layouts with other
tasks, but their instruction says what to do.)

Reference scores (``solved`` in the role of DMLab's "human", ``random`` as "random"):
``random`` is the mean return of a uniformly random policy and ``solved`` that of the
oracle scripted policy of ``envs/scripted.py`` (shortest paths with full knowledge of the
layout, so an upper bound for an agent that must look around), both measured with
``python -m envs.reference_scores --episodes 2000 --seed 2024`` and rounded to 3 places.
collect_*: solved = 2.0 exactly (both good balls; every layout is solvable and the reward has
no time term; the oracle gets 2.0 in every episode); random = the two tasks' measured means
pooled (-0.010 and +0.0005, stderr 0.017 each; by colour symmetry their expectations are
equal). The normalised score is ``100 * (return - random) / (solved - random)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from minigrid.minigrid_env import MiniGridEnv

from envs.instructions import MAX_WORDS, NUM_BUCKETS, encode_instruction
from envs.minigrid_render import ViewRenderer
from envs.minigrid_tasks import (CollectEnv, DoorKeyTask, FetchTask, GoalLocationsEnv, GoalRoomEnv,
                                 GoToDoorTask, MemoryTask)

NUM_ACTIONS = 7      # MiniGrid's actions
VIEW_SIZE = 7        # cells per side of the egocentric view
DEFAULT_TILE_SIZE = 4  # 28x28x3 frames (see bench/env_throughput.py and docs/ENVS.md)
TEST_SEED_SALT = 0x600D5EED  # test=True draws layouts from a seed stream salted with this
RENDER_TILE_SIZE = 16  # pixels per cell of render() (the whole grid, for videos)


@dataclass(frozen=True)
class EmbeddedTask:
    name: str
    family: str
    language: bool                           # the mission text is the instruction
    make_minigrid: Callable[[], MiniGridEnv]  # picklable (class or functools.partial)
    random_score: float
    solved_score: float


TASKS: tuple[EmbeddedTask, ...] = (
    EmbeddedTask("goto_goal", "navigation", False, partial(GoalRoomEnv, size=7, max_steps=40),
                 random_score=0.077, solved_score=0.895),
    EmbeddedTask("goal_locations", "navigation", False,
                 partial(GoalLocationsEnv, size=9, max_steps=100),
                 random_score=0.177, solved_score=16.39),
    EmbeddedTask("memory", "memory", False, partial(MemoryTask, size=7, max_steps=40),
                 random_score=0.049, solved_score=0.899),
    EmbeddedTask("door_key", "keys_doors", False, partial(DoorKeyTask, size=5, max_steps=150),
                 random_score=0.012, solved_score=0.941),
    EmbeddedTask("collect_green", "rooms", False, partial(CollectEnv, "green"),
                 random_score=-0.005, solved_score=2.0),
    EmbeddedTask("collect_red", "rooms", False, partial(CollectEnv, "red"),
                 random_score=-0.005, solved_score=2.0),
    EmbeddedTask("fetch_object", "language", True,
                 partial(FetchTask, size=6, numObjs=3, max_steps=40),
                 random_score=0.115, solved_score=0.903),
    EmbeddedTask("goto_door", "language", True, partial(GoToDoorTask, size=5, max_steps=40),
                 random_score=0.05, solved_score=0.915),
)
TASK_NAMES: tuple[str, ...] = tuple(task.name for task in TASKS)

# The cued pair: collect_green / collect_red whose instruction names the good colour from the first
# step ("collect the green balls"); same layouts, rewards and ends as the hidden pair under a seed,
# so the same reference scores. The suite option ``cued=True`` puts them in place of the hidden
# pair (same task ids 4 and 5, envs/suites.py).
CUED_TASKS: tuple[EmbeddedTask, ...] = (
    EmbeddedTask("collect_green_cued", "rooms", True, partial(CollectEnv, "green", cued=True),
                 random_score=-0.005, solved_score=2.0),
    EmbeddedTask("collect_red_cued", "rooms", True, partial(CollectEnv, "red", cued=True),
                 random_score=-0.005, solved_score=2.0),
)
CUED_REPLACES = {"collect_green": "collect_green_cued", "collect_red": "collect_red_cued"}


def suite_tasks(cued: bool = False) -> tuple[EmbeddedTask, ...]:
    """The suite's 8 tasks in task-id order; ``cued``: the cued pair in place of the hidden one."""
    if not cued:
        return TASKS
    by_name = {task.name: task for task in CUED_TASKS}
    return tuple(by_name[CUED_REPLACES[t.name]] if t.name in CUED_REPLACES else t for t in TASKS)


def task_by_name(name: str) -> EmbeddedTask:
    for task in TASKS + CUED_TASKS:
        if task.name == name:
            return task
    raise ValueError(f"unknown embedded task {name!r}; choices: "
                     f"{', '.join(TASK_NAMES + tuple(t.name for t in CUED_TASKS))}")


def episode_seed(seed: int, test: bool) -> int:
    """The seed of the env's first layout: ``seed`` itself, or a salted one for test=True."""
    if not test:
        return int(seed)
    return int(np.random.SeedSequence([TEST_SEED_SALT, int(seed)]).generate_state(1)[0])


class MiniGridTask(gym.Env):
    """A MiniGrid env seen through the suite's observation dict.

    The first ``reset()`` seeds the layout generator with ``seed``; later resets continue
    it (``reset(seed=...)`` reseeds), so an env's episode sequence is a function of ``seed``.
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, env: MiniGridEnv, *, seed: int, tile_size: int = DEFAULT_TILE_SIZE,
                 language: bool = False, render_mode: str | None = None):
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode={render_mode!r}: embedded envs render only 'rgb_array' (or None)")
        self.env = env
        self.render_mode = render_mode
        self.language = language
        self._seed: int | None = int(seed)
        self._render = ViewRenderer(tile_size, VIEW_SIZE)
        side = VIEW_SIZE * tile_size
        self.observation_space = spaces.Dict({
            "frame": spaces.Box(0, 255, (side, side, 3), np.uint8),
            "instruction": spaces.Box(0, NUM_BUCKETS, (MAX_WORDS,), np.int64),
        })
        self.action_space = spaces.Discrete(NUM_ACTIONS)
        self._mission, self._instruction = "", np.zeros(MAX_WORDS, np.int64)
        self._done = True

    def _observe(self, obs: dict[str, Any]) -> dict[str, np.ndarray]:
        if self.language and obs["mission"] != self._mission:
            self._mission = obs["mission"]
            self._instruction = encode_instruction(self._mission)
        return {"frame": self._render(obs["image"]), "instruction": self._instruction.copy()}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is None:
            seed = self._seed   # the construction seed, used by the first reset only
        self._seed = None
        obs, _ = self.env.reset(seed=seed)
        self._done = False
        return self._observe(obs), {"mission": obs["mission"]}

    def step(self, action):
        if self._done:
            raise RuntimeError("step() called after the episode ended; call reset() first")
        index = int(action)  # (cheaper than Discrete.contains, which costs as much as a step)
        if index != action or not 0 <= index < NUM_ACTIONS:
            raise ValueError(f"action {action!r} is not in {self.action_space}")
        obs, reward, terminated, truncated, info = self.env.step(index)
        self._done = terminated or truncated
        return self._observe(obs), float(reward), terminated, truncated, info

    def render(self) -> np.ndarray | None:
        """``render_mode="rgb_array"``: the whole grid, uint8 ``[cells * 16, cells * 16, 3]``
        (MiniGrid's drawing, the agent's field of view highlighted); otherwise None."""
        if self.render_mode != "rgb_array":
            return None
        return self.env.get_frame(highlight=True, tile_size=RENDER_TILE_SIZE, agent_pov=False)

    def close(self) -> None:
        self.env.close()


def make_task_env(name: str, *, seed: int, test: bool = False, tile_size: int = DEFAULT_TILE_SIZE,
                  render_mode: str | None = None) -> MiniGridTask:
    """A fresh env of the embedded task ``name`` (module-level, so partials of it pickle)."""
    task = task_by_name(name)
    return MiniGridTask(task.make_minigrid(), seed=episode_seed(seed, test),
                        tile_size=tile_size, language=task.language, render_mode=render_mode)

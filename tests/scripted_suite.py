"""A suite of scripted envs whose every reward, episode end and observation is known in advance.

``CountingEnv`` runs episodes of fixed lengths (``lengths``, cycled); even episodes end by
termination, odd ones by truncation (a time limit). Arriving at step ``s``
(1-based) of episode ``k`` (0-based) gives reward ``reward_of(k, s)``; the observation there
has ``frame[..., 0] = k``, ``frame[..., 1] = s`` and ``instruction = [k + 1, s + 1, 0, 0]``, so a
test can tell from any stored step which episode and step it is. The env records every action
it receives and, given ``log_dir``, writes them there as JSON when it is closed (so a test sees
them when the env ran in another process). Tests derive the expected unrolls from these formulas,
not from the actor's code.
"""
from __future__ import annotations

import json
import os
from functools import partial
from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.suites import Suite, TaskSpec

FRAME_SHAPE = (6, 6, 3)
INSTRUCTION_LENGTH = 4
NUM_ACTIONS = 5


def reward_of(episode: int, step: int) -> float:
    """Distinct, sign-alternating, outside [-1, 1] (so clipping in the actor would show)."""
    return (-1.0) ** episode * (10.0 * (episode + 1) + step)


def observation(episode: int, step: int) -> dict[str, np.ndarray]:
    frame = np.zeros(FRAME_SHAPE, np.uint8)
    frame[..., 0], frame[..., 1] = episode, step
    instruction = np.zeros(INSTRUCTION_LENGTH, np.int64)
    instruction[:2] = episode + 1, step + 1
    return {"frame": frame, "instruction": instruction}


class CountingEnv(gym.Env):
    instances: list["CountingEnv"] = []   # every env built in this process (tests clear it first)

    def __init__(self, lengths: tuple[int, ...], *, seed: int = 0, test: bool = False,
                 log_dir: str | None = None) -> None:
        self.lengths = tuple(lengths)
        self.log_dir = log_dir
        self.observation_space = spaces.Dict({
            "frame": spaces.Box(0, 255, FRAME_SHAPE, np.uint8),
            "instruction": spaces.Box(0, 100, (INSTRUCTION_LENGTH,), np.int64),
        })
        self.action_space = spaces.Discrete(NUM_ACTIONS)
        self.episode, self.step_in_episode = -1, 0
        self.actions: list[int] = []
        CountingEnv.instances.append(self)

    def reset(self, *, seed=None, options=None):
        self.episode += 1
        self.step_in_episode = 0
        return observation(self.episode, 0), {}

    def step(self, action):
        assert self.step_in_episode < self.lengths[self.episode % len(self.lengths)], "step after the end"
        self.actions.append(int(action))
        self.step_in_episode += 1
        k, s = self.episode, self.step_in_episode
        ended = s == self.lengths[k % len(self.lengths)]
        return observation(k, s), reward_of(k, s), ended and k % 2 == 0, ended and k % 2 == 1, {}

    def close(self):
        if self.log_dir is not None:
            record = {"lengths": list(self.lengths), "actions": self.actions, "pid": os.getpid()}
            (Path(self.log_dir) / f"env-{os.getpid()}-{id(self)}.json").write_text(json.dumps(record))


def counting_suite(lengths_per_task: list[tuple[int, ...]],
                   scores: list[tuple[float, float]] | None = None, log_dir: str | None = None) -> Suite:
    """One task per entry of ``lengths_per_task``; task ``i``'s envs run episodes of those lengths.
    ``scores[i] = (random, human)`` reference returns of task ``i`` (default (0, 100)); ``log_dir``:
    where each env writes the actions it received when closed (``read_logs``)."""
    scores = scores or [(0.0, 100.0)] * len(lengths_per_task)
    tasks = tuple(TaskSpec(name=f"count{i}", task_id=i, human_score=human, random_score=random,
                           factory=partial(CountingEnv, tuple(lengths), log_dir=log_dir))
                  for i, (lengths, (random, human)) in enumerate(zip(lengths_per_task, scores)))
    return Suite("counting", tasks, num_actions=NUM_ACTIONS, frame_shape=FRAME_SHAPE,
                 instruction_length=INSTRUCTION_LENGTH, action_repeat=1, instruction_vocabulary=100)


def schedule(lengths: tuple[int, ...], num_steps: int) -> list[tuple[int, int, bool]]:
    """For env.step calls 1..num_steps: (episode, step in episode, that call ended the episode)."""
    out, k, s = [], 0, 0
    for _ in range(num_steps):
        s += 1
        ended = s == lengths[k % len(lengths)]
        out.append((k, s, ended))
        if ended:
            k, s = k + 1, 0
    return out


def read_logs(log_dir) -> list[dict]:
    """The records the closed envs of a ``counting_suite(..., log_dir=log_dir)`` wrote."""
    return [json.loads(p.read_text()) for p in sorted(Path(log_dir).glob("env-*.json"))]

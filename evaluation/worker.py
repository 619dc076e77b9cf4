"""Playing evaluation episodes: the plan (which env plays how many episodes) and the worker.

``plan_slots`` fixes, before anything runs, every env of the evaluation: task ``k``'s ``N``
episodes are split over ``E = min(N, envs_per_task)`` env slots, slot ``j`` playing exactly
``N // E + (j < N % E)`` episodes with its own seed ``SeedSequence([seed, k, j])`` (env layouts
and, when sampling, actions). Every slot runs its fixed count to the end, so the episodes counted
do not depend on their lengths (no bias towards short episodes), and a slot's episodes do not
depend on which worker plays it or with whom.

``EvalWorker`` (plain Python; ``evaluation.ray_runner`` hosts it in Ray) steps its slots' envs
in lockstep with one batched CPU forward per step over the envs still playing, and returns each
finished episode as an ``EpisodeRecord`` (with its frames when it is to be filmed).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, NamedTuple, Sequence

import numpy as np
import torch

from agent import Agent, AgentConfig
from agent.types import AgentInput, CoreState

if TYPE_CHECKING:
    from envs.suites import Suite


class EnvSlot(NamedTuple):
    task_id: int
    index: int      # j: the slot's index among its task's slots
    episodes: int   # exactly this many episodes
    seed: int       # env seed (layouts) and action-sampling seed
    videos: int     # film the first ``videos`` of its episodes


class EpisodeRecord(NamedTuple):
    task_id: int
    env: int                      # the slot index j
    episode: int                  # the episode's index within its slot
    episode_return: float         # raw (unclipped)
    length: int                   # agent steps
    frames: np.ndarray | None     # uint8 [length + 1, h, w, 3] (env.render() after reset and each step)


def slot_seed(seed: int, task_id: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, task_id, index]).generate_state(1)[0])


def plan_slots(task_ids: Sequence[int], episodes: int, envs_per_task: int, videos: int,
               seed: int) -> list[EnvSlot]:
    """Every env slot of the evaluation, task by task. Film task k's episodes ``0..videos-1``, where
    episode ``m`` of a task is slot ``m % E``'s episode ``m // E``."""
    if episodes < 1 or envs_per_task < 1 or not 0 <= videos <= episodes:
        raise ValueError(f"plan_slots needs episodes >= 1, envs_per_task >= 1 and 0 <= videos <= episodes, "
                         f"got {episodes}, {envs_per_task}, {videos}")
    count = min(episodes, envs_per_task)
    return [EnvSlot(int(task), j, episodes // count + (j < episodes % count), slot_seed(seed, int(task), j),
                    videos // count + (j < videos % count))
            for task in task_ids for j in range(count)]


def split_slots(slots: Sequence[EnvSlot], workers: int) -> list[list[EnvSlot]]:
    """Round robin over ``workers`` (fewer if there are fewer slots); none is left empty."""
    workers = max(1, min(workers, len(slots)))
    return [list(slots[w::workers]) for w in range(workers)]


class EvalWorker:
    """Plays its ``slots`` with a CPU copy of the agent (weights ``weights``: the model's state dict).

    ``advance(max_steps)`` steps every env still playing up to ``max_steps`` times and returns
    ``(episodes finished meanwhile, whether every slot is done)``.
    """

    def __init__(self, suite: Suite, agent_config: AgentConfig, weights: Mapping[str, Any],
                 slots: Sequence[EnvSlot], *, greedy: bool, test: bool = True, torch_threads: int = 1) -> None:
        torch.set_num_threads(torch_threads)
        self.slots = list(slots)
        self.greedy = greedy
        self.agent = Agent.for_suite(agent_config, suite)
        self.agent.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in weights.items()})
        self.agent.eval()
        n = len(self.slots)
        self.envs = [suite.make_env(s.task_id, seed=s.seed, test=test,
                                    render_mode="rgb_array" if s.videos else None) for s in self.slots]
        self.generators = [torch.Generator().manual_seed(s.seed) for s in self.slots]
        self.task_ids = torch.tensor([s.task_id for s in self.slots], dtype=torch.int64)
        self.played = [0] * n                         # finished episodes per slot
        self.active = np.array([s.episodes > 0 for s in self.slots])
        self.state = self.agent.initial_state(n)
        self.frames: list[list[np.ndarray] | None] = [None] * n
        first = [env.reset()[0] for env in self.envs]
        self.obs = {"frame": np.stack([o["frame"] for o in first]),
                    "instruction": np.stack([o["instruction"] for o in first]).astype(np.int64)}
        self.reward = np.zeros(n, np.float32)
        self.done = np.ones(n, bool)                  # every env starts an episode
        self.last_action = np.zeros(n, np.int64)
        for j in range(n):
            self._start_filming(j)

    def _start_filming(self, j: int) -> None:
        filming = self.played[j] < self.slots[j].videos
        self.frames[j] = [self.envs[j].render()] if filming else None

    @torch.no_grad()
    def _actions(self, rows: np.ndarray) -> np.ndarray:
        index = torch.from_numpy(rows)
        inputs = AgentInput(
            frame=torch.from_numpy(self.obs["frame"][rows][None]),
            instruction=torch.from_numpy(self.obs["instruction"][rows][None]),
            reward=torch.from_numpy(self.reward[rows][None]), done=torch.from_numpy(self.done[rows][None]),
            last_action=torch.from_numpy(self.last_action[rows][None]), task_id=self.task_ids[index][None])
        out, state = self.agent(inputs, CoreState(self.state.h[index], self.state.c[index]))
        self.state.h[index], self.state.c[index] = state.h, state.c
        logits = out.policy_logits[0]
        if self.greedy:
            return logits.argmax(-1).numpy()
        probs = torch.softmax(logits, -1)
        return np.array([int(torch.multinomial(probs[k], 1, generator=self.generators[j]))
                         for k, j in enumerate(rows)], np.int64)

    def advance(self, max_steps: int) -> tuple[list[EpisodeRecord], bool]:
        finished: list[EpisodeRecord] = []
        for _ in range(max_steps):
            rows = np.flatnonzero(self.active)
            if rows.size == 0:
                break
            actions = self._actions(rows)
            for j, action in zip(rows, actions):
                obs, reward, terminated, truncated, info = self.envs[j].step(int(action))
                self.reward[j], self.done[j], self.last_action[j] = reward, False, action
                if self.frames[j] is not None:
                    self.frames[j].append(self.envs[j].render())
                if terminated or truncated:
                    finished.append(self._finish(j, info["episode"]))
                    if self.played[j] < self.slots[j].episodes:
                        obs, _ = self.envs[j].reset()
                        self.done[j], self.last_action[j] = True, 0
                        self._start_filming(j)
                    else:
                        self.active[j] = False
                self.obs["frame"][j], self.obs["instruction"][j] = obs["frame"], obs["instruction"]
        return finished, not self.active.any()

    def _finish(self, j: int, episode: Mapping[str, Any]) -> EpisodeRecord:
        frames = np.stack(self.frames[j]) if self.frames[j] is not None else None
        record = EpisodeRecord(self.slots[j].task_id, self.slots[j].index, self.played[j],
                               float(episode["return"]), int(episode["length"]), frames)
        self.played[j] += 1
        self.frames[j] = None
        return record

    def close(self) -> None:
        for env in self.envs:
            env.close()

"""Evaluation workers hosted in Ray actors (the only evaluation module that imports ``ray``).

Each actor plays one group of env slots, ``steps_per_call`` steps per request. A worker that
fails (process killed, env error) is recreated from scratch and its episodes so far are dropped:
its slots replay the same episodes (they are a function of the slots' seeds), so the results are
those of an uninterrupted evaluation. More than ``max_restarts`` restarts in all stop it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import ray
from ray.exceptions import RayError

from actors.ray_source import kill_actors
from evaluation.worker import EnvSlot, EpisodeRecord, EvalWorker

if TYPE_CHECKING:
    from agent.config import AgentConfig
    from envs.suites import Suite


@ray.remote
class RayEvalWorker:
    def __init__(self, suite: Suite, agent_config: AgentConfig, weights: Mapping[str, Any], slots: Sequence[EnvSlot],
                 greedy: bool, torch_threads: int) -> None:
        self.worker = EvalWorker(suite, agent_config, weights, slots, greedy=greedy, torch_threads=torch_threads)

    def advance(self, max_steps: int) -> tuple[list[EpisodeRecord], bool]:
        return self.worker.advance(max_steps)


class RayRunner:
    def __init__(self, suite: Suite, agent_config: AgentConfig, weights: Mapping[str, Any],
                 groups: Sequence[Sequence[EnvSlot]], *, greedy: bool, steps_per_call: int = 100,
                 cpus_per_worker: float = 1.0, torch_threads: int = 1, max_restarts: int = 3) -> None:
        self.groups = [list(g) for g in groups]
        self.args = (ray.put(suite), agent_config, ray.put(dict(weights)))
        self.greedy, self.steps, self.cpus, self.threads = greedy, steps_per_call, cpus_per_worker, torch_threads
        self.max_restarts, self.restarts = max_restarts, 0
        self.records: list[list[EpisodeRecord]] = [[] for _ in self.groups]
        self.done = [False] * len(self.groups)
        self.actors: list[Any] = [None] * len(self.groups)
        self.pending: dict[Any, int] = {}
        for w in range(len(self.groups)):
            self._spawn(w)

    def _spawn(self, w: int) -> None:
        suite, agent_config, weights = self.args
        self.actors[w] = RayEvalWorker.options(num_cpus=self.cpus, max_restarts=0).remote(
            suite, agent_config, weights, self.groups[w], self.greedy, self.threads)
        self.pending[self.actors[w].advance.remote(self.steps)] = w

    def poll(self, timeout: float = 1.0) -> None:
        ready, _ = ray.wait(list(self.pending), num_returns=1, timeout=timeout)
        for ref in ready:
            w = self.pending.pop(ref)
            try:
                episodes, self.done[w] = ray.get(ref)
            except RayError as e:
                self.restarts += 1
                if self.restarts > self.max_restarts:
                    raise RuntimeError(f"evaluation workers failed {self.restarts} times (more than "
                                       f"max_restarts={self.max_restarts}); last error: {e}") from None
                ray.kill(self.actors[w], no_restart=True)
                self.records[w] = []               # replayed from the start by the new worker
                self._spawn(w)
                continue
            self.records[w].extend(episodes)
            if not self.done[w]:
                self.pending[self.actors[w].advance.remote(self.steps)] = w

    def finished(self) -> bool:
        return all(self.done)

    def close(self) -> None:
        kill_actors(self.actors)
        self.pending.clear()

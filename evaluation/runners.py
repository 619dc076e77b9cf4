"""Where evaluation workers run: in-process (``SerialRunner``) or in Ray (``evaluation.ray_runner``).

A runner owns one ``EvalWorker`` per group of env slots and is polled by the driver:
``poll()`` makes progress (serial: ``steps_per_call`` steps of the next unfinished worker;
Ray: waits for any worker's call), ``records`` holds each worker's finished episodes so far,
``finished()`` says whether every worker is done, ``close()`` frees the workers.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol, Sequence

from evaluation.worker import EnvSlot, EpisodeRecord, EvalWorker

if TYPE_CHECKING:
    from agent.config import AgentConfig
    from envs.suites import Suite


class EpisodeRunner(Protocol):
    """The evaluation-runner role: ``SerialRunner`` here, ``evaluation.ray_runner.RayRunner``."""

    records: list[list[EpisodeRecord]]   # each worker's finished episodes so far
    restarts: int                        # workers restarted after a failure

    def poll(self) -> None:
        """Makes progress (waits a little at most)."""

    def finished(self) -> bool:
        """Every worker has played its episodes."""

    def close(self) -> None:
        """Frees the workers."""


class SerialRunner:
    def __init__(self, make_worker: Callable[[Sequence[EnvSlot]], EvalWorker],
                 groups: Sequence[Sequence[EnvSlot]], steps_per_call: int = 100) -> None:
        self.workers = [make_worker(group) for group in groups]
        self.steps = steps_per_call
        self.records: list[list[EpisodeRecord]] = [[] for _ in self.workers]
        self.done = [False] * len(self.workers)
        self.restarts = 0

    def poll(self) -> None:
        for w, worker in enumerate(self.workers):
            if not self.done[w]:
                episodes, self.done[w] = worker.advance(self.steps)
                self.records[w].extend(episodes)
                return

    def finished(self) -> bool:
        return all(self.done)

    def close(self) -> None:
        for worker in self.workers:
            worker.close()


def worker_factory(suite: Suite, agent_config: AgentConfig, weights: Mapping[str, Any], *, greedy: bool,
                   torch_threads: int = 1) -> Callable[[Sequence[EnvSlot]], EvalWorker]:
    def make(group: Sequence[EnvSlot]) -> EvalWorker:
        return EvalWorker(suite, agent_config, weights, group, greedy=greedy, torch_threads=torch_threads)
    return make

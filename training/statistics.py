"""The numbers a training run reports: per-task score windows, learner metrics, policy lag and the
learner's waits for unrolls, accumulated between reports (``training.report.Reporter`` writes them).

Learner metrics arrive as device tensors and are summed on the device; they are copied to the host
only when a record is taken (``record``), once per report.
"""
from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import torch

from agent.types import EpisodeStat
from envs.dmlab30 import capped_mean

if TYPE_CHECKING:
    from envs.suites import Suite


class RunStatistics:
    """``suite``'s tasks ``task_ids``; per-task returns are the mean of the last ``score_window`` episodes."""

    def __init__(self, suite: Suite, task_ids: Sequence[int], score_window: int) -> None:
        self.suite = suite
        self.task_ids = list(task_ids)
        self.returns = {t: deque(maxlen=score_window) for t in self.task_ids}
        self.lengths = {t: deque(maxlen=score_window) for t in self.task_ids}
        self.episodes = {t: 0 for t in self.task_ids}
        self.actor_restarts = 0
        self.unrolls_used = 0       # unrolls accepted by the learner (whole ones only)
        self.unrolls_dropped = 0    # unrolls lost: pending on a failed actor, or of the wrong length
        self.per_task: dict[str, torch.Tensor] = {}   # latest [K] learner metrics, e.g. popart_mu
        self._sums: dict[str, torch.Tensor] = {}
        self._steps = 0
        self._lag_sum = 0.0
        self._reset_fetches()

    # ------------------------------------------------------------ inputs
    def add_episodes(self, episodes: Sequence[EpisodeStat]) -> None:
        for ep in episodes:
            if ep.task_id in self.returns:
                self.returns[ep.task_id].append(ep.episode_return)
                self.lengths[ep.task_id].append(ep.length)
                self.episodes[ep.task_id] += 1

    def add_step(self, metrics: Mapping[str, torch.Tensor], policy_lag: float) -> None:
        for k, v in metrics.items():
            v = v.detach().float()
            if v.dim() == 1:     # one value per task (PopArt's "popart_mu" [K]): the latest is reported
                self.per_task[k] = v
                continue
            self._sums[k] = self._sums[k] + v if k in self._sums else v.clone()
        self._steps += 1
        self._lag_sum += policy_lag

    def add_fetch(self, wait_seconds: float, ready: int, in_flight: int) -> None:
        """One request of the learner for unrolls: how long it waited, and the source's backlog then
        (unrolls finished and waiting for it, requests still being acted)."""
        self._fetches += 1
        self._wait_seconds += wait_seconds
        self._ready_sum += ready
        self._in_flight_sum += in_flight

    def count_unrolls(self, used: int, dropped: int) -> None:
        self.unrolls_used += used
        self.unrolls_dropped += dropped

    def count_restart(self, dropped_unrolls: int) -> None:
        self.actor_restarts += 1
        self.unrolls_dropped += dropped_unrolls

    # ------------------------------------------------------------ scores
    def task_name(self, task_id: int) -> str:
        return self.suite.tasks[task_id].name

    def scores(self) -> tuple[dict[str, dict[str, float]], float | None, float | None]:
        """(per-task stats, mean capped score, mean uncapped score); the means are None until every
        trained task has finished an episode."""
        per_task, normalized = {}, []
        for t in self.task_ids:
            if not self.returns[t]:
                continue
            ret = sum(self.returns[t]) / len(self.returns[t])
            score = self.suite.normalized_score(t, ret)
            normalized.append(score)
            per_task[self.task_name(t)] = {
                "return": ret, "score": score, "episodes": self.episodes[t],
                "length": sum(self.lengths[t]) / len(self.lengths[t]),
            }
        if len(normalized) < len(self.task_ids):
            return per_task, None, None   # not every task has finished an episode yet
        return per_task, capped_mean(normalized), capped_mean(normalized, cap=None)

    # ------------------------------------------------------------ records
    def has_steps(self) -> bool:
        return self._steps > 0

    def record(self, frames: int, updates: int, fps: float, interval_seconds: float) -> dict[str, Any]:
        """The ``metrics.jsonl`` object for the interval since the last record (``interval_seconds`` long);
        starts the next interval."""
        per_task, capped, uncapped = self.scores()
        learner = {k: (v / self._steps).item() for k, v in self._sums.items()} if self._steps else {}
        record: dict[str, Any] = {
            "time": time.time(), "frames": frames, "updates": updates, "fps": fps,
            "mean_capped_score": capped, "mean_uncapped_score": uncapped,
            "mean_episode_return": (sum(v["return"] for v in per_task.values()) / len(per_task)
                                    if per_task else None),
            "policy_lag": self._lag_sum / self._steps if self._steps else None,
            # which side bounds the run: the learner waiting for unrolls most of the time (actors), or
            # finished unrolls piling up for it (learner); the backlog is bounded by the requests in flight
            "learner_wait_fraction": min(self._wait_seconds / max(interval_seconds, 1e-9), 1.0),
            "unrolls_ready": self._ready_sum / self._fetches if self._fetches else None,
            "requests_in_flight": self._in_flight_sum / self._fetches if self._fetches else None,
            "actor_restarts": self.actor_restarts, "unrolls_used": self.unrolls_used,
            "unrolls_dropped": self.unrolls_dropped, "tasks": per_task, "learner": learner,
        }
        record.update(self._per_task_record())
        self._sums, self._steps, self._lag_sum = {}, 0, 0.0
        self._reset_fetches()
        return record

    def _per_task_record(self) -> dict[str, dict[str, dict[str, float]]]:
        """``{"popart": {task: {"mu": .., "sigma": ..}}}`` from the latest ``popart_mu``/``popart_sigma``
        ``[K]`` metrics (a name ``group_field``); empty without such metrics."""
        record: dict[str, dict[str, dict[str, float]]] = {}
        for key, vector in self.per_task.items():
            group, field = key.split("_", 1)
            values = vector.cpu().tolist()
            for t in self.task_ids:
                record.setdefault(group, {}).setdefault(self.task_name(t), {})[field] = values[t]
        return record

    def _reset_fetches(self) -> None:
        self._fetches, self._wait_seconds, self._ready_sum, self._in_flight_sum = 0, 0.0, 0, 0

    # ------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        return {"returns": {t: list(d) for t, d in self.returns.items()},
                "lengths": {t: list(d) for t, d in self.lengths.items()},
                "episodes": dict(self.episodes), "actor_restarts": self.actor_restarts,
                "unrolls_used": self.unrolls_used, "unrolls_dropped": self.unrolls_dropped}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for t in self.task_ids:
            self.returns[t].extend(state["returns"].get(t, []))
            self.lengths[t].extend(state["lengths"].get(t, []))
            self.episodes[t] = state["episodes"].get(t, 0)
        self.actor_restarts = state["actor_restarts"]
        self.unrolls_used = state["unrolls_used"]          # format 1 lacks them: learner.checkpoint.upgrade
        self.unrolls_dropped = state["unrolls_dropped"]

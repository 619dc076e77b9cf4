"""Progress reporting: ``Reporter`` joins the run's statistics (``training.statistics``) and its
writers (``training.writers``: TensorBoard, ``metrics.jsonl``, ``events.jsonl``,
``diagnostics.jsonl``, the terminal).

Every report (each ``report_every_seconds``) writes the same numbers three ways:
TensorBoard scalars (step = env frames), one JSON object per line in
``metrics.jsonl``, and a progress line (redrawn in place on a TTY, plain lines
otherwise). Learner metrics arrive as device tensors and are summed on the device;
they are copied to the host only when a report is written.

Given the run's config, the Reporter also writes it to TensorBoard as text (tag ``config``)
when it starts, and on ``close()`` the config's scalar fields as hparams with the final
scores as their metrics (``final/mean_capped_score``, ``final/mean_uncapped_score``,
``final/<task>/score``), so runs can be compared in TensorBoard's HParams tab.
"""
from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, Mapping, Sequence, TextIO

import torch

from agent.diagnostics import HeadDiagnostics
from agent.types import EpisodeStat
from training.statistics import RunStatistics
from training.writers import RunWriters, progress_line

if TYPE_CHECKING:
    from envs.suites import Suite


class Reporter:
    """The statistics of ``suite``'s tasks ``task_ids``, reported to ``logdir`` every ``report_every_seconds``."""

    def __init__(self, suite: Suite, task_ids: Sequence[int], logdir: str, *, total_frames: int,
                 report_every_seconds: float, score_window: int, stream: TextIO | None = None,
                 start_frames: int = 0, config: Mapping[str, Any] | None = None) -> None:
        self.suite = suite
        self.task_ids = list(task_ids)
        self.logdir = logdir
        self.total_frames = total_frames
        self.every = report_every_seconds
        self.config = config
        self.stats = RunStatistics(suite, task_ids, score_window)
        self.writers = RunWriters(logdir, stream=stream, start_frames=start_frames, config=config)
        self._last_time = time.monotonic()
        self._last_frames = start_frames
        self._start_time = self._last_time
        self._start_frames = start_frames
        self._diagnostics: HeadDiagnostics | None = None   # the head's latest (device tensors), written at report()

    # ------------------------------------------------------------ inputs
    def add_episodes(self, episodes: Sequence[EpisodeStat]) -> None:
        self.stats.add_episodes(episodes)

    def add_step(self, metrics: Mapping[str, torch.Tensor], policy_lag: float) -> None:
        self.stats.add_step(metrics, policy_lag)

    def add_fetch(self, wait_seconds: float, ready: int, in_flight: int) -> None:
        """One request of the learner for unrolls: how long it waited, and the source's backlog then."""
        self.stats.add_fetch(wait_seconds, ready, in_flight)

    def add_diagnostics(self, diagnostics: HeadDiagnostics | None) -> None:
        """The head's diagnostics (``agent.diagnostics.HeadDiagnostics`` or None), for the next report."""
        self._diagnostics = diagnostics

    def count_unrolls(self, used: int, dropped: int) -> None:
        self.stats.count_unrolls(used, dropped)

    def event(self, kind: str, **fields: Any) -> None:
        """An occurrence worth keeping (actor restart, checkpoint, resume, error): events.jsonl and
        the terminal (a ``traceback`` field goes to events.jsonl only)."""
        if kind == "actor_restart":
            self.stats.count_restart(fields.get("dropped_unrolls", 0))
        self.writers.event({"time": time.time(), "event": kind, **fields})

    # ------------------------------------------------------------ scores
    def task_name(self, task_id: int) -> str:
        return self.stats.task_name(task_id)

    def scores(self) -> tuple[dict[str, dict[str, float]], float | None, float | None]:
        """(per-task stats, mean capped score, mean uncapped score); the means are None until every
        trained task has finished an episode."""
        return self.stats.scores()

    # ------------------------------------------------------------ output
    def has_unreported(self, frames: int) -> bool:
        """Steps or frames that no report holds yet (a final report without them would be empty)."""
        return self.stats.has_steps() or frames != self._last_frames

    def due(self) -> bool:
        return time.monotonic() - self._last_time >= self.every

    def report(self, frames: int, updates: int) -> dict[str, Any]:
        now = time.monotonic()
        interval = now - self._last_time
        fps = (frames - self._last_frames) / max(interval, 1e-9)
        avg_fps = (frames - self._start_frames) / max(now - self._start_time, 1e-9)
        groups = {key.split("_", 1)[0] for key in self.stats.per_task}
        record = self.stats.record(frames, updates, fps, interval)
        self.writers.metrics(record, groups, progress_line(record, self.total_frames, avg_fps))
        if self._diagnostics is not None:
            self.writers.diagnostics(self._diagnostics, [t.name for t in self.suite.tasks], self.task_ids,
                                     frames, updates)
            self._diagnostics = None
        self._last_time, self._last_frames = now, frames
        return record

    def write_hparams(self) -> dict[str, float]:
        """The config's scalar fields as hparams, with the current scores as metrics. Returns the metrics written."""
        per_task, capped, uncapped = self.scores()
        metrics = {"final/mean_capped_score": capped, "final/mean_uncapped_score": uncapped}
        metrics.update({f"final/{name}/score": v["score"] for name, v in per_task.items()})
        metrics = {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(v)}
        self.writers.hparams(self.config, metrics, self._last_frames)
        return metrics

    def close(self) -> None:
        if self.config is not None:
            self.write_hparams()
        self.writers.close()

    # ------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:
        return self.stats.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.stats.load_state_dict(state)

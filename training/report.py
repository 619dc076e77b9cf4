"""Progress reporting: TensorBoard, ``metrics.jsonl``, ``events.jsonl`` and the terminal.

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

import json
import math
import os
import sys
import time
from collections import deque
from typing import Any, Mapping, Sequence, TextIO

import torch

from agent.types import EpisodeStat


class Reporter:
    def __init__(self, suite: Any, task_ids: Sequence[int], logdir: str, *, total_frames: int,
                 report_every_seconds: float, score_window: int, stream: TextIO | None = None,
                 start_frames: int = 0, config: Mapping[str, Any] | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter  # imported here: tensorboard is heavy

        self.suite = suite
        self.task_ids = list(task_ids)
        self.logdir = logdir
        self.total_frames = total_frames
        self.every = report_every_seconds
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.writer = SummaryWriter(logdir)
        self.metrics_file = open(os.path.join(logdir, "metrics.jsonl"), "a", buffering=1)
        self.events_file = open(os.path.join(logdir, "events.jsonl"), "a", buffering=1)
        self.returns = {t: deque(maxlen=score_window) for t in self.task_ids}
        self.lengths = {t: deque(maxlen=score_window) for t in self.task_ids}
        self.episodes = {t: 0 for t in self.task_ids}
        self.actor_restarts = 0
        self.unrolls_used = 0       # unrolls accepted by the learner (whole ones only)
        self.unrolls_dropped = 0    # unrolls lost: pending on a failed actor, or of the wrong length
        self._sums: dict[str, torch.Tensor] = {}
        self._per_task: dict[str, torch.Tensor] = {}   # latest [K] learner metrics, e.g. popart_mu
        self._steps = 0
        self._lag_sum = 0.0
        self._reset_fetches()
        self._last_time = time.monotonic()
        self._last_frames = start_frames
        self._start_time = self._last_time
        self._start_frames = start_frames
        self._diagnostics = None        # the head's latest diagnostics (device tensors), written at report()
        self.diagnostics_file = None    # diagnostics.jsonl, opened on the first diagnostics
        self.config = config
        if config is not None:
            self.writer.add_text("config", _yaml_markdown(config), start_frames)
            self.writer.flush()

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
                self._per_task[k] = v
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

    def add_diagnostics(self, diagnostics: Any) -> None:
        """The head's diagnostics (``agent.diagnostics.HeadDiagnostics`` or None), for the next report."""
        self._diagnostics = diagnostics

    def count_unrolls(self, used: int, dropped: int) -> None:
        self.unrolls_used += used
        self.unrolls_dropped += dropped

    def event(self, kind: str, **fields: Any) -> None:
        """An occurrence worth keeping (actor restart, checkpoint, resume, error): events.jsonl and
        the terminal (a ``traceback`` field goes to events.jsonl only)."""
        if kind == "actor_restart":
            self.actor_restarts += 1
            self.unrolls_dropped += fields.get("dropped_unrolls", 0)
        record = {"time": time.time(), "event": kind, **fields}
        self.events_file.write(json.dumps(record) + "\n")
        self._print(f"[{kind}] " + " ".join(f"{k}={v}" for k, v in fields.items() if k != "traceback"),
                    newline=True)

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
        capped = sum(min(s, 100.0) for s in normalized) / len(normalized)
        return per_task, capped, sum(normalized) / len(normalized)

    # ------------------------------------------------------------ output
    def has_unreported(self, frames: int) -> bool:
        """Steps or frames that no report holds yet (a final report without them would be empty)."""
        return self._steps > 0 or frames != self._last_frames

    def due(self) -> bool:
        return time.monotonic() - self._last_time >= self.every

    def report(self, frames: int, updates: int) -> dict[str, Any]:
        now = time.monotonic()
        fps = (frames - self._last_frames) / max(now - self._last_time, 1e-9)
        elapsed = now - self._start_time
        avg_fps = (frames - self._start_frames) / max(elapsed, 1e-9)
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
            "learner_wait_fraction": min(self._wait_seconds / max(now - self._last_time, 1e-9), 1.0),
            "unrolls_ready": self._ready_sum / self._fetches if self._fetches else None,
            "requests_in_flight": self._in_flight_sum / self._fetches if self._fetches else None,
            "actor_restarts": self.actor_restarts, "unrolls_used": self.unrolls_used,
            "unrolls_dropped": self.unrolls_dropped, "tasks": per_task, "learner": learner,
        }
        record.update(self._per_task_record())
        self.metrics_file.write(json.dumps(_finite(record)) + "\n")
        self._write_tensorboard(record, frames)
        if self._diagnostics is not None:
            self._write_diagnostics(frames, updates)
        self._print(self._progress_line(record, avg_fps), newline=not self.tty)
        self._sums, self._steps, self._lag_sum = {}, 0, 0.0
        self._reset_fetches()
        self._last_time, self._last_frames = now, frames
        return record

    def _per_task_record(self) -> dict[str, dict[str, dict[str, float]]]:
        """``{"popart": {task: {"mu": .., "sigma": ..}}}`` from the latest ``popart_mu``/``popart_sigma``
        ``[K]`` metrics (a name ``group_field``); empty without such metrics."""
        record: dict[str, dict[str, dict[str, float]]] = {}
        for key, vector in self._per_task.items():
            group, field = key.split("_", 1)
            values = vector.cpu().tolist()
            for t in self.task_ids:
                record.setdefault(group, {}).setdefault(self.task_name(t), {})[field] = values[t]
        return record

    def _reset_fetches(self) -> None:
        self._fetches, self._wait_seconds, self._ready_sum, self._in_flight_sum = 0, 0.0, 0, 0

    def _write_tensorboard(self, r: Mapping[str, Any], step: int) -> None:
        w = self.writer
        w.add_scalar("throughput/frames_per_second", r["fps"], step)
        w.add_scalar("actors/restarts", r["actor_restarts"], step)
        w.add_scalar("throughput/learner_wait_fraction", r["learner_wait_fraction"], step)
        w.add_scalar("actors/unrolls_used", r["unrolls_used"], step)
        w.add_scalar("actors/unrolls_dropped", r["unrolls_dropped"], step)
        for key in ("mean_capped_score", "mean_uncapped_score", "mean_episode_return"):
            if r[key] is not None:
                w.add_scalar(f"score/{key}", r[key], step)
        for key in ("policy_lag", "unrolls_ready", "requests_in_flight"):
            if r[key] is not None:
                w.add_scalar(f"actors/{key}", r[key], step)
        for name, v in r["tasks"].items():
            w.add_scalar(f"task/{name}/episode_return", v["return"], step)
            w.add_scalar(f"task/{name}/normalized_score", v["score"], step)
            w.add_scalar(f"task/{name}/episode_length", v["length"], step)
        for key, value in r["learner"].items():
            w.add_scalar(f"learner/{key}", value, step)
        for group in {key.split("_", 1)[0] for key in self._per_task}:
            for task, fields in r[group].items():
                for field, value in fields.items():
                    w.add_scalar(f"{group}/{task}/{field}", value, step)
        w.flush()

    def _write_diagnostics(self, frames: int, updates: int) -> None:
        from training import diagnostics_log  # noqa: PLC0415

        record = diagnostics_log.diagnostics_record(self._diagnostics, [t.name for t in self.suite.tasks], self.task_ids,
                                                    frames, updates, time.time())
        if self.diagnostics_file is None:
            self.diagnostics_file = open(os.path.join(self.logdir, "diagnostics.jsonl"), "a", buffering=1)
        self.diagnostics_file.write(json.dumps(record) + "\n")
        diagnostics_log.write_tensorboard(self.writer, record, frames)
        self.writer.flush()
        self._diagnostics = None

    def _progress_line(self, r: Mapping[str, Any], avg_fps: float) -> str:
        frames = r["frames"]
        left = max(self.total_frames - frames, 0) / avg_fps if avg_fps > 0 else float("inf")
        score = "n/a" if r["mean_capped_score"] is None else f"{r['mean_capped_score']:.1f}"
        tasks = " ".join(f"{n}={v['return']:.2f}" for n, v in r["tasks"].items())
        return (f"frames {_si(frames)}/{_si(self.total_frames)} ({100 * frames / self.total_frames:.1f}%) | "
                f"{r['fps']:,.0f} f/s | left {_duration(left)} | capped score {score} | "
                f"learner waits {100 * r['learner_wait_fraction']:.0f}% | "
                f"restarts {r['actor_restarts']} | {tasks}")

    def _print(self, text: str, newline: bool) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if newline else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def write_hparams(self) -> dict[str, float]:
        """The config's scalar fields as hparams, with the current scores as metrics (the HParams
        tab reads each metric's last value from this run's scalars). Returns the metrics written."""
        from torch.utils.tensorboard.summary import hparams

        per_task, capped, uncapped = self.scores()
        metrics = {"final/mean_capped_score": capped, "final/mean_uncapped_score": uncapped}
        metrics.update({f"final/{name}/score": v["score"] for name, v in per_task.items()})
        metrics = {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(v)}
        experiment, start, end = hparams(hparam_values(self.config), metrics)
        for summary in (experiment, start, end):
            self.writer.file_writer.add_summary(summary, self._last_frames)
        for k, v in metrics.items():
            self.writer.add_scalar(k, v, self._last_frames)
        self.writer.flush()
        return metrics

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
        if self.config is not None:
            self.write_hparams()
        self.writer.close()
        self.metrics_file.close()
        self.events_file.close()
        if self.diagnostics_file is not None:
            self.diagnostics_file.close()

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
        self.unrolls_used = state.get("unrolls_used", 0)        # absent in checkpoints of format 1
        self.unrolls_dropped = state.get("unrolls_dropped", 0)


def hparam_values(config: Mapping[str, Any]) -> dict[str, int | float | str | bool]:
    """The config tree flattened to ``{"section.field": value}`` with TensorBoard-friendly values
    (numbers, strings and bools as they are; None, lists and mappings as their YAML text)."""
    import yaml

    flat: dict[str, Any] = {}
    for section, body in config.items():
        for name, value in body.items():
            key = f"{section}.{name}"
            if isinstance(value, (bool, int, float, str)):
                flat[key] = value
            else:
                flat[key] = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
    return flat


def _yaml_markdown(config: Mapping[str, Any]) -> str:
    """YAML as a Markdown code block (TensorBoard renders text summaries as Markdown)."""
    import yaml

    text = yaml.safe_dump(dict(config), sort_keys=False)
    return "\n".join("    " + line for line in text.splitlines())


def _finite(value: Any) -> Any:
    """JSON has no NaN/Infinity: non-finite floats become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def _si(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return f"{n:.0f}"


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"

"""Where a training run's reports go: TensorBoard (scalars, the config as text, hparams),
``metrics.jsonl``, ``events.jsonl``, ``diagnostics.jsonl`` and the terminal's progress line.

The numbers come from ``training.statistics``; this module only formats and writes them.
File formats: docs/EVALUATION.md (diagnostics) and docs/USAGE.md.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from typing import Any, Iterable, Mapping, Sequence, TextIO

import yaml

from agent.diagnostics import HeadDiagnostics
from training import diagnostics_log


class RunWriters:
    """The files of ``logdir`` (appended to, so a resumed run continues them) and ``stream``."""

    def __init__(self, logdir: str, *, stream: TextIO | None = None, start_frames: int = 0,
                 config: Mapping[str, Any] | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter  # imported here: tensorboard is heavy

        self.logdir = logdir
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.tensorboard = SummaryWriter(logdir)
        self.metrics_file = open(os.path.join(logdir, "metrics.jsonl"), "a", buffering=1)
        self.events_file = open(os.path.join(logdir, "events.jsonl"), "a", buffering=1)
        self.diagnostics_file = None    # diagnostics.jsonl, opened on the first diagnostics
        if config is not None:
            self.tensorboard.add_text("config", _yaml_markdown(config), start_frames)
            self.tensorboard.flush()

    def event(self, record: Mapping[str, Any]) -> None:
        """An ``events.jsonl`` line, and the terminal (a ``traceback`` field goes to events.jsonl only)."""
        self.events_file.write(json.dumps(record) + "\n")
        fields = {k: v for k, v in record.items() if k not in ("time", "event", "traceback")}
        self.print(f"[{record['event']}] " + " ".join(f"{k}={v}" for k, v in fields.items()), newline=True)

    def metrics(self, record: Mapping[str, Any], groups: Iterable[str], progress: str) -> None:
        """A report: ``metrics.jsonl``, TensorBoard (``groups``: the per-task metric groups, e.g.
        ``popart``) and the progress line."""
        self.metrics_file.write(json.dumps(_finite(record)) + "\n")
        self._write_tensorboard(record, groups, record["frames"])
        self.print(progress, newline=not self.tty)

    def diagnostics(self, diag: HeadDiagnostics, task_names: Sequence[str], task_ids: Sequence[int],
                    frames: int, updates: int) -> None:
        record = diagnostics_log.diagnostics_record(diag, task_names, task_ids, frames, updates, time.time())
        if self.diagnostics_file is None:
            self.diagnostics_file = open(os.path.join(self.logdir, "diagnostics.jsonl"), "a", buffering=1)
        self.diagnostics_file.write(json.dumps(record) + "\n")
        diagnostics_log.write_tensorboard(self.tensorboard, record, frames)
        self.tensorboard.flush()

    def hparams(self, config: Mapping[str, Any], metrics: Mapping[str, float], step: int) -> None:
        """The config's scalar fields as hparams, with ``metrics`` (the HParams tab reads each metric's
        last value from this run's scalars)."""
        from torch.utils.tensorboard.summary import hparams

        experiment, start, end = hparams(hparam_values(config), dict(metrics))
        for summary in (experiment, start, end):
            self.tensorboard.file_writer.add_summary(summary, step)
        for k, v in metrics.items():
            self.tensorboard.add_scalar(k, v, step)
        self.tensorboard.flush()

    def print(self, text: str, newline: bool) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if newline else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
        self.tensorboard.close()
        self.metrics_file.close()
        self.events_file.close()
        if self.diagnostics_file is not None:
            self.diagnostics_file.close()

    def _write_tensorboard(self, r: Mapping[str, Any], groups: Iterable[str], step: int) -> None:
        w = self.tensorboard
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
        for group in groups:
            for task, fields in r[group].items():
                for field, value in fields.items():
                    w.add_scalar(f"{group}/{task}/{field}", value, step)
        w.flush()


def progress_line(r: Mapping[str, Any], total_frames: int, avg_fps: float) -> str:
    """The terminal's one-line summary of a ``metrics.jsonl`` record."""
    frames = r["frames"]
    left = max(total_frames - frames, 0) / avg_fps if avg_fps > 0 else float("inf")
    score = "n/a" if r["mean_capped_score"] is None else f"{r['mean_capped_score']:.1f}"
    tasks = " ".join(f"{n}={v['return']:.2f}" for n, v in r["tasks"].items())
    return (f"frames {_si(frames)}/{_si(total_frames)} ({100 * frames / total_frames:.1f}%) | "
            f"{r['fps']:,.0f} f/s | left {_duration(left)} | capped score {score} | "
            f"learner waits {100 * r['learner_wait_fraction']:.0f}% | "
            f"restarts {r['actor_restarts']} | {tasks}")


def hparam_values(config: Mapping[str, Any]) -> dict[str, int | float | str | bool]:
    """The config tree flattened to ``{"section.field": value}`` with TensorBoard-friendly values
    (numbers, strings and bools as they are; None, lists and mappings as their YAML text)."""
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

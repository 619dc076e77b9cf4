"""Evaluation results: per-task statistics, the files of docs/EVALUATION.md and the printed table."""
from __future__ import annotations

import csv
import json
import os
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from analysis.stats import sample_std, t_interval
from envs.dmlab30 import capped_mean
from evaluation.worker import EpisodeRecord

if TYPE_CHECKING:
    from envs.suites import Suite

CONFIDENCE = 0.95
CI_METHOD = "student-t interval over episodes"
TASK_FIELDS = ("name", "task_id", "episodes", "mean_return", "std_return", "ci95_low", "ci95_high",
               "mean_length", "normalized_score", "normalized_ci95_low", "normalized_ci95_high")
EPISODE_FIELDS = ("task", "task_id", "env", "episode", "return", "length", "normalized_score")


def ordered(records: Sequence[EpisodeRecord]) -> list[EpisodeRecord]:
    """Records in the evaluation's fixed order: task id, env slot, episode."""
    return sorted(records, key=lambda r: (r.task_id, r.env, r.episode))


def summarize(suite: Suite, task_ids: Sequence[int], records: Sequence[EpisodeRecord],
              run_info: Mapping[str, Any]) -> dict[str, Any]:
    """The ``results.json`` object: ``run_info`` (checkpoint, frames, ...) plus per-task statistics
    and the mean capped / uncapped normalized scores over ``task_ids``."""
    tasks = []
    for task_id in task_ids:
        mine = [r for r in records if r.task_id == task_id]
        if not mine:
            raise ValueError(f"no episode of task {task_id} to summarize")
        returns = [r.episode_return for r in mine]
        interval = t_interval(returns, CONFIDENCE)
        score = lambda value: suite.normalized_score(task_id, value)  # noqa: E731 (affine, increasing)
        tasks.append({
            "name": suite.tasks[task_id].name, "task_id": int(task_id), "episodes": len(mine),
            "mean_return": interval.value, "std_return": sample_std(returns),
            "ci95_low": interval.low, "ci95_high": interval.high,
            "mean_length": sum(r.length for r in mine) / len(mine),
            "normalized_score": score(interval.value),
            "normalized_ci95_low": score(interval.low), "normalized_ci95_high": score(interval.high),
        })
    scores = [t["normalized_score"] for t in tasks]
    return {"format": 1, **run_info, "confidence": CONFIDENCE, "ci_method": CI_METHOD,
            "mean_capped_score": capped_mean(scores), "mean_uncapped_score": capped_mean(scores, cap=None),
            "tasks": tasks}


def write_files(out_dir: str, summary: Mapping[str, Any], suite: Suite, records: Sequence[EpisodeRecord]) -> None:
    """results.json, results.csv and episodes.csv, each written to a temporary name then renamed."""
    os.makedirs(out_dir, exist_ok=True)
    _atomic_write(os.path.join(out_dir, "results.json"), lambda f: json.dump(summary, f, indent=1))

    def task_rows(f):
        writer = csv.DictWriter(f, TASK_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: t[k] for k in TASK_FIELDS} for t in summary["tasks"])

    def episode_rows(f):
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(EPISODE_FIELDS)
        for r in ordered(records):
            writer.writerow([suite.tasks[r.task_id].name, r.task_id, r.env, r.episode, r.episode_return,
                             r.length, suite.normalized_score(r.task_id, r.episode_return)])

    _atomic_write(os.path.join(out_dir, "results.csv"), task_rows)
    _atomic_write(os.path.join(out_dir, "episodes.csv"), episode_rows)


def write_tensorboard(out_dir: str, summary: Mapping[str, Any]) -> None:
    from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415 (heavy import)

    prefix = "eval_greedy" if summary["greedy"] else "eval"
    step = int(summary["frames"])
    with SummaryWriter(out_dir) as writer:
        writer.add_scalar(f"{prefix}/mean_capped_score", summary["mean_capped_score"], step)
        writer.add_scalar(f"{prefix}/mean_uncapped_score", summary["mean_uncapped_score"], step)
        for t in summary["tasks"]:
            for key in ("mean_return", "normalized_score", "ci95_low", "ci95_high"):
                writer.add_scalar(f"{prefix}/{t['name']}/{key}", t[key], step)


def format_table(summary: Mapping[str, Any]) -> str:
    """The per-task table printed at the end (returns with their 95% interval, normalized scores)."""
    width = max(len("task"), *(len(t["name"]) for t in summary["tasks"]))
    lines = [f"{'task':<{width}}  {'episodes':>8}  {'mean return':>11}  {'95% CI':>19}  {'score':>7}",
             "-" * (width + 54)]
    for t in summary["tasks"]:
        ci = f"[{t['ci95_low']:.3f}, {t['ci95_high']:.3f}]"
        lines.append(f"{t['name']:<{width}}  {t['episodes']:>8}  {t['mean_return']:>11.3f}  {ci:>19}  "
                     f"{t['normalized_score']:>7.1f}")
    lines.append("-" * (width + 54))
    lines.append(f"mean capped score {summary['mean_capped_score']:.1f}, uncapped "
                 f"{summary['mean_uncapped_score']:.1f} ({'greedy' if summary['greedy'] else 'sampled'} actions, "
                 f"{summary['frames']:,} frames)")
    return "\n".join(lines)


def _atomic_write(path: str, write) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", newline="") as f:
        write(f)
    os.replace(tmp, path)

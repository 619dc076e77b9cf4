"""Reading one training run's outputs for reports: ``config.yaml``, ``metrics.jsonl``, evaluation
results (``eval/<ckpt>/results.json``, docs/EVALUATION.md) and ``diagnostics.jsonl`` if present.

A run's final per-task scores are its evaluation's normalised scores when it has been evaluated
(newest checkpoint first, sampled actions preferred over greedy), else the last training report's
window (mean of the last ``run.score_window_episodes`` training episodes per task); ``source``
says which.
"""
from __future__ import annotations

import glob
import json
import math
import os
from dataclasses import dataclass, field

import numpy as np
import yaml


class ReportError(ValueError):
    """Runs that cannot be reported together (or at all); raised before anything is written."""


@dataclass
class Curve:
    frames: np.ndarray                   # [N] env frames of each report
    capped: np.ndarray                   # [N] mean capped score (nan before every task had an episode)
    tasks: dict[str, np.ndarray]         # task -> [N] normalised score (nan before its first episode)


@dataclass
class RunData:
    path: str
    head: str
    seed: int
    suite: str
    tasks: tuple[str, ...]               # trained tasks, suite order
    frames: int                          # frames of the last report (or of the evaluated checkpoint)
    curve: Curve
    scores: dict[str, float]             # task -> final normalised score (nan: no episode yet)
    returns: dict[str, float]            # task -> final mean return
    source: str                          # "eval" | "train window"
    eval_info: dict = field(default_factory=dict)   # checkpoint, frames, episodes per task (eval only)
    diagnostics: list[dict] = field(default_factory=list)


def _read_jsonl(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    records = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except ValueError:       # a line being written by a running run
                continue
    return records


def _task_names(suite: str, configured: list[str], records: list[dict], options: dict | None = None) -> tuple[str, ...]:
    try:
        from envs.suites import get_suite

        names = get_suite(suite, **(options or {})).task_names    # options: e.g. embedded's cued pair
    except Exception:   # noqa: BLE001 (a suite that cannot be built here: use the names the run logged)
        names = tuple(dict.fromkeys(n for r in records for n in r.get("tasks", {})))
    return tuple(n for n in names if not configured or n in configured)


def newest_eval(path: str) -> dict | None:
    """The evaluation results of the newest evaluated checkpoint (sampled actions preferred)."""
    found = []
    for result in glob.glob(os.path.join(path, "eval", "*", "results.json")):
        with open(result) as f:
            data = json.load(f)
        found.append((int(data.get("frames", 0)), not data.get("greedy", False), result, data))
    if not found:
        return None
    *_, best_path, best = max(found, key=lambda x: (x[0], x[1]))
    return {**best, "path": best_path}


def load_run(path: str) -> RunData:
    cfg_path = os.path.join(path, "config.yaml")
    if not os.path.exists(cfg_path):
        raise ReportError(f"{path} is not a training run (no config.yaml); pass run directories "
                          "(the logdir of `launch.py train`, or DIR/<head>/seed<k> of a grid)")
    with open(cfg_path) as f:
        cfg = yaml.safe_load(f) or {}
    records = _read_jsonl(os.path.join(path, "metrics.jsonl"))
    suite = cfg.get("env", {}).get("suite", "embedded")
    tasks = _task_names(suite, list(cfg.get("env", {}).get("tasks") or []), records, cfg.get("env", {}).get("options"))
    nan = float("nan")
    frames = np.array([r["frames"] for r in records], dtype=np.float64)
    capped = np.array([nan if r.get("mean_capped_score") is None else r["mean_capped_score"] for r in records])
    per_task = {t: np.array([r.get("tasks", {}).get(t, {}).get("score", nan) for r in records], dtype=np.float64)
                for t in tasks}
    curve = Curve(frames, capped, per_task)
    last = records[-1] if records else {"frames": 0, "tasks": {}}
    scores = {t: float(last["tasks"].get(t, {}).get("score", nan)) for t in tasks}
    returns = {t: float(last["tasks"].get(t, {}).get("return", nan)) for t in tasks}
    run = RunData(path=path, head=cfg.get("agent", {}).get("head", "shared"), seed=int(cfg.get("run", {}).get("seed", 0)),
                  suite=suite, tasks=tasks, frames=int(last["frames"]), curve=curve, scores=scores,
                  returns=returns, source="train window",
                  diagnostics=_read_jsonl(os.path.join(path, "diagnostics.jsonl")))
    ev = newest_eval(path)
    if ev is not None:
        by_name = {t["name"]: t for t in ev["tasks"]}
        if all(t in by_name for t in tasks):
            run.scores = {t: float(by_name[t]["normalized_score"]) for t in tasks}
            run.returns = {t: float(by_name[t]["mean_return"]) for t in tasks}
            run.source = "eval"
            run.frames = int(ev.get("frames", run.frames))
            run.eval_info = {"checkpoint": ev.get("checkpoint"), "frames": ev.get("frames"),
                             "episodes_per_task": ev.get("episodes_per_task"), "greedy": ev.get("greedy", False)}
    return run


def load_runs(paths: list[str]) -> list[RunData]:
    """Loads every run and checks they can be compared: one suite, one task set."""
    if not paths:
        raise ReportError("no run directories given")
    runs = [load_run(p) for p in paths]
    suites = sorted({r.suite for r in runs})
    if len(suites) > 1:
        detail = ", ".join(f"{r.path}: {r.suite}" for r in runs)
        raise ReportError(f"the runs mix suites ({detail}); report runs of one suite at a time")
    task_sets = {r.tasks for r in runs}
    if len(task_sets) > 1:
        detail = ", ".join(f"{r.path}: {','.join(r.tasks)}" for r in runs)
        raise ReportError(f"the runs were trained on different task sets ({detail}); report one task set at a time")
    return runs


def finite(values) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)

"""Reading one training run's outputs for reports: ``config.yaml``, ``metrics.jsonl``, evaluation
results (``eval/<ckpt>/results.json``, docs/EVALUATION.md) and ``diagnostics.jsonl`` if present.

A run's final per-task scores are its evaluation's normalised scores when it has been evaluated
(newest checkpoint first, sampled actions preferred over greedy), else the last training report's
window (mean of the last ``run.score_window_episodes`` training episodes per task); ``source``
says which.

``load_score_table(run_scores.csv)`` rebuilds runs from a report's own ``run_scores.csv`` (final
scores only, no curves or diagnostics), so a committed result whose run directories are gone can
still have its statistics recomputed (``launch.py report .../run_scores.csv --out DIR``).
"""
from __future__ import annotations

import csv
import glob
import json
import math
import os
from dataclasses import dataclass, field

import numpy as np
import yaml

from agent.config import AUTO_CONTEXT_SCALE


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
    window: int | None = None            # run.score_window_episodes: the curves' trailing episode window
    total_frames: int | None = None      # run.total_frames: the run's frame budget (the LR anneals over it)


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
    run = RunData(path=path, head=group_label(cfg), seed=int(cfg.get("run", {}).get("seed", 0)),
                  suite=suite, tasks=tasks, frames=int(last["frames"]), curve=curve, scores=scores,
                  returns=returns, source="train window",
                  diagnostics=_read_jsonl(os.path.join(path, "diagnostics.jsonl")),
                  window=_int_or_none(cfg.get("run", {}).get("score_window_episodes")),
                  total_frames=_int_or_none(cfg.get("run", {}).get("total_frames")))
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


def group_label(cfg: dict) -> str:
    """A run's group in reports: its head, plus each setting that makes it a variant of that head, so
    variants are never pooled with the head: ``+popart`` (learner/popart.py), ``+onehot``
    (``agent.mi_context=onehot``, taskid_mi with the raw one-hot id as context) and, for the MI heads,
    ``@<scale>`` when the context scale is not the one ``auto`` picks for the run's optimizer
    (``taskid_mi@1/C`` under RMSProp). A config without the scale key predates it: 1/C."""
    agent, learner = cfg.get("agent", {}), cfg.get("learner", {})
    head = agent.get("head", "shared")
    label = head
    if agent.get("mi_context", "mlp") == "onehot":
        label += "+onehot"
    if head in ("taskid_mi", "learnt_mi"):
        scale = agent.get("mi_context_scale", "1/C")
        if scale != "auto" and scale != AUTO_CONTEXT_SCALE.get(learner.get("optimizer", "adam")):
            label += f"@{scale}"
    if learner.get("popart", False):
        label += "+popart"
    return label


def _int_or_none(value) -> int | None:
    return None if value is None else int(value)


SCORE_TABLE_COLUMNS = ("head", "seed", "run", "task", "score", "return", "source", "frames")


def _table_suite(path: str, rows: list[dict]) -> str:
    """The suite of a run_scores.csv: its ``suite`` column, else the ``suite`` of the report.json or
    grid.json next to it (tables written before the column existed)."""
    suites = {r["suite"] for r in rows if r.get("suite")}
    if len(suites) == 1:
        return suites.pop()
    if len(suites) > 1:
        raise ReportError(f"{path} mixes suites {sorted(suites)}; report runs of one suite at a time")
    for sibling in ("report.json", "grid.json"):
        other = os.path.join(os.path.dirname(path), sibling)
        if os.path.exists(other):
            with open(other) as f:
                suite = json.load(f).get("suite")
            if suite:
                return str(suite)
    raise ReportError(f"{path} has no suite column and no report.json or grid.json next to it; "
                      "add a column suite=<name> (e.g. embedded) to every row")


def _grid_settings(path: str) -> tuple[int | None, int | None]:
    """``(run.total_frames, run.score_window_episodes)`` of the grid whose ``grid.json`` (written by
    ``compare``) sits next to the table or one folder up, resolved with the grid's config and
    overrides; ``(None, None)`` without one."""
    for folder in (os.path.dirname(path), os.path.dirname(os.path.dirname(os.path.abspath(path)))):
        grid = os.path.join(folder, "grid.json")
        if os.path.exists(grid):
            from configs.schema import load_config

            with open(grid) as f:
                spec = json.load(f)
            try:
                cfg = load_config(spec.get("config"), list(spec.get("overrides") or []))
            except ValueError as e:
                raise ReportError(f"{grid}: its config and overrides do not resolve: {e}") from None
            return cfg.run.total_frames, cfg.run.score_window_episodes
    return None, None


def load_score_table(path: str) -> list[RunData]:
    """Runs rebuilt from a report's ``run_scores.csv`` (one row per run x task): final scores, returns,
    source, frames and, from its ``budget`` column or the grid's ``grid.json``, the frame budget and
    score window; no curves or diagnostics (the table does not hold them)."""
    if not os.path.isfile(path):
        raise ReportError(f"{path}: no such file; pass a report's run_scores.csv or run directories")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in SCORE_TABLE_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ReportError(f"{path} is not a run_scores.csv of a report: no column {', '.join(missing)}")
        rows = list(reader)
    if not rows:
        raise ReportError(f"{path} holds no rows")
    suite = _table_suite(path, rows)
    grid_budget, grid_window = _grid_settings(path)
    tasks = tuple(dict.fromkeys(r["task"] for r in rows))
    by_run: dict[str, list[dict]] = {}
    for r in rows:
        by_run.setdefault(r["run"], []).append(r)
    nan, runs = float("nan"), []
    empty = Curve(np.zeros(0), np.zeros(0), {t: np.zeros(0) for t in tasks})
    for name, group in by_run.items():
        got = {r["task"]: r for r in group}
        if len(got) != len(group) or set(got) != set(tasks):
            raise ReportError(f"{path}: run {name} has tasks {sorted(r['task'] for r in group)}, "
                              f"not each of {list(tasks)} once")
        def number(task: str, key: str) -> float:
            text = got[task][key]
            try:
                return float(text) if text != "" else nan
            except ValueError:
                raise ReportError(f"{path}: run {name} task {task}: {key}={text!r} is not a number") from None
        first = group[0]
        sources = {r["source"] for r in group}
        runs.append(RunData(path=name, head=first["head"], seed=int(first["seed"]), suite=suite, tasks=tasks,
                            frames=int(float(first["frames"])), curve=empty,
                            scores={t: number(t, "score") for t in tasks},
                            returns={t: number(t, "return") for t in tasks},
                            source=sources.pop() if len(sources) == 1 else "mixed",
                            total_frames=int(float(first["budget"])) if first.get("budget") else grid_budget,
                            window=grid_window))
    return runs


def load_runs(paths: list[str]) -> list[RunData]:
    """Loads every run and checks they can be compared: one suite, one task set. A path ending in
    ``.csv`` is a report's run_scores.csv (``load_score_table``); any other is a run directory."""
    if not paths:
        raise ReportError("no run directories given")
    runs = [run for p in paths for run in (load_score_table(p) if p.endswith(".csv") else [load_run(p)])]
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

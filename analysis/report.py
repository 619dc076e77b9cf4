"""``launch.py report RUN_DIR... --out DIR``: compare heads across seeds.

Runs are grouped by ``agent.head`` in their ``config.yaml`` (one suite and one task set, else
refused). Writes to ``DIR``:

| file | what |
|---|---|
| ``summary.md`` | the tables below and which differences are significant, tests named |
| ``learning_curves.png`` / ``task_curves.png`` | mean capped / per-task score vs frames, mean over seeds, 95% band |
| ``aggregates.png`` | mean capped score and IQM per head, stratified-bootstrap 95% intervals |
| ``diagnostics.png`` | MI head diagnostics (only if runs wrote ``diagnostics.jsonl``) |
| ``run_scores.csv`` | every run x task: final normalised score and return, source (eval / train window) |
| ``head_task_scores.csv`` | head x task: mean over seeds, 95% Student-t interval, n, source |
| ``aggregates.csv`` | head: mean capped score and IQM with 95% stratified-bootstrap intervals |
| ``probability_of_improvement.csv`` | ordered head pairs: P(A > B) with its 95% interval |
| ``task_differences.csv`` | task x head pair: difference of means with Welch's 95% interval |
| ``report.json`` | all of the above in one object |

Statistics: ``analysis.stats`` (Agarwal et al. 2021). A difference of aggregates is called
significant when the 95% stratified-bootstrap interval of P(A > B) excludes 0.5; a per-task
difference when Welch's 95% interval of the difference of means excludes 0.
"""
from __future__ import annotations

import csv
import json
import math
import os
from typing import Any, Mapping, Sequence

import numpy as np

from agent.config import HEADS
from analysis import plots, stats
from analysis.runs import ReportError, RunData, load_runs

__all__ = ["ReportError", "write_report", "build_tables"]


def group_by_head(runs: Sequence[RunData]) -> dict[str, list[RunData]]:
    order = {h: i for i, h in enumerate(HEADS)}
    groups: dict[str, list[RunData]] = {}
    for run in sorted(runs, key=lambda r: (order.get(r.head, len(order)), r.head, r.seed, r.path)):
        groups.setdefault(run.head, []).append(run)
    return groups


def score_matrix(runs: Sequence[RunData], tasks: Sequence[str]) -> np.ndarray:
    """``[R, K]`` final normalised scores of the runs that have a score for every task."""
    rows = [[r.scores[t] for t in tasks] for r in runs]
    rows = [row for row in rows if all(math.isfinite(v) for v in row)]
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(tasks))


def _source(runs: Sequence[RunData]) -> str:
    sources = {r.source for r in runs}
    return sources.pop() if len(sources) == 1 else "mixed"


def build_tables(runs: Sequence[RunData], *, boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Every number of the report, as lists of rows (the CSVs) in one dict."""
    tasks = list(runs[0].tasks)
    groups = group_by_head(runs)
    run_rows = [{"head": r.head, "seed": r.seed, "run": r.path, "task": t, "score": r.scores[t],
                 "return": r.returns[t], "source": r.source, "frames": r.frames} for r in runs for t in tasks]
    head_task, aggregates, matrices = [], [], {}
    for head, group in groups.items():
        m = score_matrix(group, tasks)
        matrices[head] = m
        for k, task in enumerate(tasks):
            if m.shape[0] == 0:
                continue
            iv = stats.t_interval(m[:, k])
            returns = [r.returns[task] for r in group if math.isfinite(r.returns[task])]
            head_task.append({"head": head, "task": task, "n": m.shape[0], "mean": iv.value, "ci95_low": iv.low,
                              "ci95_high": iv.high, "mean_return": float(np.mean(returns)) if returns else None,
                              "source": _source(group)})
        if m.shape[0] == 0:
            continue
        capped = stats.stratified_bootstrap(m, stats.mean_capped, reps=boot, seed=seed)
        iqm = stats.stratified_bootstrap(m, stats.iqm, reps=boot, seed=seed)
        aggregates.append({"head": head, "n": m.shape[0], "mean_capped": capped.value,
                           "mean_capped_low": capped.low, "mean_capped_high": capped.high,
                           "iqm": iqm.value, "iqm_low": iqm.low, "iqm_high": iqm.high,
                           "mean_frames": float(np.mean([r.frames for r in group])), "source": _source(group)})
    pairs, differences = [], []
    heads = [h for h in groups if matrices[h].shape[0] > 0]
    for i, a in enumerate(heads):
        for b in heads[i + 1:]:
            p = stats.probability_of_improvement_ci(matrices[a], matrices[b], reps=boot, seed=seed)
            pairs.append({"a": a, "b": b, "p_a_beats_b": p.value, "ci95_low": p.low, "ci95_high": p.high,
                          "significant": p.low > 0.5 or p.high < 0.5})
            for k, task in enumerate(tasks):
                if min(matrices[a].shape[0], matrices[b].shape[0]) < 2:
                    continue
                d = stats.welch_interval(matrices[a][:, k], matrices[b][:, k])
                differences.append({"task": task, "a": a, "b": b, "mean_a_minus_b": d.value, "ci95_low": d.low,
                                    "ci95_high": d.high, "significant": d.low > 0 or d.high < 0})
    return {"suite": runs[0].suite, "tasks": tasks, "boot": boot, "seed": seed,
            "run_scores": run_rows, "head_task_scores": head_task, "aggregates": aggregates,
            "probability_of_improvement": pairs, "task_differences": differences}


def write_report(paths: Sequence[str], out: str, *, boot: int = 2000, seed: int = 0) -> str:
    """Writes the report of the runs in ``paths`` to ``out``; returns the path of summary.md."""
    if boot < 100:
        raise ReportError(f"--boot {boot} is too few bootstrap resamples for a 95% interval; use >= 100")
    runs = load_runs(list(paths))
    tables = build_tables(runs, boot=boot, seed=seed)
    os.makedirs(out, exist_ok=True)
    groups = group_by_head(runs)
    tasks = tables["tasks"]
    plots.learning_curves(os.path.join(out, "learning_curves.png"), groups,
                          f"{tables['suite']}: {', '.join(tasks)}")
    plots.task_curves(os.path.join(out, "task_curves.png"), groups, tasks)
    figures = ["learning_curves.png", "task_curves.png"]
    if tables["aggregates"]:
        plots.aggregate_intervals(os.path.join(out, "aggregates.png"), tables["aggregates"])
        figures.append("aggregates.png")
    if plots.diagnostics(os.path.join(out, "diagnostics.png"), groups, tasks):
        figures.append("diagnostics.png")
    for name in ("run_scores", "head_task_scores", "aggregates", "probability_of_improvement", "task_differences"):
        _write_csv(os.path.join(out, f"{name}.csv"), tables[name])
    _atomic_text(os.path.join(out, "report.json"), json.dumps(_jsonable(tables), indent=1))
    summary = os.path.join(out, "summary.md")
    _atomic_text(summary, markdown(tables, groups, figures))
    return summary


def markdown(tables: Mapping[str, Any], groups: Mapping[str, Sequence[RunData]], figures: Sequence[str]) -> str:
    tasks = tables["tasks"]
    lines = [f"# Head comparison: {tables['suite']} suite ({', '.join(tasks)})", ""]
    lines.append("| head | seeds | frames (mean) | scores from |")
    lines.append("|---|---:|---:|---|")
    for head, group in groups.items():
        sources = sorted({r.source for r in group})
        lines.append(f"| {head} | {', '.join(str(r.seed) for r in group)} | "
                     f"{np.mean([r.frames for r in group]):,.0f} | {', '.join(sources)} |")
    lines += ["", "Scores are normalised (`100 (return - random) / (solved - random)`, docs/ENVS.md). "
              "`eval` = evaluation on held-out levels (`launch.py evaluate`); `train window` = the mean of the "
              "last training episodes per task (sampled actions, training levels), not comparable with "
              "evaluation numbers.", ""]
    lines += ["## Final score per head and task", "",
              "Mean over seeds [95% Student-t interval over seeds].", ""]
    lines.append("| head | " + " | ".join(tasks) + " |")
    lines.append("|---|" + "---:|" * len(tasks))
    cells = {(r["head"], r["task"]): r for r in tables["head_task_scores"]}
    for head in groups:
        row = [f"{cells[head, t]['mean']:.1f} [{cells[head, t]['ci95_low']:.1f}, {cells[head, t]['ci95_high']:.1f}]"
               if (head, t) in cells else "n/a" for t in tasks]
        lines.append(f"| {head} | " + " | ".join(row) + " |")
    lines += ["", "## Aggregates", "",
              f"Stratified bootstrap over seeds ({tables['boot']} resamples, runs resampled per task), "
              "95% percentile intervals (Agarwal et al., NeurIPS 2021).", "",
              "| head | runs | mean capped score | IQM |", "|---|---:|---:|---:|"]
    for a in tables["aggregates"]:
        lines.append(f"| {a['head']} | {a['n']} | {a['mean_capped']:.1f} [{a['mean_capped_low']:.1f}, "
                     f"{a['mean_capped_high']:.1f}] | {a['iqm']:.1f} [{a['iqm_low']:.1f}, {a['iqm_high']:.1f}] |")
    lines += ["", "## Which differences are significant", "",
              "**Aggregate** — probability of improvement P(A > B) over all tasks (Mann-Whitney statistic per "
              "task, averaged); significant when its 95% stratified-bootstrap interval excludes 0.5.", "",
              "| A | B | P(A > B) | 95% interval | significant |", "|---|---|---:|---|---|"]
    for p in tables["probability_of_improvement"]:
        lines.append(f"| {p['a']} | {p['b']} | {p['p_a_beats_b']:.2f} | [{p['ci95_low']:.2f}, "
                     f"{p['ci95_high']:.2f}] | {'**yes**' if p['significant'] else 'no'} |")
    sig = [d for d in tables["task_differences"] if d["significant"]]
    lines += ["", "**Per task** — difference of mean scores A - B with Welch's 95% t-interval over seeds; "
              "significant when it excludes 0 (no correction for multiple comparisons).", ""]
    if sig:
        lines += ["| task | A | B | A - B | 95% interval |", "|---|---|---|---:|---|"]
        lines += [f"| {d['task']} | {d['a']} | {d['b']} | {d['mean_a_minus_b']:+.1f} | "
                  f"[{d['ci95_low']:.1f}, {d['ci95_high']:.1f}] |" for d in sig]
    else:
        lines.append("None of the per-task differences is significant.")
    lines += ["", "With few seeds these intervals are wide and the bootstrap ones optimistic; "
              "all numbers are in the CSV files next to this summary.", "", "## Figures", ""]
    lines += [f"![{f}]({f})" for f in figures]
    return "\n".join(lines) + "\n"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _write_csv(path: str, rows: Sequence[Mapping[str, Any]]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as f:
        if rows:
            writer = csv.DictWriter(f, list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(_jsonable(list(rows)))
    os.replace(tmp, path)


def _atomic_text(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)

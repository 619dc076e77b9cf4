"""``launch.py report RUN_DIR... --out DIR``: compare heads across seeds.

Runs are grouped by ``agent.head`` in their ``config.yaml``, variants apart (``analysis.runs.group_label``:
``taskid_mi+onehot``, ``taskid_mi@1/C``, ``shared+popart``); one suite and one task set, else
refused. A ``run_scores.csv`` of an earlier report may stand in for run directories (its final
scores only: no curves, no diagnostics). Writes to ``DIR``:

| file | what |
|---|---|
| ``summary.md`` | the tables below, every head pair with its test, n on every table |
| ``learning_curves.png`` / ``task_curves.png`` | mean capped / per-task score vs frames: seeds, mean, bootstrap band |
| ``aggregates.png`` | mean capped score and IQM per head with their 95% intervals |
| ``diagnostics.png`` | MI head diagnostics (only if runs wrote ``diagnostics.jsonl``) |
| ``run_scores.csv`` | every run x task: final normalised score and return, source (eval / train window), suite, budget |
| ``head_task_scores.csv`` | head x task: mean over runs, 95% bootstrap interval over runs, n, source |
| ``aggregates.csv`` | head: mean capped score and IQM with 95% bootstrap intervals, n |
| ``pairs.csv`` | head pairs: mean capped A - B and P(A > B) with 95% intervals, permutation p, Holm p, verdict |
| ``claims.csv`` | the paper's claims (``CLAIMS``) whose heads were compared: effect, p, Holm p, n, verdict |
| ``probability_of_improvement.csv`` | the P(A > B) columns of ``pairs.csv`` (kept for old readers) |
| ``diagnostics.csv`` | per MI run, last report: mean off-diagonal context cosine (all steps, before / after the first reward), probe accuracy |
| ``report.json`` | all of the above in one object |

Statistics (``analysis.stats``). The unit is the run: every run trains all the tasks, so its K
scores are not independent and intervals come from a **run-level bootstrap** (whole runs
resampled; rliable's stratified form would treat the K scores of a run as K runs). Each pair of
heads is tested with a two-sided **permutation test** of the difference of mean per-run mean capped
scores (exact over all splits when there are <= 200,000, else seeded Monte Carlo) and the p-values of
all pairs are adjusted by **Holm**'s step-down method; a pair is called significant when its
Holm-adjusted p <= 0.05. Intervals are per pair and not adjusted; an interval with low == high is
flagged as degenerate, not shown as certainty.
"""
from __future__ import annotations

import csv
import json
import math
import os
from typing import Any, Mapping, Sequence

import numpy as np

from agent.config import HEADS
from analysis import plots, references, stats
from analysis.runs import ReportError, RunData, load_runs

__all__ = ["ReportError", "write_report", "build_tables"]

ALPHA = 0.05            # family-wise error rate of the Holm-adjusted pair tests
MAX_EXACT = 200_000     # permutation splits enumerated exactly up to this many, else Monte Carlo
DRAWS = 100_000         # Monte Carlo splits beyond MAX_EXACT


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


def per_run_capped(matrix: np.ndarray) -> np.ndarray:
    """``[R]`` each run's mean capped score: the mean over its K tasks of ``min(score, SCORE_CAP)``."""
    return np.minimum(matrix, stats.SCORE_CAP).mean(axis=1)


def _source(runs: Sequence[RunData]) -> str:
    sources = {r.source for r in runs}
    return sources.pop() if len(sources) == 1 else "mixed"


def _mean_column(matrix: np.ndarray) -> float:
    return float(matrix.mean())


def _pair_row(a: str, b: str, x: np.ndarray, y: np.ndarray, *, boot: int, seed: int) -> dict[str, Any]:
    diff = stats.difference_ci(x, y, stats.mean_capped, unit=stats.RUNS, reps=boot, seed=seed)
    poi = stats.probability_of_improvement_ci(x, y, unit=stats.RUNS, reps=boot, seed=seed)
    test = stats.permutation_test(per_run_capped(x), per_run_capped(y), max_exact=MAX_EXACT, draws=DRAWS,
                                  seed=seed)
    return {"a": a, "b": b, "n_a": x.shape[0], "n_b": y.shape[0],
            "mean_capped_a_minus_b": diff.value, "diff_ci95_low": diff.low, "diff_ci95_high": diff.high,
            "diff_degenerate": stats.degenerate(diff),
            "p_a_beats_b": poi.value, "poi_ci95_low": poi.low, "poi_ci95_high": poi.high,
            "poi_degenerate": stats.degenerate(poi),
            "permutation_p": test.p, "permutation_splits": test.splits, "permutation_exact": test.exact}


def _off_diagonal(matrix: Any) -> float | None:
    """Mean off-diagonal entry of a K x K similarity matrix (nulls skipped); None if none."""
    if matrix is None:
        return None
    m = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=np.float64)
    if m.shape[0] < 2:
        return None
    values = m[~np.eye(m.shape[0], dtype=bool)]
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else None


def diagnostic_rows(groups: Mapping[str, Sequence[RunData]]) -> list[dict[str, Any]]:
    """Per MI run: its last diagnostics report's mean off-diagonal context cosines (all steps, and
    before / after an episode's first reward where logged) and the probe accuracy (None: not logged)."""
    rows = []
    for head, runs in groups.items():
        for r in runs:
            if not r.diagnostics:
                continue
            last = r.diagnostics[-1]
            rows.append({"head": head, "seed": r.seed, "frames": last.get("frames"),
                         "cosine_all_steps": _off_diagonal(last.get("context_similarity")),
                         "cosine_before_reward": _off_diagonal(last.get("context_similarity_before_reward")),
                         "cosine_after_reward": _off_diagonal(last.get("context_similarity_after_reward")),
                         "probe_accuracy": last.get("probe_accuracy")})
    return rows


def build_tables(runs: Sequence[RunData], *, boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Every number of the report, as lists of rows (the CSVs) in one dict."""
    tasks = list(runs[0].tasks)
    groups = group_by_head(runs)
    run_rows = [{"head": r.head, "seed": r.seed, "run": r.path, "task": t, "score": r.scores[t],
                 "return": r.returns[t], "source": r.source, "frames": r.frames, "suite": r.suite,
                 "budget": r.total_frames}
                for r in runs for t in tasks]
    head_task, aggregates, matrices, per_run = [], [], {}, []
    for head, group in groups.items():
        m = score_matrix(group, tasks)
        matrices[head] = m
        if m.shape[0] == 0:
            continue
        for k, task in enumerate(tasks):
            iv = stats.run_bootstrap(m[:, k:k + 1], _mean_column, reps=boot, seed=seed)
            returns = [r.returns[task] for r in group if math.isfinite(r.returns[task])]
            head_task.append({"head": head, "task": task, "n": m.shape[0], "mean": iv.value, "ci95_low": iv.low,
                              "ci95_high": iv.high, "degenerate": stats.degenerate(iv),
                              "mean_return": float(np.mean(returns)) if returns else None,
                              "source": _source(group)})
        capped = stats.run_bootstrap(m, stats.mean_capped, reps=boot, seed=seed)
        iqm = stats.run_bootstrap(m, stats.iqm, reps=boot, seed=seed)
        aggregates.append({"head": head, "n": m.shape[0], "mean_capped": capped.value,
                           "mean_capped_low": capped.low, "mean_capped_high": capped.high,
                           "mean_capped_degenerate": stats.degenerate(capped),
                           "iqm": iqm.value, "iqm_low": iqm.low, "iqm_high": iqm.high,
                           "iqm_degenerate": stats.degenerate(iqm),
                           "mean_frames": float(np.mean([r.frames for r in group])), "source": _source(group)})
        complete = [r for r in group if all(math.isfinite(r.scores[t]) for t in tasks)]
        per_run += [{"head": head, "seed": r.seed, "mean_capped": float(v)}
                    for r, v in zip(complete, per_run_capped(m))]
    heads = [h for h in groups if matrices[h].shape[0] > 0]
    pairs = [_pair_row(a, b, matrices[a], matrices[b], boot=boot, seed=seed)
             for i, a in enumerate(heads) for b in heads[i + 1:]]
    for row, adjusted in zip(pairs, stats.holm([p["permutation_p"] for p in pairs])):
        row["holm_p"] = adjusted
        row["significant"] = adjusted <= ALPHA
        row["verdict"] = verdict(row)
    poi = [{"a": p["a"], "b": p["b"], "n_a": p["n_a"], "n_b": p["n_b"], "p_a_beats_b": p["p_a_beats_b"],
            "ci95_low": p["poi_ci95_low"], "ci95_high": p["poi_ci95_high"], "degenerate": p["poi_degenerate"],
            "significant": p["significant"]} for p in pairs]
    budgets = sorted({r.total_frames for r in runs if r.total_frames})
    windows = sorted({r.window for r in runs if r.window})
    return {"suite": runs[0].suite, "tasks": tasks, "boot": boot, "seed": seed,
            "bootstrap": stats.UNIT_NAMES[stats.RUNS], "test": test_description(), "alpha": ALPHA,
            "budgets": budgets, "score_windows": windows,
            "references": references.reference_lines(runs[0].suite, tasks),
            "run_scores": run_rows, "run_mean_capped": per_run, "head_task_scores": head_task,
            "aggregates": aggregates, "pairs": pairs, "claims": paper_claims(pairs),
            "probability_of_improvement": poi,
            "diagnostics": diagnostic_rows(groups)}


def test_description() -> str:
    return ("two-sided permutation test of the difference of mean per-run mean capped scores "
            f"(exact over all C(n_a + n_b, n_a) splits when <= {MAX_EXACT:,}, else {DRAWS:,} seeded Monte Carlo "
            "splits + the observed one), Holm's step-down correction over all pairs")


def verdict(pair: Mapping[str, Any]) -> str:
    if not pair["significant"]:
        return "no significant difference"
    better, worse = (pair["a"], pair["b"]) if pair["mean_capped_a_minus_b"] > 0 else (pair["b"], pair["a"])
    return f"{better} > {worse}"


# The paper's RL claims (Jayakumar et al., ICLR 2020; issue 15): (label, A, B, what the claim says of A - B).
# "above": A significantly above B supports it. "not below": A at or above B; a difference test can
# contradict it (B significantly above A) or support it (A significantly above) but not show equivalence.
CLAIMS = (
    ("(a) multihead > shared", "multihead", "shared", "above"),
    ("(b) taskid_mi >= multihead", "taskid_mi", "multihead", "not below"),
    ("(c1) learnt_mi close to or above taskid_mi", "learnt_mi", "taskid_mi", "not below"),
    ("(c2) learnt_mi > shared", "learnt_mi", "shared", "above"),
)


def paper_claims(pairs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per claim of ``CLAIMS`` whose two heads were both compared: the pair's effect (mean capped
    A - B with its interval), permutation and Holm p, n, and a verdict from the Holm-adjusted test only:
    ``supported`` (A significantly above B), ``contradicted`` (B significantly above A) or, without a
    significant difference, ``not shown`` for an "above" claim and ``not contradicted`` for a
    "not below" one (no significant gap at this n; it does not show that the two are equal)."""
    rows = []
    by_pair = {(p["a"], p["b"]): p for p in pairs}
    for label, a, b, kind in CLAIMS:
        pair, sign = by_pair.get((a, b)), 1.0
        if pair is None:
            pair, sign = by_pair.get((b, a)), -1.0
        if pair is None:
            continue
        diff = sign * pair["mean_capped_a_minus_b"]
        low, high = sorted((sign * pair["diff_ci95_low"], sign * pair["diff_ci95_high"]))
        if pair["significant"]:
            outcome = "supported" if diff > 0 else "contradicted"
        else:
            outcome = "not shown" if kind == "above" else "not contradicted"
        rows.append({"claim": label, "a": a, "b": b, "kind": kind,
                     "n_a": pair["n_a"] if sign > 0 else pair["n_b"], "n_b": pair["n_b"] if sign > 0 else pair["n_a"],
                     "mean_capped_a_minus_b": diff, "diff_ci95_low": low, "diff_ci95_high": high,
                     "permutation_p": pair["permutation_p"], "holm_p": pair["holm_p"], "verdict": outcome})
    return rows


def _budget_text(tables: Mapping[str, Any], runs: Sequence[RunData]) -> str:
    """``run.total_frames`` of the runs ("400,000"), or the frames they reached when not recorded."""
    if tables["budgets"]:
        return " / ".join(f"{b:,}" for b in tables["budgets"])
    return f"not recorded, runs at {' / '.join(f'{f:,}' for f in sorted({r.frames for r in runs}))}"


def write_report(paths: Sequence[str], out: str, *, boot: int = 2000, seed: int = 0) -> str:
    """Writes the report of the runs in ``paths`` (run directories, or run_scores.csv files) to ``out``;
    returns the path of summary.md."""
    if boot < 100:
        raise ReportError(f"--boot {boot} is too few bootstrap resamples for a 95% interval; use >= 100")
    runs = load_runs(list(paths))
    tables = build_tables(runs, boot=boot, seed=seed)
    os.makedirs(out, exist_ok=True)
    groups = group_by_head(runs)
    tasks = tables["tasks"]
    style = plots.Curves(window=tables["score_windows"][0] if len(tables["score_windows"]) == 1 else None,
                         budget=_budget_text(tables, runs), references=tables["references"],
                         reps=min(boot, 1000), seed=seed)
    figures = []
    if plots.learning_curves(os.path.join(out, "learning_curves.png"), groups,
                             f"{tables['suite']}: {', '.join(tasks)}", style):
        figures.append("learning_curves.png")
    if plots.task_curves(os.path.join(out, "task_curves.png"), groups, tasks, style,
                         references.task_reference_lines(tables["suite"], tasks)):
        figures.append("task_curves.png")
    if tables["aggregates"]:
        plots.aggregate_intervals(os.path.join(out, "aggregates.png"), tables["aggregates"],
                                  f"{tables['bootstrap']}, {boot} resamples; budget {style.budget} env frames per run")
        figures.append("aggregates.png")
    if plots.diagnostics(os.path.join(out, "diagnostics.png"), groups, tasks, style):
        figures.append("diagnostics.png")
    for name in ("run_scores", "head_task_scores", "aggregates", "pairs", "probability_of_improvement"):
        _write_csv(os.path.join(out, f"{name}.csv"), tables[name])
    if tables["diagnostics"]:
        _write_csv(os.path.join(out, "diagnostics.csv"), tables["diagnostics"])
    if tables["claims"]:
        _write_csv(os.path.join(out, "claims.csv"), tables["claims"])
    _atomic_text(os.path.join(out, "report.json"), json.dumps(_jsonable(tables), indent=1))
    summary = os.path.join(out, "summary.md")
    _atomic_text(summary, markdown(tables, groups, figures))
    return summary


def _interval(value: float, low: float, high: float, digits: int = 1) -> str:
    text = f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
    return text + " (degenerate)" if low == high else text


def _p(value: float) -> str:
    return f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"


def markdown(tables: Mapping[str, Any], groups: Mapping[str, Sequence[RunData]], figures: Sequence[str]) -> str:
    tasks, boot = tables["tasks"], tables["boot"]
    runs = [r for group in groups.values() for r in group]
    lines = [f"# Head comparison: {tables['suite']} suite ({', '.join(tasks)})", ""]
    lines.append("| head | seeds | n (runs) | frames (mean) | scores from |")
    lines.append("|---|---|---:|---:|---|")
    for head, group in groups.items():
        sources = sorted({r.source for r in group})
        lines.append(f"| {head} | {', '.join(str(r.seed) for r in group)} | {len(group)} | "
                     f"{np.mean([r.frames for r in group]):,.0f} | {', '.join(sources)} |")
    lines += ["", f"Budget (env frames per run): {_budget_text(tables, runs)}. Scores are normalised "
              "(`100 (return - random) / (solved - random)`: 0 = random, 100 = solved). "
              "`eval` = evaluation on held-out levels (`launch.py evaluate`); `train window` = the mean of the "
              "last training episodes per task (sampled actions, training levels), not comparable with "
              "evaluation numbers."]
    for label, value in tables["references"].items():
        lines.append(f"Reference: {label} = {value:.1f} (`analysis/references.py`).")
    lines += ["", "**Statistics.** The unit is the run: each run trained every task, so a run's task scores are "
              f"not independent. Intervals: {tables['bootstrap']}, {boot} resamples, 95% percentile, per "
              f"head or per pair (not adjusted for multiplicity). Test of each pair: {tables['test']}; "
              f"significant = Holm-adjusted p <= {tables['alpha']}. An interval marked *degenerate* has no "
              "width because every resample gave the same value (e.g. no run of one head beats any run of "
              "the other); with few runs that is not certainty, and the permutation p says how strong "
              "the evidence is. Percentile bootstrap intervals are too narrow with few runs (under ~10 they "
              "cover less than their nominal 95%), so an interval that excludes 0 is not a verdict: the "
              "verdict column is.", ""]
    lines += ["## Final score per head and task", "",
              "Mean over runs [95% run-level bootstrap interval].", ""]
    lines.append("| head | n | " + " | ".join(tasks) + " |")
    lines.append("|---|---:|" + "---:|" * len(tasks))
    cells = {(r["head"], r["task"]): r for r in tables["head_task_scores"]}
    for head in groups:
        n = next((cells[head, t]["n"] for t in tasks if (head, t) in cells), 0)
        row = [_interval(cells[head, t]["mean"], cells[head, t]["ci95_low"], cells[head, t]["ci95_high"])
               if (head, t) in cells else "n/a" for t in tasks]
        lines.append(f"| {head} | {n} | " + " | ".join(row) + " |")
    lines += ["", "## Per-run mean capped score", "", "The values the pair tests compare (one per run).", "",
              "| head | n | per run (seed: score) |", "|---|---:|---|"]
    for head in groups:
        values = [r for r in tables["run_mean_capped"] if r["head"] == head]
        lines.append(f"| {head} | {len(values)} | " + ", ".join(f"{v['seed']}: {v['mean_capped']:.1f}" for v in values)
                     + " |")
    lines += ["", "## Aggregates", "", f"95% intervals: {tables['bootstrap']}.", "",
              "| head | n | mean capped score | IQM |", "|---|---:|---:|---:|"]
    for a in tables["aggregates"]:
        capped = _interval(a["mean_capped"], a["mean_capped_low"], a["mean_capped_high"])
        lines.append(f"| {a['head']} | {a['n']} | {capped}"
                     f" | {_interval(a['iqm'], a['iqm_low'], a['iqm_high'])} |")
    lines += ["", "## Every pair of heads", "",
              "Effect sizes: difference of mean capped scores A - B and the probability of improvement "
              "P(A > B) (Mann-Whitney statistic per task, averaged over tasks; Agarwal et al., NeurIPS 2021), "
              f"each with its 95% run-level bootstrap interval. p: {tables['test']}.", "",
              "| A | B | n_A | n_B | mean capped A - B | P(A > B) | permutation p | Holm p | verdict (Holm, "
              f"alpha {tables['alpha']}) |", "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for p in tables["pairs"]:
        kind = "exact" if p["permutation_exact"] else "Monte Carlo"
        verdict_text = f"**{p['verdict']}**" if p["significant"] else p["verdict"]
        lines.append(f"| {p['a']} | {p['b']} | {p['n_a']} | {p['n_b']} | "
                     f"{_interval(p['mean_capped_a_minus_b'], p['diff_ci95_low'], p['diff_ci95_high'])} | "
                     f"{_interval(p['p_a_beats_b'], p['poi_ci95_low'], p['poi_ci95_high'], 2)} | "
                     f"{_p(p['permutation_p'])} ({kind}, {p['permutation_splits']:,} splits) | {_p(p['holm_p'])} | "
                     f"{verdict_text} |")
    if tables["pairs"]:
        smallest = min((2 if p["n_a"] == p["n_b"] else 1) / math.comb(p["n_a"] + p["n_b"], p["n_a"])
                       for p in tables["pairs"])
        lines += ["", f"With these n the smallest possible exact two-sided p is {_p(smallest)} "
                  "(no split but the observed one, and its mirror when n_A = n_B, as extreme)."]
    if tables["claims"]:
        lines += ["", "## The paper's claims", "",
                  "Each claim is read from its pair's row above (same test, same Holm correction over all "
                  "pairs). supported / contradicted: the Holm-adjusted difference is significant in the "
                  "claim's / the opposite direction; not shown: an \"above\" claim without a significant "
                  "difference; not contradicted: an \"at or above\" claim without a significant difference "
                  "(at this n the test found no gap, which does not show that the two are equal).", "",
                  "| claim | n_A | n_B | mean capped A - B | permutation p | Holm p | verdict |",
                  "|---|---:|---:|---:|---:|---:|---|"]
        for c in tables["claims"]:
            lines.append(f"| {c['claim']} | {c['n_a']} | {c['n_b']} | "
                         f"{_interval(c['mean_capped_a_minus_b'], c['diff_ci95_low'], c['diff_ci95_high'])} | "
                         f"{_p(c['permutation_p'])} | {_p(c['holm_p'])} | **{c['verdict']}** |")
    if tables["diagnostics"]:
        lines += ["", "## MI head diagnostics per run (last report)", "",
                  "Mean off-diagonal cosine similarity of the tasks' mean contexts over all steps of the "
                  "learner's batch, over the steps before and after an episode's first reward, and the "
                  "held-out accuracy of a linear probe of the task from the context "
                  f"(chance {1 / len(tasks):.2f}); blank: not logged by this run.", "",
                  "| head | seed | frames | cosine (all steps) | cosine (before reward) | cosine (after reward) | "
                  "probe accuracy |", "|---|---:|---:|---:|---:|---:|---:|"]
        fmt = lambda v: "" if v is None else f"{v:.2f}"   # noqa: E731
        for d in tables["diagnostics"]:
            lines.append(f"| {d['head']} | {d['seed']} | {d['frames'] or 0:,} | {fmt(d['cosine_all_steps'])} | "
                         f"{fmt(d['cosine_before_reward'])} | {fmt(d['cosine_after_reward'])} | "
                         f"{fmt(d['probe_accuracy'])} |")
    lines += ["", "All numbers are in the CSV files next to this summary.", "", "## Figures", ""]
    if "learning_curves.png" not in figures:
        lines += ["No learning curves: the runs have no training reports here (e.g. scores read from a "
                  "run_scores.csv).", ""]
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

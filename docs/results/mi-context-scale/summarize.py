"""Per-run scores, cell means and exact permutation tests (Holm-corrected) of the context-scale grid.

Usage: python docs/results/mi-context-scale/summarize.py [OUT (default runs/mi-context-scale)]
Prints a markdown table and writes OUT/run_scores.csv. The unit is the run (one run trains both
tasks): a run's score is its mean capped score over the two tasks, from its evaluation
(LOGDIR/eval/*/results.json) or, where there is none yet, its last training window (said per run); unfinished runs are listed and not counted.
Tests: per optimizer, each taskid_mi scale against multihead and the three scales pairwise, an exact
two-sided permutation test of the difference in mean run scores (every relabelling enumerated),
Holm's correction over all tests of that optimizer. Written here because analysis/stats.py had no
permutation test yet (another engineer adds one).
"""
from __future__ import annotations

import csv
import glob
import itertools
import os
import sys

import numpy as np
import yaml

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))
from analysis.runs import load_run  # noqa: E402

CELLS = [("multihead", "scale_1_C", "multihead"), ("taskid_mi 1/C", "scale_1_C", "taskid_mi"),
         ("taskid_mi 1/sqrt(C)", "scale_1_sqrtC", "taskid_mi"), ("taskid_mi 1", "scale_1", "taskid_mi")]


def permutation_p(a: list[float], b: list[float]) -> float:
    """Exact two-sided p of |mean(a) - mean(b)| over all ways to split the pooled runs."""
    pooled, n = np.array(a + b), len(a)
    observed = abs(np.mean(a) - np.mean(b))
    diffs = [abs(pooled[list(idx)].mean() - np.delete(pooled, list(idx)).mean())
             for idx in itertools.combinations(range(len(pooled)), n)]
    return float(np.mean(np.array(diffs) >= observed - 1e-12))


def holm(pvalues: list[float]) -> list[float]:
    order = np.argsort(pvalues)
    adjusted, running = [0.0] * len(pvalues), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def main(out: str) -> None:
    rows = []
    for optimizer in ("adam", "rmsprop"):
        for label, folder, head in CELLS:
            for path in sorted(glob.glob(os.path.join(out, optimizer, folder, head, "seed*"))):
                if not os.path.exists(os.path.join(path, "metrics.jsonl")):
                    continue
                run = load_run(path)
                with open(os.path.join(path, "config.yaml")) as f:
                    total = int(yaml.safe_load(f)["run"]["total_frames"])
                if run.frames < total:          # still training (or stopped): not counted
                    print(f"not counted (unfinished, {run.frames:,} of {total:,} frames): {path}")
                    continue
                score = float(np.mean([min(s, 100.0) for s in run.scores.values()]))
                rows.append(dict(optimizer=optimizer, cell=label, seed=run.seed, frames=run.frames,
                                 score=score, source=run.source, **{f"score_{t}": v for t, v in run.scores.items()}))
    with open(os.path.join(out, "run_scores.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=sorted({k for r in rows for k in r}, key=lambda k: list(rows[0]).index(k)
                                                     if k in rows[0] else 99))
        writer.writeheader()
        writer.writerows(rows)
    print("| optimizer | cell | n | per-run mean capped scores (seed: score, source) | mean |")
    print("|---|---|---:|---|---:|")
    for optimizer in ("adam", "rmsprop"):
        for label, _, _ in CELLS:
            mine = [r for r in rows if r["optimizer"] == optimizer and r["cell"] == label]
            runs = ", ".join(f"{r['seed']}: {r['score']:.1f} ({r['source']}, {r['frames']:,} frames)" for r in mine)
            mean = f"{np.mean([r['score'] for r in mine]):.1f}" if mine else "-"
            print(f"| {optimizer} | {label} | {len(mine)} | {runs or 'not run'} | {mean} |")
    print()
    print("| optimizer | A | B | n A, n B | mean A - mean B | exact permutation p | Holm-adjusted p |")
    print("|---|---|---|---|---:|---:|---:|")
    for optimizer in ("adam", "rmsprop"):
        scores = {label: [r["score"] for r in rows if r["optimizer"] == optimizer and r["cell"] == label]
                  for label, _, _ in CELLS}
        pairs = [(a, b) for a, b in itertools.combinations([c[0] for c in CELLS], 2) if scores[a] and scores[b]]
        ps = [permutation_p(scores[a], scores[b]) for a, b in pairs]
        for (a, b), p, adjusted in zip(pairs, ps, holm(ps) if ps else []):
            print(f"| {optimizer} | {a} | {b} | {len(scores[a])}, {len(scores[b])} | "
                  f"{np.mean(scores[a]) - np.mean(scores[b]):+.1f} | {p:.3f} | {adjusted:.3f} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/mi-context-scale")

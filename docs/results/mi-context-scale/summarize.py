"""Per-run scores, cell means and exact permutation tests (Holm-corrected) of the context-scale grid.

Usage: python docs/results/mi-context-scale/summarize.py [OUT (default runs/mi-context-scale)] [--adam-1c DIR]
Prints a markdown table and writes OUT/run_scores.csv. The unit is the run (one run trains both
tasks): a run's score is its mean capped score over the two tasks, from its evaluation
(LOGDIR/eval/*/results.json) or, where there is none yet, its last training window (said per run);
unfinished runs are listed and not counted. ``--adam-1c DIR``: the Adam 1/C cell (multihead and
taskid_mi at Adam's ``auto`` scale) is read from DIR/{multihead,taskid_mi}/seed*, the cued-pair heads
grid (run.sh's SKIP_ADAM_1C=1 leaves it out of OUT), instead of OUT/adam/scale_1_C.
Tests: per optimizer, each taskid_mi scale against multihead and the three scales pairwise, a
two-sided permutation test of the difference in mean run scores (``analysis.stats.permutation_test``:
exact, every relabelling enumerated), Holm's correction over all tests of that optimizer
(``analysis.stats.holm``), and a run-level bootstrap interval of the difference.
"""
from __future__ import annotations

import argparse
import csv
import glob
import itertools
import os
import sys

import numpy as np
import yaml

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))
from analysis.runs import load_run  # noqa: E402
from analysis.stats import difference_ci, holm, permutation_test  # noqa: E402

CELLS = [("multihead", "scale_1_C", "multihead"), ("taskid_mi 1/C", "scale_1_C", "taskid_mi"),
         ("taskid_mi 1/sqrt(C)", "scale_1_sqrtC", "taskid_mi"), ("taskid_mi 1", "scale_1", "taskid_mi")]


def cell_dirs(out: str, optimizer: str, folder: str, head: str, adam_1c: str | None) -> list[str]:
    if adam_1c and optimizer == "adam" and folder == "scale_1_C":
        return sorted(glob.glob(os.path.join(adam_1c, head, "seed*")))
    return sorted(glob.glob(os.path.join(out, optimizer, folder, head, "seed*")))


def main(out: str, adam_1c: str | None = None) -> None:
    rows = []
    for optimizer in ("adam", "rmsprop"):
        for label, folder, head in CELLS:
            for path in cell_dirs(out, optimizer, folder, head, adam_1c):
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
    print("| optimizer | A | B | n A, n B | mean A - mean B [95% run bootstrap] | exact permutation p | Holm-adjusted p |")
    print("|---|---|---|---|---:|---:|---:|")
    for optimizer in ("adam", "rmsprop"):
        scores = {label: [r["score"] for r in rows if r["optimizer"] == optimizer and r["cell"] == label]
                  for label, _, _ in CELLS}
        pairs = [(a, b) for a, b in itertools.combinations([c[0] for c in CELLS], 2) if scores[a] and scores[b]]
        tests = [permutation_test(scores[a], scores[b]) for a, b in pairs]
        assert all(t.exact for t in tests)
        for (a, b), test, adjusted in zip(pairs, tests, holm([t.p for t in tests]) if tests else []):
            ci = difference_ci(np.array(scores[a])[:, None], np.array(scores[b])[:, None], np.mean)
            print(f"| {optimizer} | {a} | {b} | {len(scores[a])}, {len(scores[b])} | "
                  f"{test.difference:+.1f} [{ci.low:+.1f}, {ci.high:+.1f}] | {test.p:.4f} | {adjusted:.4f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", nargs="?", default="runs/mi-context-scale")
    parser.add_argument("--adam-1c", default=None, help="the cued-pair heads grid holding the Adam 1/C cell")
    args = parser.parse_args()
    main(args.out, args.adam_1c)

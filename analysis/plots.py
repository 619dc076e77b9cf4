"""PNG figures of a report (matplotlib, Agg backend: no display needed).

Curves: every seed as a thin line, their mean as a thick one, and a band = the run-level
bootstrap 95% interval of the mean (whole seed curves resampled, ``bootstrap_band``), clipped to
the score's feasible range (``Curves.feasible``). A percentile bootstrap of a mean stays inside
the seeds' range, so the band never claims a score no seed reached (a Student-t band on a
bimodal head does). Each figure states in its caption the trailing episode window of a point,
the band and the frame budget; reference lines mark 0 (random), 100 (solved) and any extra
lines the caller passes (``analysis.references``).
"""
from __future__ import annotations

import math
import textwrap
import warnings
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

COLORS = {"shared": "tab:gray", "multihead": "tab:blue", "taskid_mi": "tab:red", "learnt_mi": "tab:green"}
EXTRA_COLORS = ("tab:orange", "tab:brown", "tab:pink", "tab:olive", "tab:cyan", "black")   # purple: reference lines


def palette(labels) -> dict[str, str]:
    """A distinct colour per label: the four heads keep theirs, every other label (``shared+popart``,
    an ablation) takes the next unused colour in sorted order, so all figures of a report agree."""
    others = sorted(set(labels) - set(COLORS))
    return {**COLORS, **{label: EXTRA_COLORS[i % len(EXTRA_COLORS)] for i, label in enumerate(others)}}
FONT = 10          # every legend, tick and caption: >= 9 pt
SIMILARITY_KEYS = {"context_similarity": "all steps",
                   "context_similarity_before_reward": "before the first reward",
                   "context_similarity_after_reward": "after the first reward"}


@dataclass(frozen=True)
class Curves:
    """How the report's curves are drawn and captioned.

    window: trailing training episodes per point (``run.score_window_episodes``; None: unknown);
    budget: frame budget per run (``run.total_frames``; None: unknown); feasible: (low, high)
    clip of the bands (None: unbounded); references: extra lines {label: score}; reps, seed: the
    bootstrap's resamples and seed.
    """
    window: int | None = None
    budget: str = "unknown"
    feasible: tuple[float | None, float | None] = (None, 100.0)
    references: Mapping[str, float] = field(default_factory=dict)
    reps: int = 1000
    seed: int = 0


def bootstrap_band(curves: np.ndarray, *, reps: int = 1000, seed: int = 0,
                   confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean ``[N]`` of ``curves [S, N]`` (nan-free) and its run-level bootstrap percentile interval
    ``low, high [N]``: each resample draws S whole seed curves with replacement. S = 1: no band
    (low = high = the curve)."""
    mean = curves.mean(axis=0)
    if curves.shape[0] < 2:
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, curves.shape[0], size=(reps, curves.shape[0]))
    means = curves[rows].mean(axis=1)                                  # [reps, N]
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha], axis=0)
    return mean, low, high


def on_grid(frames: Sequence[np.ndarray], values: Sequence[np.ndarray], points: int = 100):
    """Runs' curves interpolated on a common grid from the first frame where every run has a value to
    the last frame every run has reached: ``(grid [N], curves [S, N])``, or None if they do not overlap."""
    kept = [(f[np.isfinite(v)], v[np.isfinite(v)]) for f, v in zip(frames, values)]
    if not kept or any(f.size == 0 for f, _ in kept):
        return None
    lo, hi = max(f[0] for f, _ in kept), min(f[-1] for f, _ in kept)
    if hi < lo:
        return None
    grid = np.linspace(lo, hi, points) if hi > lo else np.array([lo])
    return grid, np.stack([np.interp(grid, f, v) for f, v in kept])


def frames_axis(ax) -> None:
    """x label "env frames" with ticks as 50K / 1.5M (full numbers overlap)."""
    ax.xaxis.set_major_formatter(FuncFormatter(
        lambda x, _: "0" if x == 0 else f"{x / 1e6:g}M" if abs(x) >= 1e6 else f"{x / 1e3:g}K"))
    ax.set_xlabel("env frames", fontsize=FONT)


def _clip(values: np.ndarray, feasible: tuple[float | None, float | None]) -> np.ndarray:
    low, high = feasible
    return np.clip(values, -np.inf if low is None else low, np.inf if high is None else high)


def _draw(ax, label: str, color: str, frames, values, style: Curves) -> bool:
    got = on_grid(frames, values)
    if got is None:
        return False
    grid, curves = got
    mean, low, high = bootstrap_band(curves, reps=style.reps, seed=style.seed)
    for seed_curve in curves:
        ax.plot(grid, seed_curve, color=color, lw=0.8, alpha=0.5)
    ax.plot(grid, mean, label=f"{label} (n={curves.shape[0]})", color=color, lw=2.0)
    ax.fill_between(grid, _clip(low, style.feasible), _clip(high, style.feasible), alpha=0.2, color=color, lw=0)
    return True


def reference_lines(ax, extra: Mapping[str, float]) -> None:
    """Horizontal lines at 0 (random), 100 (solved) and each ``{label: score}`` of ``extra``."""
    ax.axhline(0.0, color="black", lw=0.8, ls=":")
    ax.axhline(100.0, color="black", lw=0.8, ls="--")
    box = {"facecolor": "white", "alpha": 0.7, "lw": 0, "pad": 0.5}
    ax.annotate("random", (0.005, 0.0), xycoords=("axes fraction", "data"), va="bottom", fontsize=FONT - 1, bbox=box)
    ax.annotate("solved", (0.005, 100.0), xycoords=("axes fraction", "data"), va="bottom", fontsize=FONT - 1, bbox=box)
    for label, value in extra.items():
        ax.axhline(value, color="tab:purple", lw=1.0, ls="-.")
        ax.annotate(f"{label} ({value:.0f})", (0.005, value), xycoords=("axes fraction", "data"), va="bottom",
                    fontsize=FONT - 1, color="tab:purple", bbox=box)


def caption(style: Curves, what: str) -> str:
    window = f"the last {style.window} training episodes" if style.window else "a trailing window of training episodes"
    clip = ", clipped to <= 100" if style.feasible[1] == 100.0 else ""
    return (f"{what}: each point is the mean of {window} per task (sampled actions). Thick: mean over seeds; "
            f"thin: each seed; band: run-level bootstrap 95% interval of the mean (whole seeds resampled, "
            f"{style.reps} resamples){clip}. Budget: {style.budget} env frames per run.")


def _finish(fig, text: str, path: str, dpi: int = 110) -> None:
    fig.text(0.01, 0.005, text, fontsize=FONT - 1, wrap=True, va="bottom", ha="left")
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


def learning_curves(path: str, groups: Mapping[str, Sequence], title: str, style: Curves) -> bool:
    """Mean capped score vs env frames, one colour per head. False (nothing written) without curves."""
    fig, ax = plt.subplots(figsize=(8, 5.6))
    colors = palette(groups)
    drawn = [_draw(ax, head, colors[head], [r.curve.frames for r in runs], [r.curve.capped for r in runs], style)
             for head, runs in groups.items()]
    if not any(drawn):
        plt.close(fig)
        return False
    reference_lines(ax, style.references)
    frames_axis(ax)
    ax.set_ylabel("mean capped score (training episodes)", fontsize=FONT)
    ax.set_title("\n".join(textwrap.wrap(title, 80)), fontsize=FONT + 1)   # 8 task names do not fit one line
    ax.tick_params(labelsize=FONT)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=FONT, loc="center right")
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    _finish(fig, caption(style, "Mean capped score"), path)
    return True


def task_curves(path: str, groups: Mapping[str, Sequence], tasks: Sequence[str], style: Curves,
                task_references: Mapping[str, Mapping[str, float]] | None = None) -> bool:
    """One panel per task, one y-range for all: normalised score vs env frames, one colour per head."""
    cols = min(3, len(tasks))
    rows = math.ceil(len(tasks) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.6 * rows + 1.2), squeeze=False, sharey=True)
    drawn = False
    colors = palette(groups)
    panel = Curves(style.window, style.budget, (style.feasible[0], None), {}, style.reps, style.seed)
    for ax, task in zip(axes.ravel(), tasks):
        for head, runs in groups.items():
            drawn |= _draw(ax, head, colors[head], [r.curve.frames for r in runs], [r.curve.tasks[task] for r in runs], panel)
        reference_lines(ax, (task_references or {}).get(task, {}))
        ax.set_title(task, fontsize=FONT + 1)
        frames_axis(ax)
        ax.tick_params(labelsize=FONT)
        ax.grid(alpha=0.3)
    if not drawn:
        plt.close(fig)
        return False
    for ax in axes[:, 0]:
        ax.set_ylabel("normalised score", fontsize=FONT)
    for ax in axes.ravel()[len(tasks):]:
        ax.axis("off")
    handles, labels = axes.ravel()[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=FONT, loc="upper center", ncol=len(labels), frameon=False)
    fig.tight_layout(rect=(0, 0.14 if rows == 1 else 0.07, 1, 0.93))
    _finish(fig, caption(panel, "Per-task normalised score (uncapped, one y-range for every panel)"), path)
    return True


def aggregate_intervals(path: str, rows: Sequence[Mapping], method: str) -> None:
    """Mean capped score and IQM per head: a bar for the 95% interval (clipped to the feasible range:
    <= 100 for the capped mean), the point estimate, and the numbers. A degenerate interval
    (low == high) is labelled as such."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 0.7 * len(rows) + 2.4), squeeze=False)
    colors = palette(r["head"] for r in rows)
    for ax, (key, label, high_cap) in zip(axes[0], (("mean_capped", "mean capped score", 100.0),
                                                    ("iqm", "IQM of normalised scores", None))):
        texts, ends = [], [0.0, 100.0]
        for i, r in enumerate(rows):
            low, high = _clip(np.array([r[f"{key}_low"], r[f"{key}_high"]]), (None, high_cap))
            ax.barh(i, max(high - low, 0.0), left=low, height=0.5, color=colors[r["head"]], alpha=0.45)
            ax.plot([r[key]], [i], "o", color="black", ms=5)
            note = " (degenerate)" if r[f"{key}_low"] == r[f"{key}_high"] else ""
            texts.append(f"{r[key]:.1f} [{low:.1f}, {high:.1f}]{note}")
            ends += [low, high, r[key]]
        ax.set_xlim(min(ends) - 5.0, max(ends) + 5.0)
        ax.axvline(0.0, color="black", lw=0.8, ls=":")
        ax.axvline(100.0, color="black", lw=0.8, ls="--")
        ax.set_yticks(range(len(rows)), [f"{r['head']} (n={r['n']})" for r in rows], fontsize=FONT)
        ax.set_ylim(-0.6, len(rows) - 0.4)
        right = ax.twinx()
        right.set_ylim(ax.get_ylim())
        right.set_yticks(range(len(rows)), texts, fontsize=FONT)
        ax.set_xlabel(label, fontsize=FONT)
        ax.tick_params(labelsize=FONT)
        ax.grid(alpha=0.3, axis="x")
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    _finish(fig, f"Point: the statistic over all runs and tasks (numbers on the right); bar: its 95% interval, "
                 f"{method}; dotted 0 = random, dashed 100 = solved.", path)


def _matrix(record: Mapping, key: str) -> np.ndarray | None:
    value = record.get(key)
    if value is None:
        return None
    return np.array([[np.nan if v is None else v for v in row] for row in value], dtype=np.float64)


def _heatmap(ax, matrix: np.ndarray, names: Sequence[str], title: str, low: float) -> None:
    image = ax.imshow(matrix, vmin=low, vmax=1.0, cmap="viridis")
    for (i, j), v in np.ndenumerate(matrix):
        if np.isfinite(v):
            shade = (v - low) / max(1.0 - low, 1e-9)
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=FONT - 1,
                    color="black" if shade > 0.6 else "white")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=FONT)
    ax.set_yticks(range(len(names)), names, fontsize=FONT)
    ax.set_title(title, fontsize=FONT)
    plt.colorbar(image, ax=ax, fraction=0.046)


def diagnostics(path: str, groups: Mapping[str, Sequence], tasks: Sequence[str], style: Curves) -> bool:
    """MI head diagnostics: per-task context norm and generated-weight norm vs frames (mean over
    seeds); per head, the cosine-similarity matrices of the tasks' mean contexts at the last report
    (mean over seeds; all steps and, where the runs logged them, before / after an episode's first
    reward), numbers in the cells, one colour scale [min(data), 1] for all; and the linear probe's
    held-out accuracy per seed where logged. False if no run has diagnostics."""
    heads = {h: [r for r in runs if r.diagnostics] for h, runs in groups.items()}
    heads = {h: runs for h, runs in heads.items() if runs}
    if not heads:
        return False
    colors = palette(groups)
    keys = [k for k in SIMILARITY_KEYS if any(_matrix(r.diagnostics[-1], k) is not None
                                              for runs in heads.values() for r in runs)]
    logged = {(h, k): [m for r in runs if (m := _matrix(r.diagnostics[-1], k)) is not None]
              for h, runs in heads.items() for k in keys}
    with warnings.catch_warnings():              # a cell no seed logged (a task absent from every batch) stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        mats = {key: (np.nanmean(np.stack(found), axis=0), len(found)) for key, found in logged.items() if found}
    low = min([-1e-9] + [float(np.nanmin(m)) for m, _ in mats.values() if np.isfinite(m).any()])
    low = -1.0 if low < -0.5 else math.floor(low * 10) / 10
    probes = {h: [(r.seed, r.diagnostics[-1]["probe_accuracy"]) for r in runs
                  if r.diagnostics[-1].get("probe_accuracy") is not None] for h, runs in heads.items()}
    probes = {h: v for h, v in probes.items() if v}
    cols = max(3, len(keys))                       # the top row: two norm plots and their legend
    width = max(4.8, 0.75 * len(tasks) + 2.5)      # a heatmap cell stays ~0.75 in wide
    n_rows = 1 + len(heads) + (1 if probes else 0)
    ratios = [1.0] * (1 + len(heads)) + ([0.2 + 0.25 * len(probes)] if probes else [])
    fig = plt.figure(figsize=(width * cols, width * 0.8 * sum(ratios) + 0.8))
    grid = fig.add_gridspec(n_rows, cols, height_ratios=ratios)
    for c, key in enumerate(("context_norm", "generated_weight_norm")):
        ax = fig.add_subplot(grid[0, c])
        for head, runs in heads.items():
            for task, dash in zip(tasks, ("-", "--", ":", "-.") * 8):
                frames = [np.array([d["frames"] for d in r.diagnostics], dtype=float) for r in runs]
                values = [np.array([np.nan if d.get(key, {}).get(task) is None else d[key][task]
                                    for d in r.diagnostics]) for r in runs]
                got = on_grid(frames, values)
                if got is not None:
                    ax.plot(got[0], got[1].mean(axis=0), dash, color=colors[head], label=f"{head} {task}")
        frames_axis(ax)
        ax.set_title(f"{key.replace('_', ' ')} per task (mean over seeds)", fontsize=FONT)
        ax.tick_params(labelsize=FONT)
    legend = fig.add_subplot(grid[0, 2])
    legend.axis("off")
    legend.legend(*ax.get_legend_handles_labels(), fontsize=FONT, loc="center", ncol=1 if len(tasks) <= 4 else 2)
    for row, (head, runs) in enumerate(heads.items(), start=1):
        for c, key in enumerate(keys):
            if (head, key) in mats:
                matrix, n = mats[head, key]
                _heatmap(fig.add_subplot(grid[row, c]), matrix, runs[0].diagnostics[-1]["tasks"],
                         f"{head}: cosine of mean contexts,\n{SIMILARITY_KEYS[key]} (mean of n={n} seeds)", low)
    if probes:
        ax = fig.add_subplot(grid[n_rows - 1, 0:cols])
        for i, (head, values) in enumerate(probes.items()):
            ax.plot([v for _, v in values], [i] * len(values), "o", color=colors[head], ms=7, alpha=0.7)
            for seed, v in values:
                ax.annotate(str(seed), (v, i + 0.12), fontsize=FONT - 1, ha="center")
        ax.axvline(1.0 / len(tasks), color="black", ls=":", lw=0.8)
        ax.annotate("chance", (1.0 / len(tasks), len(probes) - 0.5), fontsize=FONT - 1)
        ax.set_yticks(range(len(probes)), list(probes), fontsize=FONT)
        ax.set_ylim(-0.5, len(probes) - 0.3)
        ax.set_xlim(0, 1.02)
        ax.set_xlabel("held-out accuracy of a linear probe of the task from the context (per seed, seed labelled)",
                      fontsize=FONT)
        ax.tick_params(labelsize=FONT)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    _finish(fig, f"Diagnostics from the learner's latest batch at each report (docs/EVALUATION.md); matrices at "
                 f"the last report. Budget: {style.budget} env frames per run.", path, dpi=100)
    return True

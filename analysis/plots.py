"""PNG figures of a report (matplotlib, Agg backend: no display needed).

Curves are mean over seeds with a shaded 95% band (Student-t interval over seeds at each point
of a common frame grid; a head with one seed gets no band).
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from evaluation.stats import t_quantile  # noqa: E402

COLORS = {"shared": "tab:gray", "multihead": "tab:blue", "taskid_mi": "tab:red", "learnt_mi": "tab:green"}


def band(curves: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and 95% t-band over seeds of ``curves [S, N]`` (nan-free); S = 1 gives a zero-width band."""
    mean = curves.mean(axis=0)
    if curves.shape[0] < 2:
        return mean, mean, mean
    half = t_quantile(0.975, curves.shape[0] - 1) * curves.std(axis=0, ddof=1) / math.sqrt(curves.shape[0])
    return mean, mean - half, mean + half


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


def _draw(ax, label: str, frames, values) -> None:
    got = on_grid(frames, values)
    if got is None:
        return
    grid, curves = got
    mean, low, high = band(curves)
    color = COLORS.get(label)
    ax.plot(grid, mean, label=f"{label} (n={curves.shape[0]})", color=color)
    ax.fill_between(grid, low, high, alpha=0.2, color=color)


def learning_curves(path: str, groups: Mapping[str, Sequence], title: str) -> None:
    """Mean capped score vs env frames, one line per head."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for head, runs in groups.items():
        _draw(ax, head, [r.curve.frames for r in runs], [r.curve.capped for r in runs])
    ax.set(xlabel="env frames", ylabel="mean capped score (training episodes)", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def task_curves(path: str, groups: Mapping[str, Sequence], tasks: Sequence[str]) -> None:
    """One panel per task: normalised score vs env frames, one line per head."""
    cols = min(4, len(tasks))
    rows = math.ceil(len(tasks) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    for ax, task in zip(axes.ravel(), tasks):
        for head, runs in groups.items():
            _draw(ax, head, [r.curve.frames for r in runs], [r.curve.tasks[task] for r in runs])
        ax.set_title(task)
        ax.set_xlabel("env frames")
        ax.set_ylabel("normalised score")
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(tasks):]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def aggregate_intervals(path: str, rows: Sequence[Mapping]) -> None:
    """Mean capped score and IQM per head with their stratified-bootstrap 95% intervals."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 0.6 * len(rows) + 1.6), squeeze=False)
    for ax, (key, label) in zip(axes[0], (("mean_capped", "mean capped score"), ("iqm", "IQM of normalised scores"))):
        for i, r in enumerate(rows):
            ax.plot([r[f"{key}_low"], r[f"{key}_high"]], [i, i], lw=6, alpha=0.5, color=COLORS.get(r["head"]))
            ax.plot([r[key]], [i], "k|", ms=14)
        ax.set_yticks(range(len(rows)), [r["head"] for r in rows])
        ax.set_xlabel(label)
        ax.grid(alpha=0.3, axis="x")
    fig.suptitle("95% stratified bootstrap intervals")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def diagnostics(path: str, groups: Mapping[str, Sequence], tasks: Sequence[str]) -> bool:
    """Per-task context norm and generated-weight norm vs frames (MI heads), and each head's
    last context cosine-similarity matrix (mean over seeds). False if no run has diagnostics."""
    heads = {h: [r for r in runs if r.diagnostics] for h, runs in groups.items()}
    heads = {h: runs for h, runs in heads.items() if runs}
    if not heads:
        return False
    fig, axes = plt.subplots(2 + len(heads), 1, figsize=(7, 3.4 * (2 + len(heads))), squeeze=False)
    axes = axes[:, 0]
    for ax, key in zip(axes[:2], ("context_norm", "generated_weight_norm")):
        for head, runs in heads.items():
            for task, style in zip(tasks, ("-", "--", ":", "-.") * 8):
                frames = [np.array([d["frames"] for d in r.diagnostics], dtype=float) for r in runs]
                values = [np.array([np.nan if d[key].get(task) is None else d[key][task] for d in r.diagnostics])
                          for r in runs]
                got = on_grid(frames, values)
                if got is not None:
                    ax.plot(got[0], got[1].mean(axis=0), style, color=COLORS.get(head), label=f"{head} {task}")
        ax.set(xlabel="env frames", ylabel=key.replace("_", " "), title=f"{key} per task (mean over seeds)")
        ax.legend(fontsize=6, ncol=2)
    for ax, (head, runs) in zip(axes[2:], heads.items()):
        mats = [np.array([[np.nan if v is None else v for v in row] for row in r.diagnostics[-1]["context_similarity"]])
                for r in runs]
        names = runs[0].diagnostics[-1]["tasks"]
        image = ax.imshow(np.nanmean(np.stack(mats), axis=0), vmin=-1, vmax=1, cmap="bwr")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.set_title(f"{head}: cosine similarity of\nmean task contexts (last report)", fontsize=9)
        fig.colorbar(image, ax=ax)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True

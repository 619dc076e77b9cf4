"""Learning curves of the side-by-side sittings here: mean return (last 50 episodes) against env frames
and against seconds from the first env step, one line per run (each ``side_by_side_*.json``'s ``curve``),
the 0.85 threshold dashed. Writes ``curves.png`` beside this file.

    python docs/results/peer-doorkey/plot.py
"""
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent
COLORS = {"sf": "black", "base": "tab:gray", "clipped": "tab:blue", "clipped_lr1e3": "tab:green",
          "clipped_lr2e3": "tab:olive", "clipped_advnorm": "tab:red", "sf_loss": "tab:red"}


def main() -> None:
    files = sorted(HERE.glob("side_by_side_*.json"))
    fig, axes = plt.subplots(len(files), 2, figsize=(12, 3.6 * len(files)), squeeze=False)
    for row, path in zip(axes, files):
        report = json.loads(path.read_text())
        for run in report["runs"]:
            curve = run["curve"]
            label = f"{run['system']} seed {run['seed']}"
            style = dict(color=COLORS.get(run["system"]), lw=1.3, ls="-" if run["seed"] % 2 == 0 else "--")
            row[0].plot([p["frames"] / 1e3 for p in curve], [p["mean_return"] for p in curve], label=label, **style)
            row[1].plot([p["t"] for p in curve], [p["mean_return"] for p in curve], label=label, **style)
        for ax, xlabel in zip(row, ("env frames (thousands)", "seconds from the first env step")):
            ax.axhline(report["threshold"], color="gray", ls=":", lw=1)
            ax.set_xlabel(xlabel)
            ax.set_ylabel("mean return, last 50 episodes")
            ax.set_ylim(-0.02, 1.0)
            ax.set_title(path.stem.replace("side_by_side_", "sitting "), fontsize=10)
        row[1].legend(fontsize=7, ncol=2, loc="lower right")
    fig.suptitle("DoorKey-5x5: Sample Factory 2.1.1 and impala-mu variants, 240 s per run (docs/BENCHMARKS.md)")
    fig.tight_layout()
    fig.savefig(HERE / "curves.png", dpi=90)


if __name__ == "__main__":
    main()

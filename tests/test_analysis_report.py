"""launch.py report on fixed synthetic runs (config.yaml, metrics.jsonl, eval results.json):
hand-checked means, intervals, IQM and P(A > B), files read back, bad input refused."""
import csv
import json
import math
import os

import pytest
import yaml

import launch
from analysis.report import build_tables
from analysis.runs import ReportError, load_runs

TASKS = ["collect_green", "collect_red"]
T975_2 = 4.302653   # Student t, 0.975 quantile, 2 degrees of freedom (printed tables: 4.303)


def make_run(root, head, seed, finals, *, suite="embedded", tasks=TASKS, evaluated=None):
    """A run dir whose last metrics record has normalised scores ``finals`` (one per task); an
    earlier record at half the frames has half the scores. ``evaluated``: eval scores per task."""
    path = os.path.join(root, head, f"seed{seed}")
    os.makedirs(path)
    with open(os.path.join(path, "config.yaml"), "w") as f:
        yaml.safe_dump({"run": {"seed": seed, "logdir": path}, "env": {"suite": suite, "tasks": tasks},
                        "agent": {"head": head}}, f)
    with open(os.path.join(path, "metrics.jsonl"), "w") as f:
        for frames, scale in ((5000, 0.5), (10000, 1.0)):
            per_task = {t: {"return": s * scale / 50, "score": s * scale, "episodes": 10, "length": 30}
                        for t, s in zip(tasks, finals)}
            capped = sum(min(s * scale, 100) for s in finals) / len(finals)
            f.write(json.dumps({"frames": frames, "mean_capped_score": capped, "tasks": per_task}) + "\n")
        f.write('{"frames": 10500, "tasks": {"collect_gr')     # a line still being written: ignored
    if evaluated is not None:
        out = os.path.join(path, "eval", "ckpt-0000000016")
        os.makedirs(out)
        with open(os.path.join(out, "results.json"), "w") as f:
            json.dump({"format": 1, "suite": suite, "frames": 10240, "greedy": False, "episodes_per_task": 10,
                       "checkpoint": "x", "tasks": [{"name": t, "normalized_score": s, "mean_return": s / 50}
                                                    for t, s in zip(tasks, evaluated)]}, f)
    return path


@pytest.fixture
def grid(tmp_path):
    root = str(tmp_path / "grid")
    paths = [make_run(root, "shared", 0, [10, 50]), make_run(root, "shared", 1, [20, 40]),
             make_run(root, "shared", 2, [30, 30]),
             make_run(root, "taskid_mi", 0, [80, 150]), make_run(root, "taskid_mi", 1, [90, 100]),
             make_run(root, "taskid_mi", 2, [0, 0], evaluated=[100, 70])]   # eval replaces training numbers
    return paths


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_report_numbers_are_the_hand_computed_ones(grid, tmp_path):
    out = str(tmp_path / "report")
    assert launch.main(["report", *grid, "--out", out, "--boot", "500"]) == 0
    cells = {(r["head"], r["task"]): r for r in read_csv(os.path.join(out, "head_task_scores.csv"))}
    # shared, collect_green: 10, 20, 30 -> mean 20, s = 10, half = t * 10 / sqrt(3)
    half = T975_2 * 10 / math.sqrt(3)
    g = cells["shared", "collect_green"]
    assert float(g["mean"]) == pytest.approx(20)
    assert (float(g["ci95_low"]), float(g["ci95_high"])) == pytest.approx((20 - half, 20 + half), abs=1e-4)
    assert g["source"] == "train window" and g["n"] == "3"
    # taskid_mi, collect_red: 150, 100 (training windows) and 70 (evaluation) -> mean 106.67
    r = cells["taskid_mi", "collect_red"]
    assert float(r["mean"]) == pytest.approx(320 / 3)
    assert r["source"] == "mixed"
    aggregates = {a["head"]: a for a in read_csv(os.path.join(out, "aggregates.csv"))}
    # shared: all six scores below 100 -> mean capped = mean = 30; IQM of 10 20 30 30 40 50 drops 10, 50
    assert float(aggregates["shared"]["mean_capped"]) == pytest.approx(30)
    assert float(aggregates["shared"]["iqm"]) == pytest.approx(30)
    # taskid_mi: 80 90 100 | 150 100 70 -> capped 80 90 100 100 100 70 = 540 / 6; IQM of sorted
    # 70 80 90 100 100 150 (uncapped) drops 70 and 150 -> 92.5
    assert float(aggregates["taskid_mi"]["mean_capped"]) == pytest.approx(90)
    assert float(aggregates["taskid_mi"]["iqm"]) == pytest.approx(92.5)
    for a in aggregates.values():
        assert float(a["mean_capped_low"]) <= float(a["mean_capped"]) <= float(a["mean_capped_high"])
    # every taskid_mi score beats every shared score in both tasks: P = 1, significant
    (pair,) = read_csv(os.path.join(out, "probability_of_improvement.csv"))
    assert (pair["a"], pair["b"], float(pair["p_a_beats_b"])) == ("shared", "taskid_mi", 0.0)
    assert pair["significant"] == "True"
    diffs = {(d["task"]): d for d in read_csv(os.path.join(out, "task_differences.csv"))}
    assert float(diffs["collect_green"]["mean_a_minus_b"]) == pytest.approx(20 - 90)
    runs = read_csv(os.path.join(out, "run_scores.csv"))
    assert len(runs) == 6 * 2
    assert {r["source"] for r in runs if r["head"] == "taskid_mi" and r["seed"] == "2"} == {"eval"}
    summary = open(os.path.join(out, "summary.md")).read()
    assert "| shared | taskid_mi | 0.00 |" in summary and "**yes**" in summary
    assert "Welch" in summary and "stratified" in summary
    assert "| shared | 20.0 [" in summary
    for png in ("learning_curves.png", "task_curves.png", "aggregates.png"):
        with open(os.path.join(out, png), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert not os.path.exists(os.path.join(out, "diagnostics.png"))     # no run wrote diagnostics
    with open(os.path.join(out, "report.json")) as f:
        assert json.load(f)["tasks"] == TASKS


def test_curves_and_grouping(grid):
    runs = load_runs(grid)
    shared = [r for r in runs if r.head == "shared"]
    assert [r.curve.frames.tolist() for r in shared] == [[5000, 10000]] * 3       # the torn last line is skipped
    assert shared[0].curve.tasks["collect_red"].tolist() == [25, 50]
    tables = build_tables(runs, boot=200)
    assert [a["head"] for a in tables["aggregates"]] == ["shared", "taskid_mi"]   # HEADS order


def test_diagnostics_are_drawn_when_present(grid, tmp_path):
    with open(os.path.join(grid[3], "diagnostics.jsonl"), "w") as f:
        for frames in (5000, 10000):
            f.write(json.dumps({"frames": frames, "tasks": TASKS, "context_norm": {"collect_green": 1.0, "collect_red": 2.0},
                                "generated_weight_norm": {"collect_green": 3.0, "collect_red": None},
                                "context_similarity": [[1.0, -0.5], [-0.5, 1.0]]}) + "\n")
    out = str(tmp_path / "report")
    assert launch.main(["report", *grid, "--out", out, "--boot", "200"]) == 0
    assert os.path.getsize(os.path.join(out, "diagnostics.png")) > 1000
    assert "diagnostics.png" in open(os.path.join(out, "summary.md")).read()


def test_bad_input_is_refused_before_writing(grid, tmp_path, capsys):
    out = str(tmp_path / "report")
    other = make_run(str(tmp_path / "other"), "shared", 0, [1, 2], suite="dmlab30")
    assert launch.main(["report", *grid, other, "--out", out]) == 2
    assert "mix suites" in capsys.readouterr().err
    subset = make_run(str(tmp_path / "subset"), "shared", 0, [1], tasks=["collect_green"])
    assert launch.main(["report", grid[0], subset, "--out", out]) == 2
    assert "different task sets" in capsys.readouterr().err
    assert launch.main(["report", str(tmp_path), "--out", out]) == 2
    assert "no config.yaml" in capsys.readouterr().err
    assert launch.main(["report", *grid, "--out", out, "--boot", "5"]) == 2
    assert not os.path.exists(out)
    with pytest.raises(ReportError):
        load_runs([])

"""launch.py report on fixed synthetic runs (config.yaml, metrics.jsonl, eval results.json):
hand-checked means, run-level intervals, IQM, P(A > B), permutation p and Holm, files read back,
the same statistics from a run_scores.csv, diagnostics per seed, bad input refused."""
import csv
import json
import math
import os

import numpy as np
import pytest
import yaml

import launch
from analysis import plots, references
from analysis.report import build_tables
from analysis.runs import ReportError, load_runs

TASKS = ["collect_green", "collect_red"]


def make_run(root, head, seed, finals, *, suite="embedded", tasks=TASKS, evaluated=None):
    """A run dir whose last metrics record has normalised scores ``finals`` (one per task); an
    earlier record at half the frames has half the scores. ``evaluated``: eval scores per task."""
    path = os.path.join(root, head, f"seed{seed}")
    os.makedirs(path)
    with open(os.path.join(path, "config.yaml"), "w") as f:
        yaml.safe_dump({"run": {"seed": seed, "logdir": path, "score_window_episodes": 50, "total_frames": 10000},
                        "env": {"suite": suite, "tasks": tasks},
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
    assert launch.main(["report", *grid, "--out", out, "--boot", "4000"]) == 0
    cells = {(r["head"], r["task"]): r for r in read_csv(os.path.join(out, "head_task_scores.csv"))}
    # shared, collect_green: 10, 20, 30 -> mean 20; run-level bootstrap of the mean of 3 runs: the
    # resample mean is 10 (or 30) with probability 1/27 = 3.7% > 2.5%, so the 95% interval is [10, 30]
    # (4000 resamples: ~148 expected at each end, >= 101 needed)
    g = cells["shared", "collect_green"]
    assert float(g["mean"]) == pytest.approx(20)
    assert (float(g["ci95_low"]), float(g["ci95_high"])) == (10.0, 30.0)
    assert g["source"] == "train window" and g["n"] == "3"
    # taskid_mi, collect_red: 150, 100 (training windows) and 70 (evaluation) -> mean 106.67
    r = cells["taskid_mi", "collect_red"]
    assert float(r["mean"]) == pytest.approx(320 / 3)
    assert r["source"] == "mixed"
    aggregates = {a["head"]: a for a in read_csv(os.path.join(out, "aggregates.csv"))}
    # shared: all six scores below 100 -> mean capped = mean = 30; IQM of 10 20 30 30 40 50 drops 10, 50;
    # every shared run's mean is 30, so resampling whole runs cannot move it: a degenerate interval
    assert float(aggregates["shared"]["mean_capped"]) == pytest.approx(30)
    assert float(aggregates["shared"]["iqm"]) == pytest.approx(30)
    assert (aggregates["shared"]["mean_capped_low"], aggregates["shared"]["mean_capped_high"]) == ("30.0", "30.0")
    assert aggregates["shared"]["mean_capped_degenerate"] == "True" and aggregates["shared"]["n"] == "3"
    # taskid_mi: 80 90 100 | 150 100 70 -> capped 80 90 100 100 100 70 = 540 / 6; IQM of sorted
    # 70 80 90 100 100 150 (uncapped) drops 70 and 150 -> 92.5
    assert float(aggregates["taskid_mi"]["mean_capped"]) == pytest.approx(90)
    assert float(aggregates["taskid_mi"]["iqm"]) == pytest.approx(92.5)
    for a in aggregates.values():
        assert float(a["mean_capped_low"]) <= float(a["mean_capped"]) <= float(a["mean_capped_high"])
    # the pair: per-run mean capped scores shared 30, 30, 30 vs taskid_mi 90, 95, 85: T = -60; of the
    # C(6, 3) = 20 splits only the observed one and its mirror reach |T| = 60 -> p = 0.1 (one pair:
    # Holm changes nothing), not significant at 0.05 although every taskid_mi score beats every
    # shared one (P = 0, a degenerate interval)
    (pair,) = read_csv(os.path.join(out, "pairs.csv"))
    assert (pair["a"], pair["b"], pair["n_a"], pair["n_b"]) == ("shared", "taskid_mi", "3", "3")
    assert float(pair["mean_capped_a_minus_b"]) == pytest.approx(-60)
    assert float(pair["permutation_p"]) == pytest.approx(0.1) and float(pair["holm_p"]) == pytest.approx(0.1)
    assert (pair["permutation_splits"], pair["permutation_exact"]) == ("20", "True")
    assert (float(pair["p_a_beats_b"]), pair["poi_degenerate"]) == (0.0, "True")
    assert (pair["significant"], pair["verdict"]) == ("False", "no significant difference")
    (poi,) = read_csv(os.path.join(out, "probability_of_improvement.csv"))
    assert (poi["p_a_beats_b"], poi["degenerate"], poi["significant"]) == ("0.0", "True", "False")
    runs = read_csv(os.path.join(out, "run_scores.csv"))
    assert len(runs) == 6 * 2 and {r["suite"] for r in runs} == {"embedded"}
    assert {r["source"] for r in runs if r["head"] == "taskid_mi" and r["seed"] == "2"} == {"eval"}
    summary = open(os.path.join(out, "summary.md")).read()
    assert "| shared | taskid_mi | 3 | 3 | -60.0 [" in summary
    assert "0.00 [0.00, 0.00] (degenerate) | 0.100 (exact, 20 splits) | 0.100 | no significant difference |" in summary
    assert "run-level bootstrap" in summary and "Holm" in summary and "Welch" not in summary
    assert "| shared | 3 | 20.0 [10.0, 30.0] |" in summary
    assert "Budget (env frames per run): 10,000." in summary
    assert "no-task-id optimum (hidden cue) = 75.1" in summary
    for png in ("learning_curves.png", "task_curves.png", "aggregates.png"):
        with open(os.path.join(out, png), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert not os.path.exists(os.path.join(out, "diagnostics.png"))     # no run wrote diagnostics
    assert not os.path.exists(os.path.join(out, "diagnostics.csv"))
    with open(os.path.join(out, "report.json")) as f:
        report = json.load(f)
    assert report["tasks"] == TASKS and report["score_windows"] == [50] and report["budgets"] == [10000]
    assert report["bootstrap"].startswith("run-level bootstrap")


def test_statistics_recomputed_from_run_scores_csv(grid, tmp_path):
    out = str(tmp_path / "report")
    assert launch.main(["report", *grid, "--out", out, "--boot", "300"]) == 0
    again = str(tmp_path / "again")
    assert launch.main(["report", os.path.join(out, "run_scores.csv"), "--out", again, "--boot", "300"]) == 0
    for name in ("aggregates.csv", "pairs.csv", "head_task_scores.csv", "run_scores.csv"):
        assert read_csv(os.path.join(again, name)) == read_csv(os.path.join(out, name)), name
    assert json.load(open(os.path.join(again, "report.json")))["budgets"] == [10000]   # the budget column
    assert not os.path.exists(os.path.join(again, "learning_curves.png"))    # no curves in the table
    assert "No learning curves" in open(os.path.join(again, "summary.md")).read()
    # an older table (no suite or budget column) takes its suite from the report.json next to it
    rows = read_csv(os.path.join(out, "run_scores.csv"))
    old = tmp_path / "old"
    old.mkdir()
    with open(old / "run_scores.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, [k for k in rows[0] if k not in ("suite", "budget")])
        writer.writeheader()
        writer.writerows([{k: v for k, v in r.items() if k not in ("suite", "budget")} for r in rows])
    with pytest.raises(ReportError, match="no suite column"):
        load_runs([str(old / "run_scores.csv")])
    (old / "report.json").write_text(json.dumps({"suite": "embedded"}))
    assert [r.scores for r in load_runs([str(old / "run_scores.csv")])] == [r.scores for r in
                                                                           load_runs([os.path.join(out, "run_scores.csv")])]
    # ... and the budget and score window from the grid's config + overrides (grid.json, as compare writes it)
    (old / "grid.json").write_text(json.dumps({"suite": "embedded", "config": None,
                                               "overrides": ["total_frames=400000", "run.score_window_episodes=20"]}))
    assert {(r.total_frames, r.window) for r in load_runs([str(old / "run_scores.csv")])} == {(400000, 20)}
    with open(old / "bad.csv", "w") as f:
        f.write("head,seed\nshared,0\n")
    with pytest.raises(ReportError, match="no column run, task, score"):
        load_runs([str(old / "bad.csv")])
    with pytest.raises(ReportError, match="no such file"):
        load_runs([str(old / "missing.csv")])


def test_bootstrap_band_and_reference_lines():
    curves = np.array([[0.0, 0.0], [100.0, 100.0]])
    mean, low, high = plots.bootstrap_band(curves, reps=4000, seed=0)
    # resampled means 0 / 50 / 100 w.p. 1/4, 1/2, 1/4 at every point
    assert mean.tolist() == [50, 50] and low.tolist() == [0, 0] and high.tolist() == [100, 100]
    one = plots.bootstrap_band(curves[:1])
    assert one[1].tolist() == one[2].tolist() == [0, 0]
    # a bootstrap band of a mean never leaves the seeds' range (a t-band of these would reach +-...)
    bimodal = np.array([[0.0], [0.0], [100.0], [100.0], [100.0]])
    assert 0.0 <= plots.bootstrap_band(bimodal, reps=2000)[1][0] <= plots.bootstrap_band(bimodal, reps=2000)[2][0] <= 100
    text = plots.caption(plots.Curves(window=50, budget="400,000"), "Mean capped score")
    assert "last 50 training episodes" in text and "run-level bootstrap 95%" in text and "400,000" in text
    # the hidden-cue pair's no-task-id optimum: return 1.5 against random -0.005 and solved 2.0 (docs/ENVS.md)
    expected = 100 * (1.5 + 0.005) / (2.0 + 0.005)
    assert references.reference_lines("embedded", TASKS)[references.NO_TASK_ID_LABEL] == pytest.approx(expected, abs=0.05)
    many = ["goto_goal", *TASKS, "memory"]
    assert references.reference_lines("embedded", many) == {}          # the mean over 4 tasks has no such line
    assert set(references.task_reference_lines("embedded", many)) == set(TASKS)
    assert references.reference_lines("dmlab30", TASKS) == {}


def test_curves_and_grouping(grid):
    runs = load_runs(grid)
    shared = [r for r in runs if r.head == "shared"]
    assert [r.curve.frames.tolist() for r in shared] == [[5000, 10000]] * 3       # the torn last line is skipped
    assert shared[0].curve.tasks["collect_red"].tolist() == [25, 50]
    tables = build_tables(runs, boot=200)
    assert [a["head"] for a in tables["aggregates"]] == ["shared", "taskid_mi"]   # HEADS order


def write_diagnostics(path, records):
    with open(os.path.join(path, "diagnostics.jsonl"), "w") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")


def diagnostics_record(frames, **extra):
    return {"frames": frames, "tasks": TASKS, "context_norm": {"collect_green": 1.0, "collect_red": 2.0},
            "generated_weight_norm": {"collect_green": 3.0, "collect_red": None},
            "context_similarity": [[1.0, -0.5], [-0.5, 1.0]], **extra}


def test_diagnostics_are_drawn_when_present(grid, tmp_path):
    # an old run (no before/after or probe fields) and a new one: both reported, per seed
    write_diagnostics(grid[3], [diagnostics_record(5000), diagnostics_record(10000)])
    write_diagnostics(grid[4], [diagnostics_record(10000, context_similarity=[[1.0, 0.25], [0.25, 1.0]],
                                                   context_similarity_before_reward=[[1.0, 0.9], [0.9, 1.0]],
                                                   context_similarity_after_reward=[[1.0, 0.1], [0.1, 1.0]],
                                                   probe_accuracy=0.75)])
    out = str(tmp_path / "report")
    assert launch.main(["report", *grid, "--out", out, "--boot", "200"]) == 0
    assert os.path.getsize(os.path.join(out, "diagnostics.png")) > 1000
    rows = {r["seed"]: r for r in read_csv(os.path.join(out, "diagnostics.csv"))}
    assert set(rows) == {"0", "1"}
    assert (rows["0"]["cosine_all_steps"], rows["0"]["cosine_before_reward"], rows["0"]["probe_accuracy"]) == ("-0.5", "", "")
    assert (rows["1"]["cosine_all_steps"], rows["1"]["cosine_before_reward"], rows["1"]["cosine_after_reward"],
            rows["1"]["probe_accuracy"]) == ("0.25", "0.9", "0.1", "0.75")
    summary = open(os.path.join(out, "summary.md")).read()
    assert "diagnostics.png" in summary
    assert "| taskid_mi | 0 | 10,000 | -0.50 |  |  |  |" in summary
    assert "| taskid_mi | 1 | 10,000 | 0.25 | 0.90 | 0.10 | 0.75 |" in summary


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


def test_every_label_of_a_figure_gets_its_own_colour():
    """Variants of a head (``shared+popart``) must not reuse a head's colour (they did: the legend
    showed two grey and two red lines)."""
    from analysis.plots import COLORS, palette

    labels = ["shared", "taskid_mi", "shared+popart", "taskid_mi+popart", "taskid_mi+onehot"]
    colors = palette(labels)
    assert len({colors[label] for label in labels}) == len(labels)
    assert all(colors[h] == COLORS[h] for h in ("shared", "taskid_mi"))
    assert palette(reversed(labels)) == colors        # the same in every figure of a report


@pytest.mark.parametrize("agent, learner, label", [
    ({"head": "taskid_mi"}, {}, "taskid_mi"),                                  # predates the scale: 1/C = Adam's auto
    ({"head": "taskid_mi", "mi_context_scale": "auto"}, {"optimizer": "rmsprop"}, "taskid_mi"),
    ({"head": "taskid_mi", "mi_context_scale": "1/sqrt(C)"}, {"optimizer": "rmsprop"}, "taskid_mi"),
    ({"head": "taskid_mi", "mi_context_scale": "1/C"}, {"optimizer": "rmsprop"}, "taskid_mi@1/C"),
    ({"head": "learnt_mi"}, {"optimizer": "rmsprop"}, "learnt_mi@1/C"),         # an old config under RMSProp
    ({"head": "taskid_mi", "mi_context_scale": "1"}, {"optimizer": "adam"}, "taskid_mi@1"),
    ({"head": "taskid_mi", "mi_context": "onehot", "mi_context_scale": "1/C"}, {"popart": True}, "taskid_mi+onehot+popart"),
    ({"head": "multihead", "mi_context_scale": "1/C"}, {"optimizer": "rmsprop"}, "multihead"),   # no MI layer: no scale
])
def test_a_variant_of_a_head_is_its_own_group(agent, learner, label):
    """The one-hot-context ablation and a non-default context scale must not be pooled with the head
    (a report over the cued pair's heads and ablation grids refused two taskid_mi groups)."""
    from analysis.runs import group_label

    assert group_label({"agent": agent, "learner": learner}) == label


def _pair(a, b, diff, low, high, p, holm, n_a=5, n_b=5):
    return {"a": a, "b": b, "n_a": n_a, "n_b": n_b, "mean_capped_a_minus_b": diff, "diff_ci95_low": low,
            "diff_ci95_high": high, "permutation_p": p, "holm_p": holm, "significant": holm <= 0.05}


def test_the_paper_claims_are_read_from_their_pairs_in_either_order():
    """Verdicts come from the Holm-adjusted test only, in the claim's direction, whichever way round the
    report listed the pair; an "at or above" claim is never "supported" by a non-significant gap."""
    from analysis.report import paper_claims

    pairs = [
        _pair("shared", "multihead", -60.0, -80.0, -40.0, 0.004, 0.024, 5, 6),   # listed B-first: multihead above
        _pair("multihead", "taskid_mi", 30.0, 5.0, 50.0, 0.03, 0.12),           # multihead above, not after Holm
        _pair("taskid_mi", "learnt_mi", 70.0, 60.0, 80.0, 0.002, 0.016),        # taskid_mi significantly above
        _pair("shared", "learnt_mi", -2.0, -9.0, 4.0, 0.6, 1.0),
    ]
    rows = {r["claim"][:4].strip(): r for r in paper_claims(pairs)}
    assert [r["verdict"] for r in rows.values()] == ["supported", "not contradicted", "contradicted", "not shown"]
    a = rows["(a)"]
    assert (a["a"], a["b"], a["n_a"], a["n_b"]) == ("multihead", "shared", 6, 5)       # n follows the swap
    assert (a["mean_capped_a_minus_b"], a["diff_ci95_low"], a["diff_ci95_high"]) == (60.0, 40.0, 80.0)
    b = rows["(b)"]
    assert (b["mean_capped_a_minus_b"], b["diff_ci95_low"], b["diff_ci95_high"], b["holm_p"]) == (-30.0, -50.0, -5.0, 0.12)
    assert rows["(c1)"]["mean_capped_a_minus_b"] == -70.0
    assert rows["(c2)"]["mean_capped_a_minus_b"] == 2.0
    assert paper_claims([_pair("shared", "multihead", 0.0, 0.0, 0.0, 1.0, 1.0)])[0]["verdict"] == "not shown"
    assert paper_claims([_pair("taskid_mi+onehot", "shared", 9.0, 1.0, 20.0, 0.01, 0.01)]) == []   # variants: no claim

"""launch.py evaluate: exact episode counts, CI math, held-out seeds, greedy determinism, videos, Ray."""
import csv
import dataclasses
import json
import math

import numpy as np
import pytest
from PIL import Image, ImageSequence

import launch
from analysis.stats import sample_std, t_interval, t_quantile
from conftest import ROOT, TINY
from configs.schema import load_config
from envs.embedded import episode_seed
from envs.suites import get_suite
from evaluation.evaluate import EvaluationError, make_runner, prepare, run
from evaluation.worker import plan_slots, split_slots
from training import run as training_run

TASKS = ["goto_goal", "fetch_object", "goto_door"]     # episodes of at most 40 steps
# t_{0.975, df} from a printed table (e.g. NIST/SEMATECH e-Handbook, table 1.3.6.7.2)
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 9: 2.262, 29: 2.045}


def test_t_quantile_matches_the_table():
    for df, expected in T975.items():
        assert t_quantile(0.975, df) == pytest.approx(expected, abs=6e-4)
    assert t_quantile(0.5, 7) == pytest.approx(0.0, abs=1e-9)
    assert t_quantile(0.025, 4) == pytest.approx(-2.776, abs=6e-4)
    assert t_quantile(0.975, 1e6) == pytest.approx(1.95996, abs=1e-4)    # -> the normal quantile


def test_t_interval_by_hand():
    # mean 2.5, s^2 = (2.25 + 0.25 + 0.25 + 2.25) / 3 = 5/3, half width = t_{.975,3} s / 2
    mean, low, high = t_interval([1.0, 2.0, 3.0, 4.0])
    assert (mean, sample_std([1.0, 2.0, 3.0, 4.0])) == (2.5, pytest.approx(math.sqrt(5 / 3)))
    assert (low, high) == (pytest.approx(2.5 - 3.182446 * math.sqrt(5 / 3) / 2, abs=1e-5),
                           pytest.approx(2.5 + 3.182446 * math.sqrt(5 / 3) / 2, abs=1e-5))
    assert t_interval([0.7]) == (0.7, 0.7, 0.7) and sample_std([0.7]) == 0.0
    assert t_interval([3.0, 3.0, 3.0])[1:] == (3.0, 3.0)
    with pytest.raises(ValueError):
        t_interval([])


def test_plan_counts_every_episode_exactly_once():
    slots = plan_slots([0, 5], episodes=7, envs_per_task=3, videos=4, seed=1)
    for task in (0, 5):
        mine = [s for s in slots if s.task_id == task]
        assert [s.episodes for s in mine] == [3, 2, 2]        # 7 = 3 + 2 + 2
        assert [s.videos for s in mine] == [2, 1, 1]          # task episodes 0..3 = slot 0,1,2,0
    assert len({s.seed for s in slots}) == len(slots)
    assert plan_slots([0], episodes=2, envs_per_task=8, videos=0, seed=1)[-1].index == 1   # E = min(N, 8)
    groups = split_slots(slots, 4)
    assert sorted(s for g in groups for s in g) == sorted(slots) and len(groups) == 4
    assert len(split_slots(slots[:2], 5)) == 2


def test_embedded_test_levels_use_other_layouts():
    suite = get_suite("embedded")
    assert episode_seed(3, test=True) != episode_seed(3, test=False) == 3
    train = suite.make_env(0, seed=3)
    test = suite.make_env(0, seed=3, test=True)
    frames = [(train.reset()[0]["frame"], test.reset()[0]["frame"]) for _ in range(5)]
    assert any(not np.array_equal(a, b) for a, b in frames)


# ------------------------------------------------------------------ end to end on a real checkpoint
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("evaluate") / "run"
    cfg = load_config(None, TINY + [f"logdir={logdir}", "mode=serial", "num_actors=1", "envs_per_actor=3",
                                    "head=taskid_mi", f"tasks=[{','.join(TASKS)}]", "total_frames=256"])
    assert training_run.train(cfg, install_signal_handlers=False) == "done"
    return logdir


def _episodes(out_dir):
    with open(out_dir / "episodes.csv") as f:
        return list(csv.DictReader(f))


def test_evaluate_writes_exact_counts_cis_and_a_video(trained):
    job = prepare(trained, episodes=3, envs_per_task=2, videos=1, overrides=["mode=serial", "num_actors=2"])
    summary = run(job)
    out = trained / "eval" / job.checkpoint.stem
    assert json.loads((out / "results.json").read_text()) == summary
    assert summary["frames"] == 256 and summary["greedy"] is False and summary["suite"] == "embedded"
    assert summary["head"] == "taskid_mi" and summary["episodes_per_task"] == 3
    suite = get_suite("embedded")
    rows = _episodes(out)
    assert [r["task"] for r in rows] == [t for t in TASKS for _ in range(3)]
    assert [(r["env"], r["episode"]) for r in rows] == [("0", "0"), ("0", "1"), ("1", "0")] * 3
    with open(out / "results.csv") as f:
        table = list(csv.DictReader(f))
    scores = []
    for task, result, csv_row in zip(TASKS, summary["tasks"], table):
        returns = [float(r["return"]) for r in rows if r["task"] == task]
        mean = sum(returns) / 3
        half = T975[2] * np.std(returns, ddof=1) / math.sqrt(3)
        spec = suite.task(task)
        score = 100 * (mean - spec.random_score) / (spec.human_score - spec.random_score)
        scores.append(score)
        assert result["name"] == csv_row["name"] == task and result["episodes"] == 3
        assert result["mean_return"] == pytest.approx(mean)
        assert result["ci95_low"] == pytest.approx(mean - half, abs=1e-3)
        assert result["ci95_high"] == pytest.approx(mean + half, abs=1e-3)
        assert result["normalized_score"] == pytest.approx(score)
        assert float(csv_row["ci95_high"]) == pytest.approx(result["ci95_high"])
    assert summary["mean_capped_score"] == pytest.approx(sum(min(s, 100) for s in scores) / 3)

    # one video per task: episode 0 (slot 0's first), one frame per step plus the first observation
    videos = sorted(p.name for p in (out / "videos").iterdir())
    assert videos == sorted(f"{t}-0.gif" for t in TASKS)
    length = int(rows[0]["length"])
    gif = Image.open(out / "videos" / "goto_goal-0.gif")
    frames = [frame.convert("RGB") for frame in ImageSequence.Iterator(gif)]
    assert sum(frame.info["duration"] for frame in frames) == 100 * (length + 1)
    assert np.asarray(frames[0]).shape == (7 * 16, 7 * 16, 3)       # goto_goal's 7x7 grid, 16 px a cell
    assert len(frames) > 1


def test_greedy_is_deterministic_whatever_the_workers(trained):
    one = run(prepare(trained, episodes=2, greedy=True, overrides=["mode=serial", "num_actors=1"]))
    out = trained / "eval" / f"{prepare(trained).checkpoint.stem}-greedy"
    first = _episodes(out)
    three = run(prepare(trained, episodes=2, greedy=True, overrides=["mode=serial", "num_actors=3"]))
    assert _episodes(out) == first and one["tasks"] == three["tasks"] and three["greedy"] is True


@pytest.mark.heavy(14)
def test_ray_mode_plays_the_same_episodes_as_serial_even_after_a_worker_crash(trained, tmp_path):
    import ray

    import flaky_suite
    from evaluation.ray_runner import RayRunner

    serial = run(prepare(trained, episodes=2, seed=5, overrides=["mode=serial", "num_actors=2"]))
    out = trained / "eval" / prepare(trained).checkpoint.stem
    expected = _episodes(out)
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    ray.cloudpickle.register_pickle_by_value(flaky_suite)
    try:
        job = prepare(trained, episodes=2, seed=5, overrides=["mode=ray", "num_actors=2"])
        # an env raises once, in one worker: that worker restarts and replays its slots from the start
        flaky = dataclasses.replace(job, suite=flaky_suite.FlakySuite(job.suite, str(tmp_path / "crashed")))
        runner = make_runner(flaky)
        assert isinstance(runner, RayRunner)
        assert run(flaky, runner)["tasks"] == serial["tasks"] and _episodes(out) == expected
        assert runner.restarts == 1 and (tmp_path / "crashed").exists()
    finally:
        ray.shutdown()


def test_cli_evaluates_serially(trained, capsys):
    assert launch.main(["evaluate", str(trained), "--episodes", "1", "--greedy", "mode=serial"]) == 0
    printed = capsys.readouterr().out
    assert "episodes 3/3 (100%)" in printed and "mean capped score" in printed
    assert (trained / "eval" / f"{prepare(trained).checkpoint.stem}-greedy" / "results.csv").is_file()


def test_bad_arguments_are_refused_before_anything_is_written(trained, tmp_path, capsys):
    before = sorted(p.name for p in (trained / "eval").iterdir()) if (trained / "eval").exists() else []
    with pytest.raises(EvaluationError, match="--episodes 0"):
        prepare(trained, episodes=0)
    with pytest.raises(EvaluationError, match="--video 5"):
        prepare(trained, episodes=2, videos=5)
    with pytest.raises(EvaluationError, match="agent.head"):
        prepare(trained, overrides=["head=multihead"])
    with pytest.raises(EvaluationError, match="no checkpoint"):
        prepare(tmp_path)
    with pytest.raises(EvaluationError, match="does not exist"):
        prepare(tmp_path / "nowhere")
    assert launch.main(["evaluate", str(trained), "--checkpoint", str(tmp_path / "x.pt")]) == 2
    assert "--checkpoint" in capsys.readouterr().err
    assert launch.main(["evaluate", str(trained), "num_actorz=2"]) == 2
    after = sorted(p.name for p in (trained / "eval").iterdir()) if (trained / "eval").exists() else []
    assert after == before


def test_a_dmlab30_checkpoint_gets_the_training_checks(tmp_path, monkeypatch):
    from configs.schema import load_config as load
    from learner.checkpoint import Checkpointer

    import envs.dmlab_checks

    cfg = load(ROOT / "configs" / "dmlab30.yaml", ["env.tasks=[rooms_watermaze]", "num_actors=1"])
    Checkpointer(tmp_path / "checkpoints").save({"config": cfg.to_dict(), "learner": {"model": {}},
                                                  "frames": 0, "updates": 0}, 0)
    monkeypatch.setattr(envs.dmlab_checks, "deepmind_lab_importable", lambda: False)
    with pytest.raises(EvaluationError, match="deepmind_lab"):
        prepare(tmp_path)
    monkeypatch.setattr(envs.dmlab_checks, "deepmind_lab_importable", lambda: True)
    with pytest.raises(EvaluationError, match="num_actors=500"):
        prepare(tmp_path, overrides=["num_actors=500"])
    job = prepare(tmp_path, episodes=1)
    assert job.task_ids == (3,) and job.suite.name == "dmlab30"

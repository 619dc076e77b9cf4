"""launch.py compare: a tiny grid (2 heads x 2 seeds, real subprocesses) end to end, re-running it
skips the finished runs, and bad requests are refused before any work. The grid trains and evaluates
in serial mode, as the committed results' grids do (docs/results/*/run.sh): what compare adds does
not depend on the mode, and Ray-mode training and evaluation have their own end-to-end tests
(test_learning.py, test_evaluate.py); four local Ray clusters here cost a minute of the suite."""
import json
import os

import pytest
import yaml

import launch
from training.compare import GridRun, plan

TINY = ["mode=serial", "total_frames=2000", "num_actors=1", "envs_per_actor=4", "batch_size=4", "unroll_length=20",
        "tasks=[collect_green,collect_red]", "run.report_every_seconds=1", "actors.unrolls_in_flight=1"]


def checkpoint_files(out):
    found = {}
    for head in ("shared", "taskid_mi"):
        for seed in (0, 1):
            d = os.path.join(out, head, f"seed{seed}", "checkpoints")
            found.update({os.path.join(d, n): os.path.getmtime(os.path.join(d, n)) for n in os.listdir(d)})
    return found


@pytest.mark.heavy(19)
@pytest.mark.timeout(900)
def test_tiny_grid_end_to_end_then_rerun_skips(tmp_path, capsys):
    out = str(tmp_path / "grid")
    args = ["compare", "--heads", "shared,taskid_mi", "--seeds", "2", "--out", out, "--parallel", "2", "--retries", "2",
            "--eval-episodes", "2", *TINY]
    assert launch.main(args) == 0
    first = capsys.readouterr().out
    assert "4 to train" in first and first.count(": done in") >= 4
    for head in ("shared", "taskid_mi"):
        for seed in (0, 1):
            run = os.path.join(out, head, f"seed{seed}")
            with open(os.path.join(run, "config.yaml")) as f:
                cfg = yaml.safe_load(f)
            assert (cfg["agent"]["head"], cfg["run"]["seed"], cfg["run"]["logdir"]) == (head, seed, run)
            with open(os.path.join(run, "metrics.jsonl")) as f:
                assert json.loads(f.readlines()[-1])["frames"] >= 2000
    with open(os.path.join(out, "grid.json")) as f:
        assert json.load(f)["tasks"] == ["collect_green", "collect_red"]
    summary = open(os.path.join(out, "report", "summary.md")).read()
    assert "| shared | 0, 1 |" in summary and "| taskid_mi | 0, 1 |" in summary
    with open(os.path.join(out, "report", "run_scores.csv")) as f:
        assert len(f.readlines()) == 1 + 4 * 2
    before = checkpoint_files(out)

    assert launch.main(args) == 0                       # again: nothing left to train
    second = capsys.readouterr().out
    assert "4 already trained, 0 to train" in second and "started" not in second
    assert checkpoint_files(out) == before              # no run touched


def test_bad_requests_are_refused_before_any_work(tmp_path, capsys):
    out = str(tmp_path / "grid")
    assert launch.main(["compare", "--heads", "shared,taskid", "--out", out]) == 2
    assert "taskid is not a head" in capsys.readouterr().err
    assert launch.main(["compare", "--heads", "shared", "--out", out, "head=multihead"]) == 2
    assert "sets head itself" in capsys.readouterr().err
    assert launch.main(["compare", "--heads", "shared", "--out", out, "batch_size=zero"]) == 2
    assert "batch_size" in capsys.readouterr().err
    assert not os.path.exists(out)
    # a grid of another task set already lives there
    os.makedirs(out)
    with open(os.path.join(out, "grid.json"), "w") as f:
        json.dump({"suite": "embedded", "tasks": ["goto_goal"]}, f)
    assert launch.main(["compare", "--heads", "shared", "--out", out, "tasks=[collect_red]"]) == 2
    assert "use another --out" in capsys.readouterr().err
    assert os.listdir(out) == ["grid.json"]
    # an unreadable run: one clear line, no traceback, nothing trained
    other = str(tmp_path / "other")
    os.makedirs(os.path.join(other, "shared", "seed0", "checkpoints"))
    with open(os.path.join(other, "shared", "seed0", "checkpoints", "ckpt-0000000001.pt"), "wb") as f:
        f.write(b"not a checkpoint")
    assert launch.main(["compare", "--heads", "shared", "--seeds", "1", "--out", other]) == 2
    assert "every checkpoint in" in capsys.readouterr().err


def test_plan_is_seed_major_with_per_run_overrides(tmp_path):
    runs, cfg = plan(["shared", "learnt_mi"], 2, str(tmp_path), None, ["total_frames=5000"])
    assert [(r.head, r.seed) for r in runs] == [("shared", 0), ("learnt_mi", 0), ("shared", 1), ("learnt_mi", 1)]
    assert runs[3] == GridRun("learnt_mi", 1, str(tmp_path / "learnt_mi" / "seed1"),
                              ("total_frames=5000", "head=learnt_mi", "seed=1",
                               f"logdir={tmp_path / 'learnt_mi' / 'seed1'}"))
    assert cfg.run.total_frames == 5000


@pytest.mark.heavy(12)
@pytest.mark.timeout(300)
def test_ctrl_c_stops_the_grid_after_its_running_run_checkpoints(tmp_path):
    """A terminal's Ctrl-C (SIGINT to compare's process group): compare must not start the next run and
    must leave the running one a checkpoint. Before, compare died at once and its run, in the same group,
    got the SIGINT as well; a run that gets a second signal exits without a checkpoint."""
    import signal
    import subprocess
    import sys

    from actors import ray_reaper
    from conftest import ROOT, process_tree, stop_process_group, wait_for

    out = tmp_path / "grid"
    proc = subprocess.Popen([sys.executable, str(ROOT / "launch.py"), "compare", "--heads", "shared", "--seeds", "2",
                             "--out", str(out), "--eval-episodes", "0", "mode=serial", "total_frames=50000000",
                             "envs_per_actor=2", "batch_size=2", "tasks=[goto_goal]", "run.report_every_seconds=1",
                             "run.checkpoint_every_seconds=3600"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        run = out / "shared" / "seed0"
        wait_for(lambda: (run / "metrics.jsonl").exists() and (run / "metrics.jsonl").read_text().strip(), 120,
                 "the first run's first report", proc)
        tree = process_tree(proc.pid)
        assert len(tree) == 1, tree                                        # the one run (serial: no Ray)
        (child, started), = tree.items()
        assert not list((run / "checkpoints").glob("ckpt-*.pt"))        # none yet: the stop must write it
        os.killpg(proc.pid, signal.SIGINT)                                # what a terminal's Ctrl-C does
        output, _ = proc.communicate(timeout=120)
    finally:
        stop_process_group(proc)
    assert proc.returncode == 128 + signal.SIGINT, output
    assert not ray_reaper.alive(child, started), "the run outlived compare"
    assert "stopping (SIGINT)" in output and "the same command continues the grid" in output
    assert list((run / "checkpoints").glob("ckpt-*.pt")), output + (run / "train.log").read_text()[-2000:]
    assert "SIGTERM received" in (run / "train.log").read_text()          # one signal, from compare
    assert not (out / "shared" / "seed1").exists()                      # the next run never started

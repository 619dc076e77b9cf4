"""Bad inputs are one-line errors before any work (Ray not started, nothing written), and one run
per run directory (``LOGDIR/.lock``, ``compare --out``), with real subprocesses and signals."""
import json
import os
import signal
import socket
import subprocess
import sys

import pytest

import launch
from actors import ray_cluster
from conftest import ROOT, TINY, read_jsonl, wait_for
from configs.run_lock import LOCK_NAME, LockHeld, RunLock
from training import run as training_run


@pytest.fixture
def no_ray(monkeypatch):
    """Any attempt to start or join Ray fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("Ray was started before the bad input was refused")
    monkeypatch.setattr(ray_cluster, "start_ray", refuse)


def one_line_error(capsys, argv, code=2):
    assert launch.main(argv) == code
    out = capsys.readouterr()
    assert out.err.count("\n") == 1 and out.err.startswith("error: ") and "Traceback" not in out.err, out.err
    return out.err


BAD = {
    "learning_rate=.inf": "learner.learning_rate=inf is not a finite number",
    "learning_rate=inf": "learner.learning_rate=inf is not a finite number",     # YAML: a string
    "learning_rate=.nan": "learner.learning_rate=nan is not a finite number",
    "learner.discount=.nan": "learner.discount=nan is not a finite number",
    "learner.adam_betas=[.nan, 0.9]": "learner.adam_betas=nan is not a finite number",
    "env.options.tile_size=-.inf": "env.options.tile_size=-inf is not a finite number",
    "actors.resources={slot: .inf}": "actors.resources.slot=inf is not a finite number",
    "learning_rate=-0.001": "learner.learning_rate=-0.001 must be a number >= 0",
    "device=cuda:x": "run.device='cuda:x' is not auto, cpu, cuda or cuda:N",
    "num_actors=100000": "actors.num_actors=100000 is above the upper bound 4096",
    "envs_per_actor=100000": "actors.envs_per_actor=100000 is above the upper bound 256",
    "batch_size=1e6": "learner.batch_size=1000000 is above the upper bound 1024",
    "unroll_length=100000": "learner.unroll_length=100000 is above the upper bound 1000",
}


@pytest.mark.parametrize("override", list(BAD))
def test_bad_values_are_one_line_errors_before_any_work(tmp_path, capsys, no_ray, override):
    err = one_line_error(capsys, ["train", f"logdir={tmp_path}/run", override])
    assert BAD[override] in err
    assert list(tmp_path.iterdir()) == []


def test_more_local_actors_than_the_machine_can_run_is_refused(tmp_path, capsys, no_ray, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    err = one_line_error(capsys, ["train", f"logdir={tmp_path}/run", "num_actors=17"])
    assert "num_actors=17 x actors.cpus_per_actor=1 needs 17 CPUs, more than 8 x this machine's 2 cores" in err
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(ray_cluster, "start_ray", lambda cfg: (_ for _ in ()).throw(RuntimeError("reached")))
    with pytest.raises(RuntimeError, match="reached"):       # 16 = 8 x 2 is allowed
        launch.main(["train", f"logdir={tmp_path}/run16", "num_actors=16", *TINY])


def test_a_cuda_device_without_cuda_is_refused(tmp_path, capsys, no_ray):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    for device in ("cuda", "cuda:3"):
        assert "has no CUDA device" in one_line_error(capsys, ["train", f"logdir={tmp_path}/run", f"device={device}"])
    assert list(tmp_path.iterdir()) == []


def test_malformed_yaml_config_is_one_line(tmp_path, capsys, no_ray):
    bad = tmp_path / "bad.yaml"
    bad.write_text("run:\n  seed: [1\n  logdir: x\n")
    err = one_line_error(capsys, ["train", "--config", str(bad), f"logdir={tmp_path}/run"])
    assert f"config file {str(bad)!r} is not valid YAML at line" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


def test_logdir_under_proc_is_one_line_before_ray_starts(tmp_path):
    """Regression: the watchdog's os.makedirs raised (a traceback) after Ray had started."""
    proc = subprocess.run([sys.executable, str(ROOT / "launch.py"), "train", "logdir=/proc/impala_mu_x", *TINY],
                          cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: run.logdir='/proc/impala_mu_x' cannot be created")
    assert "Ray" not in proc.stdout + proc.stderr


def test_uncreatable_compare_out_is_one_line(capsys):
    err = one_line_error(capsys, ["compare", "--heads", "shared", "--seeds", "1", "--out", "/proc/impala_mu_x", *TINY])
    assert "--out='/proc/impala_mu_x' cannot be created" in err


# ------------------------------------------------------------------ one run per directory
def start_train(args, log):
    return subprocess.Popen([sys.executable, str(ROOT / "launch.py"), "train", *args], cwd=ROOT,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))


@pytest.mark.heavy(11)
def test_second_train_on_a_logdir_is_refused_and_a_killed_holder_is_taken_over(tmp_path):
    run = tmp_path / "run"
    common = [*TINY, "mode=serial", "num_actors=1", "envs_per_actor=2", f"logdir={run}"]
    first = start_train([*common, "total_frames=100000000"], tmp_path / "first.log")
    try:
        wait_for(lambda: read_jsonl(run / "metrics.jsonl"), 180, "the first run to report", first)
        holder = json.loads((run / LOCK_NAME).read_text())
        assert holder["pid"] == first.pid and holder["host"] == socket.gethostname()
        reports = len(read_jsonl(run / "metrics.jsonl"))
        second = subprocess.run([sys.executable, str(ROOT / "launch.py"), "train", *common, "total_frames=100000000"],
                                cwd=ROOT, capture_output=True, text=True, timeout=180)
        assert second.returncode == 1
        assert second.stderr.count("\n") == 1, second.stderr
        assert second.stderr.startswith(f"error: run.logdir={str(run)!r} is in use by pid {first.pid} on host "
                                        f"{socket.gethostname()} since {holder['since']}")
        assert first.poll() is None
        assert [e["event"] for e in read_jsonl(run / "events.jsonl")].count("start") == 1
        wait_for(lambda: len(read_jsonl(run / "metrics.jsonl")) > reports, 60, "the first run to go on", first)
        os.kill(first.pid, signal.SIGKILL)                       # no clean release: the file still names it
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert json.loads((run / LOCK_NAME).read_text())["pid"] == first.pid
    third = subprocess.run([sys.executable, str(ROOT / "launch.py"), "train", *common, "total_frames=64"],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert third.returncode == 0, third.stderr[-2000:]
    [note] = [e for e in read_jsonl(run / "events.jsonl") if e["event"] == "lock_taken_over"]
    assert note["previous"]["pid"] == first.pid and note["previous"]["since"] == holder["since"]
    assert (run / LOCK_NAME).read_text() == ""                  # released cleanly: nothing to take over


def test_a_lock_held_by_another_process_blocks_compare_and_train(tmp_path, capsys, no_ray):
    out = tmp_path / "grid"
    code = (f"import sys; sys.path.insert(0, {str(ROOT)!r}); from configs.run_lock import RunLock; "
            f"lock = RunLock({str(out)!r}, '--out'); print('held', flush=True); sys.stdin.readline()")
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        err = one_line_error(capsys, ["compare", "--heads", "shared", "--seeds", "1", "--out", str(out), *TINY], code=1)
        assert f"--out={str(out)!r} is in use by pid {holder.pid} on host {socket.gethostname()}" in err
        assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]          # no grid.json, no run
        err = one_line_error(capsys, ["train", f"logdir={out}", *TINY], code=1)
        assert f"run.logdir={str(out)!r} is in use by pid {holder.pid}" in err
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    with RunLock(out, "--out") as lock:      # the kernel released it when its holder exited (without release())
        assert lock.taken_over["pid"] == holder.pid and lock.holder["pid"] == os.getpid()
    with RunLock(out, "--out"), pytest.raises(LockHeld, match=f"in use by pid {os.getpid()}"):
        RunLock(out, "--out")                                    # a second open file description conflicts too


def test_a_lock_that_created_the_logdir_removes_it_when_nothing_was_written(tmp_path):
    with RunLock(tmp_path / "new" / "run"):
        assert (tmp_path / "new" / "run" / LOCK_NAME).exists()
    assert not (tmp_path / "new" / "run").exists()
    with RunLock(tmp_path / "kept") as lock:
        (lock.directory / "config.yaml").write_text("x")
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == [LOCK_NAME, "config.yaml"]


def test_a_refused_start_leaves_an_existing_logdir_as_it_was(tmp_path, capsys, no_ray):
    """A start refused after the lock was taken (here resume=must without a checkpoint) removes the lock
    file it created; a lock file that was there before stays."""
    logdir = tmp_path / "run"
    logdir.mkdir()
    (logdir / "notes.txt").write_text("mine")
    err = one_line_error(capsys, ["train", f"logdir={logdir}", "resume=must", *TINY])
    assert "resume=must" in err and "no checkpoint" in err
    assert sorted(p.name for p in logdir.iterdir()) == ["notes.txt"]
    (logdir / LOCK_NAME).write_text("")
    one_line_error(capsys, ["train", f"logdir={logdir}", "resume=must", *TINY])
    assert sorted(p.name for p in logdir.iterdir()) == [LOCK_NAME, "notes.txt"]


def test_resume_never_moves_the_old_run_but_not_the_lock_or_this_runs_ray_record(tmp_path):
    logdir = tmp_path / "run"
    (logdir / "checkpoints").mkdir(parents=True)
    for name in ("metrics.jsonl", LOCK_NAME, f"ray_session-{os.getpid()}.json", "ray_session-1.json"):
        (logdir / name).write_text(name)
    with RunLock(logdir) as lock:
        moved = training_run.move_aside(str(logdir), keep=(LOCK_NAME, f"ray_session-{os.getpid()}.json"))
        assert sorted(p.name for p in logdir.iterdir()) == [LOCK_NAME, f"ray_session-{os.getpid()}.json"]
        assert sorted(os.listdir(moved)) == ["checkpoints", "metrics.jsonl", "ray_session-1.json"]
        with pytest.raises(LockHeld):                            # still the same lock file, still held
            RunLock(logdir)
        assert lock.path.exists()


def test_evaluate_reaps_and_records_in_the_logdir_it_was_given(tmp_path, monkeypatch, capsys):
    """Not in the logdir stored in the checkpoint (a copied or moved run would touch the original)."""
    original, copy = tmp_path / "original", tmp_path / "copy"
    from configs.schema import load_config

    cfg = load_config(None, [*TINY, "mode=serial", "num_actors=1", "envs_per_actor=2", "total_frames=64",
                             f"logdir={original}"])
    assert training_run.train(cfg, install_signal_handlers=False) == "done"
    os.rename(original, copy)
    seen = []

    def start_ray(cfg, logdir=None):
        seen.append(("start", logdir or cfg.run.logdir))
        raise RuntimeError("stop here")
    monkeypatch.setattr(ray_cluster, "start_ray", start_ray)
    with pytest.raises(RuntimeError, match="stop here"):
        launch.main(["evaluate", str(copy), "--episodes", "1", "num_actors=1", "mode=ray"])
    assert seen == [("start", str(copy))]
    assert not original.exists()

"""SIGTERM/SIGINT to a run: the first stops it after the step with a checkpoint; a second one a
second or more later stops it at once, without one; the same signal delivered twice at once (GNU
`timeout` signals its child and then the child's process group) is one request."""
import os
import shutil
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from conftest import ROOT, TINY, events_of, frames_now, launch, read_jsonl, stop_process_group, wait_for
from learner.checkpoint import Checkpointer
from training.run import DUPLICATE_SIGNAL_SECONDS, stop_signal_handler


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_repeat_within_the_window_is_one_request_a_later_one_stops_at_once(capsys):
    loop, clock = SimpleNamespace(stop_reason=None), Clock()
    handler = stop_signal_handler(loop, clock)
    handler(signal.SIGTERM, None)
    assert loop.stop_reason == "SIGTERM" and "writing a checkpoint" in capsys.readouterr().err
    clock.now += DUPLICATE_SIGNAL_SECONDS / 2
    handler(signal.SIGTERM, None)                 # the same request, delivered again: nothing changes
    handler(signal.SIGINT, None)
    assert loop.stop_reason == "SIGTERM" and capsys.readouterr().err == ""
    clock.now = 100.0 + DUPLICATE_SIGNAL_SECONDS  # a second request
    with pytest.raises(KeyboardInterrupt, match="SIGINT"):
        handler(signal.SIGINT, None)


@pytest.mark.skipif(shutil.which("timeout") is None, reason="GNU timeout not installed")
def test_gnu_timeout_stops_a_run_with_a_checkpoint(tmp_path):
    # timeout -s TERM signals the run and then its own process group, which holds the run: two SIGTERMs
    run = tmp_path / "run"
    with open(tmp_path / "log", "w") as log:
        proc = subprocess.Popen(["timeout", "-s", "TERM", "10", sys.executable, str(ROOT / "launch.py"), "train",
                                 *TINY, "mode=serial", "num_actors=1", "envs_per_actor=2", f"logdir={run}",
                                 "total_frames=100000000", "run.report_every_seconds=1"],
                                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    wait_for(lambda: frames_now(run) > 0, 60, "the run to report", proc)
    assert proc.wait(timeout=120) == 124                   # timeout's own status: it timed out
    text = (tmp_path / "log").read_text()
    assert text.count("SIGTERM received") == 1, text[-2000:]
    [ckpt] = events_of(run, "checkpoint")[-1:]
    assert ckpt["why"] == "SIGTERM"
    state, path = Checkpointer(run / "checkpoints").load_latest()
    assert str(path) == ckpt["path"] and state["frames"] == ckpt["frames"] == read_jsonl(run / "metrics.jsonl")[-1]["frames"]


def test_two_sigterms_at_once_write_one_checkpoint(tmp_path):
    # a scheduler that signals the job's process group and its main process: two SIGTERMs 50 ms apart
    run = tmp_path / "run"
    proc = launch([*TINY, "mode=serial", "num_actors=1", "envs_per_actor=2", f"logdir={run}",
                   "total_frames=100000000", "run.report_every_seconds=1"], log=tmp_path / "log")
    try:
        wait_for(lambda: frames_now(run) > 0, 60, "the run to report", proc)
        os.kill(proc.pid, signal.SIGTERM)
        time.sleep(0.05)
        os.kill(proc.pid, signal.SIGTERM)
        # 143 (the run's status after a SIGTERM), or killed by the second SIGTERM once the checkpoint is
        # written and Python, exiting, has put back the default handlers (a tiny run stops within 50 ms)
        assert proc.wait(timeout=120) in (128 + signal.SIGTERM, -signal.SIGTERM)
    finally:
        stop_process_group(proc)
    assert events_of(run, "checkpoint")[-1]["why"] == "SIGTERM"
    assert (tmp_path / "log").read_text().count("SIGTERM received") == 1

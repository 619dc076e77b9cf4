"""A run that fails keeps its work: a final checkpoint whenever the learner's state is intact, the
error (and traceback) in events.jsonl, a one-line TrainingError. The real-Ray and subprocess cases
(too many actor restarts, actors that cannot be rebuilt) are in test_faults.py."""
from pathlib import Path

import pytest

import launch
from configs.errors import TrainingError
from conftest import TINY, read_jsonl
from configs.schema import load_config
from learner.checkpoint import Checkpointer
from training import run as training_run

SERIAL = TINY + ["mode=serial", "num_actors=2", "envs_per_actor=2", "batch_size=3"]


def train(logdir, on_step=None, extra=()):
    cfg = load_config(None, SERIAL + [f"logdir={logdir}", "total_frames=2400", *extra])
    return training_run.train(cfg, on_step=on_step, install_signal_handlers=False)


def errors(logdir):
    return [e for e in read_jsonl(Path(logdir) / "events.jsonl") if e["event"] == "error"]


def test_an_exception_in_the_loop_writes_a_final_checkpoint(tmp_path):
    def fail_at_3(loop):
        if loop.learner.num_updates == 3:
            raise OSError("disk quota exceeded (simulated)")

    with pytest.raises(TrainingError) as info:
        train(tmp_path / "a", fail_at_3)
    message = str(info.value)
    assert "\n" not in message and "OSError: disk quota exceeded (simulated)" in message
    assert "72 frames (3 updates)" in message and "run the same command to resume" in message
    state, path = Checkpointer(tmp_path / "a" / "checkpoints").load_latest()
    assert state["updates"] == 3 and info.value.checkpoint == str(path)
    [error] = errors(tmp_path / "a")
    assert error["checkpoint"] == str(path) and error["updates"] == 3
    assert "fail_at_3" in error["traceback"] and "Traceback" in error["traceback"]
    ckpt = [e for e in read_jsonl(tmp_path / "a" / "events.jsonl") if e["event"] == "checkpoint"][-1]
    assert ckpt["why"] == "error"
    assert train(tmp_path / "a", extra=["total_frames=240"]) == "done"      # and it resumes from there


def test_a_step_that_fails_before_changing_the_weights_still_saves(tmp_path, monkeypatch):
    from learner import learner as step

    real, calls = step.unroll_loss, []

    def loss_fails_on_the_5th(*args, **kwargs):      # e.g. out of memory in the forward pass
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(step, "unroll_loss", loss_fails_on_the_5th)
    with pytest.raises(TrainingError, match="out of memory"):
        train(tmp_path / "b")
    assert Checkpointer(tmp_path / "b" / "checkpoints").load_latest()[0]["updates"] == 4


def test_a_step_that_fails_while_applying_the_update_does_not_save(tmp_path, monkeypatch):
    from learner import learner as step

    real = step.Learner.step

    def break_optimizer_at_3(self, batch):
        if self.num_updates == 2:
            def half_applied():
                next(self.agent.parameters()).data.add_(1.0)       # changed, then the step dies
                raise RuntimeError("device lost mid-update (simulated)")
            self.optimizer.step = half_applied
        return real(self, batch)

    monkeypatch.setattr(step.Learner, "step", break_optimizer_at_3)
    with pytest.raises(TrainingError, match="interrupted an optimizer step"):
        train(tmp_path / "c", extra=["run.checkpoint_every_frames=24"])
    state, _ = Checkpointer(tmp_path / "c" / "checkpoints").load_latest()
    assert state["updates"] == 2                                   # the periodic one, not a corrupt state
    [error] = errors(tmp_path / "c")
    assert error["checkpoint"] is None and "optimizer step" in error["note"]


def test_actors_that_cannot_be_built_are_reported_without_a_checkpoint(tmp_path, monkeypatch):
    from actors import actor

    def no_envs(*args, **kwargs):
        raise RuntimeError("cannot build env (simulated)")

    monkeypatch.setattr(actor.UnrollWorker, "__init__", no_envs)
    with pytest.raises(TrainingError, match="could not start training: RuntimeError: cannot build env"):
        train(tmp_path / "d")
    assert Checkpointer(tmp_path / "d" / "checkpoints").paths() == []
    [error] = errors(tmp_path / "d")
    assert error["checkpoint"] is None


def test_main_prints_one_line_and_exits_1(tmp_path, monkeypatch, capsys):
    from training.loop import TrainLoop

    def boom(self, on_step=None):
        raise TrainingError("training stopped at 0 frames (0 updates) by X: y; nothing saved")

    monkeypatch.setattr(TrainLoop, "run", boom)
    code = launch.main(["train", *SERIAL, f"logdir={tmp_path / 'e'}"])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "error: training stopped at 0 frames (0 updates) by X: y; nothing saved"


def test_a_full_disk_during_the_clean_up_does_not_replace_the_real_error(tmp_path, monkeypatch):
    """The loop fails, the final checkpoint and the events file then hit a full disk: the error
    raised (and printed in one line) is still the loop's, naming the failed checkpoint."""
    import errno

    from training.report import Reporter

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    def fail_at_3(loop):
        if loop.learner.num_updates == 3:
            monkeypatch.setattr(Checkpointer, "save", disk_full)
            monkeypatch.setattr(Reporter, "event", disk_full)
            monkeypatch.setattr(Reporter, "close", disk_full)
            raise RuntimeError("the real error")

    with pytest.raises(TrainingError) as info:
        train(tmp_path / "d", fail_at_3)
    message = str(info.value)
    assert "\n" not in message and "RuntimeError: the real error" in message
    assert "the final checkpoint failed too (OSError: [Errno 28] No space left on device)" in message
    assert info.value.checkpoint is None

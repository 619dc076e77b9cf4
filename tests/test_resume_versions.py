"""Versioned resume: the checkpoint records its format, code version, task order and instruction
encoding; a newer format, unknown config keys, another task order or encoding are refused in one
line; missing config keys are listed with the defaults used; a longer ``total_frames`` is logged
with the learning rates it implies, and ``learner.lr_schedule_resume=continue`` keeps the rate."""
import shutil
from pathlib import Path

import pytest

import launch
from conftest import TINY, read_jsonl
from configs.schema import load_config
from learner.checkpoint import Checkpointer
from learner.optim import LinearDecay
from learner.provenance import CHECKPOINT_FORMAT
from training import run as training_run

SERIAL = TINY + ["mode=serial", "num_actors=2", "envs_per_actor=2", "batch_size=3", "learning_rate=0.001"]
FRAMES_PER_UPDATE = 8 * 3          # T x B x action repeat 1


def train(logdir, extra=(), stop_after=None, frames=240, rates=None):
    cfg = load_config(None, SERIAL + [f"logdir={logdir}", f"total_frames={frames}", *extra])

    def on_step(loop):
        if rates is not None:                        # the rate the step just used
            rates.append(loop.learner.optimizer.param_groups[0]["lr"])
        if stop_after is not None and loop.learner.num_updates >= stop_after:
            loop.stop_reason = "test-stop"

    return training_run.train(cfg, on_step=on_step, install_signal_handlers=False)


@pytest.fixture(scope="module")
def two_updates(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("versions") / "run"
    assert train(logdir, stop_after=2) == "test-stop"
    return logdir


def copy_with(two_updates, tmp_path, edit=None):
    logdir = tmp_path / "run"
    shutil.copytree(two_updates, logdir)
    if edit is not None:
        ck = Checkpointer(logdir / "checkpoints")
        state, _ = ck.load_latest()
        edit(state)
        ck.save(state, state["updates"])
    return logdir


def resume_event(logdir):
    [event] = [e for e in read_jsonl(Path(logdir) / "events.jsonl") if e["event"] == "resume"]
    return event


def test_the_checkpoint_records_format_code_version_tasks_and_encoding(two_updates):
    state, _ = Checkpointer(two_updates / "checkpoints").load_latest()
    assert state["format"] == CHECKPOINT_FORMAT == 3
    assert state["code_version"]["package"] == "0.1.0"
    assert state["code_version"]["git"] is None or len(state["code_version"]["git"]) == 40
    from envs.suites import get_suite

    suite = get_suite("embedded")
    assert state["identity"] == {"task_names": list(suite.task_names),
                                 "instruction_encoding": f"crc32-buckets1000-words{suite.instruction_length}"}


def _edit_format(state):
    state["format"] = 99


def _edit_unknown_key(state):
    state["config"]["learner"]["new_knob"] = 1
    state["config"]["run"]["another"] = "x"


def _edit_task_order(state):
    state["identity"]["task_names"] = state["identity"]["task_names"][::-1]


def _edit_encoding(state):
    state["identity"]["instruction_encoding"] = "crc32-buckets500-words16"


@pytest.mark.parametrize("edit, message", [
    (_edit_format, "checkpoint format 99, newer than this code's 3"),
    (_edit_unknown_key, "config has keys this code does not know (learner.new_knob, run.another)"),
    (_edit_task_order, "suite's tasks (in task-id order) were"),
    (_edit_encoding, "instruction encoding was 'crc32-buckets500-words16'"),
], ids=["newer format", "unknown keys", "reordered tasks", "other encoding"])
def test_an_unusable_checkpoint_is_refused_in_one_line_before_anything_is_written(two_updates, tmp_path, capsys,
                                                                                   edit, message):
    logdir = copy_with(two_updates, tmp_path, edit)
    before = {p.name: p.stat().st_mtime_ns for p in logdir.rglob("*") if p.name != ".lock"}
    rc = launch.main(["train", *SERIAL, f"logdir={logdir}", "total_frames=480"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and message in err and "Traceback" not in err, err
    # nothing of the run is touched; the one file a start writes is its lock (configs/run_lock.py),
    # taken before the checkpoint is read and emptied again on the way out
    after = {p.name: p.stat().st_mtime_ns for p in logdir.rglob("*") if p.name != ".lock"}
    assert after == before
    assert (logdir / ".lock").read_text() == ""


def test_missing_config_keys_take_the_defaults_listed_in_the_resume_event(two_updates, tmp_path):
    def drop(state):
        del state["config"]["learner"]["entropy_cost"]
        del state["config"]["run"]["score_window_episodes"]

    logdir = copy_with(two_updates, tmp_path, drop)
    assert train(logdir, stop_after=3) == "test-stop"
    from configs.schema import TrainConfig

    defaults = TrainConfig().to_dict()
    # the run's own config (embedded.yaml) sets these too, but what the checkpoint lacked is named
    assert resume_event(logdir)["defaults_used"] == {
        "learner.entropy_cost": defaults["learner"]["entropy_cost"],
        "run.score_window_episodes": defaults["run"]["score_window_episodes"]}
    assert resume_event(logdir)["code_version"] == "same"


def test_linear_decay_rescale_and_continue_by_hand():
    old = LinearDecay(0.1, total_frames=1000)
    old.advance(600)
    assert old.learning_rate == pytest.approx(0.04)
    rescaled = LinearDecay(0.1, total_frames=2000)
    rescaled.load_state_dict(old.state_dict())
    assert rescaled.learning_rate == pytest.approx(0.07)                    # 0.1 (1 - 600/2000): a jump
    kept = LinearDecay(0.1, total_frames=2000)
    kept.load_state_dict(old.state_dict(), keep_rate=True)
    assert kept.learning_rate == pytest.approx(0.04)                        # no jump
    kept.advance(700)
    assert kept.learning_rate == pytest.approx(0.02)                        # 0.04 (1 - 700/1400)
    again = LinearDecay(0.1, total_frames=2000)                             # a later resume, same budget
    again.load_state_dict(kept.state_dict(), keep_rate=True)
    assert again.learning_rate == pytest.approx(0.02)
    again.advance(700)
    assert again.learning_rate == 0.0
    legacy = LinearDecay(0.1, total_frames=2000)                            # a schedule saved without its budget
    legacy.load_state_dict({"frames": 600}, keep_rate=True, saved_total_frames=1000)
    assert legacy.learning_rate == pytest.approx(0.04)


@pytest.mark.parametrize("policy, now", [("rescale", 0.001 * (1 - 48 / 480)), ("continue", 0.001 * (1 - 48 / 240))])
def test_extending_total_frames_logs_the_learning_rates_and_continue_keeps_the_rate(two_updates, tmp_path,
                                                                                   policy, now):
    logdir = copy_with(two_updates, tmp_path)
    rates = []
    assert train(logdir, [f"learner.lr_schedule_resume={policy}"], frames=480, stop_after=4, rates=rates) == "test-stop"
    event = resume_event(logdir)
    assert event["total_frames"] == "240 -> 480" and event["lr_schedule_resume"] == policy
    assert event["learning_rate_at_checkpoint"] == pytest.approx(0.001 * (1 - 48 / 240))   # 0.0008
    assert event["learning_rate_now"] == pytest.approx(now)
    # the rates updates 3 and 4 used (frames 48 and 72 before them)
    if policy == "rescale":
        expected = [0.001 * (1 - 48 / 480), 0.001 * (1 - 72 / 480)]
        assert event["learning_rate_schedule"] == "0.001 * max(0, 1 - f / 480)"
    else:
        expected = [0.0008, 0.0008 * (1 - 24 / 432)]
        assert event["learning_rate_schedule"] == "0.0008 * max(0, 1 - (f - 48) / (480 - 48))"
    assert rates == pytest.approx(expected)
    state, _ = Checkpointer(logdir / "checkpoints").load_latest()
    assert state["learner"]["schedule"]["total_frames"] == 480


def test_the_same_budget_logs_no_schedule_change(two_updates, tmp_path):
    logdir = copy_with(two_updates, tmp_path)
    assert train(logdir, ["learner.lr_schedule_resume=continue"], stop_after=3) == "test-stop"
    event = resume_event(logdir)
    assert "total_frames" not in event and "learning_rate_now" not in event


def test_lr_schedule_resume_is_validated():
    with pytest.raises(ValueError, match="lr_schedule_resume.*continue"):
        load_config(None, ["learner.lr_schedule_resume=keep"])


def test_evaluate_names_unknown_config_keys_in_one_line(two_updates, tmp_path, capsys):
    logdir = copy_with(two_updates, tmp_path, _edit_unknown_key)
    rc = launch.main(["evaluate", str(logdir), "mode=serial"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "(learner.new_knob, run.another)" in err, err

"""No code runs from a checkpoint: malicious checkpoints of each kind (old single-file format, a
poisoned pickled ``rng`` / ``batcher`` entry with a valid sidecar, a poisoned serial env state) are
refused by ``launch.py evaluate``, resume (``launch.py train logdir=...``), compare's checkpoint
reading and ``training.restore.load_agent``, and their payload (creating a marker file) never runs.
Legitimate older checkpoints still load (``--trust-checkpoint`` where they need unpickling)."""
import hashlib
import io
import pickle
import shutil
from pathlib import Path

import pytest
import torch

import launch
from configs.errors import ConfigError
from configs.schema import load_config
from conftest import TINY, read_jsonl
from evaluation.evaluate import prepare
from learner.checkpoint import LEGACY_MAGIC, Checkpointer, UntrustedCheckpoint, load_file
from training import run as training_run
from training.compare import GridError, checkpoint_frames
from training.loop import unroll_from_plain
from training.restore import load_agent

SERIAL = TINY + ["mode=serial", "num_actors=2", "envs_per_actor=2", "batch_size=3"]


class Payload:
    """Unpickling this creates ``marker`` (what a shell command would do, harmlessly)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def train(logdir, extra=(), stop_after=None, frames=240, trust=False):
    cfg = load_config(None, SERIAL + [f"logdir={logdir}", f"total_frames={frames}", *extra])

    def on_step(loop):
        if stop_after is not None and loop.learner.num_updates >= stop_after:
            loop.stop_reason = "test-stop"

    return training_run.train(cfg, on_step=on_step, install_signal_handlers=False, trust_checkpoint=trust)


@pytest.fixture(scope="module")
def good_run(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("safety") / "good"
    assert train(logdir, stop_after=2) == "test-stop"
    return logdir


def copy_run(good_run, tmp_path, name="run"):
    logdir = tmp_path / name
    shutil.copytree(good_run, logdir)
    return logdir


def newest(logdir):
    return Checkpointer(Path(logdir) / "checkpoints").paths()[-1]


def resave(logdir, state):
    """Replaces the newest checkpoint with ``state`` under the same name, with a valid sidecar."""
    Checkpointer(Path(logdir) / "checkpoints").save(state, state["updates"])


def main_line(argv, capsys):
    rc = launch.main(argv)
    err = capsys.readouterr().err.strip()
    return rc, err


# ---------------------------------------------------------------------- the old single-file format
def legacy_file(path: Path, marker: Path) -> None:
    buffer = io.BytesIO()
    torch.save({"updates": 9, "frames": 9, "evil": Payload(marker)}, buffer)
    payload = buffer.getvalue()
    path.write_bytes(LEGACY_MAGIC + hashlib.sha256(payload).digest() + payload)


def test_an_old_format_checkpoint_is_refused_everywhere_and_runs_nothing(good_run, tmp_path, capsys):
    logdir = copy_run(good_run, tmp_path)
    marker = tmp_path / "pwned"
    evil = logdir / "checkpoints" / "ckpt-0000000099.pt"
    legacy_file(evil, marker)

    rc, err = main_line(["evaluate", str(logdir), "--episodes", "1", "mode=serial"], capsys)
    assert rc == 2 and "\n" not in err and "old single-file checkpoint format" in err and "--trust-checkpoint" in err
    rc, err = main_line(["evaluate", str(logdir), "--checkpoint", str(evil), "mode=serial"], capsys)
    assert rc == 2 and "\n" not in err and "--trust-checkpoint" in err
    rc, err = main_line(["train", *SERIAL, f"logdir={logdir}", "total_frames=480"], capsys)
    assert rc == 2 and "\n" not in err and str(evil) in err and "--trust-checkpoint" in err
    with pytest.raises(GridError, match="trust-checkpoint"):
        checkpoint_frames(str(logdir))
    for source in (evil, logdir):
        with pytest.raises(UntrustedCheckpoint, match="old single-file"):
            load_agent(source)
    assert not marker.exists()
    assert sorted(p.name for p in (logdir / "checkpoints").iterdir()) == \
        sorted(p.name for p in (good_run / "checkpoints").iterdir()) + [evil.name]   # nothing moved or lost
    # the explicit trust flag is what runs it (the demonstration that the refusal above mattered)
    load_file(evil, trust=True)
    assert marker.exists()


def test_a_legitimate_old_format_checkpoint_loads_with_trust(good_run, tmp_path):
    state, _ = Checkpointer(good_run / "checkpoints").load_latest()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    old = tmp_path / "ckpt-0000000002.pt"
    old.write_bytes(LEGACY_MAGIC + hashlib.sha256(buffer.getvalue()).digest() + buffer.getvalue())
    agent, config = load_agent(old, trust=True)
    for k, v in state["learner"]["model"].items():
        assert torch.equal(agent.state_dict()[k], v), k


# ---------------------------------------------------------------------- pickled entries (format 2)
@pytest.mark.parametrize("entry", ["rng", "batcher"])
def test_a_poisoned_pickled_entry_with_a_valid_sidecar_runs_nothing(good_run, tmp_path, capsys, entry):
    logdir = copy_run(good_run, tmp_path)
    marker = tmp_path / "pwned"
    state = torch.load(newest(logdir))
    state[entry] = pickle.dumps(Payload(marker))
    resave(logdir, state)

    rc, err = main_line(["train", *SERIAL, f"logdir={logdir}", "total_frames=480"], capsys)
    assert rc == 2 and "\n" not in err and f"'{entry}' entry is pickled" in err and "--trust-checkpoint" in err
    assert not (logdir / "events.jsonl").read_text().count('"event": "resume"')
    # reading the weights never touches the entry: evaluate, compare and load_agent work, inertly
    assert prepare(logdir, episodes=1, overrides=["mode=serial"]).updates == 2
    assert checkpoint_frames(str(logdir)) == state["frames"]
    load_agent(logdir)
    assert not marker.exists()


def test_a_legitimate_format_2_checkpoint_resumes_only_with_trust(good_run, tmp_path):
    logdir = copy_run(good_run, tmp_path)
    state = torch.load(newest(logdir))
    rng = state["rng"]
    state["batcher"] = pickle.dumps([unroll_from_plain(u) for u in state["batcher"]])
    state["rng"] = pickle.dumps({"python": (rng["python"]["version"], tuple(rng["python"]["state"].tolist()),
                                            rng["python"]["gauss_next"]),
                                 "numpy": (rng["numpy"]["kind"], rng["numpy"]["keys"].numpy().astype("uint32"),
                                           rng["numpy"]["pos"], rng["numpy"]["has_gauss"],
                                           rng["numpy"]["cached_gaussian"]),
                                 "torch": rng["torch"]})
    state["format"] = 2
    resave(logdir, state)
    with pytest.raises(ConfigError, match="trust-checkpoint"):
        train(logdir, frames=480)
    # with trust: the same updates as resuming the plain (format 3) checkpoint
    plain = copy_run(good_run, tmp_path, "plain")
    assert train(logdir, frames=480, stop_after=4, trust=True) == "test-stop"
    assert train(plain, frames=480, stop_after=4) == "test-stop"
    a, b = (Checkpointer(d / "checkpoints").load_latest()[0] for d in (logdir, plain))
    assert a["updates"] == b["updates"] == 4
    for k, v in a["learner"]["model"].items():
        assert torch.equal(b["learner"]["model"][k], v), k


# ---------------------------------------------------------------------- serial env states
def test_a_poisoned_env_state_is_not_unpickled(good_run, tmp_path):
    logdir = copy_run(good_run, tmp_path)
    marker = tmp_path / "pwned"
    state = torch.load(newest(logdir))
    for actor in state["source"]["actors"]:
        actor["episodes"] = pickle.dumps(Payload(marker))     # its mac no longer matches
    resave(logdir, state)
    assert prepare(logdir, episodes=1, overrides=["mode=serial"]).updates == 2     # reading never touches it
    assert checkpoint_frames(str(logdir)) == state["frames"]
    load_agent(logdir)
    assert train(logdir, frames=480, stop_after=3) == "test-stop"
    [note] = [e for e in read_jsonl(logdir / "events.jsonl") if e["event"] == "resume_not_exact"]
    assert "not signed with this user's key" in note["reason"] and "new episodes" in note["consequence"]
    assert not marker.exists()


def test_env_states_of_another_user_restore_only_with_trust(good_run, tmp_path, monkeypatch):
    """Another key = another user: the resume starts new episodes; with trust it continues exactly."""
    exact = copy_run(good_run, tmp_path, "exact")
    assert train(exact, frames=480, stop_after=4) == "test-stop"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "other_user"))
    foreign, trusted = copy_run(good_run, tmp_path, "foreign"), copy_run(good_run, tmp_path, "trusted")
    assert train(foreign, frames=480, stop_after=4) == "test-stop"
    assert [e for e in read_jsonl(foreign / "events.jsonl") if e["event"] == "resume_not_exact"]
    assert train(trusted, frames=480, stop_after=4, trust=True) == "test-stop"
    assert not [e for e in read_jsonl(trusted / "events.jsonl") if e["event"] == "resume_not_exact"]
    a, b = (Checkpointer(d / "checkpoints").load_latest()[0] for d in (exact, trusted))
    for k, v in a["learner"]["model"].items():
        assert torch.equal(b["learner"]["model"][k], v), k
    assert (tmp_path / "other_user" / "impala-mu" / "checkpoint.key").stat().st_mode & 0o777 == 0o600


# ---------------------------------------------------------------------- one-line errors
def test_every_checkpoint_corrupt_is_one_line_and_nothing_is_touched(good_run, tmp_path, capsys):
    logdir = copy_run(good_run, tmp_path)
    for path in Checkpointer(logdir / "checkpoints").paths():
        path.write_bytes(b"truncated")
    before = sorted(p.name for p in (logdir / "checkpoints").iterdir())
    rc, err = main_line(["train", *SERIAL, f"logdir={logdir}", "total_frames=480"], capsys)
    assert rc == 2 and "\n" not in err and "every checkpoint in" in err and "is corrupt" in err, err
    rc, err = main_line(["evaluate", str(logdir), "mode=serial"], capsys)
    assert rc == 2 and "\n" not in err and "every checkpoint in" in err, err
    assert sorted(p.name for p in (logdir / "checkpoints").iterdir()) == before

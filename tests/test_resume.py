"""Resume decisions per config field, serial mode with envs that cannot be copied, checkpoints a
user can open (torch.load, training.restore.load_agent), fresh starts that keep the old run."""
import shutil
from pathlib import Path

import pytest
import torch

from agent import Agent
from configs.errors import ConfigError
from conftest import ROOT, TINY, events_of
from configs.schema import load_config
from learner.checkpoint import TMP_PREFIX, Checkpointer
from training import run as training_run
from training.restore import load_agent

# T=8, B=3 columns from actors of 2 envs: the batcher holds leftovers at every checkpoint
SERIAL = TINY + ["mode=serial", "num_actors=2", "envs_per_actor=2", "batch_size=3"]


def run(logdir, extra=(), stop_after=None, frames=240, base=SERIAL, config=None):
    cfg = load_config(config, base + [f"logdir={logdir}", f"total_frames={frames}", *extra])

    def on_step(loop):
        if stop_after is not None and loop.learner.num_updates >= stop_after:
            loop.stop_reason = "test-stop"

    return training_run.train(cfg, on_step=on_step, install_signal_handlers=False)


def latest(logdir):
    return Checkpointer(Path(logdir) / "checkpoints").load_latest()


# ---------------------------------------------------------------------- adapt
def test_resume_with_other_envs_per_actor_rebuilds_serial_actors(tmp_path):
    logdir = tmp_path / "e"
    assert run(logdir, stop_after=2) == "test-stop"
    assert run(logdir, ["envs_per_actor=3"]) == "done"
    [note] = events_of(logdir, "resume_not_exact")
    assert "envs_per_actor" in note["reason"] and "new episodes" in note["consequence"]
    state, _ = latest(logdir)
    assert state["updates"] == 10 and state["source"]["incarnations"] == [1, 1]   # new seeds, not a replay
    assert [len(a["task_ids"]) for a in state["source"]["actors"]] == [3, 3]


def test_resume_with_other_unroll_length_drops_the_saved_queue(tmp_path):
    logdir = tmp_path / "u"
    assert run(logdir, stop_after=3) == "test-stop"
    saved, _ = latest(logdir)
    queued = saved["batcher"]                                       # plain dicts of tensors
    assert queued and all(u["reward"].shape[0] == 9 for u in queued)   # leftovers of T=8 unrolls
    assert run(logdir, ["unroll_length=6"], frames=saved["frames"] + 5 * 6 * 3) == "done"
    [drop] = events_of(logdir, "unrolls_dropped")
    assert drop["count"] == len(queued) and drop["source"] == "saved batch queue"
    assert "learner.unroll_length=6" in drop["reason"]
    resume = events_of(logdir, "resume")[-1]
    assert "learner.unroll_length" in resume["changed"]
    final, _ = latest(logdir)
    assert final["frames"] == saved["frames"] + 5 * 6 * 3 and final["updates"] == saved["updates"] + 5
    assert final["reporter"]["unrolls_dropped"] == len(queued)


# ---------------------------------------------------------------------- refuse
@pytest.mark.parametrize("change, field", [("seed=1", "run.seed"), ("agent.core_size=16", "agent.core_size")])
def test_resume_refuses_a_changed_seed_or_network_naming_the_field(tmp_path, change, field):
    logdir = tmp_path / "s"
    run(logdir, stop_after=1)
    before = sorted(p.name for p in (logdir / "checkpoints").iterdir())
    with pytest.raises(ConfigError, match=f"{field}.*resume=never"):
        run(logdir, [change])
    assert sorted(p.name for p in (logdir / "checkpoints").iterdir()) == before


def test_changed_action_repeat_is_refused_but_an_explicit_default_is_not(tmp_path):
    from envs.suites import get_suite

    dmlab = str(ROOT / "configs" / "dmlab30.yaml")
    saved = load_config(dmlab).to_dict()
    del saved["env"]["options"]["action_repeat"]                      # left to the suite (4)
    same = load_config(dmlab, ["env.options.action_repeat=4"])
    assert training_run.check_resume(same, saved, get_suite("dmlab30", action_repeat=4)) == []
    other = load_config(dmlab, ["env.options.action_repeat=8"])
    with pytest.raises(ConfigError, match="env.options.action_repeat: checkpoint None vs now 8"):
        training_run.check_resume(other, saved, get_suite("dmlab30", action_repeat=8))


# ---------------------------------------------------------------------- run.resume
def test_resume_never_moves_the_old_run_aside_and_must_needs_a_checkpoint(tmp_path):
    logdir = tmp_path / "f"
    with pytest.raises(ConfigError, match="resume=must.*no checkpoint"):
        run(logdir, ["resume=must"])
    assert not logdir.exists()
    assert run(logdir, stop_after=2) == "test-stop"
    old_ckpts = sorted(p.name for p in (logdir / "checkpoints").iterdir())
    assert run(logdir, ["resume=never", "seed=3"], stop_after=1) == "test-stop"   # a refused change is fine
    [old] = list(tmp_path.glob("f.old-*"))
    assert sorted(p.name for p in (old / "checkpoints").iterdir()) == old_ckpts   # nothing deleted
    assert not events_of(old, "moved_aside") and events_of(logdir, "moved_aside")[0]["old_run"] == str(old)
    assert not events_of(logdir, "resume") and latest(logdir)[0]["updates"] == 1
    assert run(logdir, ["seed=3", "resume=must"]) == "done"                   # resumes the new run


# ---------------------------------------------------------------------- serial mode, uncopyable envs


def test_serial_mode_checkpoints_and_resumes_envs_that_cannot_be_copied(tmp_path, fake_lab):
    logdir = tmp_path / "d"
    args = ["suite=dmlab30", "tasks=[rooms_watermaze,language_select_described_object]"]
    frames = 10 * 8 * 3 * 4   # action repeat 4
    assert run(logdir, args, stop_after=3, frames=frames) == "test-stop"
    [note] = events_of(logdir, "serial_envs_not_copyable")
    assert "cannot pickle 'deepmind_lab.Lab' object" in note["error"] and "new episodes" in note["consequence"]
    assert run(logdir, args, frames=frames) == "done"
    [resumed] = events_of(logdir, "resume_not_exact")
    assert "could not be copied" in resumed["reason"]
    state, _ = latest(logdir)
    assert state["updates"] == 10 and state["source"]["incarnations"] == [1, 1]


# ---------------------------------------------------------------------- opening checkpoints
def test_checkpoint_opens_with_torch_load_and_load_agent(tmp_path):
    logdir = tmp_path / "o"
    run(logdir, ["head=taskid_mi"], stop_after=2)
    _, path = latest(logdir)
    plain = torch.load(path)                                    # weights_only=True, torch's default
    assert plain["updates"] == 2 and plain["config"]["agent"]["head"] == "taskid_mi"
    for source in (path, logdir):
        agent, config = load_agent(source)
        assert config.agent.head == "taskid_mi" and config.run.logdir == str(logdir)
        assert not agent.training
        weights = agent.state_dict()
        assert weights.keys() == plain["learner"]["model"].keys()
        for k, v in plain["learner"]["model"].items():
            assert torch.equal(weights[k], v), k
    fresh = Agent(config.agent, **{**plain["agent_spec"], "frame_shape": tuple(plain["agent_spec"]["frame_shape"])})
    assert any(not torch.equal(fresh.state_dict()[k], v) for k, v in plain["learner"]["model"].items())


def test_resume_from_a_checkpoint_before_the_mi_context_scale(tmp_path):
    """A checkpoint without "mi_parametrization" (version 1: the MI layer read z, not z / C) resumes
    as the same run: its MI parameters x C and Adam's moments / C and / C^2 on loading, so the next
    update (serial mode: deterministic) gives what the current-format checkpoint gives."""
    head = ["head=taskid_mi", "agent.mi_form=diagonal"]
    new, old = tmp_path / "new", tmp_path / "old"
    run(new, head, stop_after=2)
    shutil.copytree(new, old)
    state, path = latest(old)
    c = float(state["config"]["agent"]["context_size"])
    names = list(state["learner"]["model"])           # parameters only, in named_parameters order
    del state["mi_parametrization"]
    for key in ("head.mi.gate_weight", "head.mi.context.weight"):
        state["learner"]["model"][key] = state["learner"]["model"][key] / c
        moments = state["learner"]["optimizer"]["state"][names.index(key)]
        moments.update(exp_avg=moments["exp_avg"] * c, exp_avg_sq=moments["exp_avg_sq"] * c * c)
    path.unlink()
    Checkpointer(old / "checkpoints").save(state, state["updates"])

    for logdir in (new, old):
        assert run(logdir, head, stop_after=3) == "test-stop"
    (a, _), (b, _) = latest(new), latest(old)
    assert a["updates"] == b["updates"] == 3 and b["mi_parametrization"] == Agent.PARAMETRIZATION
    for key, value in a["learner"]["model"].items():
        torch.testing.assert_close(b["learner"]["model"][key], value, rtol=1e-4, atol=1e-6)


def test_leftovers_of_a_killed_save_are_removed_when_the_run_starts(tmp_path):
    logdir = tmp_path / "t"
    run(logdir, stop_after=1)
    leftover = logdir / "checkpoints" / f"{TMP_PREFIX}x1y2z3"
    leftover.write_bytes(b"half a checkpoint")
    assert run(logdir) == "done"
    assert not leftover.exists()
    [removed] = events_of(logdir, "removed_partial_saves")
    assert removed["files"] == [leftover.name]

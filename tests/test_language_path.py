"""Language tasks end to end (serial mode): the learner's batches hold the hashed mission of the
observation at each step, the instruction changes the policy, and a too-small instruction
vocabulary is refused before anything is written."""
import gymnasium as gym
import pytest
import torch

from agent import CoreState, agent_input_from_unroll
from configs.errors import ConfigError
from conftest import TINY
from configs.schema import load_config
from configs.suites import resolve_suite
from envs.instructions import encode_instruction
from learner.learner import Learner
from training import run as training_run

T, UPDATES = 8, 6


class MissionLog(gym.Wrapper):
    """Records the mission of every observation the actor goes on from (a finished episode's
    last observation is replaced by the next reset's)."""

    def __init__(self, env, log):
        super().__init__(env)
        self.log = log

    def mission(self):
        return self.env.unwrapped.env.mission      # MiniGridTask -> its MiniGrid env

    def reset(self, **kwargs):
        out = self.env.reset(**kwargs)
        self.log.append(self.mission())
        return out

    def step(self, action):
        out = self.env.step(action)
        if not (out[2] or out[3]):
            self.log.append(self.mission())
        return out


class MissionSuite:
    def __init__(self, inner):
        self.inner = inner
        self.logs = []                              # (task_id, missions) per env, in creation order

    def make_env(self, task_id, seed, *, test=False):
        log = []
        self.logs.append((task_id, log))
        return MissionLog(self.inner.make_env(task_id, seed, test=test), log)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_learner_batches_hold_the_encoded_missions(tmp_path, monkeypatch):
    cfg = load_config(None, TINY + ["mode=serial", "num_actors=1", "envs_per_actor=2", "batch_size=2",
                                    "tasks=[fetch_object, goto_door]", f"logdir={tmp_path / 'run'}",
                                    f"total_frames={UPDATES * T * 2}"])
    inner, task_ids = resolve_suite(cfg)
    suite = MissionSuite(inner)
    batches, learners = [], []
    step = Learner.step

    def recording_step(self, batch):
        batches.append({k: v.clone() for k, v in batch.items()})
        learners.append(self)
        return step(self, batch)

    monkeypatch.setattr(Learner, "step", recording_step)
    assert training_run.train(cfg, suite=suite, task_ids=task_ids, install_signal_handlers=False) == "done"
    assert len(batches) == UPDATES
    assert [t for t, _ in suite.logs] == task_ids   # column j of every batch is env j of the one actor

    distinct = set()
    for k, batch in enumerate(batches):
        for j, (_, missions) in enumerate(suite.logs):
            for t in range(T + 1):
                mission = missions[k * T + t]
                distinct.add(mission)
                assert torch.equal(batch["instruction"][t, j], torch.from_numpy(encode_instruction(mission))), \
                    f"batch {k}, column {j}, step {t}: {mission!r}"
    assert len(distinct) >= 3, f"episodes with different missions were expected, got {distinct}"

    # The instruction changes the policy at the step where it changes (and not before: causal).
    agent, batch = learners[0].agent, batches[-1]
    changed = dict(batch, instruction=batch["instruction"].clone())
    other = "pick up the purple key" if "purple key" not in suite.logs[0][1][-1] else "go to the red door"
    changed["instruction"][T, 0] = torch.from_numpy(encode_instruction(other))
    with torch.no_grad():
        state = CoreState(batch["core_h"], batch["core_c"])
        a = agent(agent_input_from_unroll(batch), state)[0].policy_logits
        b = agent(agent_input_from_unroll(changed), state)[0].policy_logits
    torch.testing.assert_close(a[:T], b[:T])
    assert (a[T, 0] - b[T, 0]).abs().max() > 1e-4


def test_instruction_vocabulary_smaller_than_the_suite_is_refused(tmp_path):
    logdir = tmp_path / "run"
    cfg = load_config(None, TINY + ["mode=serial", f"logdir={logdir}", "agent.instruction_buckets=999"])
    with pytest.raises(ConfigError, match=r"agent.instruction_buckets=999 .*1\.\.1000.*"
                                                 r"agent.instruction_buckets=1000"):
        training_run.train(cfg, install_signal_handlers=False)
    assert not logdir.exists()
    # without an instruction encoder there is nothing to fit
    training_run.check_agent_fits_suite(load_config(None, ["agent.instruction_buckets=10", "agent.use_instruction=false"]),
                                        resolve_suite(cfg)[0])

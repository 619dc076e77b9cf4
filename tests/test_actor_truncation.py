"""The actor ships, for every time-limit end, the value of the truncated episode's final observation,
equal to the agent's value there when the whole episode is replayed from its start."""
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from actors.actor import UnrollWorker, env_seed
from actors.overlap import OverlapWorker
from agent import Agent, AgentConfig, AgentInput, CoreState
from envs.suites import EpisodeStatistics, get_suite

LIMIT, T, N = 3, 7, 2


class FinalObservations(gym.Wrapper):
    """Keeps the frame of every observation that ended an episode by truncation (the actor resets past
    it) and saves them to ``log_dir/finals-{seed}.npy`` when closed (the env may run in a child process)."""

    def __init__(self, env, log_dir, seed):
        super().__init__(env)
        self.finals, self.path = [], Path(log_dir) / f"finals-{seed}.npy"

    def close(self):
        np.save(self.path, np.stack(self.finals))
        super().close()

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if truncated and not terminated:
            self.finals.append(obs["frame"])
        return obs, reward, terminated, truncated, info


@dataclass(frozen=True)
class ShortLimitSuite:
    """The peer DoorKey env cut by gymnasium's TimeLimit after LIMIT steps (a random policy never
    solves DoorKey in 3 steps, so every episode is truncated)."""
    inner: Any
    log_dir: str

    def make_env(self, task_id, seed, *, test=False):
        raw = self.inner.tasks[task_id].factory(seed=seed, test=test)
        return FinalObservations(EpisodeStatistics(gym.wrappers.TimeLimit(raw, LIMIT), task_id), self.log_dir, seed)

    def __getattr__(self, name):
        if name.startswith("__") or name in ("inner", "log_dir"):
            raise AttributeError(name)
        return getattr(self.inner, name)


@pytest.mark.parametrize("worker", [UnrollWorker, OverlapWorker])
def test_truncation_values_match_a_replay_of_each_episode(worker, tmp_path):
    torch.manual_seed(0)
    suite = ShortLimitSuite(get_suite("peer_doorkey"), str(tmp_path))
    config = AgentConfig(torso="shallow", core_size=16, torso_out=16, use_instruction=False)
    core = worker(suite, config, [0] * N, unroll_length=T, seed=1, actor_id=0)
    weights = Agent(config, num_actions=suite.num_actions, num_tasks=1, frame_shape=suite.frame_shape,
                    instruction_length=suite.instruction_length).state_dict()
    core.set_weights(0, weights)
    u = core.unroll()
    core.close()
    finals = [np.load(tmp_path / f"finals-{env_seed(1, 0, j, 0)}.npy") for j in range(N)]
    # Every episode lasts LIMIT steps: done and truncated at steps 3 and 6, nowhere else but done[0].
    expected = np.zeros((T + 1, N), bool)
    expected[[LIMIT, 2 * LIMIT]] = True
    assert np.array_equal(u.truncated, expected)
    assert np.array_equal(u.done[1:], expected[1:]) and u.done[0].all()
    assert (u.truncation_value[~expected] == 0).all()

    reference = Agent(config, num_actions=suite.num_actions, num_tasks=1, frame_shape=suite.frame_shape,
                      instruction_length=suite.instruction_length).eval()
    reference.load_state_dict(weights)
    for j in range(N):
        for k, end in enumerate((LIMIT, 2 * LIMIT)):
            start = end - LIMIT
            frames = np.concatenate([u.frame[start:end, j], finals[j][k][None]])
            inputs = AgentInput(
                frame=torch.from_numpy(frames[:, None]),
                instruction=torch.from_numpy(np.zeros((LIMIT + 1, 1, u.instruction.shape[-1]), np.int64)),
                reward=torch.from_numpy(u.reward[start:end + 1, j][:, None]),
                done=torch.from_numpy(np.array([True] + [False] * LIMIT)[:, None]),   # x' continues
                last_action=torch.from_numpy(np.concatenate([[0], u.action[start:end, j]])[:, None]),
                task_id=torch.zeros(LIMIT + 1, 1, dtype=torch.int64))
            with torch.no_grad():
                out, _ = reference(inputs, CoreState(torch.zeros(1, 16), torch.zeros(1, 16)))
            # The replay's behaviour logits match the actor's (same inputs, same state), and so the
            # final value is the one the episode would have had with one more step.
            np.testing.assert_allclose(out.policy_logits[:LIMIT, 0].numpy(), u.behaviour_logits[start:end, j],
                                       rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(u.truncation_value[end, j], out.baseline[LIMIT, 0].item(),
                                       rtol=1e-5, atol=1e-5)
    assert np.abs(u.truncation_value[expected]).min() > 0

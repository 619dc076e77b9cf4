"""The full agent: sizes, the torso inputs' alignment, resets, and the instruction encoder."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from agent import Agent, AgentConfig, AgentInput
from agent.torsos import InstructionEncoder, build_torso

A, K, L = 9, 30, 6


def make(torso="small", frame=(28, 28, 3), **cfg):
    torch.manual_seed(0)
    return Agent(AgentConfig(torso=torso, **cfg), num_actions=A, num_tasks=K, frame_shape=frame,
                 instruction_length=L)


def random_input(T, B, frame=(28, 28, 3), seed=0):
    g = torch.Generator().manual_seed(seed)
    instruction = torch.randint(1, 1001, (T, B, L), generator=g)
    instruction[..., 4:] = 0
    return AgentInput(
        frame=torch.randint(0, 256, (T, B, *frame), dtype=torch.uint8, generator=g),
        instruction=instruction,
        reward=torch.randn(T, B, generator=g),
        done=torch.rand(T, B, generator=g) < 0.2,
        last_action=torch.randint(0, A, (T, B), generator=g),
        task_id=torch.randint(0, K, (T, B), generator=g))


def test_deep_agent_has_about_1_6m_parameters():
    agent = make("deep", (72, 96, 3))
    count = sum(p.numel() for p in agent.parameters())
    assert 1.55e6 < count < 1.7e6, count          # 1,629,310 with the shared head
    assert agent.torso.linear.in_features == 9 * 12 * 32


@pytest.mark.parametrize("torso, frame", [
    ("deep", (72, 96, 3)), ("shallow", (72, 96, 3)), ("small", (28, 28, 3)), ("small", (56, 56, 3)),
    ("shallow", (56, 56, 3))])
def test_output_shapes(torso, frame):
    agent = make(torso, frame)
    T, B = 2, 3
    out, state = agent(random_input(T, B, frame), agent.initial_state(B))
    assert out.policy_logits.shape == (T, B, A) and out.baseline.shape == (T, B)
    assert state.h.shape == state.c.shape == (B, 256)
    assert build_torso(torso, frame, 64)(torch.zeros(4, *frame, dtype=torch.uint8)).shape == (4, 64)


@pytest.mark.parametrize("head", ["shared", "multihead", "taskid_mi", "learnt_mi"])
def test_unroll_equals_single_steps(head):
    agent = make(head=head, core_size=32, torso_out=32)
    T, B = 6, 3
    inputs = random_input(T, B)
    state = agent.initial_state(B)
    state = state._replace(h=torch.randn_like(state.h))
    with torch.no_grad():
        out, final = agent(inputs, state)
        single = state
        for t in range(T):
            step_out, single = agent(AgentInput(*(x[t:t + 1] for x in inputs)), single)
            torch.testing.assert_close(step_out.policy_logits[0], out.policy_logits[t])
            torch.testing.assert_close(step_out.baseline[0], out.baseline[t])
    torch.testing.assert_close(single.h, final.h)


def test_done_makes_outputs_independent_of_everything_before():
    agent = make(core_size=32, torso_out=32)
    T, B, k = 7, 4, 3
    a = random_input(T, B, seed=1)
    done = torch.zeros(T, B, dtype=torch.bool)
    done[k] = True
    a = a._replace(done=done)
    other = random_input(T, B, seed=2)
    # Everything before step k differs, and so do the reward and last action *at* step k, which
    # belong to the finished episode.
    b = a._replace(**{name: torch.cat([getattr(other, name)[:k], getattr(a, name)[k:]])
                      for name in ("frame", "instruction", "reward", "last_action", "task_id")})
    b = b._replace(reward=b.reward.index_put((torch.tensor([k]),), torch.tensor(7.0)),
                   last_action=b.last_action.index_put((torch.tensor([k]),), torch.tensor(5)))
    state_b = agent.initial_state(B)._replace(h=torch.randn(B, 32), c=torch.randn(B, 32))
    with torch.no_grad():
        out_a, _ = agent(a, agent.initial_state(B))
        out_b, _ = agent(b, state_b)
    torch.testing.assert_close(out_a.policy_logits[k:], out_b.policy_logits[k:], rtol=0, atol=0)
    torch.testing.assert_close(out_a.baseline[k:], out_b.baseline[k:], rtol=0, atol=0)
    assert not torch.allclose(out_a.baseline[:k], out_b.baseline[:k])


def test_last_reward_is_clipped_and_last_action_is_seen():
    agent = make(core_size=32, torso_out=32)
    inputs = random_input(1, 2)._replace(done=torch.zeros(1, 2, dtype=torch.bool))
    run = lambda x: agent(x, agent.initial_state(2))[0].baseline
    with torch.no_grad():
        base = run(inputs._replace(reward=torch.full((1, 2), 1.0)))
        torch.testing.assert_close(run(inputs._replace(reward=torch.full((1, 2), 9.0))), base)
        assert not torch.allclose(run(inputs._replace(reward=torch.full((1, 2), 0.5))), base)
        assert not torch.allclose(run(inputs._replace(last_action=(inputs.last_action + 1) % A)),
                                  run(inputs))


def test_instruction_encoder_takes_last_real_word_and_zero_for_padding():
    torch.manual_seed(0)
    enc = InstructionEncoder(buckets=50, embed=4, hidden=3)
    words = torch.tensor([[5, 7, 9, 0, 0], [0, 0, 0, 0, 0], [1, 2, 3, 4, 5], [8, 0, 0, 0, 0]])
    out = enc(words)
    assert torch.equal(out[1], torch.zeros(3))
    for row, length in ((0, 3), (2, 5), (3, 1)):
        alone, _ = enc.lstm(enc.embedding(words[row:row + 1, :length]))
        torch.testing.assert_close(out[row], alone[0, -1])


def test_instruction_can_be_disabled():
    agent = make(use_instruction=False, core_size=32, torso_out=32)
    inputs = random_input(2, 2)
    with torch.no_grad():
        a = agent(inputs, agent.initial_state(2))[0].baseline
        b = agent(inputs._replace(instruction=torch.zeros(2, 2, 3, dtype=torch.int64)),
                  agent.initial_state(2))[0].baseline
    torch.testing.assert_close(a, b)


def test_input_checks():
    agent = make(core_size=32, torso_out=32)
    inputs = random_input(2, 2)
    with pytest.raises(ValueError, match="frame"):
        agent(inputs._replace(frame=inputs.frame[:, :, :20]), agent.initial_state(2))
    with pytest.raises(ValueError, match="done"):
        agent(inputs._replace(done=inputs.done.float()), agent.initial_state(2))
    with pytest.raises(TypeError, match="uint8"):
        agent.torso(inputs.frame.flatten(0, 1).float())


def test_agent_and_learner_import_without_ray_or_dmlab():
    code = ("import sys, agent, learner.learner, learner.vtrace; "
            "bad = [m for m in ('ray', 'deepmind_lab', 'gymnasium', 'minigrid') if m in sys.modules]; "
            "assert not bad, bad")
    root = Path(__file__).resolve().parents[1]
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)

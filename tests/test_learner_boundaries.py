"""Learner boundary cases against a naive V-trace loop written in the paper's notation.

An agent whose outputs are a table (one logit vector and one value per step and column) lets
the test choose non-uniform target and behaviour policies and actions, so a one-step shift of
actions, logits, rewards or discounts changes the importance weights and the targets; and an
episode ending exactly at step T checks that the bootstrap value does not leak into it.
"""
import math

import torch
from torch import nn

from agent import AgentOutput, agent_input_from_unroll
from learner import LearnerConfig
from learner.learner import unroll_loss

T, B, A = 5, 3, 4
GAMMA = 0.9


class TableAgent(nn.Module):
    """Outputs fixed logits ``[T+1, B, A]`` and values ``[T+1, B]`` whatever the input."""

    def __init__(self, logits, values):
        super().__init__()
        self.logits, self.values = logits, values

    def forward(self, inputs, core_state):
        return AgentOutput(self.logits, self.values), core_state


def make_batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    done = torch.zeros(T + 1, B, dtype=torch.bool)
    done[T, 0] = True            # column 0: the episode ends exactly at step T
    done[2, 1] = True            # column 1: it ends mid-unroll (x_2 starts a new one)
    done[0, 2] = True            # column 2: step 0's flag belongs to the previous unroll
    return dict(frame=torch.zeros(T + 1, B, 1, 1, 1, dtype=torch.uint8),
                instruction=torch.zeros(T + 1, B, 1, dtype=torch.int64),
                reward=torch.rand(T + 1, B, generator=g) * 1.6 - 0.8,     # inside [-1, 1]: no clipping
                done=done, last_action=torch.zeros(T + 1, B, dtype=torch.int64),
                action=torch.randint(0, A, (T + 1, B), generator=g),
                behaviour_logits=torch.randn(T + 1, B, A, generator=g) * 2,
                task_id=torch.zeros(T + 1, B, dtype=torch.int64),
                core_h=torch.zeros(B, 1), core_c=torch.zeros(B, 1))


def naive_vtrace(batch, logits, values, rho_bar=1.0, pg_rho_bar=1.0):
    """Espeholt et al. (2018), eq. (1) and the policy-gradient advantage, one column at a time.

    Transition s: x_s --a_s--> x_{s+1}, r_s = reward[s + 1], gamma_s = GAMMA * (1 - done[s + 1]);
    v_s = V(x_s) + sum_{t >= s} (prod_{i<t} gamma_i c_i) rho_t delta_t with delta_t =
    r_t + gamma_t V(x_{t+1}) - V(x_t), V(x_T) the bootstrap value.
    """
    vs = torch.zeros(T, B, dtype=torch.float64)
    adv = torch.zeros(T, B, dtype=torch.float64)
    log_rhos = torch.zeros(T, B, dtype=torch.float64)
    for b in range(B):
        a = [int(batch["action"][s, b]) for s in range(T)]
        pi = [torch.log_softmax(logits[s, b].double(), -1)[a[s]] for s in range(T)]
        mu = [torch.log_softmax(batch["behaviour_logits"][s, b].double(), -1)[a[s]] for s in range(T)]
        rho = [math.exp(pi[s] - mu[s]) for s in range(T)]
        r = [float(batch["reward"][s + 1, b]) for s in range(T)]
        gam = [GAMMA * (0.0 if batch["done"][s + 1, b] else 1.0) for s in range(T)]
        V = [float(values[s, b]) for s in range(T + 1)]
        for s in range(T):
            log_rhos[s, b] = pi[s] - mu[s]
            total, trace = V[s], 1.0
            for t in range(s, T):
                delta = min(rho_bar, rho[t]) * (r[t] + gam[t] * V[t + 1] - V[t])
                total += trace * delta
                trace *= gam[t] * min(1.0, rho[t])
            vs[s, b] = total
        for s in range(T):
            v_next = vs[s + 1, b] if s + 1 < T else V[T]
            adv[s, b] = min(pg_rho_bar, rho[s]) * (r[s] + gam[s] * v_next - V[s])
    return vs, adv, log_rhos


def run_loss(batch, logits, values):
    cfg = LearnerConfig(discount=GAMMA, reward_clipping="abs_one")
    agent = TableAgent(logits, values)
    output, _ = agent(agent_input_from_unroll(batch), None)
    return unroll_loss(output, batch, cfg)


def test_off_policy_targets_match_the_naive_loop():
    g = torch.Generator().manual_seed(1)
    batch = make_batch()
    logits = torch.randn(T + 1, B, A, generator=g) * 2
    values = torch.randn(T + 1, B, generator=g)
    out = run_loss(batch, logits, values)
    vs, adv, log_rhos = naive_vtrace(batch, logits, values)
    torch.testing.assert_close(out.vtrace.log_rhos.double(), log_rhos, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.vtrace.vs.double(), vs, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.vtrace.pg_advantages.double(), adv, atol=1e-5, rtol=1e-5)
    assert (log_rhos.abs() > 0.05).float().mean() > 0.8    # off-policy: the weights are informative
    # and a one-step shift of the actions would change them (so the test can see it)
    shifted = dict(batch, action=torch.roll(batch["action"], 1, dims=0))
    assert not torch.allclose(naive_vtrace(shifted, logits, values)[2], log_rhos, atol=1e-3)


def test_episode_ending_at_step_T_does_not_bootstrap():
    g = torch.Generator().manual_seed(2)
    batch = make_batch()
    logits = torch.randn(T + 1, B, A, generator=g)
    values = torch.randn(T + 1, B, generator=g)
    base = run_loss(batch, logits, values)
    leaked = values.clone()
    leaked[T] += 1000.0                                      # only the bootstrap value changes
    moved = run_loss(batch, logits, leaked)
    # Column 0 ended at step T: its targets and advantages ignore V(x_T) ...
    torch.testing.assert_close(moved.vtrace.vs[:, 0], base.vtrace.vs[:, 0])
    torch.testing.assert_close(moved.vtrace.pg_advantages[:, 0], base.vtrace.pg_advantages[:, 0])
    # ... its last target is the last reward alone (from x_{T-1} on-policy-clipped: rho <= 1)
    rho = math.exp(min(0.0, float(base.vtrace.log_rhos[T - 1, 0])))
    expected = values[T - 1, 0] + rho * (batch["reward"][T, 0] - values[T - 1, 0])
    torch.testing.assert_close(base.vtrace.vs[T - 1, 0], expected)
    # ... while column 1 (episode ended mid-unroll, a new one runs at T) does bootstrap from it.
    assert (moved.vtrace.vs[T - 1, 1] - base.vtrace.vs[T - 1, 1]).abs() > 1.0
    # The rewards the learner trains on are steps 1..T (arrivals), never step 0.
    torch.testing.assert_close(base.rewards, batch["reward"][1:])

"""Learning-efficiency options of the loss: advantage normalisation and truncation bootstrapping,
against hand-computed numbers and a naive V-trace loop in the paper's notation."""
import math

import pytest
import torch
from torch import nn

from agent import AgentOutput, agent_input_from_unroll
from learner import Learner, LearnerConfig
from learner.losses import normalize_advantages, truncation_bootstrap
from learner.learner import unroll_loss
from test_learner_step import HAND_VS, ConstantAgent, alignment_batch

T, B, A = 4, 2, 3


def test_normalize_advantages_hand_computed():
    adv = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    # mean 3, centred [-2, -1, 0, 3], population variance (4 + 1 + 0 + 9) / 4 = 3.5
    expected = torch.tensor([[-2.0, -1.0], [0.0, 3.0]]) / math.sqrt(3.5)
    torch.testing.assert_close(normalize_advantages(adv), expected)
    out = normalize_advantages(torch.randn(20, 7) * 5 + 3)
    torch.testing.assert_close(out.mean(), torch.tensor(0.0), atol=1e-6, rtol=0)
    torch.testing.assert_close(out.square().mean(), torch.tensor(1.0))
    assert torch.equal(normalize_advantages(torch.full((3, 2), 4.0)), torch.zeros(3, 2))  # no NaN


def test_truncation_bootstrap_adds_discounted_final_value_only_where_truncated():
    rewards = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    truncated = torch.tensor([[True, False], [False, True]])
    value = torch.tensor([[4.0, 100.0], [100.0, 3.0]])        # 100: not truncated, must be ignored
    torch.testing.assert_close(truncation_bootstrap(rewards, truncated, value, 0.5),
                               torch.tensor([[3.0, 2.0], [0.0, 0.5]]))


def truncated_alignment_batch():
    batch = alignment_batch()   # column 1: x_2 starts a new episode (done[2])
    batch["truncated"] = torch.zeros(T + 1, B, dtype=torch.bool)
    batch["truncation_value"] = torch.zeros(T + 1, B)
    batch["truncated"][2, 1] = True            # ... because the previous one hit its time limit
    batch["truncation_value"][2, 1] = 4.0      # V(x') of that episode's final observation
    batch["truncation_value"][3, 0] = 100.0    # not truncated: must be unused
    return batch


def test_truncation_bootstrap_in_the_unroll_hand_computed():
    batch = truncated_alignment_batch()
    output, _ = ConstantAgent()(agent_input_from_unroll(batch), None)
    # Off (IMPALA): the time limit is an end like any other: the same targets as without the fields.
    off = unroll_loss(output, batch, LearnerConfig(discount=0.5))
    torch.testing.assert_close(off.vtrace.vs, HAND_VS)
    # On: column 1's transition 1 targets 1 + 0.5 * 4 = 3 and still cuts the trace (gamma_1 = 0):
    # vs1 = 3, vs0 = 0 + 0.5 * 3 = 1.5; vs2, vs3 and column 0 unchanged.
    on = unroll_loss(output, batch, LearnerConfig(discount=0.5, truncation_bootstrap=True))
    expected = HAND_VS.clone()
    expected[1, 1], expected[0, 1] = 3.0, 1.5
    torch.testing.assert_close(on.vtrace.vs, expected)
    torch.testing.assert_close(on.vtrace.pg_advantages, expected - 2.0)
    torch.testing.assert_close(on.rewards, off.rewards)         # the reported rewards stay the env's


class FixedOutputAgent(nn.Module):
    def __init__(self, logits, values):
        super().__init__()
        self.logits, self.values = nn.Parameter(logits), nn.Parameter(values)

    def forward(self, inputs, core_state):
        return AgentOutput(self.logits, self.values), core_state


def naive_vtrace(log_rhos, values, next_values, rewards, discounts, gamma_cont, rho_bar, c_bar):
    """The paper's v_s = V(x_s) + sum_{t>=s} (prod_{i=s}^{t-1} gamma_i c_i) delta_t with
    delta_t = rho_t (r_t + gamma_t^next V_next(t) - V(x_t)); returns (vs, pg_advantages)."""
    steps, batch = values.shape
    rho = log_rhos.exp()
    vs = torch.zeros(steps, batch, dtype=torch.float64)
    for b in range(batch):
        for s in range(steps):
            total, trace = values[s, b].item(), 1.0
            for t in range(s, steps):
                delta = min(rho_bar, rho[t, b].item()) * (
                    rewards[t, b] + gamma_cont[t, b] * next_values[t, b] - values[t, b]).item()
                total += trace * delta
                trace *= discounts[t, b].item() * min(c_bar, rho[t, b].item())
            vs[s, b] = total
    adv = torch.zeros(steps, batch, dtype=torch.float64)
    for b in range(batch):
        for t in range(steps):
            v_next = vs[t + 1, b] if t + 1 < steps else next_values[t, b]
            cont = discounts[t, b] * v_next + (gamma_cont[t, b] - discounts[t, b]) * next_values[t, b]
            adv[t, b] = min(rho_bar, rho[t, b].item()) * (rewards[t, b] + cont - values[t, b])
    return vs, adv


@pytest.mark.parametrize("normalize", [False, True])
def test_options_against_a_naive_reference_off_policy(normalize):
    g = torch.Generator().manual_seed(3)
    steps, batch, gamma = 6, 5, 0.9
    n = steps + 1
    data = alignment_batch()
    data = {k: v for k, v in data.items() if k in ("frame", "instruction", "last_action", "task_id",
                                                   "core_h", "core_c")}
    data = {k: (v[:1].expand(n, *v.shape[1:]) if v.dim() > 2 or k not in ("core_h", "core_c") else v)
            for k, v in data.items()}
    done = torch.rand(n, batch, generator=g) < 0.3
    truncated = done & (torch.rand(n, batch, generator=g) < 0.5)
    data.update(reward=torch.randn(n, batch, generator=g), done=done, truncated=truncated,
                truncation_value=torch.randn(n, batch, generator=g) * 3,
                action=torch.randint(0, A, (n, batch), generator=g),
                behaviour_logits=torch.randn(n, batch, A, generator=g))
    logits, values = torch.randn(n, batch, A, generator=g), torch.randn(n, batch, generator=g)
    cfg = LearnerConfig(discount=gamma, truncation_bootstrap=True, advantage_normalization=normalize,
                        reward_clipping="none")
    out = unroll_loss(FixedOutputAgent(logits, values)(None, None)[0], data, cfg)

    lp = lambda lg: torch.log_softmax(lg[:steps], -1).gather(-1, data["action"][:steps, :, None])[..., 0]  # noqa: E731
    log_rhos = lp(logits) - lp(data["behaviour_logits"])
    d, tr = data["done"][1:].double(), data["truncated"][1:].double()
    discounts = gamma * (1 - d)                                   # traces cut at every episode end
    next_values = torch.where(data["truncated"][1:], data["truncation_value"][1:], values[1:]).double()
    gamma_cont = gamma * ((1 - d) + tr)                           # bootstrap unless terminated
    vs, adv = naive_vtrace(log_rhos.double(), values[:steps].double(), next_values,
                           data["reward"][1:].double(), discounts, gamma_cont, 1.0, 1.0)
    torch.testing.assert_close(out.vtrace.vs.double(), vs, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.vtrace.pg_advantages.double(), adv, rtol=1e-5, atol=1e-5)
    used = ((adv - adv.mean()) / adv.std(unbiased=False)) if normalize else adv
    ce = -lp(logits).double()
    torch.testing.assert_close(out.losses.pg.double(), (ce * used).sum(), rtol=1e-4, atol=1e-4)


def test_options_validated_and_step_runs():
    with pytest.raises(ValueError, match="advantage_normalization='yes' must be true or false"):
        LearnerConfig(advantage_normalization="yes")
    learner = Learner(ConstantAgent(), LearnerConfig(discount=0.5, truncation_bootstrap=True,
                                                     advantage_normalization=True),
                      total_frames=1000, action_repeat=1, device="cpu")
    metrics = learner.step(truncated_alignment_batch())
    assert all(torch.isfinite(m) for m in metrics.values())


def test_clipped_policy_loss_in_the_unroll_against_a_naive_loop():
    """policy_loss=clipped: the policy term is -sum min(r A, clip(r, 1/1.1, 1.1) A) with V-trace's
    advantages A and r = pi/mu, entry by entry; the value and entropy terms are IMPALA's."""
    import test_learner_boundaries as tb

    g = torch.Generator().manual_seed(5)
    batch = tb.make_batch(seed=2)
    logits = batch["behaviour_logits"] + 0.15 * torch.randn(tb.T + 1, tb.B, tb.A, generator=g)   # near-on-policy
    values = torch.randn(tb.T + 1, tb.B, generator=g)
    vtrace_cfg = LearnerConfig(discount=tb.GAMMA)
    cfg = LearnerConfig(discount=tb.GAMMA, policy_loss="clipped", policy_clip=0.1)
    output, _ = tb.TableAgent(logits, values)(agent_input_from_unroll(batch), None)
    out, ref = unroll_loss(output, batch, cfg), unroll_loss(output, batch, vtrace_cfg)
    _, adv, log_rhos = tb.naive_vtrace(batch, logits, values)
    expected, clipped = 0.0, 0
    for t in range(tb.T):
        for b in range(tb.B):
            r, a = math.exp(float(log_rhos[t, b])), float(adv[t, b])
            bounded = min(max(r, 1 / 1.1), 1.1)
            clipped += bounded != r
            expected -= min(r * a, bounded * a)
    assert out.losses.pg.item() == pytest.approx(expected, rel=1e-5)
    assert 0 < clipped < tb.T * tb.B            # some entries clipped, some not: both branches seen
    assert out.losses.baseline.item() == ref.losses.baseline.item()
    assert out.losses.entropy.item() == ref.losses.entropy.item()
    with pytest.raises(ValueError, match="learner.policy_loss='ppo' is not one of vtrace, clipped"):
        LearnerConfig(policy_loss="ppo")
    with pytest.raises(ValueError, match="learner.policy_clip=0 must be a number > 0"):
        LearnerConfig(policy_clip=0)

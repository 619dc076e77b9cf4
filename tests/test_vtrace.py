"""V-trace against a deliberately naive implementation of the paper's definition."""
import math

import numpy as np
import pytest
import torch

from learner import vtrace


def naive_vtrace(log_rhos, discounts, rewards, values, bootstrap, rho_bar, pg_rho_bar, lam):
    """The paper's definition with plain floats, no recursion:
    v_s = V(x_s) + sum_{t=s}^{T-1} (prod_{i=s}^{t-1} gamma_i c_i) delta_t."""
    T, B = len(rewards), len(rewards[0])

    def clip(x, bar):
        return x if bar is None else min(bar, x)

    vs = [[0.0] * B for _ in range(T)]
    pg = [[0.0] * B for _ in range(T)]
    for b in range(B):
        value = [values[t][b] for t in range(T)] + [bootstrap[b]]
        rho = [math.exp(log_rhos[t][b]) for t in range(T)]
        for s in range(T):
            total = value[s]
            for t in range(s, T):
                weight = 1.0
                for i in range(s, t):
                    weight *= discounts[i][b] * lam * min(1.0, rho[i])
                delta = clip(rho[t], rho_bar) * (rewards[t][b] + discounts[t][b] * value[t + 1] - value[t])
                total += weight * delta
            vs[s][b] = total
        for s in range(T):
            v_next = vs[s + 1][b] if s + 1 < T else bootstrap[b]
            pg[s][b] = clip(rho[s], pg_rho_bar) * (rewards[s][b] + discounts[s][b] * v_next - value[s])
    return np.array(vs), np.array(pg)


def random_inputs(T=7, B=3, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    log_rhos = torch.randn(T, B, generator=g, dtype=dtype)            # rhos both above and below 1
    discounts = torch.full((T, B), 0.9, dtype=dtype)
    discounts[T // 3, 0] = 0.0                                        # episodes end inside the unroll
    discounts[T - 2, B - 1] = 0.0
    rewards = torch.randn(T, B, generator=g, dtype=dtype)
    values = torch.randn(T, B, generator=g, dtype=dtype)
    bootstrap = torch.randn(B, generator=g, dtype=dtype)
    return log_rhos, discounts, rewards, values, bootstrap


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("rho_bar, pg_rho_bar, lam", [
    (1.0, 1.0, 1.0), (1.5, 0.8, 0.7), (None, None, 1.0), (0.5, None, 0.3)])
def test_matches_naive_definition(dtype, tol, rho_bar, pg_rho_bar, lam):
    inputs = random_inputs(dtype=dtype)
    rhos = inputs[0].exp()
    assert (rhos > 1.0).any() and (rhos < 1.0).any()
    out = vtrace.from_importance_weights(*inputs, clip_rho_threshold=rho_bar,
                                         clip_pg_rho_threshold=pg_rho_bar, lambda_=lam)
    assert out.vs.dtype == dtype and out.pg_advantages.dtype == dtype
    want_vs, want_pg = naive_vtrace(*(x.tolist() for x in inputs), rho_bar, pg_rho_bar, lam)
    np.testing.assert_allclose(out.vs.numpy(), want_vs, rtol=tol, atol=tol)
    np.testing.assert_allclose(out.pg_advantages.numpy(), want_pg, rtol=tol, atol=tol)


def test_on_policy_lambda_one_gives_discounted_bootstrapped_returns():
    T, B = 6, 2
    _, discounts, rewards, values, bootstrap = random_inputs(T, B, seed=1)
    out = vtrace.from_importance_weights(torch.zeros(T, B, dtype=torch.float64), discounts, rewards,
                                         values, bootstrap)
    expected = torch.empty(T, B, dtype=torch.float64)
    ret = bootstrap.clone()
    for t in reversed(range(T)):
        ret = rewards[t] + discounts[t] * ret
        expected[t] = ret
    torch.testing.assert_close(out.vs, expected)


def test_hand_values():
    """T = 2, B = 1, gamma = 0.5, rhos (2, 0.5) clipped to (1, 0.5)."""
    log_rhos = torch.tensor([[math.log(2.0)], [math.log(0.5)]])
    out = vtrace.from_importance_weights(log_rhos, torch.full((2, 1), 0.5), torch.tensor([[1.0], [2.0]]),
                                         torch.tensor([[0.0], [1.0]]), torch.tensor([4.0]))
    # delta_1 = 0.5 * (2 + 0.5*4 - 1) = 1.5; v_1 = 2.5
    # delta_0 = 1 * (1 + 0.5*1 - 0) = 1.5; v_0 = 0 + 1.5 + 0.5 * 1 * 1.5 = 2.25
    torch.testing.assert_close(out.vs, torch.tensor([[2.25], [2.5]]))
    # pg_0 = 1 * (1 + 0.5 * 2.5 - 0) = 2.25; pg_1 = 0.5 * (2 + 0.5 * 4 - 1) = 1.5
    torch.testing.assert_close(out.pg_advantages, torch.tensor([[2.25], [1.5]]))


def test_from_logits_matches_importance_weights():
    T, B, A = 5, 3, 4
    g = torch.Generator().manual_seed(3)
    behaviour = torch.randn(T, B, A, generator=g)
    target = torch.randn(T, B, A, generator=g)
    actions = torch.randint(0, A, (T, B), generator=g)
    _, discounts, rewards, values, bootstrap = (x.float() for x in random_inputs(T, B, seed=4))
    out = vtrace.from_logits(behaviour, target, actions, discounts, rewards, values, bootstrap,
                             clip_rho_threshold=1.2, clip_pg_rho_threshold=0.9, lambda_=0.8)
    pi = torch.softmax(target, -1).gather(-1, actions[..., None])[..., 0]
    mu = torch.softmax(behaviour, -1).gather(-1, actions[..., None])[..., 0]
    log_rhos = torch.log(pi / mu)
    torch.testing.assert_close(out.log_rhos, log_rhos)
    torch.testing.assert_close(out.target_action_log_probs, pi.log())
    torch.testing.assert_close(out.behaviour_action_log_probs, mu.log())
    ref = vtrace.from_importance_weights(log_rhos, discounts, rewards, values, bootstrap,
                                         clip_rho_threshold=1.2, clip_pg_rho_threshold=0.9, lambda_=0.8)
    torch.testing.assert_close(out.vs, ref.vs)
    torch.testing.assert_close(out.pg_advantages, ref.pg_advantages)


def test_no_gradient_flows_through_outputs():
    T, B, A = 4, 2, 3
    target = torch.randn(T, B, A, requires_grad=True)
    values = torch.randn(T, B, requires_grad=True)
    bootstrap = torch.randn(B, requires_grad=True)
    out = vtrace.from_logits(torch.randn(T, B, A), target, torch.zeros(T, B, dtype=torch.int64),
                             torch.full((T, B), 0.9), torch.randn(T, B), values, bootstrap)
    for tensor in out:
        assert not tensor.requires_grad and tensor.grad_fn is None


def test_splitting_at_an_episode_boundary_changes_nothing():
    """With gamma = 0 at transition k, steps < k do not depend on anything after k."""
    log_rhos, discounts, rewards, values, bootstrap = random_inputs(T=8, B=1, seed=5)
    discounts[:] = 0.95
    discounts[3] = 0.0
    full = vtrace.from_importance_weights(log_rhos, discounts, rewards, values, bootstrap)
    head = vtrace.from_importance_weights(log_rhos[:4], discounts[:4], rewards[:4], values[:4],
                                          torch.tensor([123.0], dtype=torch.float64))
    torch.testing.assert_close(full.vs[:4], head.vs)
    torch.testing.assert_close(full.pg_advantages[:4], head.pg_advantages)


def test_shape_and_dtype_errors_are_clear():
    x = torch.zeros(3, 2)
    with pytest.raises(ValueError, match="bootstrap_value"):
        vtrace.from_importance_weights(x, x, x, x, torch.zeros(3))
    with pytest.raises(ValueError, match="rewards"):
        vtrace.from_importance_weights(x, x, torch.zeros(4, 2), x, torch.zeros(2))
    with pytest.raises(TypeError, match="float dtype"):
        vtrace.from_importance_weights(x, x, x.double(), x, torch.zeros(2))
    with pytest.raises(TypeError, match="int64"):
        vtrace.from_logits(torch.zeros(3, 2, 4), torch.zeros(3, 2, 4), torch.zeros(3, 2, dtype=torch.int32),
                           x, x, x, torch.zeros(2))


@pytest.mark.parametrize("T", [1, 2, 3, 4, 5, 16, 17, 100])
def test_discounted_sums_scan_matches_the_definition(T):
    """out[s] = sum_t (prod_{i=s}^{t-1} decay_i) delta_t, written out as plain float sums."""
    g = torch.Generator().manual_seed(T)
    deltas = torch.randn(T, 3, generator=g, dtype=torch.float64)
    decay = torch.rand(T, 3, generator=g, dtype=torch.float64)
    decay[T // 2, 1] = 0.0                                  # an episode end cuts the sum
    expected = [[sum(math.prod(decay[i, b].item() for i in range(s, t)) * deltas[t, b].item()
                     for t in range(s, T)) for b in range(3)] for s in range(T)]
    out = vtrace.discounted_sums(deltas, decay)
    np.testing.assert_allclose(out.numpy(), np.array(expected), rtol=1e-10, atol=1e-12)

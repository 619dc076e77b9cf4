"""Reward clipping and the IMPALA losses against hand values."""
import math

import pytest
import torch

from learner.losses import baseline_loss, clip_rewards, entropy, impala_loss, policy_gradient_loss


def test_reward_clipping_hand_values():
    r = torch.tensor([10.0, -10.0, 0.0, 0.5, -0.5, 3.0])
    torch.testing.assert_close(clip_rewards(r, "abs_one"), torch.tensor([1.0, -1.0, 0.0, 0.5, -0.5, 1.0]))
    want = torch.tensor([5 * math.tanh(2), 1.5 * math.tanh(-2), 0.0, 5 * math.tanh(0.1),
                         1.5 * math.tanh(-0.1), 5 * math.tanh(0.6)])
    torch.testing.assert_close(clip_rewards(r, "soft_asymmetric"), want)
    assert torch.equal(clip_rewards(r, "none"), r)
    with pytest.raises(ValueError, match="abs_one"):
        clip_rewards(r, "sign")


def test_losses_hand_values():
    logits = torch.log(torch.tensor([[[0.5, 0.25, 0.25]], [[0.1, 0.8, 0.1]]]))   # T=2, B=1, A=3
    actions = torch.tensor([[1], [0]])
    advantages = torch.tensor([[2.0], [-1.0]])
    pg = policy_gradient_loss(logits, actions, advantages)
    torch.testing.assert_close(pg, -(math.log(0.25) * 2.0 + math.log(0.1) * -1.0) * torch.ones(()))
    vs, values = torch.tensor([[1.0], [3.0]]), torch.tensor([[0.0], [1.0]])
    torch.testing.assert_close(baseline_loss(vs, values), torch.tensor(0.5 * (1 + 4)))
    h = -(0.5 * math.log(0.5) + 0.5 * math.log(0.25)) - (0.2 * math.log(0.1) + 0.8 * math.log(0.8))
    torch.testing.assert_close(entropy(logits), torch.tensor(h))
    total = impala_loss(logits, values, actions, vs, advantages, baseline_cost=0.5, entropy_cost=0.01)
    torch.testing.assert_close(total.total, total.pg + 0.5 * total.baseline - 0.01 * total.entropy)
    torch.testing.assert_close(total.baseline, torch.tensor(2.5))


def test_targets_carry_no_gradient():
    logits = torch.randn(3, 2, 4, requires_grad=True)
    values = torch.randn(3, 2, requires_grad=True)
    advantages = torch.randn(3, 2, requires_grad=True)
    vs = torch.randn(3, 2, requires_grad=True)
    out = impala_loss(logits, values, torch.zeros(3, 2, dtype=torch.int64), vs, advantages,
                      baseline_cost=0.5, entropy_cost=0.1)
    out.total.backward()
    assert advantages.grad is None and vs.grad is None
    torch.testing.assert_close(values.grad, 0.5 * (values - vs).detach())

"""Reward clipping and the IMPALA losses against hand values."""
import math

import pytest
import torch

from learner.losses import baseline_loss, clip_rewards, clipped_policy_loss, entropy, impala_loss, policy_gradient_loss


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


def test_clipped_policy_loss_hand_values():
    """pi = (0.6, 0.4), mu = (0.5, 0.5): ratio 1.2 for action 0, 0.8 for action 1; clip 0.1 bounds the
    ratio to [1/1.1, 1.1]. Per entry min(r A, clip(r) A):
    a=0, A=+2: min(2.4, 2.2) = 2.2 (clipped);  a=0, A=-1: min(-1.2, -1.1) = -1.2;
    a=1, A=+1: min(0.8, 0.909) = 0.8;          a=1, A=-3: min(-2.4, -3/1.1) = -2.7273 (clipped).
    Loss = -(2.2 - 1.2 + 0.8 - 3/1.1) = 0.92727; a clipped entry passes no gradient."""
    logits = torch.log(torch.tensor([0.6, 0.4])).expand(1, 4, 2).clone().requires_grad_(True)   # T=1, B=4
    behaviour = torch.log(torch.tensor([0.5, 0.5])).expand(1, 4, 2)
    actions = torch.tensor([[0, 0, 1, 1]])
    advantages = torch.tensor([[2.0, -1.0, 1.0, -3.0]])
    loss = clipped_policy_loss(logits, behaviour, actions, advantages, clip=0.1)
    assert loss.item() == pytest.approx(-(2.2 - 1.2 + 0.8 - 3 / 1.1), rel=1e-6)
    loss.backward()
    grad = logits.grad[0]
    torch.testing.assert_close(grad[0], torch.zeros(2))            # clipped: no gradient
    torch.testing.assert_close(grad[3], torch.zeros(2))
    # unclipped: d(-r A)/d logits = -A r (onehot(a) - pi)
    torch.testing.assert_close(grad[1], torch.tensor([1.2 * 0.4, -1.2 * 0.4]))
    torch.testing.assert_close(grad[2], -1.0 * 0.8 * torch.tensor([-0.6, 0.6]))
    # through impala_loss (policy_loss=clipped) the policy term is this surrogate
    losses = impala_loss(logits.detach(), torch.zeros(1, 4), actions, torch.zeros(1, 4), advantages,
                         baseline_cost=0.5, entropy_cost=0.0, behaviour_logits=behaviour, clip=0.1)
    assert losses.pg.item() == pytest.approx(loss.item())

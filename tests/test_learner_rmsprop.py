"""TF1 RMSProp semantics: ms starts at one, epsilon inside the square root."""
import pytest
import torch

from learner.rmsprop import TFRMSprop


def gradients(steps, shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(steps)]


def hand_loop(param, grads, lr, decay, momentum, epsilon):
    """tf.train.RMSPropOptimizer (centered=False) written out with plain tensors."""
    var = param.clone()
    ms = torch.ones_like(var)
    mom = torch.zeros_like(var)
    for g in grads:
        ms = decay * ms + (1 - decay) * g * g
        mom = momentum * mom + lr * g / torch.sqrt(ms + epsilon)
        var = var - mom
    return var


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_matches_hand_written_tf_loop(momentum):
    start = torch.randn(3, 4, dtype=torch.float64)
    grads = gradients(6, (3, 4))
    p = torch.nn.Parameter(start.clone())
    opt = TFRMSprop([p], lr=0.01, decay=0.99, momentum=momentum, epsilon=0.1)
    for g in grads:
        p.grad = g.clone()
        opt.step()
    torch.testing.assert_close(p.detach(), hand_loop(start, grads, 0.01, 0.99, momentum, 0.1))


def test_first_step_value():
    """ms = 0.99 + 0.01 g^2; step = lr g / sqrt(ms + 0.1): for g = 2, lr = 1: 2 / sqrt(1.13)."""
    p = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    p.grad = torch.tensor([2.0], dtype=torch.float64)
    TFRMSprop([p], lr=1.0, decay=0.99, epsilon=0.1).step()
    torch.testing.assert_close(p.detach(), torch.tensor([-2.0 / 1.13 ** 0.5], dtype=torch.float64))


def test_differs_from_torch_rmsprop():
    start = torch.randn(5, dtype=torch.float64)
    grads = gradients(3, (5,), seed=1)
    ours, theirs = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    opt_ours = TFRMSprop([ours], lr=0.01, decay=0.99, epsilon=0.1)
    opt_theirs = torch.optim.RMSprop([theirs], lr=0.01, alpha=0.99, eps=0.1)
    for g in grads:
        ours.grad, theirs.grad = g.clone(), g.clone()
        opt_ours.step()
        opt_theirs.step()
    assert (ours - theirs).abs().max() > 1e-3


def test_skips_parameters_without_gradient_and_state_dict_round_trip():
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    opt = TFRMSprop([a, b], lr=0.1, decay=0.9, epsilon=0.1)
    a.grad = torch.ones(2)
    opt.step()
    assert torch.equal(b.detach(), torch.ones(2)) and b not in opt.state
    clone = TFRMSprop([a, b], lr=0.1, decay=0.9, epsilon=0.1)
    clone.load_state_dict(opt.state_dict())
    torch.testing.assert_close(clone.state[a]["ms"], opt.state[a]["ms"])

"""The MI context scale per optimizer: one optimizer step moves the multiplicative terms about as far
as it moves a linear layer (agent/multiplicative.py; agent.mi_context_scale; AUTO_CONTEXT_SCALE).

One step on a fixed batch: x ``[N, I]`` ~ N(0, 1), contexts z ``[N, C]`` = relu(N(0, 2)) (what the
context MLP's He init gives: E[z^2] = 1), a fixed linear loss ``sum(y * r) / N`` (r ~ N(0, 1)).
Moved: the RMS over the batch of the change of the layer's multiplicative terms ``(s z)^T W x +
(s z)^T U`` against that of an ``nn.Linear(I, O)``'s output under the same loss and optimizer.
Sizes are DMLab-30's (C = 64, I = 256, O = 16) and the embedded suite's (C = 32, I = 128, O = 8).
Band: a ratio in [0.4, 2.5] (within 2.5x of a linear layer's speed). Measured (this file's
``step_ratio``): Adam 0.58-0.68 at 1/C, 3.3-6.3 at 1/sqrt(C), 19-71 at 1; TF RMSProp 0.64-0.79 at
1/sqrt(C), 0.005-0.02 at 1/C, 20-83 at 1 (C = 32..128).
"""
import math

import pytest
import torch
from torch import nn

from agent.config import AUTO_CONTEXT_SCALE
from agent.multiplicative import MultiplicativeLayer
from learner.config import LearnerConfig
from learner.optim import build_optimizer

BAND = (0.4, 2.5)
SCALES = ("1", "1/sqrt(C)", "1/C")
OPTIMIZERS = {   # the embedded config's Adam and the DMLab-30 config's TF RMSProp (configs/*.yaml)
    "adam": LearnerConfig(optimizer="adam", learning_rate=5e-4),
    "rmsprop": LearnerConfig(optimizer="rmsprop", learning_rate=0.00031866995608948655,
                             rmsprop_decay=0.99, rmsprop_epsilon=0.1, rmsprop_momentum=0.0),
}
SIZES = [(64, 256, 16), (32, 128, 8)]   # (C, I, O)


def multiplicative_terms(layer: MultiplicativeLayer, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``(s z)^T W x + (s z)^T U`` (the layer's output minus its linear part ``V x + b``)."""
    return layer(x, z) - layer.linear(x)


def step_ratio(optimizer: str, scale: str, c: int, i: int, o: int, n: int = 256) -> float:
    """RMS move of the multiplicative terms / RMS move of a linear layer's output, one step."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, i, generator=g)
    z = torch.relu(torch.randn(n, c, generator=g) * math.sqrt(2.0))
    r = torch.randn(n, o, generator=g)
    torch.manual_seed(1)
    layer, linear = MultiplicativeLayer(i, c, o, "full", scale), nn.Linear(i, o)
    moves = []
    for module, output in ((layer, lambda: multiplicative_terms(layer, x, z)), (linear, lambda: linear(x))):
        opt = build_optimizer(module.parameters(), OPTIMIZERS[optimizer])
        before = output().detach()
        opt.zero_grad()
        ((module(x, z) if module is layer else module(x)) * r).sum().div(n).backward()
        opt.step()
        moves.append((output().detach() - before).pow(2).mean().sqrt().item())
    return moves[0] / moves[1]


@pytest.mark.parametrize("c,i,o", SIZES)
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_the_chosen_scale_moves_the_mi_terms_like_a_linear_layer_and_the_others_do_not(optimizer, c, i, o):
    ratios = {scale: step_ratio(optimizer, scale, c, i, o) for scale in SCALES}
    chosen = AUTO_CONTEXT_SCALE[optimizer]
    assert BAND[0] <= ratios[chosen] <= BAND[1], ratios
    for scale in SCALES:
        if scale != chosen:
            assert not BAND[0] <= ratios[scale] <= BAND[1], (scale, ratios)


def test_the_ratios_follow_the_step_size_argument():
    """Adam moves every parameter by ~lr, so the ratio grows as s C; an SGD-like step (TF RMSProp
    with ms starting at 1 and epsilon 0.1) as s^2 C. With s = 1 both grow 4x from C = 32 to 128;
    1/C keeps Adam's ratio flat in C and 1/sqrt(C) RMSProp's."""
    for optimizer, chosen in (("adam", "1/C"), ("rmsprop", "1/sqrt(C)")):
        small = step_ratio(optimizer, "1", 32, 128, 8)
        large = step_ratio(optimizer, "1", 128, 128, 8)
        assert large / small == pytest.approx(4.0, rel=0.2), (optimizer, small, large)
        flat = step_ratio(optimizer, chosen, 128, 128, 8) / step_ratio(optimizer, chosen, 32, 128, 8)
        assert flat == pytest.approx(1.0, rel=0.2), (optimizer, flat)

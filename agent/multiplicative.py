"""Multiplicative interaction layer (Jayakumar et al. 2020), its full form and two approximations.

Notation: x ``[..., I]`` the input (I = ``in_features``), z ``[..., C]`` the context
(C = ``context_features``), y ``[..., O]`` the output (O = ``out_features``). Hypernetwork view:
``y = W'(z) x + b'(z)`` with a context-generated weight matrix ``W'(z)`` and bias ``b'(z)``.

Forms (all share ``V`` [O, I], ``b`` [O] and ``U`` [C, O]; ``b'(z) = z^T U + b``):

* ``full``:     ``y = z^T W x + z^T U + V x + b``, W ``[C, I, O]``, i.e. ``W'(z) = z^T W + V``:
  ``y_o = sum_{c,i} z_c W[c,i,o] x_i + sum_c z_c U[c,o] + sum_i V[o,i] x_i + b_o``.
* ``diagonal``: ``y = V (a(z) ⊙ x) + z^T U + b`` with the element-wise gate
  ``a(z) = z^T A + a0`` (A ``[C, I]``, a0 ``[I]``), i.e. ``W'(z) = V diag(a(z))``: the context
  re-weights each input feature (the form of common gating mechanisms).
* ``scalar``:   ``y = s(z) (V x) + z^T U + b`` with one generated scale ``s(z) = z^T w + s0``
  (w ``[C]``, s0 a scalar), i.e. ``W'(z) = s(z) V``: one generated scale and a generated bias.

Context scale: every form reads the context as ``s z`` (``context_scale`` s: ``"1"``, ``"1/sqrt(C)"``
or ``"1/C"``, ``AgentConfig.mi_context_scale``); the formulas above hold with z replaced by ``s z``.
Which s suits an optimizer (the paragraphs below are the 1/C case, chosen for Adam): one step moves
the multiplicative terms, relative to what it moves a linear layer's ``V x`` by, by about
``s ||z||_1`` under Adam (every parameter moves ~lr, so 1/C keeps the ratio O(mean |z|)) and by about
``s^2 ||z||_2^2`` under an SGD-like step (TF RMSProp with epsilon 0.1 and small gradients:
lr g / sqrt(ms + 0.1), so 1/sqrt(C) keeps it O(mean z^2)); tests/test_mi_scale.py measures both.
Default 1/C (the only scale of earlier checkpoints): a mean over the C context units rather than a sum.
This changes no function the layer can represent (W, U, A and w absorb the factor) but it changes
how fast an optimiser with per-parameter step sizes (Adam, RMSProp) moves them: one step of size
lr on every element of W moves ``z^T W x`` by up to ``lr ||z||_1 ||x||_1``, C times what the same step
moves a linear layer's ``V x`` by when z has unit-scale entries. Without the factor a
multiplicative head with C = 32 ran at ~18x a linear head's effective learning rate and, on the
embedded suite's interfering pair, never left the random policy in 500K frames while the
multi-head solved it (docs/results/embedded-heads/README.md).

Initialisation (the multiplicative term is live from the start, at the same scale as ``V x`` for
unit-scale z): ``V`` and ``b`` as ``nn.Linear``'s default (``U(-1/sqrt(I), 1/sqrt(I))``).
``U ~ (1/s) U(-1/sqrt(C), 1/sqrt(C))``, so ``(s z)^T U`` has the variance of the default
``z^T U`` whatever s is. ``full``: ``W ~ (1/s) U(-1/sqrt(C*I), 1/sqrt(C*I))``: the bilinear term sums
C*I products, so with fan-in C*I, ``(s z)^T W x`` has the variance of ``V x`` times the mean square of z.
``diagonal``/``scalar``: ``a0 = 1``, ``s0 = 1`` (the layer starts as a linear layer plus a
context-dependent modulation) and ``A``, ``w ~ (1/s) U(-1/sqrt(C), 1/sqrt(C))`` so the generated gate
varies by O(mean |z|) around one, never zero-initialised.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from agent.config import MI_FORMS


def context_scale_value(scale: str, context_features: int) -> float:
    """The number s of a context scale name (``"1"``, ``"1/sqrt(C)"``, ``"1/C"``) for C context units."""
    values = {"1": 1.0, "1/sqrt(C)": 1.0 / math.sqrt(context_features), "1/C": 1.0 / context_features}
    if scale not in values:
        raise ValueError(f"context scale {scale!r} is not one of {', '.join(values)} "
                         f"('auto' is resolved by the config, configs/schema.py)")
    return values[scale]


class MultiplicativeLayer(nn.Module):
    """``forward(x [..., in_features], z [..., context_features]) -> [..., out_features]``."""

    def __init__(self, in_features: int, context_features: int, out_features: int,
                 form: str = "full", context_scale: str = "1/C") -> None:
        super().__init__()
        if form not in MI_FORMS:
            raise ValueError(f"form={form!r} is not one of {', '.join(MI_FORMS)}")
        self.in_features, self.context_features, self.out_features = (
            in_features, context_features, out_features)
        self.form = form
        self.context_scale_name = context_scale
        self.context_scale = context_scale_value(context_scale, context_features)  # z enters as s z
        self.linear = nn.Linear(in_features, out_features)                  # V x + b
        self.context = nn.Linear(context_features, out_features, bias=False)  # z^T U (weight = U^T)
        if form == "full":
            self.weight = nn.Parameter(torch.empty(context_features, in_features, out_features))
        elif form == "diagonal":
            self.gate_weight = nn.Parameter(torch.empty(context_features, in_features))
            self.gate_bias = nn.Parameter(torch.empty(in_features))
        else:
            self.scale_weight = nn.Parameter(torch.empty(context_features))
            self.scale_bias = nn.Parameter(torch.empty(()))
        self.reset_multiplicative_parameters()

    def reset_multiplicative_parameters(self) -> None:
        c = self.context_features
        inverse = {"1": 1.0, "1/sqrt(C)": math.sqrt(c), "1/C": float(c)}[self.context_scale_name]  # 1/s
        bound = inverse / math.sqrt(c)                # 1/s x nn.Linear's default bound for fan-in C
        nn.init.uniform_(self.context.weight, -bound, bound)
        if self.form == "full":
            full_bound = inverse / math.sqrt(c * self.in_features)
            nn.init.uniform_(self.weight, -full_bound, full_bound)
        elif self.form == "diagonal":
            nn.init.uniform_(self.gate_weight, -bound, bound)
            nn.init.ones_(self.gate_bias)
        else:
            nn.init.uniform_(self.scale_weight, -bound, bound)
            nn.init.ones_(self.scale_bias)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features or z.shape[-1] != self.context_features:
            raise ValueError(f"expected x [..., {self.in_features}] and z [..., "
                             f"{self.context_features}], got {tuple(x.shape)} and {tuple(z.shape)}")
        z = z * self.context_scale
        generated_bias = self.context(z)
        if self.form == "full":
            return self._bilinear(x, z) + self.linear(x) + generated_bias
        if self.form == "diagonal":
            gate = z @ self.gate_weight + self.gate_bias
            return self.linear(gate * x) + generated_bias
        scale = z @ self.scale_weight + self.scale_bias
        return scale.unsqueeze(-1) * nn.functional.linear(x, self.linear.weight) \
            + self.linear.bias + generated_bias

    def generated_weight_norm(self, z: torch.Tensor) -> torch.Tensor:
        """Frobenius norm of the generated matrix ``W'(z)`` (``[O, I]``): z ``[..., C]`` -> ``[...]``.

        ``full``: ``||z^T W + V||^2 = ||V||^2 + 2 z.(W V) + z^T (W W^T) z`` with W flattened to
        ``[C, I*O]`` (no ``[..., I, O]`` intermediate); ``diagonal``: ``||V diag(a)||^2 =
        sum_i a_i^2 ||V[:, i]||^2``; ``scalar``: ``|s(z)| ||V||``.
        """
        v = self.linear.weight                                               # V [O, I]
        z = z * self.context_scale
        if self.form == "full":
            w = self.weight.reshape(self.context_features, -1)              # [C, I*O]
            vt = v.t().reshape(-1)                                           # V^T [I, O] flattened
            squared = (vt @ vt) + 2.0 * z @ (w @ vt) + ((z @ (w @ w.t())) * z).sum(-1)
            return squared.clamp_min(0.0).sqrt()
        if self.form == "diagonal":
            gate = z @ self.gate_weight + self.gate_bias                     # a(z) [..., I]
            return ((gate * gate) @ (v * v).sum(0)).sqrt()
        scale = z @ self.scale_weight + self.scale_bias                      # s(z) [...]
        return scale.abs() * v.norm()

    def _bilinear(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``z^T W x`` contracting x first: intermediate ``[..., C, O]`` (smaller than [..., I, O]
        whenever C < I, the usual case), one matmul plus one batched reduction."""
        c, i, o = self.weight.shape
        xw = x @ self.weight.permute(1, 0, 2).reshape(i, c * o)       # [..., C*O]
        xw = xw.unflatten(-1, (c, o))                                 # [..., C, O]
        return (z.unsqueeze(-2) @ xw).squeeze(-2)                     # [..., O]


# The layer's parametrization version, saved as checkpoints' "mi_parametrization" (training/loop.py).
# 1: the context was read as z (checkpoints written before the 1/C scale); 2: as s z with s from the
# checkpoint's config (agent.mi_context_scale; a config without the field: 1/C). A version-1 layer's
# function is the 1/C version-2 layer's with the parameters that multiply z scaled by C, exactly.
PARAMETRIZATION = 2
_CONTEXT_PARAMETERS = {"weight": 0, "context.weight": 1, "gate_weight": 0, "scale_weight": 0}


def upgrade_state_dict(model_state: dict, prefix: str, version: int) -> dict[str, float]:
    """Rewrite, in place, a ``version``-1 checkpoint's parameters of the MI layer at ``prefix``
    (e.g. ``"head.mi."``) to this version: each parameter that multiplies z is scaled by C, so the
    loaded layer computes exactly what the saved one did. Returns ``{key: factor}`` of what it
    scaled (empty when there is nothing to do), for the optimizer state (``training/loop.py``)."""
    if version >= PARAMETRIZATION or prefix + "context.weight" not in model_state:
        return {}
    context = model_state[prefix + "context.weight"].shape[1]          # U^T [O, C]
    factors = {}
    for name, dim in _CONTEXT_PARAMETERS.items():
        key = prefix + name
        if key in model_state:
            assert model_state[key].shape[dim] == context, (key, tuple(model_state[key].shape))
            model_state[key] = model_state[key] * float(context)
            factors[key] = float(context)
    return factors

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

Initialisation (the multiplicative term is live from the start, at the same scale as ``V x``):
``V``, ``b`` and ``U`` as ``nn.Linear``'s default (``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, fan-in
I for V and b, C for U). ``full``: ``W ~ U(-1/sqrt(C*I), 1/sqrt(C*I))``: the bilinear term sums C*I
products, so with fan-in C*I, ``z^T W x`` has the variance of ``V x`` times the mean square of z.
``diagonal``/``scalar``: ``a0 = 1``, ``s0 = 1`` (the layer starts as a linear layer plus a
context-dependent modulation) and ``A``, ``w ~ U(-1/sqrt(C), 1/sqrt(C))`` so the generated gate
varies by O(mean |z|) around one, never zero-initialised.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from agent.config import MI_FORMS


class MultiplicativeLayer(nn.Module):
    """``forward(x [..., in_features], z [..., context_features]) -> [..., out_features]``."""

    def __init__(self, in_features: int, context_features: int, out_features: int,
                 form: str = "full") -> None:
        super().__init__()
        if form not in MI_FORMS:
            raise ValueError(f"form={form!r} is not one of {', '.join(MI_FORMS)}")
        self.in_features, self.context_features, self.out_features = (
            in_features, context_features, out_features)
        self.form = form
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
        if self.form == "full":
            bound = 1.0 / math.sqrt(c * self.in_features)
            nn.init.uniform_(self.weight, -bound, bound)
        elif self.form == "diagonal":
            nn.init.uniform_(self.gate_weight, -1.0 / math.sqrt(c), 1.0 / math.sqrt(c))
            nn.init.ones_(self.gate_bias)
        else:
            nn.init.uniform_(self.scale_weight, -1.0 / math.sqrt(c), 1.0 / math.sqrt(c))
            nn.init.ones_(self.scale_bias)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features or z.shape[-1] != self.context_features:
            raise ValueError(f"expected x [..., {self.in_features}] and z [..., "
                             f"{self.context_features}], got {tuple(x.shape)} and {tuple(z.shape)}")
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

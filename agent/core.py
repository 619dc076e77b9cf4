"""The LSTM core: a single-layer LSTM whose state is zeroed at the steps where an episode begins."""
from __future__ import annotations

import torch
from torch import nn

from agent.types import CoreState


class ResettingLSTM(nn.Module):
    """``forward(x [T, B, D], done [T, B] bool, state) -> (outputs [T, B, S], final state)``.

    At each step t the state is first multiplied by ``1 - done[t]`` (so ``done[t]`` means "x_t
    starts a new episode") and then updated with x_t, exactly as ``nn.LSTMCell`` (whose parameters
    this module holds as ``self.cell``) would. The input projection ``W_ih x + b`` is computed for
    all T steps in one matmul; only ``W_hh h`` and the gate non-linearities run in the time loop,
    with no host synchronisation (the reset is a multiplication, not a branch). The agent runs
    it in float32 (outside autocast). The forget gate's bias starts at +1 (``init_forget_bias``).
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.cell = nn.LSTMCell(input_size, hidden_size)
        self.hidden_size = hidden_size
        init_forget_bias(self.cell.bias_ih, self.cell.bias_hh, hidden_size)

    def forward(self, x: torch.Tensor, done: torch.Tensor,
                state: CoreState) -> tuple[torch.Tensor, CoreState]:
        if x.dim() != 3 or done.shape != x.shape[:2]:
            raise ValueError(f"expected x [T, B, D] and done [T, B], got {tuple(x.shape)} and "
                             f"{tuple(done.shape)}")
        cell = self.cell
        # unbind, not input_gates[t]: one backward node for all steps instead of T full-size
        # zero-filled gradient buffers (4x faster backward for T = 100 on CPU).
        input_gates = nn.functional.linear(x, cell.weight_ih, cell.bias_ih + cell.bias_hh).unbind(0)
        keep = (~done).unsqueeze(-1).float().unbind(0)       # T x [B, 1]
        h, c = state
        size = self.hidden_size
        outputs = []
        for t in range(len(input_gates)):
            h = h * keep[t]
            c = c * keep[t]
            gates = (input_gates[t] + nn.functional.linear(h, cell.weight_hh)).float()
            i, f, _, o = torch.sigmoid(gates).chunk(4, dim=-1)   # one kernel for the three gates
            g = torch.tanh(gates[:, 2 * size:3 * size])
            c = f * c + i * g
            h = o * torch.tanh(c)
            outputs.append(h)
        return torch.stack(outputs), CoreState(h, c)


FORGET_BIAS = 1.0


@torch.no_grad()
def init_forget_bias(bias_ih: torch.Tensor, bias_hh: torch.Tensor, hidden_size: int,
                     value: float = FORGET_BIAS) -> None:
    """Makes the forget gate's pre-activation bias ``bias_ih + bias_hh`` exactly ``value`` (torch's
    gate order is i, f, g, o: the forget gate is rows ``[H, 2H)``).

    IMPALA's agent uses TF's ``LSTMBlockCell``, whose bias variable starts at 0 and which adds
    ``forget_bias=1.0`` to the forget gate at every step. Starting the parameter at +1 instead gives
    the same function and the same gradients (a constant offset does not change d loss / d bias),
    and keeps checkpoints plain ``nn.LSTM`` / ``nn.LSTMCell`` state dicts.
    """
    forget = slice(hidden_size, 2 * hidden_size)
    bias_ih[forget] = value
    bias_hh[forget] = 0.0

"""The resetting LSTM core: unroll == single steps == nn.LSTMCell, and resets at episode starts."""
import torch

from agent.core import ResettingLSTM
from agent.types import CoreState

T, B, D, S = 9, 3, 7, 5


def setup(seed=0):
    torch.manual_seed(seed)
    core = ResettingLSTM(D, S).double()
    x = torch.randn(T, B, D, dtype=torch.float64)
    state = CoreState(torch.randn(B, S, dtype=torch.float64), torch.randn(B, S, dtype=torch.float64))
    done = torch.zeros(T, B, dtype=torch.bool)
    done[3, 0] = done[6, 2] = done[0, 1] = True
    return core, x, done, state


def test_unroll_equals_single_steps_and_lstm_cell():
    core, x, done, state = setup()
    outputs, final = core(x, done, state)
    h, c = state
    single = state
    for t in range(T):
        keep = (~done[t]).double()[:, None]
        h, c = core.cell(x[t], (h * keep, c * keep))        # torch's own LSTMCell
        out, single = core(x[t:t + 1], done[t:t + 1], single)
        torch.testing.assert_close(outputs[t], h)
        torch.testing.assert_close(out[0], h)
    torch.testing.assert_close(final.h, h)
    torch.testing.assert_close(final.c, c)
    torch.testing.assert_close(single.h, h)


def test_done_makes_later_outputs_independent_of_the_past():
    core, x, done, state = setup()
    k = 4
    done[k] = True
    x2 = x.clone()
    x2[:k] = torch.randn(k, B, D, dtype=torch.float64)
    state2 = CoreState(state.h + 1.0, state.c - 2.0)
    out1, _ = core(x, done, state)
    out2, _ = core(x2, done, state2)
    torch.testing.assert_close(out1[k:], out2[k:], rtol=0, atol=0)
    assert not torch.allclose(out1[:k], out2[:k])


def test_done_at_step_zero_ignores_initial_state():
    core, x, _, state = setup()
    done = torch.zeros(T, B, dtype=torch.bool)
    done[0] = True
    zero = CoreState(torch.zeros_like(state.h), torch.zeros_like(state.c))
    torch.testing.assert_close(core(x, done, state)[0], core(x, torch.zeros_like(done), zero)[0])


def tf_lstm_block_cell_unroll(x, h, c, w_x, w_h, bias, forget_bias=1.0):
    """TF's LSTMBlockCell in its own notation: gates [i, ci, f, o] = x W_x + h W_h + b;
    f gets ``forget_bias`` added at compute time; cs = sigmoid(f) * c + sigmoid(i) * tanh(ci)."""
    outputs = []
    for t in range(x.shape[0]):
        i, ci, f, o = (x[t] @ w_x + h @ w_h + bias).chunk(4, dim=-1)
        c = torch.sigmoid(f + forget_bias) * c + torch.sigmoid(i) * torch.tanh(ci)
        h = torch.sigmoid(o) * torch.tanh(c)
        outputs.append(h)
    return torch.stack(outputs)


def test_fresh_core_has_tf_forget_bias_of_one():
    core = ResettingLSTM(D, S)
    total = (core.cell.bias_ih + core.cell.bias_hh).detach()
    assert torch.equal(total[S:2 * S], torch.ones(S))            # rows [H, 2H) = forget gate
    assert not torch.equal(total[:S], torch.ones(S))             # only the forget gate is set

    # Behaviour, not layout: no input, no weights, no cell input => c1 = sigmoid(1) * c0.
    with torch.no_grad():
        core.cell.weight_ih.zero_()
        core.cell.weight_hh.zero_()
        core.cell.bias_ih[2 * S:3 * S] = 0.0
        core.cell.bias_hh[2 * S:3 * S] = 0.0
    c0 = torch.full((B, S), 2.0)
    _, final = core(torch.zeros(1, B, D), torch.zeros(1, B, dtype=torch.bool), CoreState(torch.zeros(B, S), c0))
    torch.testing.assert_close(final.c, c0 * torch.sigmoid(torch.tensor(1.0)))


def test_fresh_core_equals_tf_lstm_block_cell_with_zero_bias_and_its_gradients():
    """A fresh core is TF's LSTMBlockCell at its initial bias (zeros) with forget_bias=1, and the
    loss gradient w.r.t. the bias is the same (so training from +1 equals TF's added constant)."""
    core, x, _, state = setup()
    no_done = torch.zeros(T, B, dtype=torch.bool)
    cell = core.cell
    to_tf = torch.cat([torch.arange(0, S), torch.arange(2 * S, 3 * S), torch.arange(S, 2 * S),
                       torch.arange(3 * S, 4 * S)])                  # torch [i, f, g, o] -> TF [i, ci, f, o]
    tf_bias = (cell.bias_ih + cell.bias_hh).detach()[to_tf].clone()
    tf_bias[2 * S:3 * S] -= 1.0
    torch.testing.assert_close(tf_bias[2 * S:3 * S], torch.zeros(S, dtype=torch.float64))
    tf_bias.requires_grad_(True)
    ours, _ = core(x, no_done, state)
    ref = tf_lstm_block_cell_unroll(x, state.h, state.c, cell.weight_ih.detach()[to_tf].T,
                                    cell.weight_hh.detach()[to_tf].T, tf_bias)
    torch.testing.assert_close(ours, ref)
    ours.square().sum().backward()
    ref.square().sum().backward()
    torch.testing.assert_close(cell.bias_ih.grad[to_tf], tf_bias.grad, rtol=1e-5, atol=1e-6)  # gates run in fp32


def test_instruction_lstm_forget_bias_is_one():
    from agent.torsos import InstructionEncoder

    lstm = InstructionEncoder(buckets=10, embed=4, hidden=6).lstm
    total = (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach()
    assert torch.equal(total[6:12], torch.ones(6))

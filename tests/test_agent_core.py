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

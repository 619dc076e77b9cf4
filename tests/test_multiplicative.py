"""The multiplicative layer computes exactly its documented formulas."""
import pytest
import torch

from agent.multiplicative import MultiplicativeLayer

I, C, O = 6, 4, 5


def inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(3, 2, I, generator=g, dtype=torch.float64), \
        torch.randn(3, 2, C, generator=g, dtype=torch.float64)


def layer(form):
    torch.manual_seed(0)
    return MultiplicativeLayer(I, C, O, form).double()


def test_full_equals_explicit_einsum():
    mi = layer("full")
    x, z = inputs()
    V, b, U = mi.linear.weight, mi.linear.bias, mi.context.weight.T        # U [C, O]
    want = (torch.einsum("tbc,tbi,cio->tbo", z, x, mi.weight)
            + torch.einsum("tbc,co->tbo", z, U) + torch.einsum("oi,tbi->tbo", V, x) + b)
    torch.testing.assert_close(mi(x, z), want)
    assert mi.weight.shape == (C, I, O)


def test_full_is_bilinear_in_x_and_z():
    mi = layer("full")
    x, z = inputs()
    f = lambda x_, z_: mi(x_, z_) - mi(x_, torch.zeros_like(z_)) - mi(torch.zeros_like(x_), z_) \
        + mi(torch.zeros_like(x_), torch.zeros_like(z_))
    torch.testing.assert_close(f(2 * x, z), 2 * f(x, z))
    torch.testing.assert_close(f(x, 3 * z), 3 * f(x, z))
    assert f(x, z).abs().max() > 1e-3          # the multiplicative term is live at initialisation


def test_diagonal_formula():
    mi = layer("diagonal")
    x, z = inputs()
    gate = torch.einsum("tbc,ci->tbi", z, mi.gate_weight) + mi.gate_bias
    want = (gate * x) @ mi.linear.weight.T + mi.linear.bias + z @ mi.context.weight.T
    torch.testing.assert_close(mi(x, z), want)
    assert torch.equal(mi.gate_bias, torch.ones(I, dtype=torch.float64))
    assert mi.gate_weight.abs().max() > 0


def test_scalar_formula():
    mi = layer("scalar")
    x, z = inputs()
    scale = torch.einsum("tbc,c->tb", z, mi.scale_weight) + mi.scale_bias
    want = scale[..., None] * (x @ mi.linear.weight.T) + mi.linear.bias + z @ mi.context.weight.T
    torch.testing.assert_close(mi(x, z), want)
    assert mi.scale_weight.abs().max() > 0


@pytest.mark.parametrize("form", ["full", "diagonal", "scalar"])
def test_context_changes_output_and_gradients_reach_every_parameter(form):
    mi = layer(form)
    x, z = inputs()
    _, z2 = inputs(seed=1)
    assert not torch.allclose(mi(x, z), mi(x, z2))
    mi(x, z).square().sum().backward()
    for name, p in mi.named_parameters():
        assert p.grad is not None and p.grad.abs().max() > 0, name


def test_full_init_scale_matches_linear_term():
    torch.manual_seed(0)
    mi = MultiplicativeLayer(256, 64, 32, "full")
    x, z = torch.randn(4096, 256), torch.randn(4096, 64)
    with torch.no_grad():
        ratio = mi._bilinear(x, z).std() / torch.nn.functional.linear(x, mi.linear.weight).std()
    assert 0.5 < ratio < 2.0


def test_bad_shapes_and_form():
    with pytest.raises(ValueError, match="form"):
        MultiplicativeLayer(2, 2, 2, "low_rank")
    with pytest.raises(ValueError, match="expected x"):
        layer("full")(torch.zeros(3, I + 1, dtype=torch.float64), torch.zeros(3, C, dtype=torch.float64))

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
    zs = z / C                                                             # the context as read
    want = (torch.einsum("tbc,tbi,cio->tbo", zs, x, mi.weight)
            + torch.einsum("tbc,co->tbo", zs, U) + torch.einsum("oi,tbi->tbo", V, x) + b)
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
    zs = z / C
    gate = torch.einsum("tbc,ci->tbi", zs, mi.gate_weight) + mi.gate_bias
    want = (gate * x) @ mi.linear.weight.T + mi.linear.bias + zs @ mi.context.weight.T
    torch.testing.assert_close(mi(x, z), want)
    assert torch.equal(mi.gate_bias, torch.ones(I, dtype=torch.float64))
    assert mi.gate_weight.abs().max() > 0


def test_scalar_formula():
    mi = layer("scalar")
    x, z = inputs()
    zs = z / C
    scale = torch.einsum("tbc,c->tb", zs, mi.scale_weight) + mi.scale_bias
    want = scale[..., None] * (x @ mi.linear.weight.T) + mi.linear.bias + zs @ mi.context.weight.T
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
        bilinear = mi(x, z) - mi(x, torch.zeros_like(z)) - mi(torch.zeros_like(x), z) \
            + mi(torch.zeros_like(x), torch.zeros_like(z))                  # (z / C)^T W x
        ratio = bilinear.std() / torch.nn.functional.linear(x, mi.linear.weight).std()
    assert 0.5 < ratio < 2.0


@pytest.mark.parametrize("context", [4, 64])
def test_one_adam_step_moves_the_bilinear_term_like_a_linear_layer(context):
    """Adam's first step is -lr * sign(grad) per element. For y_o = sum_{c,i} (z_c / C) W[c,i,o] x_i
    the step moves y_o by exactly -lr ||z||_1 ||x||_1 / C: the mean |z_c| times what it moves a linear
    layer's V x by (lr ||x||_1), whatever C is. Without the 1/C it would be C times that."""
    torch.manual_seed(0)
    mi = MultiplicativeLayer(I, context, O, "full").double()
    x, z = torch.randn(1, I, dtype=torch.float64), torch.rand(1, context, dtype=torch.float64) + 0.5
    lr = 1e-3
    optimizer = torch.optim.Adam([mi.weight], lr=lr, eps=1e-30)
    before = mi._bilinear(x, z * mi.context_scale)[0, 0].detach()
    mi(x, z)[0, 0].backward()
    optimizer.step()
    after = mi._bilinear(x, z * mi.context_scale)[0, 0].detach()
    expected = -lr * z.abs().sum() * x.abs().sum() / context
    assert float(after - before) == pytest.approx(float(expected), rel=1e-9)


def test_bad_shapes_and_form():
    with pytest.raises(ValueError, match="form"):
        MultiplicativeLayer(2, 2, 2, "low_rank")
    with pytest.raises(ValueError, match="expected x"):
        layer("full")(torch.zeros(3, I + 1, dtype=torch.float64), torch.zeros(3, C, dtype=torch.float64))

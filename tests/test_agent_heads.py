"""Heads: one interface, task-id routing where (and only where) it should be."""
import pytest
import torch

from agent.config import AgentConfig
from agent.heads import build_head

S, A, K, T, B = 16, 5, 4, 3, 6


def make(head, form="full"):
    torch.manual_seed(0)
    return build_head(AgentConfig(head=head, mi_form=form, context_size=8, context_hidden=12),
                      S, A, K)


def inputs():
    g = torch.Generator().manual_seed(1)
    return torch.randn(T, B, S, generator=g), torch.randint(0, K, (T, B), generator=g)


@pytest.mark.parametrize("head", ["shared", "multihead", "taskid_mi", "learnt_mi"])
@pytest.mark.parametrize("form", ["full", "diagonal", "scalar"])
def test_interface_shapes(head, form):
    logits, baseline = make(head, form)(*inputs())
    assert logits.shape == (T, B, A) and baseline.shape == (T, B)


@pytest.mark.parametrize("head, depends_on_task", [
    ("shared", False), ("multihead", True), ("taskid_mi", True), ("learnt_mi", False)])
def test_changing_one_task_id_changes_only_that_row(head, depends_on_task):
    module = make(head)
    h, task = inputs()
    other = task.clone()
    other[1, 2] = (task[1, 2] + 1) % K
    logits0, base0 = module(h, task)
    logits1, base1 = module(h, other)
    changed = (logits0 - logits1).abs().amax(-1) + (base0 - base1).abs()
    if depends_on_task:
        assert changed[1, 2] > 1e-4
        changed[1, 2] = 0
    assert torch.equal(changed, torch.zeros(T, B))


def test_multihead_is_the_selected_linear_head():
    module = make("multihead")
    h, task = inputs()
    logits, baseline = module(h, task)
    for t in range(T):
        for b in range(B):
            k = task[t, b]
            out = h[t, b] @ module.weight[k] + module.bias[k]
            torch.testing.assert_close(logits[t, b], out[:A])
            torch.testing.assert_close(baseline[t, b], out[A])


def test_multihead_gradients_reach_only_selected_heads():
    module = make("multihead")
    h, _ = inputs()
    task = torch.tensor([0, 2]).repeat(T, B // 2)
    logits, baseline = module(h, task)
    (logits.sum() + baseline.sum()).backward()
    for k in range(K):
        used = k in (0, 2)
        assert (module.weight.grad[k].abs().sum() > 0) == used
        assert (module.bias.grad[k].abs().sum() > 0) == used


def test_learnt_mi_ignores_task_id_and_its_context_depends_on_h():
    h, task = inputs()
    learnt = make("learnt_mi")
    torch.testing.assert_close(learnt(h, task)[0], learnt(h, torch.zeros_like(task))[0], rtol=0, atol=0)
    assert learnt.context[0].in_features == S
    assert make("taskid_mi").context[0].in_features == K        # onehot(task id) -> MLP


def test_context_mlp_without_hidden_layer():
    module = build_head(AgentConfig(head="learnt_mi", context_size=8, context_hidden=0), S, A, K)
    assert len(module.context) == 2        # Linear -> ReLU
    logits, _ = module(*inputs())
    assert logits.shape == (T, B, A)


def test_task_contexts_start_at_unit_scale_and_apart():
    """He-normal, zero-bias context MLP with fan-in 1 for the one-hot task id: E[c_j^2] = 1, and two
    tasks' contexts have the cosine of two independent relu layers (the degree-1 arc-cosine kernel,
    Cho & Saul 2009): 1/pi after the first layer, k(1/pi) ~= 0.494 after the second. The old
    nn.Linear default started them at norm ~0.5 and cosine ~0.75-0.9 (a shared head in disguise)."""
    import math

    torch.manual_seed(0)
    k = 30
    head = build_head(AgentConfig(head="taskid_mi", context_size=1024, context_hidden=1024), S, A, k)
    assert all(float(layer.bias.detach().abs().max()) == 0.0 for layer in head.context[::2])
    c = head.contexts(torch.zeros(k, S), torch.arange(k)).detach()       # [K, C]
    assert 0.85 < float(c.pow(2).mean()) < 1.15
    cos = torch.nn.functional.cosine_similarity(c[:, None], c[None], dim=-1)
    off_diagonal = cos[~torch.eye(k, dtype=torch.bool)]
    rho = 1.0 / math.pi
    expected = (math.sqrt(1.0 - rho * rho) + (math.pi - math.acos(rho)) * rho) / math.pi
    assert abs(float(off_diagonal.mean()) - expected) < 0.05, (float(off_diagonal.mean()), expected)


def test_learnt_context_mlp_is_he_initialised():
    torch.manual_seed(0)
    head = build_head(AgentConfig(head="learnt_mi", context_size=512, context_hidden=512), 256, A, K)
    first, second = head.context[0], head.context[2]
    for layer, fan_in in ((first, 256), (second, 512)):
        assert float(layer.bias.detach().abs().max()) == 0.0
        assert abs(float(layer.weight.detach().std()) / (2.0 / fan_in) ** 0.5 - 1.0) < 0.03

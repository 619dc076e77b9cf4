"""Issue 15's options: the one-hot context ablation, the context scale's config, the constant LR."""
import dataclasses
import math

import pytest
import torch

from agent.config import AUTO_CONTEXT_SCALE, AgentConfig
from agent.heads import MultiHead, TaskIdMIHead
from agent.multiplicative import MultiplicativeLayer
from configs.schema import config_from_dict, incompatible_changes, load_config
from learner.config import LearnerConfig
from learner.learner import Learner
from tests.test_learner_step import random_batch, small_agent


@pytest.mark.parametrize("scale", ["1", "1/sqrt(C)", "1/C"])
def test_one_hot_context_head_is_exactly_per_task_heads_plus_a_shared_linear_layer(scale):
    torch.manual_seed(0)
    k, s_size, a = 3, 10, 4
    head = TaskIdMIHead(AgentConfig(head="taskid_mi", mi_context="onehot", mi_context_scale=scale),
                        core_size=s_size, num_actions=a, num_tasks=k)
    assert not hasattr(head, "context") and head.mi.context_features == k
    h = torch.randn(5, 6, s_size)
    task = torch.randint(0, k, (5, 6))
    logits, value = head(h, task)
    # by hand from the parameters: task k's head is (s W[k] + V) h + s U[k] + b
    s = {"1": 1.0, "1/sqrt(C)": 1 / math.sqrt(k), "1/C": 1 / k}[scale]
    w, u = head.mi.weight.detach(), head.mi.context.weight.detach().t()      # [K, S, A+1], [K, A+1]
    v, b = head.mi.linear.weight.detach(), head.mi.linear.bias.detach()      # [A+1, S], [A+1]
    by_hand = torch.stack([torch.stack([h[t, j] @ (s * w[task[t, j]] + v.t()) + s * u[task[t, j]] + b
                                        for j in range(6)]) for t in range(5)])
    torch.testing.assert_close(torch.cat([logits, value.unsqueeze(-1)], -1), by_hand, rtol=1e-5, atol=1e-5)
    # and as this repository's MultiHead with those weights: the ablation is multihead + shared layer
    multi = MultiHead(s_size, a, k)
    with torch.no_grad():
        multi.weight.copy_(s * w + v.t())
        multi.bias.copy_(s * u + b)
    m_logits, m_value = multi(h, task)
    torch.testing.assert_close(m_logits, logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(m_value, value, rtol=1e-5, atol=1e-5)


def test_one_hot_context_is_refused_for_other_heads_and_bad_values_are_named():
    with pytest.raises(ValueError, match="mi_context=onehot is an option of head=taskid_mi only"):
        AgentConfig(head="learnt_mi", mi_context="onehot")
    with pytest.raises(ValueError, match=r"agent.mi_context='raw' is not one of mlp, onehot"):
        AgentConfig(head="taskid_mi", mi_context="raw")
    with pytest.raises(ValueError, match=r"agent.mi_context_scale='1/C2' is not one of 1, 1/sqrt\(C\), 1/C, auto"):
        AgentConfig(mi_context_scale="1/C2")
    with pytest.raises(ValueError, match="'auto' is resolved by the config"):
        MultiplicativeLayer(4, 3, 2, "full", "auto")


def test_auto_resolves_per_optimizer_and_old_configs_keep_1_over_c(tmp_path):
    for optimizer, expected in AUTO_CONTEXT_SCALE.items():
        for head in ("taskid_mi", "learnt_mi"):
            cfg = load_config(None, [f"learner.optimizer={optimizer}", "agent.mi_context_scale=auto", f"head={head}"])
            assert cfg.agent.mi_context_scale == expected
        for head in ("shared", "multihead"):        # no MI layer: the default, whatever the optimizer
            cfg = load_config(None, [f"learner.optimizer={optimizer}", "agent.mi_context_scale=auto", f"head={head}"])
            assert cfg.agent.mi_context_scale == "1/C"
    bad, _ = incompatible_changes(load_config(None, ["head=taskid_mi"]),
                                  load_config(None, ["head=taskid_mi", "learner.optimizer=rmsprop"]))
    assert bad == ["agent.mi_context_scale", "learner.optimizer"]        # resuming would change the function
    assert AUTO_CONTEXT_SCALE == {"adam": "1/C", "rmsprop": "1/sqrt(C)"}
    assert load_config(None, ["agent.mi_context_scale=1"]).agent.mi_context_scale == "1"   # YAML int
    # the shipped configs ask for auto; a saved config written before the field existed (no key) is 1/C,
    # the scale its checkpoint was trained with, whatever its optimizer
    dmlab = load_config("configs/dmlab30.yaml", ["head=learnt_mi"])
    assert dmlab.agent.mi_context_scale == "1/sqrt(C)"
    old = dmlab.to_dict()
    del old["agent"]["mi_context_scale"], old["agent"]["mi_context"]
    assert config_from_dict(old).agent.mi_context_scale == "1/C"
    assert config_from_dict(dmlab.to_dict()).agent.mi_context_scale == "1/sqrt(C)"


def test_scale_changes_the_forward_factor_not_the_initial_function():
    """Each scale's init divides the context parameters by s: the same draws give the same outputs."""
    x, z = torch.randn(7, 12), torch.relu(torch.randn(7, 8))
    outputs = []
    for scale in ("1", "1/sqrt(C)", "1/C"):
        torch.manual_seed(3)
        layer = MultiplicativeLayer(12, 8, 5, "full", scale)
        assert layer.context_scale == pytest.approx({"1": 1.0, "1/sqrt(C)": 8 ** -0.5, "1/C": 1 / 8}[scale])
        outputs.append(layer(x, z).detach())
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(outputs[0], outputs[2], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("schedule,expected", [("constant", [0.01, 0.01, 0.01, 0.01]),
                                               ("linear", [0.01, 0.0075, 0.005, 0.0025])])
def test_learning_rate_by_value_over_updates(schedule, expected):
    """Each update's rate (the learner's ``learning_rate`` metric): constant stays at learning_rate;
    linear (IMPALA) falls by batch frames / total_frames per update (T 8 x B 4 = 32 of 128 frames)."""
    cfg = LearnerConfig(optimizer="adam", learning_rate=0.01, lr_schedule=schedule)
    learner = Learner(small_agent("shared"), cfg, total_frames=128, action_repeat=1, device="cpu")
    rates = [float(learner.step(random_batch(seed=i))["learning_rate"]) for i in range(4)]
    assert rates == pytest.approx(expected)
    with pytest.raises(ValueError, match="learner.lr_schedule='cosine' is not one of linear, constant"):
        dataclasses.replace(cfg, lr_schedule="cosine")

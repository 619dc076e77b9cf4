"""Optimizer choice, the linear LR anneal over frames, gradient-norm clipping, config validation."""
import dataclasses

import pytest
import torch

from learner.config import LearnerConfig
from learner.optim import LinearDecay, build_optimizer, grad_norm
from learner.rmsprop import TFRMSprop


def test_linear_anneal_values():
    schedule = LinearDecay(0.1, total_frames=1000)
    assert schedule.learning_rate == 0.1
    schedule.advance(250)
    assert schedule.learning_rate == pytest.approx(0.075)
    schedule.advance(750)
    assert schedule.learning_rate == 0.0
    schedule.advance(500)                       # past the budget: stays at zero
    assert schedule.learning_rate == 0.0
    restored = LinearDecay(0.1, total_frames=1000)
    restored.load_state_dict(schedule.state_dict())
    assert restored.frames == 1500


def test_schedule_sets_optimizer_lr():
    p = torch.nn.Parameter(torch.zeros(2))
    opt = build_optimizer([p], LearnerConfig())
    schedule = LinearDecay(0.2, total_frames=10)
    schedule.advance(5)
    assert schedule.apply(opt) == pytest.approx(0.1)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)


def test_build_optimizer_choices():
    p = [torch.nn.Parameter(torch.zeros(2))]
    rms = build_optimizer(p, LearnerConfig())
    assert isinstance(rms, TFRMSprop)
    assert rms.defaults["decay"] == 0.99 and rms.defaults["epsilon"] == 0.1
    assert rms.defaults["momentum"] == 0.0 and rms.defaults["lr"] == 0.00031866995608948655
    assert isinstance(build_optimizer(p, LearnerConfig(optimizer="adam")), torch.optim.Adam)


def test_grad_norm_and_clipping():
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(1))
    a.grad, b.grad = torch.tensor([3.0, 0.0]), torch.tensor([4.0])
    torch.testing.assert_close(grad_norm([a, b], None), torch.tensor(5.0))
    assert torch.equal(a.grad, torch.tensor([3.0, 0.0]))
    torch.testing.assert_close(grad_norm([a, b], 1.0), torch.tensor(5.0))   # the norm before clipping
    torch.testing.assert_close(torch.cat([a.grad, b.grad]).norm(), torch.tensor(1.0), atol=1e-5, rtol=0)


def test_config_defaults_are_the_reference_settings():
    cfg = LearnerConfig()
    assert (cfg.batch_size, cfg.unroll_length, cfg.discount, cfg.baseline_cost) == (32, 100, 0.99, 0.5)
    assert cfg.entropy_cost == 0.0033391318945337044
    assert cfg.grad_norm_clip is None and cfg.vtrace_lambda == 1.0
    assert LearnerConfig(adam_betas=[0.8, 0.9]).adam_betas == (0.8, 0.9)


@pytest.mark.parametrize("field, value", [
    ("reward_clipping", "sign"), ("optimizer", "sgd"), ("precision", "fp16"), ("batch_size", 0),
    ("unroll_length", 2.5), ("discount", 1.5), ("vtrace_lambda", -0.1), ("rmsprop_decay", 1.0),
    ("entropy_cost", -1.0), ("grad_norm_clip", 0.0), ("clip_rho_threshold", -1.0),
    ("adam_betas", (0.9,)), ("learning_rate", "fast")])
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"learner.{field}"):
        LearnerConfig(**{field: value})


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        LearnerConfig().discount = 0.5

"""Checkpoints from before the MI layer read its context as z / C (agent/multiplicative.py) load
with the same function: their MI parameters are rescaled, and on resume so is the optimizer state."""
from dataclasses import asdict

import pytest
import torch

from agent import Agent, AgentConfig
from configs.schema import load_config
from learner.checkpoint import Checkpointer
from agent.multiplicative import PARAMETRIZATION, MultiplicativeLayer, upgrade_state_dict
from learner.optim import rescale_optimizer_state
from training.restore import load_agent

I, C, O = 5, 3, 4


@pytest.mark.parametrize("form", ["full", "diagonal", "scalar"])
def test_old_layer_state_loads_with_the_same_function(form):
    """A version-1 layer computed its formulas with z itself; written out naively here."""
    torch.manual_seed(0)
    old = {k: v.clone() for k, v in MultiplicativeLayer(I, C, O, form).state_dict().items()}
    x, z = torch.randn(7, I), torch.rand(7, C)
    v, b, u = old["linear.weight"], old["linear.bias"], old["context.weight"].t()
    if form == "full":
        want = torch.einsum("nc,ni,cio->no", z, x, old["weight"])
    elif form == "diagonal":
        want = ((z @ old["gate_weight"] + old["gate_bias"]) * x) @ v.t() - x @ v.t()
    else:
        want = (z @ old["scale_weight"] + old["scale_bias"])[:, None] * (x @ v.t()) - x @ v.t()
    want = want + x @ v.t() + b + z @ u

    state = {"head.mi." + k: t for k, t in old.items()}
    factors = upgrade_state_dict(state, "head.mi.", version=1)
    assert set(factors.values()) == {float(C)} and len(factors) == 2
    layer = MultiplicativeLayer(I, C, O, form)
    layer.load_state_dict({k[len("head.mi."):]: t for k, t in state.items()})
    torch.testing.assert_close(layer(x, z), want, rtol=1e-5, atol=1e-5)
    assert upgrade_state_dict(state, "head.mi.", version=PARAMETRIZATION) == {}     # current: untouched


def test_optimizer_state_follows_the_reparametrization():
    """p' = f p, g' = g / f: Adam's first moment / f, second / f^2; TF RMSProp's ms / f^2, mom * f."""
    adam = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.tensor([4.0]),
                          "exp_avg_sq": torch.tensor([32.0])},
                      1: {"step": torch.tensor(3.0), "exp_avg": torch.tensor([1.0]),
                          "exp_avg_sq": torch.tensor([1.0])}},
            "param_groups": [{"params": [0, 1]}]}
    out = rescale_optimizer_state(adam, ["a", "b"], {"a": 4.0})
    assert out["state"][0]["exp_avg"].item() == 1.0 and out["state"][0]["exp_avg_sq"].item() == 2.0
    assert out["state"][0]["step"].item() == 3.0 and out["state"][1]["exp_avg"].item() == 1.0
    assert adam["state"][0]["exp_avg"].item() == 4.0                                  # a copy
    rms = {"state": {0: {"ms": torch.tensor([8.0]), "mom": torch.tensor([0.5])}}, "param_groups": []}
    out = rescale_optimizer_state(rms, ["a"], {"a": 2.0})
    assert out["state"][0]["ms"].item() == 2.0 and out["state"][0]["mom"].item() == 1.0


def test_agent_from_an_old_checkpoint_acts_as_it_did(tmp_path):
    cfg = AgentConfig(torso="small", core_size=8, torso_out=8, head="taskid_mi", context_size=4,
                      context_hidden=0, use_instruction=False)
    spec = {"num_actions": 3, "num_tasks": 2, "frame_shape": [3, 16, 16], "instruction_length": 0}
    torch.manual_seed(0)
    agent = Agent(cfg, **{**spec, "frame_shape": (3, 16, 16)})
    old_model = dict(agent.state_dict())
    for key in ("head.mi.weight", "head.mi.context.weight"):      # the same function, version 1
        old_model[key] = old_model[key] / 4.0
    config = load_config(None, ["head=taskid_mi", "torso=small", "agent.core_size=8", "agent.torso_out=8",
                                "agent.context_size=4", "agent.context_hidden=0",
                                "agent.use_instruction=false"])
    path = Checkpointer(tmp_path / "checkpoints").save(
        {"format": 2, "config": asdict(config), "agent_spec": spec, "learner": {"model": old_model}}, 1)
    loaded, _ = load_agent(path)
    for key, value in agent.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=1e-6)

"""A trained agent from a checkpoint, for notebooks and evaluation scripts.

    from training.restore import load_agent
    agent, config = load_agent("runs/embedded")      # a logdir (its newest checkpoint) or a .pt file
"""
from __future__ import annotations

import os

import torch

from agent import Agent
from agent.types import AgentSpec
from configs.schema import TrainConfig, config_from_dict
from learner.checkpoint import checkpoint_dir, latest, load_file, upgrade


def load_agent(path: str | os.PathLike, device: torch.device | str = "cpu",
               trust: bool = False) -> tuple[Agent, TrainConfig]:
    """``(agent, config)`` from a checkpoint file, or from a logdir (its newest readable checkpoint):
    the trained agent in eval mode on ``device`` and the run's ``configs.schema.TrainConfig``.
    Reads with ``torch.load(weights_only=True)``; ``trust=True`` also opens the old single-file
    format, which unpickles objects (only for files you wrote: learner/checkpoint.py). Older
    checkpoints are upgraded (``learner.checkpoint.upgrade``): the same function as when saved."""
    if os.path.isdir(path):
        found = latest(path, trust=trust)
        if found is None:
            raise FileNotFoundError(f"{path} holds no checkpoint (looked in {checkpoint_dir(path)})")
        state = found[0]
    else:
        state = load_file(path, trust=trust)
    state, _ = upgrade(state)
    config = config_from_dict(state["config"])
    spec = state["agent_spec"]
    agent = Agent.for_suite(config.agent, AgentSpec(**{**spec, "frame_shape": tuple(spec["frame_shape"])}))
    agent.load_state_dict(state["learner"]["model"])
    return agent.to(device).eval(), config

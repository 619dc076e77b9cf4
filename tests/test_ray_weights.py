"""RaySource: an unroll starts from the newest published weights, whenever its request was queued.

Real Ray (a local cluster in this process), real envs. Before the weight store, the two requests
queued at start carried version 0's weights and so acted with them.
"""
import logging

import numpy as np
import pytest
import ray

from actors.actor import assign_tasks
from actors.ray_source import RaySource
from agent import AgentConfig
from envs.suites import get_suite

AGENT = AgentConfig(torso="small", core_size=16, torso_out=16, use_instruction=False)


@pytest.fixture(scope="module")
def local_ray():
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield
    ray.shutdown()


@pytest.mark.heavy(7)
def test_unrolls_use_the_newest_weights_at_their_start(local_ray):
    from agent import Agent

    suite = get_suite("embedded")
    agent = Agent(AGENT, num_actions=suite.num_actions, num_tasks=len(suite.tasks),
                  frame_shape=suite.frame_shape, instruction_length=suite.instruction_length)
    random_weights = {k: v.numpy().copy() for k, v in agent.state_dict().items()}
    zero_weights = {k: np.zeros_like(v) for k, v in random_weights.items()}   # logits exactly 0

    def actor_args(actor_id, incarnation):
        return dict(suite=suite, agent_config=AGENT, task_ids=assign_tasks([0, 1], actor_id, 2), unroll_length=4,
                    seed=0, actor_id=actor_id, incarnation=incarnation)

    events = []
    source = RaySource(actor_args, 1, unrolls_in_flight=2, max_restarts=0, cpus_per_actor=1,
                       on_event=lambda kind, **f: events.append(kind), wait_seconds=5.0)
    try:
        source.start(0, random_weights)
        source.publish(7, zero_weights)          # before the actor is even up: both queued requests see it
        unrolls = []
        while len(unrolls) < 3:
            unrolls += source.get()
        assert [u.policy_version for u in unrolls] == [7, 7, 7]
        for u in unrolls:
            assert np.all(u.behaviour_logits == 0.0)
        source.publish(9, random_weights)
        later = []
        while not any(u.policy_version == 9 for u in later):
            later += source.get()
        fresh = [u for u in later if u.policy_version == 9]
        assert np.all(np.abs(fresh[-1].behaviour_logits[1:]) > 0)      # acted with the random weights
        assert "actor_restart" not in events
    finally:
        source.close()

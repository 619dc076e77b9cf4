"""The actor's unrolls, checked against independent references.

* Replay: the learner's forward pass over an unroll (through the batcher, from the core state
  the unroll carries) reproduces the actor's behaviour logits, for every head, language tasks
  included; consecutive unrolls overlap by exactly one step.
* Alignment on scripted envs whose rewards, episode ends and observations are known in
  advance (``scripted_suite``): one episode ends mid-unroll, one exactly at step T, one at the
  first step of an unroll.

Both for today's actor and for ``OverlapWorker`` (``actors.overlap``: envs in a child process,
stepped in two groups while the network acts on the other group).
"""
import os
from collections import Counter

import numpy as np
import pytest
import torch

import scripted_suite as ss
from actors.actor import UnrollWorker
from actors.overlap import OverlapWorker
from agent import Agent, AgentConfig, CoreState, agent_input_from_unroll
from agent.config import HEADS
from envs.suites import get_suite
from training.batching import Batcher, to_device

SMALL = dict(torso="small", core_size=32, torso_out=32, context_size=8, context_hidden=16,
             instruction_embed=8, instruction_lstm=16)
WORKERS = [UnrollWorker, OverlapWorker]   # today's actor, and the one that steps half its envs while acting
OVERLAP_FIELDS = ("frame", "instruction", "reward", "done", "last_action", "action", "behaviour_logits", "task_id")


def weights_of(agent):
    return {k: v.detach().numpy().copy() for k, v in agent.state_dict().items()}


@pytest.mark.parametrize("worker,head", [(UnrollWorker, h) for h in HEADS] + [(OverlapWorker, "taskid_mi")])
def test_learner_replay_reproduces_behaviour_logits(worker, head):
    suite = get_suite("embedded")
    names = list(suite.task_names)
    task_ids = [names.index(n) for n in ("fetch_object", "goto_door", "goto_goal", "collect_green")]
    cfg = AgentConfig(head=head, **SMALL)
    torch.manual_seed(0)
    learner_agent = Agent(cfg, num_actions=suite.num_actions, num_tasks=len(suite.tasks),
                          frame_shape=suite.frame_shape, instruction_length=suite.instruction_length)
    actor = worker(suite, cfg, task_ids, unroll_length=10, seed=3, actor_id=0)
    actor.set_weights(7, weights_of(learner_agent))
    batcher = Batcher(batch_size=len(task_ids))
    previous, resets_inside = None, 0
    try:
        for _ in range(4):
            unroll = actor.unroll()
            assert unroll.policy_version == 7
            if previous is not None:
                for name in OVERLAP_FIELDS:
                    np.testing.assert_array_equal(getattr(unroll, name)[0], getattr(previous, name)[-1],
                                                  err_msg=f"step 0 of {name} is not step T of the previous unroll")
            resets_inside += int(unroll.done[1:].sum())
            batcher.add([unroll])
            fields, versions = batcher.take()
            assert (versions == 7).all()
            batch = to_device(fields, torch.device("cpu"))
            with torch.no_grad():
                output, _ = learner_agent(agent_input_from_unroll(batch), CoreState(batch["core_h"], batch["core_c"]))
            torch.testing.assert_close(output.policy_logits, batch["behaviour_logits"], atol=2e-5, rtol=1e-5)
            previous = unroll
    finally:
        actor.close()
    language = previous.instruction[:, :2]                       # fetch_object, goto_door columns
    assert (language != 0).any(axis=-1).all(), "language tasks must carry an instruction at every step"
    assert (previous.instruction[:, 2:] == 0).all()
    assert resets_inside > 0, "no episode ended inside the unrolls: the reset path was not exercised"


LENGTHS = [(3, 5, 2), (4, 1, 6)]   # env 0 ends at steps 3, 8, 10, 13, 18, 20; env 1 at 4, 5, 11, 15, 16
T, UNROLLS = 4, 5


@pytest.mark.parametrize("worker", WORKERS)
def test_actor_alignment_on_scripted_envs(worker, tmp_path):
    suite = ss.counting_suite(LENGTHS, log_dir=str(tmp_path))
    cfg = AgentConfig(head="shared", instruction_buckets=100, **SMALL)
    actor = worker(suite, cfg, [0, 1], unroll_length=T, seed=0, actor_id=0)
    unrolls = [actor.unroll() for _ in range(UNROLLS)]
    actor.close()
    logs = ss.read_logs(tmp_path)
    envs = {tuple(log["lengths"]): log for log in logs}
    assert set(envs) == set(LENGTHS) and len(logs) == 2, "one CountingEnv per column"
    where_run = {log["pid"] == os.getpid() for log in logs}
    assert where_run == {worker is UnrollWorker}, "OverlapWorker steps its envs in another process"

    u0 = unrolls[0]
    np.testing.assert_array_equal(u0.done[0], [True, True])           # the first step starts episodes
    np.testing.assert_array_equal(u0.reward[0], [0.0, 0.0])
    np.testing.assert_array_equal(u0.frame[0, :, 0, 0, :2], [[0, 0], [0, 0]])
    for u in unrolls:
        np.testing.assert_array_equal(u.last_action[u.done], 0)       # a new episode has no last action
        np.testing.assert_array_equal(u.task_id, np.broadcast_to([0, 1], (T + 1, 2)))
    for a, b in zip(unrolls, unrolls[1:]):
        for name in OVERLAP_FIELDS:
            np.testing.assert_array_equal(b.__getattribute__(name)[0], a.__getattribute__(name)[-1], err_msg=name)

    for j, lengths in enumerate(LENGTHS):
        sched = ss.schedule(lengths, T * UNROLLS)
        actions = envs[lengths]["actions"]
        # the overlapped actor has already sent the next unroll's first actions when it returns one
        assert len(actions) == T * UNROLLS + (worker is OverlapWorker)
        for u, unroll in enumerate(unrolls):
            for t in range(1, T + 1):
                g = u * T + t                                          # the g-th env.step of this env
                k, s, ended = sched[g - 1]
                where = f"env {j}, unroll {u}, t={t} (episode {k}, step {s})"
                assert unroll.reward[t, j] == ss.reward_of(k, s), where
                assert unroll.done[t, j] == ended, where
                assert unroll.truncated[t, j] == (ended and k % 2 == 1), where   # odd episodes hit a time limit
                seen = ss.observation(k + 1, 0) if ended else ss.observation(k, s)
                np.testing.assert_array_equal(unroll.frame[t, j], seen["frame"], err_msg=where)
                np.testing.assert_array_equal(unroll.instruction[t, j], seen["instruction"], err_msg=where)
                assert unroll.action[t - 1, j] == actions[g - 1], where   # a_{t-1} is what the env got
                assert unroll.last_action[t, j] == (0 if ended else unroll.action[t - 1, j]), where

    # Episode statistics: as scripted, and equal to the sums of the rewards inside the unrolls.
    running = [0.0, 0.0]
    for u, unroll in enumerate(unrolls):
        from_rewards, scripted = Counter(), Counter()
        for j, lengths in enumerate(LENGTHS):
            for t in range(1, T + 1):
                running[j] += float(unroll.reward[t, j])
                if unroll.done[t, j]:
                    k, s, _ = ss.schedule(lengths, u * T + t)[-1]
                    from_rewards[(j, running[j], s)] += 1
                    scripted[(j, sum(ss.reward_of(k, i) for i in range(1, s + 1)), lengths[k % len(lengths)])] += 1
                    running[j] = 0.0
        reported = Counter((e.task_id, e.episode_return, e.length) for e in unroll.episodes)
        assert reported == from_rewards == scripted, f"unroll {u}"
    assert sum(len(u.episodes) for u in unrolls) == 11

"""Diagnostics that can show task inference (agent/diagnostics.py): context similarity before and
after the first reward of an episode, and a held-out linear probe of the task from the context."""
import numpy as np
import pytest
import torch

from agent.diagnostics import AFTER, BEFORE, UNKNOWN, phase_similarity, probe_accuracy, reward_phase
from training.diagnostics_log import diagnostics_record
from tests.test_learner_step import random_batch, small_agent
from agent.diagnostics import batch_diagnostics


def test_reward_phase_by_hand():
    # column 0: an episode begun before the unroll (unknown), a new one at t=2, its first reward at t=4
    # column 1: a new episode at t=0, a reward at t=1 (after), a new episode at t=3 whose reward at t=3
    #           belongs to the finished episode (done: not seen), so t=3.. are before
    reward = torch.tensor([[1.0, 0.0], [0.0, -1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    done = torch.tensor([[False, True], [False, False], [True, False], [False, True], [False, False]])
    expected = torch.tensor([[UNKNOWN, BEFORE], [UNKNOWN, AFTER], [BEFORE, AFTER], [BEFORE, BEFORE],
                             [AFTER, BEFORE]])
    assert torch.equal(reward_phase(reward, done), expected)


def test_similarity_before_and_after_the_first_reward_from_hand_made_contexts():
    # two tasks, one column each; before the reward both contexts are e0 (no task information), after it
    # task 0 moves to e1 and task 1 to e2 (orthogonal): cos 1 before, 0 after; the overall mean mixes them
    done = torch.tensor([[True, True], [False, False], [False, False], [False, False]])
    reward = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, -1.0], [0.0, 0.0]])
    e = torch.eye(3)
    z = torch.stack([torch.stack([e[0], e[0]]), torch.stack([e[0], e[0]]),
                     torch.stack([e[1], e[2]]), torch.stack([e[1], e[2]])])       # [T=4, B=2, C=3]
    task = torch.tensor([[0, 1]] * 4)
    phase = reward_phase(reward, done)
    before = phase_similarity(z, task, phase, BEFORE, 2)
    after = phase_similarity(z, task, phase, AFTER, 2)
    torch.testing.assert_close(before, torch.ones(2, 2))
    torch.testing.assert_close(after, torch.eye(2))
    assert torch.isnan(phase_similarity(z, task, torch.full_like(phase, BEFORE), AFTER, 2)).all()


def test_probe_separable_contexts_score_one_identical_contexts_score_chance():
    rng = np.random.default_rng(0)
    t, b, c = 6, 8, 5
    task = np.tile(np.arange(b) % 2, (t, 1))                      # columns alternate tasks 0, 1
    separable = rng.normal(size=(t, b, c))
    separable[..., 0] += np.where(task == 0, 3.0, -3.0)          # the task shifts one unit
    assert probe_accuracy(separable, task) == (1.0, 0.5)
    identical = np.broadcast_to(rng.normal(size=c), (t, b, c))
    accuracy, chance = probe_accuracy(identical, task)
    assert accuracy == chance == 0.5                             # 2 balanced tasks: chance is 1/2
    three = np.tile(np.arange(9) % 3, (t, 1))                    # 3 tasks, 3 columns each
    accuracy, chance = probe_accuracy(np.broadcast_to(rng.normal(size=c), (t, 9, c)), three)
    assert accuracy == pytest.approx(1 / 3) and chance == pytest.approx(1 / 3)
    # held out by column: noise contexts cannot be memorised (a probe fit on its own steps could)
    noise = rng.normal(size=(40, 8, 30))
    assert probe_accuracy(noise, np.tile(np.arange(8) % 2, (40, 1)))[0] < 0.75
    # one column per task: nothing to hold out
    assert np.isnan(probe_accuracy(separable[:, :2], task[:, :2])[0])


def test_the_diagnostics_record_holds_the_task_inference_keys():
    agent = small_agent("taskid_mi")
    batch = random_batch(steps=8, batch=4)
    batch["task_id"] = torch.tensor([0, 1, 0, 1]).expand(9, 4).clone()   # a column keeps its task
    record = diagnostics_record(batch_diagnostics(agent, batch), ["a", "b"], [0, 1], frames=1, updates=1, time=0.0)
    for key in ("context_similarity_before_reward", "context_similarity_after_reward"):
        assert len(record[key]) == 2 and all(len(row) == 2 for row in record[key])
    # taskid_mi's context is a function of the task id alone: a linear probe separates the two tasks
    assert record["probe_accuracy"] == 1.0 and record["probe_chance"] == 0.5

"""Reporter and learner loop driven by a scripted source: scores, windows, policy lag, TensorBoard.

The source hands the loop one unroll (B columns = one learner batch) per ``get()``, with the
behaviour policy version and the finished episodes chosen here, so every reported number has
a hand-computed expected value. The TensorBoard values are read back from the event files.
"""
import io
import time

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import scripted_suite as ss
from agent import Agent, AgentConfig
from agent.types import EpisodeStat, Unroll
from conftest import read_jsonl
from learner import Learner, LearnerConfig
from learner.checkpoint import Checkpointer
from training.loop import TrainLoop
from training.report import Reporter

T, B = 2, 2
# Tasks (random, human) reference returns: count0 (0, 10), count1 (1, 3), count2 (-2, 2).
SCORES = [(0.0, 10.0), (1.0, 3.0), (-2.0, 2.0)]
# Per get(): the version of the weights that acted, and the episodes that finished (task, return, length).
PLAN = [
    (0, [(0, 12.0, 5)]),                 # count0 scores 120 (above the cap)
    (0, [(1, 0.0, 7)]),                  # count1 scores -50 (below random)
    (1, []),
    (1, [(2, 0.0, 3)]),                  # count2 scores 50: every task has finished an episode
    (3, [(0, 2.0, 9), (0, 4.0, 11)]),    # window 2: count0's 12 drops out, mean 3 -> 30
    (2, [(1, 5.0, 1)]),                  # count1 mean (0 + 5) / 2 = 2.5 -> 75
]
# Expected after each learner step k (update k + 1). Policy lag = updates before the step - version.
LAGS = [0, 1, 1, 2, 1, 3]
CAPPED = [None, None, None, (100 - 50 + 50) / 3, (30 - 50 + 50) / 3, (30 + 75 + 50) / 3]
UNCAPPED = [None, None, None, (120 - 50 + 50) / 3, (30 - 50 + 50) / 3, (30 + 75 + 50) / 3]
COUNT0_RETURN = [12.0, 12.0, 12.0, 12.0, 3.0, 3.0]
COUNT0_LENGTH = [5, 5, 5, 5, 10, 10]
COUNT1_RETURN = [None, 0.0, 0.0, 0.0, 0.0, 2.5]
# The source's backlog at each get(): (unrolls waiting for the learner, requests still acting).
BACKLOG = [(2, 1), (0, 3), (4, 0), (1, 1), (3, 0), (0, 2)]


class ScriptedSource:
    """The loop's source interface, serving PLAN; records the weights published to it."""

    def __init__(self, plan, num_actions, backlogs=None, get_seconds=0.0):
        self.plan = list(plan)
        self.backlogs = list(backlogs or [(0, 0)] * len(plan))
        self.get_seconds = get_seconds
        self.now = (0, 0)
        self.rng = np.random.default_rng(0)
        self.num_actions = num_actions
        self.published = []

    def start(self, version, weights):
        self.publish(version, weights)

    def publish(self, version, weights):
        self.published.append(version)

    def get(self):
        if not self.plan:
            return []
        version, episodes = self.plan.pop(0)
        self.now = self.backlogs.pop(0)
        time.sleep(self.get_seconds)
        r = self.rng
        return [Unroll(
            frame=r.integers(0, 256, (T + 1, B, *ss.FRAME_SHAPE), dtype=np.uint8),
            instruction=r.integers(0, 20, (T + 1, B, ss.INSTRUCTION_LENGTH)),
            reward=r.normal(size=(T + 1, B)).astype(np.float32), done=r.random((T + 1, B)) < 0.2,
            last_action=r.integers(0, self.num_actions, (T + 1, B)),
            action=r.integers(0, self.num_actions, (T + 1, B)),
            behaviour_logits=r.normal(size=(T + 1, B, self.num_actions)).astype(np.float32),
            task_id=r.integers(0, 3, (T + 1, B)), truncated=np.zeros((T + 1, B), bool),
            truncation_value=np.zeros((T + 1, B), np.float32),
            core_h=np.zeros((B, 16), np.float32), core_c=np.zeros((B, 16), np.float32),
            policy_version=version, actor_id=0, incarnation=0,
            episodes=tuple(EpisodeStat(*e) for e in episodes))]

    def backlog(self):
        return self.now

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass

    def close(self):
        pass


def scalars(acc, tag):
    """{step: first value written at that step} of a TensorBoard scalar."""
    out = {}
    for event in acc.Scalars(tag):
        out.setdefault(event.step, event.value)
    return out


def make_loop(logdir, source, report_every_seconds=1e-9, stream=None):
    suite = ss.counting_suite([(1,), (1,), (1,)], scores=SCORES)
    torch.manual_seed(0)
    agent = Agent(AgentConfig(torso="small", core_size=16, torso_out=16, instruction_buckets=100,
                              instruction_embed=4, instruction_lstm=8),
                  num_actions=suite.num_actions, num_tasks=3, frame_shape=suite.frame_shape,
                  instruction_length=suite.instruction_length)
    total = len(source.plan) * T * B
    learner = Learner(agent, LearnerConfig(batch_size=B, unroll_length=T), total_frames=total,
                      action_repeat=1, device="cpu")
    reporter = Reporter(suite, [0, 1, 2], str(logdir), total_frames=total,
                        report_every_seconds=report_every_seconds, score_window=2, stream=stream or io.StringIO())
    return TrainLoop(learner=learner, source=source, reporter=reporter,
                     checkpointer=Checkpointer(logdir / "checkpoints"), config_dict={},
                     total_frames=total, batch_size=B)


def test_loop_reports_scores_windows_lag_and_tensorboard(tmp_path):
    source = ScriptedSource(PLAN, ss.NUM_ACTIONS, BACKLOG)
    stream = io.StringIO()
    loop = make_loop(tmp_path, source, stream=stream)
    learner = loop.learner
    assert loop.run() == "done"
    loop.reporter.close()
    assert learner.num_updates == len(PLAN)
    assert source.published[0] == 0 and source.published[-1] <= len(PLAN)

    records = read_jsonl(tmp_path / "metrics.jsonl")
    per_update = {}
    for r in records:
        per_update.setdefault(r["updates"], r)          # the report right after each update
    assert sorted(per_update) == list(range(1, len(PLAN) + 1))
    for k in range(len(PLAN)):
        r = per_update[k + 1]
        assert r["frames"] == (k + 1) * T * B
        assert r["policy_lag"] == LAGS[k], f"update {k + 1}"
        assert (r["unrolls_ready"], r["requests_in_flight"]) == BACKLOG[k], f"update {k + 1}"
        assert 0.0 <= r["learner_wait_fraction"] <= 1.0
        assert r["mean_capped_score"] == pytest.approx(CAPPED[k]), f"update {k + 1}"
        assert r["mean_uncapped_score"] == pytest.approx(UNCAPPED[k]), f"update {k + 1}"
        tasks = r["tasks"]
        assert tasks["count0"]["return"] == COUNT0_RETURN[k] and tasks["count0"]["length"] == COUNT0_LENGTH[k]
        assert tasks["count0"]["score"] == pytest.approx(10 * COUNT0_RETURN[k])
        assert tasks.get("count1", {}).get("return") == COUNT1_RETURN[k]
        assert ("count2" in tasks) == (k >= 3)
    assert per_update[6]["tasks"]["count0"]["episodes"] == 3       # counts every episode, not the window
    assert per_update[6]["tasks"]["count1"]["score"] == pytest.approx(75.0)

    acc = EventAccumulator(str(tmp_path)).Reload()
    frames = [(k + 1) * T * B for k in range(len(PLAN))]
    capped = scalars(acc, "score/mean_capped_score")
    assert sorted(capped) == frames[3:]                                # nothing before every task finished
    for k in range(3, len(PLAN)):
        assert capped[frames[k]] == pytest.approx(CAPPED[k], rel=1e-6)
    lag = scalars(acc, "actors/policy_lag")
    assert [lag[f] for f in frames] == pytest.approx(LAGS)
    ready = scalars(acc, "actors/unrolls_ready")
    assert [ready[f] for f in frames] == [b[0] for b in BACKLOG]
    in_flight = scalars(acc, "actors/requests_in_flight")
    assert [in_flight[f] for f in frames] == [b[1] for b in BACKLOG]
    ret = scalars(acc, "task/count0/episode_return")
    assert [ret[f] for f in frames] == pytest.approx(COUNT0_RETURN)
    score1 = scalars(acc, "task/count1/normalized_score")
    assert [score1[f] for f in frames[1:]] == pytest.approx([-50.0, -50.0, -50.0, -50.0, 75.0])
    losses = scalars(acc, "learner/total_loss")
    assert [losses[f] for f in frames] == pytest.approx([per_update[k + 1]["learner"]["total_loss"]
                                                         for k in range(len(PLAN))], rel=1e-6)
    text = stream.getvalue()
    assert "capped score n/a" in text and f"capped score {CAPPED[-1]:.1f}" in text


@pytest.mark.parametrize("slow_side", ["actors", "learner"])
def test_wait_fraction_tells_which_side_is_the_bottleneck(tmp_path, monkeypatch, slow_side):
    """A source that takes 0.3 s per unroll makes the learner wait most of the time; a learner step
    that takes 0.3 s makes it wait hardly at all (the rest of a step takes milliseconds)."""
    plan = [(0, [])] * 4
    source = ScriptedSource(plan, ss.NUM_ACTIONS, get_seconds=0.3 if slow_side == "actors" else 0.0)
    loop = make_loop(tmp_path, source, report_every_seconds=1e6)   # one report, at the end
    if slow_side == "learner":
        step = loop.learner.step
        monkeypatch.setattr(loop.learner, "step", lambda batch: (time.sleep(0.3), step(batch))[1])
    assert loop.run() == "done"
    loop.reporter.close()
    wait = read_jsonl(tmp_path / "metrics.jsonl")[-1]["learner_wait_fraction"]
    if slow_side == "actors":
        assert wait > 0.5, wait   # 0.3 s waits against steps of milliseconds: ~0.9 on an idle machine
    else:
        assert wait < 0.4, wait

"""PopArt (learner/popart.py) against a naive reference of the paper's update in plain numpy loops.

Hessel et al. 2019 / van Hasselt et al. 2016: per task k, ``mu_k <- (1 - beta) mu_k + beta E[v]``,
``nu_k <- (1 - beta) nu_k + beta E[v^2]`` over the batch's targets of task k,
``sigma = clip(sqrt(nu - mu^2), 1e-4, 1e6)``; the last value layer (here the per-task affine
transform ``a_k``, ``c_k``) rescaled as ``w' = w sigma / sigma'``, ``b' = (sigma b + mu - mu') / sigma'``.
"""
import io
import json
import math

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import scripted_suite as ss
from agent import CoreState, agent_input_from_unroll
from learner import Learner, LearnerConfig, vtrace
from learner.losses import impala_loss
from learner.popart import PopArt
from training.report import Reporter
from learner.learner import unroll_loss
from test_learner_boundaries import GAMMA, TableAgent, make_batch, naive_vtrace
from test_learner_boundaries import A as TA
from test_learner_boundaries import B as TB
from test_learner_boundaries import T as TT
from test_learner_step import random_batch, small_agent

pytestmark = pytest.mark.usefixtures("one_thread")   # conftest.one_thread: tiny models, one thread

HEADS = ["shared", "multihead", "taskid_mi", "learnt_mi"]


def naive_popart(batches, num_tasks, beta, start=None):
    """The paper's statistics and preservation rule, one task and one entry at a time (float64),
    from ``start`` = lists (mu, nu, a, c) (default 0, 1, 1, 0). Returns per batch the lists
    (mu, nu, sigma, a, c) after it."""
    mu, nu, a, c = (list(x) for x in start) if start else (
        [0.0] * num_tasks, [1.0] * num_tasks, [1.0] * num_tasks, [0.0] * num_tasks)
    history = []
    for targets, tasks in batches:
        targets, tasks = np.asarray(targets, dtype=np.float64), np.asarray(tasks)
        for k in range(num_tasks):
            entries = [float(targets.flat[i]) for i in range(targets.size) if int(tasks.flat[i]) == k]
            if not entries:
                continue
            old_mu, old_sigma = mu[k], min(max(math.sqrt(max(nu[k] - mu[k] ** 2, 0.0)), 1e-4), 1e6)
            mu[k] = (1 - beta) * mu[k] + beta * sum(entries) / len(entries)
            nu[k] = (1 - beta) * nu[k] + beta * sum(e * e for e in entries) / len(entries)
            sigma = min(max(math.sqrt(max(nu[k] - mu[k] ** 2, 0.0)), 1e-4), 1e6)
            a[k] = a[k] * old_sigma / sigma
            c[k] = (old_sigma * c[k] + old_mu - mu[k]) / sigma
        sigmas = [min(max(math.sqrt(max(n - m * m, 0.0)), 1e-4), 1e6) for m, n in zip(mu, nu)]
        history.append((list(mu), list(nu), sigmas, list(a), list(c)))
    return history


def test_statistics_and_transform_match_the_naive_update():
    rng = np.random.default_rng(0)
    batches = []
    for i in range(4):
        tasks = rng.integers(0, 3, size=(5, 4))
        if i == 1:
            tasks[tasks == 2] = 0       # task 2 absent from this batch: its statistics must not move
        scale = np.array([1.0, 30.0, 300.0])[tasks]   # returns three orders of magnitude apart
        batches.append((rng.normal(2.0, 1.0, size=(5, 4)) * scale, tasks))
    popart = PopArt(3, beta=0.25)
    expected = naive_popart(batches, 3, beta=0.25)
    for (targets, tasks), (mu, nu, sigma, a, c) in zip(batches, expected):
        popart.update(torch.tensor(targets, dtype=torch.float32), torch.tensor(tasks))
        for got, want in ((popart.mu, mu), (popart.nu, nu), (popart.sigma, sigma),
                          (popart.scale, a), (popart.shift, c)):
            np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)
    assert expected[1][0][2] == expected[0][0][2]          # the absent task kept its mu
    assert expected[-1][2][2] > 50 * expected[-1][2][0]    # and the scales differ by far


def test_sigma_is_clipped_below():
    popart = PopArt(1, beta=1.0)              # beta 1: the statistics become the batch's moments
    popart.update(torch.full((3, 2), 5.0), torch.zeros(3, 2, dtype=torch.int64))
    assert popart.mu.item() == 5.0 and popart.sigma.item() == 1e-4   # nu - mu^2 = 0 -> 1e-4


@pytest.mark.parametrize("head", HEADS)
def test_update_preserves_the_unnormalised_outputs(head):
    """Every head's unnormalised value is unchanged by a statistics update (same network, same
    inputs), while its normalised value moved."""
    agent = small_agent(head)
    batch = random_batch()
    with torch.no_grad():
        output, _ = agent(agent_input_from_unroll(batch), CoreState(batch["core_h"], batch["core_c"]))
    popart = PopArt(2, beta=0.3)
    task_id = batch["task_id"]
    rng = torch.Generator().manual_seed(1)
    for _ in range(3):
        before = popart.values(output.baseline, task_id)
        normalised_before = popart.normalized(output.baseline, task_id)
        targets = torch.randn(task_id.shape, generator=rng) * torch.tensor([5.0, 80.0])[task_id] + 10.0
        popart.update(targets, task_id)
        torch.testing.assert_close(popart.values(output.baseline, task_id), before, rtol=1e-5, atol=1e-4)
        assert not torch.allclose(popart.normalized(output.baseline, task_id), normalised_before, atol=1e-2)


def test_losses_use_normalised_targets_and_advantages():
    """unroll_loss with PopArt: V-trace on V = sigma (a y + c) + mu, the statistics stepped with its
    targets, baseline loss 0.5 sum ((vs - mu') / sigma' - n')^2, advantage / sigma' (naive loops)."""
    g = torch.Generator().manual_seed(3)
    batch = make_batch()
    batch["task_id"] = torch.tensor([0, 1, 1]).expand(TT + 1, TB).clone()
    batch["reward"] = batch["reward"] * 0.9          # inside [-1, 1]: no clipping
    logits = torch.randn(TT + 1, TB, TA, generator=g) * 2
    y = torch.randn(TT + 1, TB, generator=g)
    popart = PopArt(2, beta=0.2)
    popart.mu.copy_(torch.tensor([0.5, -2.0], dtype=torch.float64))
    popart.nu.copy_(torch.tensor([1.25, 13.0], dtype=torch.float64))       # sigma = 1, 3
    popart.scale.copy_(torch.tensor([0.7, 1.5], dtype=torch.float64))
    popart.shift.copy_(torch.tensor([0.1, -0.4], dtype=torch.float64))
    a, c, mu, sigma = [0.7, 1.5], [0.1, -0.4], [0.5, -2.0], [1.0, 3.0]
    tasks = batch["task_id"].numpy()
    values = np.array([[sigma[tasks[t, b]] * (a[tasks[t, b]] * float(y[t, b]) + c[tasks[t, b]]) + mu[tasks[t, b]]
                        for b in range(TB)] for t in range(TT + 1)])
    vs, adv, _ = naive_vtrace(batch, logits, torch.tensor(values))
    (new_mu, _, new_sigma, new_a, new_c), = naive_popart([(vs.numpy(), tasks[:TT])], 2, beta=0.2,
                                                           start=(mu, [1.25, 13.0], a, c))

    cfg = LearnerConfig(discount=GAMMA, reward_clipping="abs_one")
    output, _ = TableAgent(logits, y)(agent_input_from_unroll(batch), None)
    out = unroll_loss(output, batch, cfg, popart)

    np.testing.assert_allclose(out.values.numpy(), values[:TT], rtol=1e-5)
    np.testing.assert_allclose(out.vtrace.vs.numpy(), vs.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(popart.mu.numpy(), new_mu, rtol=1e-6)
    baseline, pg, stale = 0.0, 0.0, 0.0     # stale: with the statistics before the update
    for t in range(TT):
        for b in range(TB):
            k = tasks[t, b]
            n = new_a[k] * float(y[t, b]) + new_c[k]
            baseline += 0.5 * ((float(vs[t, b]) - new_mu[k]) / new_sigma[k] - n) ** 2
            log_pi = float(torch.log_softmax(logits[t, b].double(), -1)[batch["action"][t, b]])
            pg += -log_pi * float(adv[t, b]) / new_sigma[k]
            stale += 0.5 * ((float(vs[t, b]) - mu[k]) / sigma[k] - (a[k] * float(y[t, b]) + c[k])) ** 2
    assert out.losses.baseline.item() == pytest.approx(baseline, rel=1e-5)
    assert out.losses.pg.item() == pytest.approx(pg, rel=1e-5)
    assert abs(stale - baseline) > 1e-2 * baseline   # the test tells old statistics from new ones


def test_popart_off_is_todays_update_bit_for_bit():
    """learner.popart=false: one Learner.step equals today's path (forward, V-trace on the baseline,
    impala_loss, RMSProp step) written out here, parameter for parameter, bitwise."""
    cfg = LearnerConfig(learning_rate=1e-2)
    batch = random_batch()
    learner = Learner(small_agent("taskid_mi"), cfg, total_frames=10**6, action_repeat=1, device="cpu")
    learner.step(batch)
    assert learner.popart is None and "popart" not in learner.state_dict()

    reference = Learner(small_agent("taskid_mi"), cfg, total_frames=10**6, action_repeat=1, device="cpu")
    agent, steps = reference.agent, 8
    output, _ = agent(agent_input_from_unroll(batch), CoreState(batch["core_h"], batch["core_c"]))
    logits, baseline = output.policy_logits.float(), output.baseline.float()
    returns = vtrace.from_logits(
        behaviour_policy_logits=batch["behaviour_logits"][:steps].float(),
        target_policy_logits=logits[:steps], actions=batch["action"][:steps],
        discounts=cfg.discount * (~batch["done"][1:]).float(),
        rewards=batch["reward"][1:].float().clamp(-1.0, 1.0), values=baseline[:steps],
        bootstrap_value=baseline[steps])
    loss = impala_loss(logits[:steps], baseline[:steps], batch["action"][:steps], returns.vs,
                       returns.pg_advantages, baseline_cost=cfg.baseline_cost, entropy_cost=cfg.entropy_cost)
    reference.optimizer.zero_grad(set_to_none=True)
    loss.total.backward()
    reference.schedule.apply(reference.optimizer)
    reference.optimizer.step()
    for (name, p), q in zip(learner.agent.named_parameters(), agent.parameters()):
        assert torch.equal(p, q), name


def test_resume_reproduces_the_next_steps(tmp_path):
    """state_dict -> torch.save -> torch.load(weights_only=True) -> load_state_dict: the next steps'
    metrics and statistics are equal to the uninterrupted learner's."""
    cfg = LearnerConfig(learning_rate=1e-3, popart=True, popart_beta=0.1)
    first = Learner(small_agent("multihead"), cfg, total_frames=10**6, action_repeat=1, device="cpu")
    for seed in range(2):
        first.step(random_batch(seed=seed))
    torch.save(first.state_dict(), tmp_path / "state.pt")
    state = torch.load(tmp_path / "state.pt", weights_only=True)
    assert set(state["popart"]) == {"mu", "nu", "scale", "shift"}
    second = Learner(small_agent("multihead"), cfg, total_frames=10**6, action_repeat=1, device="cpu")
    second.load_state_dict(state)
    for seed in (2, 3):
        a, b = first.step(random_batch(seed=seed)), second.step(random_batch(seed=seed))
        for name in a:
            torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)
    for name, buffer in first.popart.state_dict().items():
        assert torch.equal(buffer, second.popart.state_dict()[name]), name
    assert not torch.equal(first.popart.mu, torch.zeros(2, dtype=torch.float64))

    plain = Learner(small_agent("multihead"), LearnerConfig(), total_frames=10**6, action_repeat=1, device="cpu")
    with pytest.raises(ValueError, match="learner.popart=True.*resume with learner.popart=true"):
        plain.load_state_dict(state)


@pytest.mark.parametrize("override, message", [
    (dict(popart_beta=0.0), "learner.popart_beta=0.0 must be a number in \\(0, 1\\]"),
    (dict(popart_beta=1.5), "learner.popart_beta=1.5"),
    (dict(popart="yes"), "learner.popart='yes' must be true or false"),
])
def test_bad_config_is_refused(override, message):
    with pytest.raises(ValueError, match=message):
        LearnerConfig(**override)


def test_statistics_are_logged_per_task(tmp_path):
    """The learner's PopArt statistics reach metrics.jsonl and TensorBoard as popart/<task>/{mu,sigma}."""
    learner = Learner(small_agent("shared"), LearnerConfig(popart=True, popart_beta=0.5),
                      total_frames=10**6, action_repeat=1, device="cpu")
    suite = ss.counting_suite([(1,), (1,)])
    reporter = Reporter(suite, [0, 1], str(tmp_path), total_frames=10**6, report_every_seconds=1e-9,
                        score_window=2, stream=io.StringIO())
    for seed in range(2):
        reporter.add_step(learner.step(random_batch(seed=seed)), policy_lag=0.0)
    reporter.report(frames=64, updates=2)
    reporter.close()
    record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    mu, sigma = learner.popart.mu.tolist(), learner.popart.sigma.tolist()
    assert record["popart"] == {"count0": {"mu": pytest.approx(mu[0]), "sigma": pytest.approx(sigma[0])},
                                "count1": {"mu": pytest.approx(mu[1]), "sigma": pytest.approx(sigma[1])}}
    assert "popart_mu" not in record["learner"]
    acc = EventAccumulator(str(tmp_path)).Reload()
    assert acc.Scalars("popart/count1/sigma")[-1].value == pytest.approx(sigma[1], rel=1e-6)
    assert acc.Scalars("popart/count0/mu")[-1].value == pytest.approx(mu[0], rel=1e-6)
    assert mu[0] != 0.0 and sigma[1] != 1.0


def test_popart_step_makes_no_host_sync(monkeypatch):
    """The statistics update and the normalised losses read no tensor value on the host."""
    learner = Learner(small_agent("learnt_mi"), LearnerConfig(popart=True, truncation_bootstrap=True),
                      total_frames=10**6, action_repeat=1, device="cpu")
    batch = random_batch()
    batch.update(truncated=batch["done"].clone(), truncation_value=torch.randn(batch["done"].shape))

    def forbidden(*args, **kwargs):
        raise AssertionError("host sync inside Learner.step")

    for name in ("item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, forbidden)
    metrics = learner.step(batch)
    monkeypatch.undo()
    assert torch.isfinite(metrics["total_loss"]) and metrics["popart_mu"].shape == (2,)


def test_reports_group_popart_runs_apart(tmp_path):
    """analysis: a run with learner.popart=true is its own group ("<head>+popart") in reports."""
    import yaml

    from analysis.runs import load_run

    for name, popart in (("plain", False), ("popart", True)):
        run = tmp_path / name
        run.mkdir()
        (run / "config.yaml").write_text(yaml.safe_dump(
            {"agent": {"head": "taskid_mi"}, "learner": {"popart": popart}, "env": {"suite": "embedded"}}))
        (run / "metrics.jsonl").write_text(json.dumps({"frames": 10, "tasks": {}}) + "\n")
    assert load_run(str(tmp_path / "plain")).head == "taskid_mi"
    assert load_run(str(tmp_path / "popart")).head == "taskid_mi+popart"

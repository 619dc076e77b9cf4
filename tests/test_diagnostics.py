"""Head diagnostics: W'(z) norms by hand, per-task context statistics, and what training writes."""
import math

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agent import Agent, AgentConfig
from agent.diagnostics import context_statistics, head_diagnostics
from agent.multiplicative import MultiplicativeLayer
from agent.types import AgentInput
from conftest import TINY, read_jsonl
from configs.schema import load_config
from learner.checkpoint import Checkpointer
from training import run as training_run
from training.diagnostics_log import similarity_image

nan = float("nan")


def _layer(form, in_features=2, context=1, out=1):
    layer = MultiplicativeLayer(in_features, context, out, form)
    with torch.no_grad():
        layer.linear.weight.copy_(torch.tensor([[3.0, 4.0]]))        # V [O=1, I=2]
    return layer


def test_generated_weight_norm_by_hand():
    full = _layer("full")
    with torch.no_grad():
        full.weight.copy_(torch.tensor([[[1.0], [2.0]]]))             # W [C=1, I=2, O=1]
    # W'(z) = z W^T + V: z = 1 -> [4, 6]; z = -1 -> [2, 2]
    assert full.generated_weight_norm(torch.tensor([[1.0], [-1.0]])).tolist() == pytest.approx(
        [math.sqrt(52), math.sqrt(8)])
    diagonal = _layer("diagonal")
    with torch.no_grad():
        diagonal.gate_weight.copy_(torch.tensor([[1.0, 0.0]]))       # a(z) = (z + 1, 1)
    # z = 2: a = (3, 1), W' = V diag(a) = [9, 4]
    assert diagonal.generated_weight_norm(torch.tensor([[2.0]])).tolist() == pytest.approx([math.sqrt(97)])
    scalar = _layer("scalar")
    with torch.no_grad():
        scalar.scale_weight.copy_(torch.tensor([0.5]))               # s(z) = z / 2 + 1
    assert scalar.generated_weight_norm(torch.tensor([[2.0], [-6.0], [-2.0]])).tolist() == pytest.approx(
        [10.0, 10.0, 0.0])                                            # |s| ||V||, ||V|| = 5


@pytest.mark.parametrize("form", ["full", "diagonal", "scalar"])
def test_generated_weight_is_the_matrix_the_layer_applies(form):
    """forward(x, z) = W'(z) x + z^T U + b, with W'(z) built naively from the docstring's formula."""
    torch.manual_seed(0)
    layer = MultiplicativeLayer(5, 3, 4, form)
    z, x = torch.randn(6, 3), torch.randn(6, 5)
    v = layer.linear.weight
    for k in range(6):
        zs = z[k] / 3                                              # the layer reads z / C
        if form == "full":
            w = sum(zs[c] * layer.weight[c].t() for c in range(3)) + v
        elif form == "diagonal":
            w = v * (zs @ layer.gate_weight + layer.gate_bias)
        else:
            w = (zs @ layer.scale_weight + layer.scale_bias) * v
        expected = w @ x[k] + layer.context.weight @ zs + layer.linear.bias
        assert torch.allclose(layer(x[k:k + 1], z[k:k + 1])[0], expected, atol=1e-5)
        assert layer.generated_weight_norm(z[k]).item() == pytest.approx(w.norm().item(), rel=1e-5)


def test_context_statistics_by_hand():
    z = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    stats = context_statistics(z, torch.tensor([1.0, 2.0, 7.0]), torch.tensor([0, 0, 1]), num_tasks=3)
    assert stats.samples.tolist() == [2, 1, 0]
    assert stats.context_norm.tolist() == pytest.approx([2.0, 2.0, nan], nan_ok=True)
    assert stats.generated_weight_norm.tolist() == pytest.approx([1.5, 7.0, nan], nan_ok=True)
    assert stats.mean_context[:2].tolist() == [[2.0, 0.0], [0.0, 2.0]]
    assert stats.similarity.flatten().tolist() == pytest.approx([1, 0, nan, 0, 1, nan, nan, nan, nan], nan_ok=True)


def _agent(head, context_size=2, **kw):
    cfg = AgentConfig(torso="small", core_size=8, torso_out=8, head=head, context_size=context_size, context_hidden=0,
                      use_instruction=False, **kw)
    return Agent(cfg, num_actions=3, num_tasks=3, frame_shape=(28, 28, 3), instruction_length=16)


def _inputs(task_id):
    t, b = task_id.shape
    g = torch.Generator().manual_seed(1)
    return AgentInput(frame=torch.randint(0, 255, (t, b, 28, 28, 3), dtype=torch.uint8, generator=g),
                      instruction=torch.zeros(t, b, 16, dtype=torch.int64), reward=torch.rand(t, b, generator=g),
                      done=torch.zeros(t, b, dtype=torch.bool), last_action=torch.zeros(t, b, dtype=torch.int64),
                      task_id=task_id)


def test_taskid_mi_diagnostics_by_hand():
    agent = _agent("taskid_mi")
    with torch.no_grad():   # c = relu(M onehot): task 0 -> (1, 0), task 1 -> (0, 2), task 2 -> (1, 1)
        agent.head.context[0].weight.copy_(torch.tensor([[1.0, 0.0, 1.0], [0.0, 2.0, 1.0]]))
        agent.head.context[0].bias.zero_()
    task_id = torch.tensor([[0, 1, 1], [0, 1, 1]])                      # task 2 not in the batch
    diag = head_diagnostics(agent, _inputs(task_id), agent.initial_state(3))
    assert diag.samples.tolist() == [2, 4, 0] and (diag.head, diag.mi_form) == ("taskid_mi", "full")
    assert diag.context_norm.tolist() == pytest.approx([1.0, 2.0, nan], nan_ok=True)
    assert diag.similarity.flatten().tolist() == pytest.approx([1, 0, nan, 0, 1, nan, nan, nan, nan], nan_ok=True)
    w = [agent.head.mi.generated_weight_norm(torch.tensor(z)).item() for z in ([1.0, 0.0], [0.0, 2.0])]
    assert diag.generated_weight_norm[:2].tolist() == pytest.approx(w)
    assert head_diagnostics(_agent("shared"), _inputs(task_id), agent.initial_state(3)) is None


def test_learnt_mi_diagnostics_equal_a_loop_over_steps():
    torch.manual_seed(3)
    agent = _agent("learnt_mi", context_size=6, mi_form="diagonal")
    task_id = torch.tensor([[0, 2, 2, 0], [2, 2, 0, 0], [0, 0, 0, 2]])
    inputs = _inputs(task_id)
    diag = head_diagnostics(agent, inputs, agent.initial_state(4))
    with torch.no_grad():
        h, _ = agent.core_outputs(inputs, agent.initial_state(4))
        for task in (0, 2):
            zs = [agent.head.context(h[t, b]) for t in range(3) for b in range(4) if task_id[t, b] == task]
            assert diag.context_norm[task].item() == pytest.approx(sum(z.norm() for z in zs).item() / len(zs))
            norms = [agent.head.mi.generated_weight_norm(z) for z in zs]
            assert diag.generated_weight_norm[task].item() == pytest.approx(sum(norms).item() / len(zs))
        mean0, mean2 = (torch.stack([agent.head.context(h[t, b]) for t in range(3) for b in range(4)
                                     if task_id[t, b] == k]).mean(0) for k in (0, 2))
        cos = (mean0 @ mean2 / (mean0.norm() * mean2.norm())).item()
    assert math.isfinite(cos) and abs(cos) < 0.999999                  # a real angle is checked
    assert diag.similarity[0, 2].item() == pytest.approx(cos, rel=1e-5)
    assert math.isnan(diag.context_norm[1].item())


def test_similarity_image_colours():
    image = similarity_image([[1.0, -1.0], [0.0, None]], size=20)       # 10 px cells
    assert image.shape == (20, 20, 3) and image.dtype.name == "uint8"
    assert image[0, 0].tolist() == [255, 0, 0] and image[9, 10].tolist() == [0, 0, 255]
    assert image[10, 9].tolist() == [255, 255, 255] and image[19, 19].tolist() == [160, 160, 160]
    assert similarity_image([[0.5]], size=2).shape == (4, 4, 3)          # cells of at least 4 px


def test_training_writes_diagnostics(tmp_path):
    logdir = tmp_path / "run"
    cfg = load_config(None, TINY + [f"logdir={logdir}", "mode=serial", "num_actors=1", "envs_per_actor=4",
                                    "head=taskid_mi", "tasks=[goto_goal,memory,collect_green,collect_red]",
                                    "total_frames=96"])
    assert training_run.train(cfg, install_signal_handlers=False) == "done"
    record = read_jsonl(logdir / "diagnostics.jsonl")[-1]
    names = ["goto_goal", "memory", "collect_green", "collect_red"]
    assert record["tasks"] == names and record["head"] == "taskid_mi" and record["frames"] == 96
    assert record["samples"] == {n: 9 for n in names}                    # batch 4 x (T + 1 = 9)
    assert len(record["context_similarity_after_reward"]) == 4           # task inference (issue 15)
    assert record["probe_accuracy"] is None                              # one column per task: no held-out half
    # the last report uses the final weights: compare with the checkpoint's context net
    state, _ = Checkpointer(logdir / "checkpoints").load_latest()
    agent = Agent(cfg.agent, num_actions=7, num_tasks=8, frame_shape=(28, 28, 3), instruction_length=16)
    agent.load_state_dict(state["learner"]["model"])
    with torch.no_grad():
        z = agent.head.contexts(torch.zeros(4, 32), torch.tensor([0, 2, 4, 5]))   # h unused by taskid_mi
    for k, name in enumerate(names):
        assert record["context_norm"][name] == pytest.approx(z[k].norm().item(), rel=1e-5)
        assert record["context_similarity"][k][k] == pytest.approx(1.0)
    cos = (z[2] @ z[3] / (z[2].norm() * z[3].norm())).item()
    assert record["context_similarity"][2][3] == pytest.approx(cos, rel=1e-5)
    events = EventAccumulator(str(logdir), size_guidance={"images": 0}).Reload()
    assert "diagnostics/collect_red/generated_weight_norm" in events.Tags()["scalars"]
    assert events.Scalars("diagnostics/memory/context_norm")[-1].value == pytest.approx(z[1].norm().item(),
                                                                                          rel=1e-5)
    assert "diagnostics/context_similarity" in events.Tags()["images"]

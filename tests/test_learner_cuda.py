"""The learner on a GPU (skipped without CUDA): no host syncs in a step, fast path close to fp32.

bench/gpu_check.sh runs these on a GPU machine together with the throughput comparison.
"""
import pytest
import torch

from agent import Agent, AgentConfig
from learner import Learner, LearnerConfig

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")

T, B, A, TASKS, FRAME = 20, 8, 9, 30, (72, 96, 3)
FAST = dict(precision="bf16", channels_last=True)


def make_learner(head="taskid_mi", optimizer="rmsprop", grad_norm_clip=40.0, **fast):
    torch.manual_seed(0)
    agent = Agent(AgentConfig(torso="deep", head=head), num_actions=A, num_tasks=TASKS, frame_shape=FRAME,
                  instruction_length=16)
    cfg = LearnerConfig(optimizer=optimizer, grad_norm_clip=grad_norm_clip, **fast)
    return Learner(agent, cfg, total_frames=10**9, action_repeat=4, device="cuda")


def cuda_batch():
    g = torch.Generator(device="cuda").manual_seed(1)
    ri = lambda high, shape, dtype=torch.int64: torch.randint(0, high, shape, generator=g, device="cuda",  # noqa
                                                              dtype=dtype)
    return dict(frame=ri(256, (T + 1, B, *FRAME), torch.uint8), instruction=ri(1001, (T + 1, B, 16)),
                reward=torch.randn(T + 1, B, generator=g, device="cuda"),
                done=torch.rand(T + 1, B, generator=g, device="cuda") < 0.05,
                last_action=ri(A, (T + 1, B)), action=ri(A, (T + 1, B)),
                behaviour_logits=torch.randn(T + 1, B, A, generator=g, device="cuda"),
                task_id=ri(TASKS, (T + 1, B)),
                core_h=torch.zeros(B, 256, device="cuda"), core_c=torch.zeros(B, 256, device="cuda"))


@pytest.mark.parametrize("head", ["shared", "multihead", "taskid_mi", "learnt_mi"])
@pytest.mark.parametrize("optimizer", ["rmsprop", "adam"])
@pytest.mark.parametrize("fast", [{}, FAST], ids=["fp32", "fast"])
def test_step_makes_no_host_sync(head, optimizer, fast):
    learner = make_learner(head, optimizer, **fast)
    batch = cuda_batch()
    learner.step(batch)                                    # first step: lazy init (cuDNN, optimizer state)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        metrics = learner.step(batch)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(metrics["total_loss"])


def test_fast_path_close_to_fp32_on_gpu():
    batch = cuda_batch()
    grads, metrics = [], []
    for fast in ({}, FAST):
        learner = make_learner(**fast)
        learner.optimizer.step = lambda: None
        metrics.append(learner.step(batch))
        grads.append(torch.cat([p.grad.flatten() for p in learner.agent.parameters()]))
    assert abs(metrics[1]["total_loss"] - metrics[0]["total_loss"]) <= 1e-2 * abs(metrics[0]["total_loss"])
    assert torch.nn.functional.cosine_similarity(grads[0], grads[1], dim=0) > 0.99

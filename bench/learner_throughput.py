"""Learner throughput on random synthetic batches already on the device; prints one JSON object.

    python bench/learner_throughput.py --torso deep --T 20 --B 8 --device cpu
    python bench/learner_throughput.py --torso small --frame 28x28x3 --T 20 --B 32

agent_steps_per_s = T * B * steps / time; env_frames_per_s = agent_steps_per_s * action_repeat.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent import Agent, AgentConfig  # noqa: E402
from agent.config import HEADS, MI_FORMS, TORSOS  # noqa: E402
from learner import Learner, LearnerConfig  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--torso", choices=TORSOS, default="deep")
    parser.add_argument("--head", choices=HEADS, default="shared")
    parser.add_argument("--mi-form", default="full", choices=MI_FORMS)
    parser.add_argument("--T", type=int, default=100, help="unroll length (the batch has T + 1 steps)")
    parser.add_argument("--B", type=int, default=32, help="unrolls per batch")
    parser.add_argument("--frame", default="72x96x3", help="HxWxC")
    parser.add_argument("--actions", type=int, default=9)
    parser.add_argument("--tasks", type=int, default=30)
    parser.add_argument("--instruction-length", type=int, default=16)
    parser.add_argument("--action-repeat", type=int, default=4)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--steps", type=int, default=10, help="timed learner steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed learner steps first")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    return parser.parse_args(argv)


def synthetic_batch(args: argparse.Namespace, frame: tuple[int, int, int], core_size: int,
                    device: torch.device) -> dict[str, torch.Tensor]:
    n, b, a = args.T + 1, args.B, args.actions
    g = torch.Generator(device=device).manual_seed(0)
    randint = lambda high, shape, dtype=torch.int64: torch.randint(  # noqa: E731
        0, high, shape, generator=g, device=device, dtype=dtype)
    return dict(
        frame=randint(256, (n, b, *frame), torch.uint8),
        instruction=randint(1001, (n, b, args.instruction_length)),
        reward=torch.randn(n, b, generator=g, device=device),
        done=torch.rand(n, b, generator=g, device=device) < 0.01,
        last_action=randint(a, (n, b)), action=randint(a, (n, b)),
        behaviour_logits=torch.randn(n, b, a, generator=g, device=device),
        task_id=randint(args.tasks, (n, b)),
        core_h=torch.zeros(b, core_size, device=device), core_c=torch.zeros(b, core_size, device=device))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    frame = tuple(int(x) for x in args.frame.lower().split("x"))
    cfg = AgentConfig(torso=args.torso, head=args.head, mi_form=args.mi_form)
    agent = Agent(cfg, num_actions=args.actions, num_tasks=args.tasks, frame_shape=frame,
                  instruction_length=args.instruction_length)
    learner = Learner(agent, LearnerConfig(batch_size=args.B, unroll_length=args.T, precision=args.precision),
                      total_frames=10**12, action_repeat=args.action_repeat, device=device)
    batch = synthetic_batch(args, frame, cfg.core_size, device)
    for _ in range(args.warmup):
        learner.step(batch)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        metrics = learner.step(batch)
    synchronize(device)
    elapsed = time.perf_counter() - start
    agent_steps = args.T * args.B * args.steps / elapsed
    result = {
        "torso": args.torso, "head": args.head, "mi_form": args.mi_form, "T": args.T, "B": args.B,
        "frame": list(frame), "precision": args.precision, "steps": args.steps, "warmup": args.warmup,
        "seconds": round(elapsed, 3), "seconds_per_step": round(elapsed / args.steps, 4),
        "agent_steps_per_s": round(agent_steps, 1),
        "env_frames_per_s": round(agent_steps * args.action_repeat, 1), "action_repeat": args.action_repeat,
        "parameters": sum(p.numel() for p in agent.parameters()),
        "final_total_loss": float(metrics["total_loss"]),
        "torch": torch.__version__, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(result))
    return result


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or "cpu"


if __name__ == "__main__":
    main()

"""Learner throughput on synthetic on-policy batches already on the device; one JSON line per configuration.

    python bench/learner_throughput.py --torso deep --T 100 --B 32 --device cuda \
        --precision fp32,bf16 --memory-format contiguous,channels_last --compile off,on
    python bench/learner_throughput.py --torso small --frame 28x28x3 --T 20 --B 32 --device cpu
    python bench/learner_throughput.py --quick        # tiny sizes, every fast-path switch (the test runs this)

--torso, --head, --precision, --memory-format, --compile, --T, --B and --device take comma-separated
lists; every combination runs in this one process, in order, so the first (the fp32 baseline when
listed first) and the others are measured side by side. Every configuration starts from the same
initial weights and the same batch, whose behaviour logits are the fp32 agent's own (an on-policy
batch), so:

* ``on_policy_log_rho_abs_mean``: mean |log pi - log mu| of the first step (before any update): 0
  up to rounding for fp32, the effect of reduced precision otherwise (the goal: < 1e-3);
* ``first_loss_rel_diff``: |loss - fp32 loss| / |fp32 loss| of that first step, against the plain
  fp32 / contiguous / eager configuration of the same torso, head, T, B and device.

agent_steps_per_s = T * B * steps / time; env_frames_per_s = agent_steps_per_s * action_repeat.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent import Agent, AgentConfig  # noqa: E402
from agent.config import HEADS, MI_FORMS, TORSOS  # noqa: E402
from agent.types import CoreState, agent_input_from_unroll  # noqa: E402
from learner import Learner, LearnerConfig  # noqa: E402
from learner.config import PRECISIONS  # noqa: E402

MEMORY_FORMATS = ("contiguous", "channels_last")
SWITCHES = ("off", "on")
QUICK = dict(torso="small", head="taskid_mi", frame="12x12x3", T="3", B="2", steps=1, warmup=1, device="cpu",
             precision="fp32,bf16", memory_format="contiguous,channels_last", action_repeat=1, threads=1)


def _list(kind, allowed=None):
    def parse(text: str) -> list:
        values = [kind(v) for v in text.split(",") if v]
        for v in values:
            if allowed is not None and v not in allowed:
                raise argparse.ArgumentTypeError(f"{v!r} is not one of {', '.join(allowed)}")
        if not values:
            raise argparse.ArgumentTypeError("empty list")
        return values
    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--torso", type=_list(str, TORSOS), default=["deep"])
    parser.add_argument("--head", type=_list(str, HEADS), default=["shared"])
    parser.add_argument("--mi-form", default="full", choices=MI_FORMS)
    parser.add_argument("--precision", type=_list(str, PRECISIONS), default=["fp32"])
    parser.add_argument("--memory-format", type=_list(str, MEMORY_FORMATS), default=["contiguous"])
    parser.add_argument("--compile", type=_list(str, SWITCHES), default=["off"], help="torch.compile the torso")
    parser.add_argument("--T", type=_list(int), default=[100], help="unroll length (the batch has T + 1 steps)")
    parser.add_argument("--B", type=_list(int), default=[32], help="unrolls per batch")
    parser.add_argument("--device", type=_list(str), default=["cuda" if torch.cuda.is_available() else "cpu"])
    parser.add_argument("--frame", default="72x96x3", help="HxWxC")
    parser.add_argument("--actions", type=int, default=9)
    parser.add_argument("--tasks", type=int, default=30)
    parser.add_argument("--instruction-length", type=int, default=16)
    parser.add_argument("--action-repeat", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10, help="timed learner steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed learner steps first (compile happens here)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, both precisions and memory formats")
    args = parser.parse_args(argv)
    if args.quick:
        for name, value in QUICK.items():
            setattr(args, name, parser.parse_args([f"--{name.replace('_', '-')}", str(value)]).__dict__[name])
    if min(args.T) < 1 or min(args.B) < 1 or args.steps < 1 or args.warmup < 0:
        parser.error(f"--T {args.T}, --B {args.B} and --steps {args.steps} must be >= 1, --warmup >= 0")
    return args


def synthetic_batch(agent: Agent, T: int, B: int, tasks: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Random observations; behaviour logits from the fp32 agent itself (on-policy for its weights)."""
    n, a = T + 1, agent.num_actions
    g = torch.Generator(device=device).manual_seed(0)
    randint = lambda high, shape, dtype=torch.int64: torch.randint(  # noqa: E731
        0, high, shape, generator=g, device=device, dtype=dtype)
    batch = dict(
        frame=randint(256, (n, B, *agent.frame_shape), torch.uint8),
        instruction=randint(1001, (n, B, agent.instruction_length)),
        reward=torch.randn(n, B, generator=g, device=device),
        done=torch.rand(n, B, generator=g, device=device) < 0.01,
        last_action=randint(a, (n, B)), action=randint(a, (n, B)),
        task_id=randint(tasks, (n, B)),
        core_h=torch.zeros(B, agent.cfg.core_size, device=device),
        core_c=torch.zeros(B, agent.cfg.core_size, device=device))
    with torch.no_grad():
        out, _ = agent(agent_input_from_unroll(batch), CoreState(batch["core_h"], batch["core_c"]))
    batch["behaviour_logits"] = out.policy_logits.float()
    return batch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_one(args: argparse.Namespace, torso: str, head: str, T: int, B: int, device: str, precision: str,
            memory_format: str, compile_: str, frame: tuple[int, int, int], baseline_loss: dict) -> dict:
    device = torch.device(device)
    torch.manual_seed(0)                               # the same initial weights for every configuration
    cfg = AgentConfig(torso=torso, head=head, mi_form=args.mi_form)
    agent = Agent(cfg, num_actions=args.actions, num_tasks=args.tasks, frame_shape=frame,
                  instruction_length=args.instruction_length).to(device)
    batch = synthetic_batch(agent, T, B, args.tasks, device)
    learner = Learner(agent, LearnerConfig(batch_size=B, unroll_length=T, precision=precision,
                                           channels_last=memory_format == "channels_last",
                                           compile=compile_ == "on"),
                      total_frames=10**12, action_repeat=args.action_repeat, device=device)
    start = time.perf_counter()
    first = learner.step(batch)
    synchronize(device)
    first_seconds = time.perf_counter() - start          # includes compiling, with --compile on
    start = time.perf_counter()
    for _ in range(args.warmup - 1):
        learner.step(batch)
    synchronize(device)
    warmup_seconds = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(args.steps):
        metrics = learner.step(batch)
    synchronize(device)
    elapsed = time.perf_counter() - start
    key = (torso, head, T, B, str(device))
    loss = float(first["total_loss"])
    if precision == "fp32" and memory_format == "contiguous" and compile_ == "off":
        baseline_loss[key] = loss
    reference = baseline_loss.get(key)
    agent_steps = T * B * args.steps / elapsed
    return {
        "torso": torso, "head": head, "mi_form": args.mi_form, "T": T, "B": B, "frame": list(frame),
        "precision": precision, "memory_format": memory_format, "compile": compile_,
        "steps": args.steps, "warmup": args.warmup, "first_step_seconds": round(first_seconds, 3),
        "warmup_seconds": round(warmup_seconds, 3),
        "seconds": round(elapsed, 3), "seconds_per_step": round(elapsed / args.steps, 5),
        "agent_steps_per_s": round(agent_steps, 1),
        "env_frames_per_s": round(agent_steps * args.action_repeat, 1), "action_repeat": args.action_repeat,
        "on_policy_log_rho_abs_mean": float(first["log_rho_abs_mean"]),
        "first_loss": loss,
        "first_loss_rel_diff": None if reference is None else abs(loss - reference) / max(abs(reference), 1e-12),
        "final_total_loss": float(metrics["total_loss"]),
        "parameters": sum(p.numel() for p in agent.parameters()),
        "torch": torch.__version__, "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    frame = tuple(int(x) for x in args.frame.lower().split("x"))
    baseline_loss: dict = {}
    results = []
    for torso, head, T, B, device, precision, memory_format, compile_ in itertools.product(
            args.torso, args.head, args.T, args.B, args.device, args.precision, args.memory_format, args.compile):
        result = run_one(args, torso, head, T, B, device, precision, memory_format, compile_, frame, baseline_loss)
        print(json.dumps(result), flush=True)
        results.append(result)
    return results


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

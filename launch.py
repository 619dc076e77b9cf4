"""impala-mu's entry point.

    python launch.py train [--config configs/NAME.yaml] [--trust-checkpoint] [key=value ...]
    python launch.py evaluate LOGDIR [--checkpoint PATH] [--episodes N] [--greedy] [--video K]
                              [--trust-checkpoint] [key=value ...]
    python launch.py compare --heads shared,multihead,taskid_mi,learnt_mi --seeds N --out DIR [key=value ...]
    python launch.py report RUN_DIR... --out DIR
    python launch.py print-config [--config configs/NAME.yaml] [key=value ...]
    python launch.py train --help          # every config field, its default and what it does

Trains on the embedded suite by default (``configs/embedded.yaml``). Running the same
command again with the same ``logdir`` resumes from its newest checkpoint; a larger
``total_frames`` extends the run; ``resume=never`` moves the old run aside and starts afresh.
SIGTERM / SIGINT write a checkpoint and exit (status 143 / 130), so a preempted job resumes
where it stopped; an error writes a final checkpoint and exits with status 1. Checkpoints are
read with ``torch.load(weights_only=True)``; ``--trust-checkpoint`` also opens what needs unpickling
(older formats, another user's serial env states: docs/TESTING.md, "Threat model").
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from types import ModuleType
from typing import Sequence

from configs.errors import run_command
from configs.help import config_reference
from configs.schema import load_config, to_yaml

TRUST_HELP = ("also open checkpoints that need unpickling objects (the old single-file format, format-2 "
              "resume state, env states another user sealed): this can run code from the file, so only for "
              "files you wrote yourself (docs/TESTING.md, threat model)")


def load(module: str) -> ModuleType:
    """A command's package, imported when that command runs: ``train`` does not pay for matplotlib
    (``report``), ``print-config`` and ``report`` not for Ray."""
    return importlib.import_module(module)


def run_train(args: argparse.Namespace) -> int:
    return load("training.run").train_command(args.config, args.overrides, args.trust_checkpoint)


def run_print_config(args: argparse.Namespace) -> int:
    print(to_yaml(load_config(args.config, args.overrides)), end="")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    """``evaluate``: the logic is ``evaluation.evaluate``; this starts Ray around it when needed."""
    evaluate, ray_cluster = load("evaluation.evaluate"), load("actors.ray_cluster")
    job = evaluate.prepare(args.logdir, checkpoint=args.checkpoint, episodes=args.episodes,
                           envs_per_task=args.envs_per_task, greedy=args.greedy, videos=args.video, seed=args.seed,
                           overrides=args.overrides, trust=args.trust_checkpoint)
    ray_cluster.check_local_capacity(job.cfg)
    logdir = str(args.logdir)           # records and reaping in the LOGDIR given, not the checkpoint's
    started_ray = ray_cluster.start_ray(job.cfg, logdir) if job.cfg.run.mode == "ray" else False
    try:
        evaluate.run(job)
    finally:
        if started_ray:
            ray_cluster.stop_ray(job.cfg, logdir)
    return 0


def run_compare(args: argparse.Namespace) -> int:
    grid = load("training.compare")
    try:
        states = grid.compare(args.heads, args.seeds, args.out, args.config, args.overrides,
                              parallel=args.parallel, eval_episodes=args.eval_episodes, retries=args.retries)
    except grid.GridStopped as stopped:
        return 128 + stopped.signum
    return 0 if all(s == "finished" for s in states.values()) else 1


def run_report(args: argparse.Namespace) -> int:
    print(f"report written to {load('analysis.report').write_report(args.runs, args.out, boot=args.boot)}")
    return 0


COMMANDS = {"train": run_train, "print-config": run_print_config, "evaluate": run_evaluate,
            "compare": run_compare, "report": run_report}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="launch.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    overrides_help = "overrides: section.field=value or a short key (in brackets below), e.g. head=taskid_mi"
    p = sub.add_parser("train", help="train (or resume) an agent", epilog=config_reference(),
                       description="Trains (or resumes, same logdir) an agent. Config fields, their defaults "
                                   "(configs/embedded.yaml's values) and what they do:",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=None, help="YAML config (default configs/embedded.yaml)")
    p.add_argument("--trust-checkpoint", action="store_true", help=TRUST_HELP)
    p.add_argument("overrides", nargs="*", metavar="key=value", help=overrides_help)
    p = sub.add_parser("print-config", help="print the resolved config (YAML) and exit")
    p.add_argument("--config", default=None, help="YAML config (default configs/embedded.yaml)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help=overrides_help)
    p = sub.add_parser("evaluate", help="evaluate a checkpoint on the held-out evaluation levels",
                       description="Plays N episodes per task on the evaluation levels (docs/EVALUATION.md) and "
                                   "writes LOGDIR/eval/<checkpoint>/results.json, results.csv, episodes.csv.")
    p.add_argument("logdir", help="the training run's logdir")
    p.add_argument("--checkpoint", default=None, help="a checkpoint file (default: the newest in LOGDIR/checkpoints)")
    p.add_argument("--episodes", type=int, default=10, help="episodes per task (default 10)")
    p.add_argument("--envs-per-task", type=int, default=4, help="envs sharing a task's episodes (default 4)")
    p.add_argument("--greedy", action="store_true", help="argmax actions instead of sampling from the policy")
    p.add_argument("--video", type=int, default=0, metavar="K", help="save K episodes per task as GIFs")
    p.add_argument("--seed", type=int, default=0, help="evaluation seed (envs and action sampling)")
    p.add_argument("--trust-checkpoint", action="store_true", help=TRUST_HELP)
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="how to run: mode=serial|ray, num_actors=W (workers), ray_address=..., env.options.X=...")
    p = sub.add_parser("compare", help="train and evaluate a grid of heads x seeds, then write its report")
    p.add_argument("--heads", default="shared,multihead,taskid_mi,learnt_mi", help="comma-separated heads")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per head (default 3)")
    p.add_argument("--out", required=True, help="grid directory: DIR/<head>/seed<k>/ and DIR/report/")
    p.add_argument("--config", default=None, help="YAML config (default configs/embedded.yaml)")
    p.add_argument("--parallel", type=int, default=1, help="runs trained side by side (default 1)")
    p.add_argument("--eval-episodes", type=int, default=10, help="evaluation episodes per task (0 = none)")
    p.add_argument("--retries", type=int, default=1, help="restarts (resuming) of a run that fails (default 1)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="overrides for every run (as for train)")
    p = sub.add_parser("report", help="learning curves, tables and statistics from finished or running runs")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR",
                   help="training logdirs (grouped by their head), or an earlier report's run_scores.csv "
                        "(statistics only)")
    p.add_argument("--out", required=True, help="report directory (summary.md, PNGs, CSVs)")
    p.add_argument("--boot", type=int, default=2000, help="bootstrap resamples (default 2000)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may also follow evaluate's options (argparse takes positionals in one run)
    if args.command in ("evaluate", "compare") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command not in ("compare", "report"):
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_command(lambda: COMMANDS[args.command](args))


if __name__ == "__main__":
    sys.exit(main())

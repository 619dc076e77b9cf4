"""``launch.py evaluate``: a checkpoint's agent played on the evaluation levels (docs/EVALUATION.md).

``prepare(...)`` checks every argument, loads the checkpoint and the config it was trained with
and builds the plan; it raises ``EvaluationError`` (one line naming the bad value and the fix)
before anything runs or is written. ``run(job, runner)`` plays the episodes, prints progress
and the table, and writes ``LOGDIR/eval/<checkpoint-stem>[-greedy]/``.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence, TextIO

from configs.errors import ConfigError
from configs.schema import (TrainConfig, build_config, config_from_dict, incompatible_changes, parse_override,
                            unknown_config_keys)
from configs.suites import resolve_suite
from envs.suites import Suite
from evaluation import results, video
from evaluation.runners import EpisodeRunner, SerialRunner, worker_factory
from evaluation.worker import EnvSlot, plan_slots, split_slots
from learner.checkpoint import CheckpointError, checkpoint_dir, latest, load_file, upgrade


class EvaluationError(ValueError):
    pass


@dataclass(frozen=True)
class EvalJob:
    cfg: TrainConfig                  # the training config (with run-time overrides)
    suite: Suite
    task_ids: tuple[int, ...]
    weights: Mapping[str, Any]        # the model's state dict
    checkpoint: Path
    frames: int
    updates: int
    episodes: int
    envs_per_task: int
    greedy: bool
    videos: int
    seed: int
    out_dir: Path

    @property
    def groups(self) -> list[list[EnvSlot]]:
        """The env slots of each worker (``actors.num_actors`` workers)."""
        slots = plan_slots(self.task_ids, self.episodes, self.envs_per_task, self.videos, self.seed)
        return split_slots(slots, self.cfg.actors.num_actors)


def prepare(logdir: str | os.PathLike, *, checkpoint: str | os.PathLike | None = None, episodes: int = 10,
            envs_per_task: int = 4, greedy: bool = False, videos: int = 0, seed: int = 0,
            overrides: Sequence[str] = (), trust: bool = False) -> EvalJob:
    if episodes < 1:
        raise EvaluationError(f"--episodes {episodes}: must be >= 1 episodes per task")
    if envs_per_task < 1:
        raise EvaluationError(f"--envs-per-task {envs_per_task}: must be >= 1")
    if not 0 <= videos <= episodes:
        raise EvaluationError(f"--video {videos}: must be between 0 and --episodes ({episodes}); "
                              f"raise --episodes or film fewer episodes")
    state, path = _load_checkpoint(Path(logdir), checkpoint, trust)
    cfg = _config(state, overrides, path)
    try:
        suite, task_ids = resolve_suite(cfg)
    except ConfigError as e:
        raise EvaluationError(str(e)) from None
    stem = path.stem + ("-greedy" if greedy else "")
    weights = upgrade(state)[0]["learner"]["model"]      # older MI checkpoints: same function
    return EvalJob(cfg=cfg, suite=suite, task_ids=tuple(task_ids), weights=weights, checkpoint=path,
                   frames=int(state["frames"]), updates=int(state["updates"]), episodes=episodes,
                   envs_per_task=envs_per_task, greedy=greedy, videos=videos, seed=seed,
                   out_dir=Path(logdir) / "eval" / stem)


def _load_checkpoint(logdir: Path, checkpoint: str | os.PathLike | None,
                     trust: bool = False) -> tuple[dict[str, Any], Path]:
    """The checkpoint's state (``torch.load(weights_only=True)``; ``trust``: learner/checkpoint.py) and path."""
    if checkpoint is not None:
        path = Path(checkpoint)
        if not path.is_file():
            raise EvaluationError(f"--checkpoint {str(path)!r} does not exist; omit it to use the newest "
                                  f"checkpoint of {checkpoint_dir(logdir)}")
        try:
            return load_file(path, trust=trust), path.resolve()
        except CheckpointError as e:
            raise EvaluationError(f"--checkpoint {str(path)!r} is unusable ({e}); name another one") from None
    if not logdir.is_dir():
        raise EvaluationError(f"LOGDIR {str(logdir)!r} does not exist; give the logdir of a training run")
    try:
        loaded = latest(logdir, trust=trust)
    except CheckpointError as e:
        raise EvaluationError(str(e)) from None
    if loaded is None:
        raise EvaluationError(f"{logdir} has no checkpoint in {checkpoint_dir(logdir)}; train first "
                              f"(python launch.py train logdir={logdir}) or pass --checkpoint PATH")
    return loaded[0], loaded[1].resolve()


def _config(state: Mapping[str, Any], overrides: Sequence[str], path: Path) -> TrainConfig:
    unknown = unknown_config_keys(state["config"])
    if unknown:
        raise EvaluationError(f"checkpoint {path}: its config has keys this code does not know ({', '.join(unknown)}): "
                              f"written by newer code; update this code")
    try:
        saved = config_from_dict(state["config"])
    except ValueError as e:       # a value this code refuses: one line, not a traceback
        raise EvaluationError(f"checkpoint {path}: its config is not valid for this code "
                              f"({' '.join(str(e).split())}); evaluate it with the code that wrote it") from None
    flat = {f"{s}.{k}": v for s, body in saved.to_dict().items() for k, v in body.items() if k != "options"}
    flat.update({f"env.options.{k}": v for k, v in saved.env.options.items()})
    try:
        for item in overrides:
            key, value = parse_override(item)
            flat[key] = value
        cfg = build_config(flat, source="evaluate overrides")
    except ValueError as e:
        raise EvaluationError(str(e)) from None
    bad, _ = incompatible_changes(saved, cfg)
    if bad:
        raise EvaluationError(f"overrides may change how the evaluation runs, not what was trained: "
                              f"{', '.join(bad)} differ from checkpoint {path.name}'s config; drop them")
    return cfg


def make_runner(job: EvalJob) -> EpisodeRunner:
    """A SerialRunner (``mode=serial``) or a RayRunner (Ray must be initialised by the caller)."""
    actors = job.cfg.actors
    if job.cfg.run.mode == "serial":
        make = worker_factory(job.suite, job.cfg.agent, job.weights, greedy=job.greedy,
                              torch_threads=actors.torch_threads)
        return SerialRunner(make, job.groups)
    from evaluation.ray_runner import RayRunner  # noqa: PLC0415

    return RayRunner(job.suite, job.cfg.agent, job.weights, job.groups, greedy=job.greedy,
                     cpus_per_worker=actors.cpus_per_actor, torch_threads=actors.torch_threads,
                     max_restarts=min(actors.max_restarts, 10))


def run(job: EvalJob, runner: EpisodeRunner | None = None, *, stream: TextIO | None = None) -> dict[str, Any]:
    """Plays every planned episode, writes the result files (and videos) and returns results.json's object."""
    stream = stream or sys.stdout
    total = len(job.task_ids) * job.episodes
    start = last_print = time.monotonic()
    print(f"evaluating {job.checkpoint} ({job.frames:,} frames, head {job.cfg.agent.head}) on "
          f"{len(job.task_ids)} tasks x {job.episodes} episodes, {job.cfg.run.mode} mode, "
          f"{'greedy' if job.greedy else 'sampled'} actions", file=stream, flush=True)
    runner = runner or make_runner(job)
    try:
        while not runner.finished():
            runner.poll()
            now = time.monotonic()
            if now - last_print >= job.cfg.run.report_every_seconds:
                _progress(stream, runner, total, now - start)
                last_print = now
        records = [r for group in runner.records for r in group]
    finally:
        runner.close()
    _progress(stream, runner, total, time.monotonic() - start)
    run_info = {
        "suite": job.suite.name, "checkpoint": str(job.checkpoint), "frames": job.frames, "updates": job.updates,
        "head": job.cfg.agent.head, "mi_form": job.cfg.agent.mi_form, "train_seed": job.cfg.run.seed,
        "seed": job.seed, "greedy": job.greedy, "test_levels": True, "episodes_per_task": job.episodes,
        "envs_per_task": min(job.episodes, job.envs_per_task), "time": time.time(),
        "wall_seconds": time.monotonic() - start,
    }
    summary = results.summarize(job.suite, job.task_ids, records, run_info)
    results.write_files(str(job.out_dir), summary, job.suite, records)
    results.write_tensorboard(str(job.out_dir), summary)
    _write_videos(job, records)
    print(results.format_table(summary), file=stream)
    print(f"results: {job.out_dir}/results.json (+ results.csv, episodes.csv"
          f"{', videos/' if job.videos else ''})", file=stream, flush=True)
    return summary


def _write_videos(job: EvalJob, records: Sequence[Any]) -> None:
    filmed = [r for r in records if r.frames is not None]
    if not filmed:
        return
    folder = job.out_dir / "videos"
    folder.mkdir(parents=True, exist_ok=True)
    count = min(job.episodes, job.envs_per_task)
    for r in filmed:
        k = r.episode * count + r.env          # the task's episode number (docs/EVALUATION.md)
        video.write_gif(str(folder / f"{job.suite.tasks[r.task_id].name}-{k}.gif"), r.frames)


def _progress(stream: TextIO, runner: EpisodeRunner, total: int, elapsed: float) -> None:
    done = sum(len(group) for group in runner.records)
    rate = done / elapsed if elapsed > 0 else 0.0
    left = f"{(total - done) / rate:.0f}s" if rate > 0 else "?"
    restarts = f" | worker restarts {runner.restarts}" if runner.restarts else ""
    print(f"episodes {done}/{total} ({100 * done / total:.0f}%) | {elapsed:.0f}s | left ~{left}{restarts}",
          file=stream, flush=True)

"""One training run: config -> suite -> agent -> unroll source -> loop, and the resume policy.

``train(cfg)`` holds ``LOGDIR/.lock`` for the whole run, refuses (``ConfigError``, one line) a config it
cannot run before anything is written, resumes from the newest checkpoint (``run.resume``: auto, must,
never = ``move_aside`` and start afresh), and closes the source, the reporter and its Ray cluster
however the run ends. SIGTERM / SIGINT stop it after a checkpoint (``install_signal_handlers``).
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import time
from typing import Any, Sequence

import torch

from actors import ray_cluster
from actors.actor import assign_tasks
from actors.overlap import make_worker
from actors.ray_reaper import RECORD
from actors.ray_source import RaySource
from actors.serial import SerialSource
from actors.source import UnrollSource
from agent import Agent
from configs.errors import ConfigError, TrainingError
from configs.run_lock import LOCK_NAME, RunLock
from configs.schema import (TrainConfig, check_logdir, config_from_dict, defaults_used, incompatible_changes, load_config,
                            save_yaml, unknown_config_keys)
from configs.suites import resolve_suite
from envs.suites import Suite, get_suite
from learner.checkpoint import CheckpointError, Checkpointer, checkpoint_dir
from learner.learner import Learner
from learner.provenance import code_version, resume_problems, run_identity
from training.loop import TrainLoop, check_trusted, describe_error, lr_on_resume, report_error
from training.report import Reporter

log = logging.getLogger("impala_mu")

EXIT_CODES = {"SIGTERM": 128 + signal.SIGTERM, "SIGINT": 128 + signal.SIGINT}   # a run stopped by a signal


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"run.device={name!r} but this machine has no CUDA device; use device=auto or device=cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ConfigError(f"run.device={name!r} but this machine has {torch.cuda.device_count()} CUDA devices "
                          f"(cuda:0..cuda:{torch.cuda.device_count() - 1}); pick one of them or use device=auto")
    return device


def check_agent_fits_suite(cfg: TrainConfig, suite: Suite) -> None:
    """The instruction encoder must have a row for every word id the suite's envs emit."""
    vocabulary = getattr(suite, "instruction_vocabulary", 0)
    if cfg.agent.use_instruction and cfg.agent.instruction_buckets < vocabulary:
        raise ConfigError(f"agent.instruction_buckets={cfg.agent.instruction_buckets} is smaller than suite "
                          f"{cfg.env.suite!r}'s instruction hashing (word ids 1..{vocabulary}); set "
                          f"agent.instruction_buckets={vocabulary} (or agent.use_instruction=false)")


def check_resume(cfg: TrainConfig, saved: dict[str, Any], suite: Suite | None = None) -> list[str]:
    """Refuses a checkpoint made with an incompatible config (``configs.schema.INCOMPATIBLE_PREFIXES``),
    naming each field; returns the other changed keys."""
    try:
        saved_cfg = config_from_dict(saved)
    except ValueError as e:      # a value this code's schema refuses (written by other code)
        raise ConfigError(f"cannot resume from {cfg.run.logdir}: its checkpoint's config is not valid for this "
                          f"code ({' '.join(str(e).split())}); use the code that wrote it, or resume=never") from None
    bad, other = incompatible_changes(saved_cfg, cfg)
    if "env.options.action_repeat" in bad and suite is not None and "env.suite" not in bad:
        # given on one side only: what counts is the action repeat the suites end up with
        if get_suite(saved_cfg.env.suite, **saved_cfg.env.options).action_repeat == suite.action_repeat:
            bad.remove("env.options.action_repeat")
    if bad:
        a, b = saved_cfg.to_dict(), cfg.to_dict()
        details = "; ".join(f"{k}: checkpoint {_get(a, k)!r} vs now {_get(b, k)!r}" for k in bad)
        raise ConfigError(f"cannot resume from {cfg.run.logdir}: its checkpoint was made with an incompatible "
                          f"config ({details}). Use the checkpoint's settings, another logdir, or resume=never "
                          f"(moves this run aside to {cfg.run.logdir}.old-<time> and starts afresh).")
    return other


def move_aside(logdir: str, keep: Sequence[str] = ()) -> str | None:
    """Moves what a non-empty ``logdir`` holds into ``<logdir>.old-<UTC time>`` (never deletes);
    returns the new name. The entries named in ``keep`` stay: this run's lock and its Ray record."""
    entries = [e for e in os.listdir(logdir) if e not in keep] if os.path.isdir(logdir) else []
    if not entries:
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    target, n = f"{os.path.normpath(logdir)}.old-{stamp}", 1
    while os.path.exists(target):
        n += 1
        target = f"{os.path.normpath(logdir)}.old-{stamp}-{n}"
    os.makedirs(target)
    for entry in entries:
        os.rename(os.path.join(logdir, entry), os.path.join(target, entry))
    return target


def _get(tree: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


def make_source(cfg: TrainConfig, suite: Suite, task_ids: Sequence[int], on_event):

    def actor_args(actor_id: int, incarnation: int) -> dict[str, Any]:
        return dict(suite=suite, agent_config=cfg.agent,
                    task_ids=assign_tasks(task_ids, actor_id, cfg.actors.envs_per_actor),
                    unroll_length=cfg.learner.unroll_length, seed=cfg.run.seed, actor_id=actor_id,
                    incarnation=incarnation, torch_threads=cfg.actors.torch_threads, overlap=cfg.actors.overlap)

    if cfg.run.mode == "serial":

        return SerialSource(lambda i, inc: make_worker(**actor_args(i, inc)), cfg.actors.num_actors, on_event)

    return RaySource(actor_args, cfg.actors.num_actors, unrolls_in_flight=cfg.actors.unrolls_in_flight,
                     max_restarts=cfg.actors.max_restarts, cpus_per_actor=cfg.actors.cpus_per_actor,
                     on_event=on_event, resources=cfg.actors.resources)


def train(cfg: TrainConfig, *, suite: Suite | None = None, task_ids: Sequence[int] | None = None,
          on_step=None, install_signal_handlers: bool = True, trust_checkpoint: bool = False) -> str:
    """Runs (or resumes) training as configured. Returns "done" or the stop reason; raises
    ``ConfigError`` before any work for a config it cannot run (a checkpoint that cannot be
    used included), ``TrainingError`` (one-line message, after a final checkpoint where possible)
    when training fails. ``trust_checkpoint`` (``--trust-checkpoint``): the resume may unpickle
    what older checkpoints pickled (learner/checkpoint.py, docs/TESTING.md's threat model). Holds ``LOGDIR/.lock``
    throughout: a second run on the same logdir is refused (``configs.run_lock.LockHeld`` naming the holder)."""
    device = resolve_device(cfg.run.device)
    if suite is None:
        suite, task_ids = resolve_suite(cfg)
    task_ids = list(task_ids) if task_ids is not None else list(range(len(suite.tasks)))
    check_agent_fits_suite(cfg, suite)
    ray_cluster.check_local_capacity(cfg)
    lock = RunLock(cfg.run.logdir, "run.logdir")   # the first thing written: one run per logdir
    try:
        return _train_locked(cfg, lock, device, suite, task_ids, on_step, install_signal_handlers,
                             trust_checkpoint)
    finally:
        lock.release()


def _train_locked(cfg: TrainConfig, lock: RunLock, device: torch.device, suite: Suite, task_ids: list[int], on_step,
                  install_signal_handlers: bool, trust_checkpoint: bool) -> str:
    """``train`` once the logdir's lock is held."""
    logdir = cfg.run.logdir
    checkpointer = Checkpointer(checkpoint_dir(logdir), keep=cfg.run.keep_checkpoints)
    fresh = cfg.run.resume == "never"
    try:                                                      # before anything is written: refuse early
        loaded = None if fresh else checkpointer.load_latest(trust=trust_checkpoint)
        if loaded:
            check_trusted(loaded[0], trust_checkpoint)
    except CheckpointError as e:
        raise ConfigError(f"cannot resume from {logdir}: {e}") from None
    if cfg.run.resume == "must" and not loaded:
        raise ConfigError(f"run.resume=must but {logdir} holds no checkpoint to resume; check logdir, "
                          "or use resume=auto to start a new run there")
    identity = run_identity(suite)
    if loaded:
        problems = resume_problems(loaded[0], identity, unknown_config_keys(loaded[0].get("config") or {}))
        if problems:
            raise ConfigError(f"cannot resume from {loaded[1]}: {'; '.join(problems)}. Use another logdir, or "
                              f"resume=never (moves this run aside to {logdir}.old-<time> and starts afresh)")
    changed = check_resume(cfg, loaded[0]["config"], suite) if loaded else []
    if loaded and loaded[0]["frames"] >= cfg.run.total_frames:
        raise ConfigError(f"{logdir} already holds a run at {loaded[0]['frames']:,} frames >= "
                          f"total_frames={cfg.run.total_frames:,}; raise total_frames to extend it, "
                          "or resume=never to move it aside and start afresh")
    if cfg.run.learner_threads:
        torch.set_num_threads(cfg.run.learner_threads)
    torch.manual_seed(cfg.run.seed)
    agent = Agent.for_suite(cfg.agent, suite)
    learner = Learner(agent, cfg.learner, total_frames=cfg.run.total_frames,
                      action_repeat=suite.action_repeat, device=device)
    started_ray = ray_cluster.start_ray(cfg) if cfg.run.mode == "ray" else False   # may refuse: nothing written yet
    source = reporter = None
    try:
        moved = move_aside(logdir, keep=(LOCK_NAME, RECORD.format(pid=os.getpid()))) if fresh else None
        os.makedirs(logdir, exist_ok=True)
        removed = checkpointer.remove_partial_saves()
        save_yaml(cfg, os.path.join(logdir, "config.yaml"))
        reporter = Reporter(suite, task_ids, logdir, total_frames=cfg.run.total_frames,
                            report_every_seconds=cfg.run.report_every_seconds,
                            score_window=cfg.run.score_window_episodes,
                            start_frames=loaded[0]["frames"] if loaded else 0, config=cfg.to_dict())
        if lock.taken_over:
            reporter.event("lock_taken_over", previous=lock.taken_over, why="its holder ended without releasing it")
        if moved:
            reporter.event("moved_aside", old_run=moved, why="run.resume=never")
        if removed:
            reporter.event("removed_partial_saves", files=removed, why="left by a save that was killed")
        try:
            source = make_source(cfg, suite, task_ids, reporter.event)
            loop = TrainLoop(learner=learner, source=source, reporter=reporter, checkpointer=checkpointer,
                             config_dict=cfg.to_dict(), total_frames=cfg.run.total_frames,
                             batch_size=cfg.learner.batch_size, unroll_length=cfg.learner.unroll_length,
                             checkpoint_every_seconds=cfg.run.checkpoint_every_seconds,
                             checkpoint_every_frames=cfg.run.checkpoint_every_frames, identity=identity)
            if loaded:
                loop.load_state_dict(loaded[0], trust=trust_checkpoint)
                saved = loaded[0]
                versions = {"checkpoint": saved.get("code_version"), "now": code_version()}
                reporter.event("resume", path=str(loaded[1]), frames=learner.num_frames,
                               updates=learner.num_updates, changed=",".join(changed) or "-",
                               defaults_used=defaults_used(saved["config"]) or "-",
                               code_version=versions if versions["checkpoint"] != versions["now"] else "same",
                               **lr_on_resume(saved, learner))
        except Exception as e:  # noqa: BLE001 - e.g. serial actors that cannot be built: nothing new to save
            try:
                report_error(reporter, e, frames=learner.num_frames, updates=learner.num_updates, checkpoint=None)
            except Exception:  # noqa: BLE001 - e.g. a full disk: the error below is the one to report
                pass
            raise TrainingError(f"could not start training: {describe_error(e)}; no new checkpoint (nothing "
                                f"trained yet). Traceback in {logdir}/events.jsonl") from e
        if install_signal_handlers:
            _install_signal_handlers(loop)
        reporter.event("start", device=str(device), mode=cfg.run.mode, suite=cfg.env.suite,
                       head=cfg.agent.head, total_frames=cfg.run.total_frames,
                       parameters=sum(p.numel() for p in agent.parameters()))
        reason = loop.run(on_step=on_step)
    except BaseException:
        _close_all(source, reporter, cfg if started_ray else None, failing=True)
        raise
    _close_all(source, reporter, cfg if started_ray else None, failing=False)
    return reason


def _close_all(source: UnrollSource | None, reporter: Reporter | None, ray_cfg: TrainConfig | None, failing: bool) -> None:
    """Closes the source, the reporter (flushing events.jsonl) and our Ray cluster, each even if one before
    fails. While an error is propagating (``failing``), a failure here (e.g. flushing onto a full disk) is
    logged, never raised in its place; otherwise the first one is raised after the rest are closed."""
    first = None
    closers = [c for c in (source and source.close, reporter and reporter.close,
                           ray_cfg and (lambda: ray_cluster.stop_ray(ray_cfg))) if c]
    for close in closers:
        try:
            close()
        except Exception as e:  # noqa: BLE001
            if failing:
                log.warning("while stopping after the error, closing also failed: %s: %s", type(e).__name__, e)
            elif first is None:
                first = e
    if first is not None:
        raise first


# A second SIGTERM/SIGINT within this many seconds of the first is the same request delivered twice, not
# a second request: GNU `timeout` signals its child and then the child's process group (the child gets
# both), and a scheduler may signal the job's process group and its main process.
DUPLICATE_SIGNAL_SECONDS = 1.0


def stop_signal_handler(loop: TrainLoop, clock=time.monotonic):
    """The SIGTERM/SIGINT handler of a run: the first asks the loop to stop after this step with a
    checkpoint; another one, more than DUPLICATE_SIGNAL_SECONDS later, stops it now, without one."""
    first_at = None

    def handler(signum, _frame):
        nonlocal first_at
        name = signal.Signals(signum).name
        if loop.stop_reason is not None:
            if first_at is not None and clock() - first_at < DUPLICATE_SIGNAL_SECONDS:
                return                        # the same request delivered twice
            raise KeyboardInterrupt(name)     # second signal: stop now, without a checkpoint
        loop.stop_reason = name
        first_at = clock()
        print(f"\n{name} received: finishing this step, writing a checkpoint, then exiting "
              f"(send it again to exit without a checkpoint)", file=sys.stderr, flush=True)

    return handler


def _install_signal_handlers(loop: TrainLoop) -> None:
    handler = stop_signal_handler(loop)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)


def train_command(config: str | None, overrides: Sequence[str], trust_checkpoint: bool = False) -> int:
    """``launch.py train`` (and ``python -m training``, compare's runs): the run's exit status, 128 + the
    signal's number when a signal stopped it; errors are raised (``configs.errors.exit_status``)."""
    cfg = load_config(config, list(overrides))
    check_logdir(cfg.run.logdir)
    return EXIT_CODES.get(train(cfg, trust_checkpoint=trust_checkpoint), 0)

"""The learner loop: unrolls in, learner steps, weights out, reports and checkpoints.

The loop does not know where unrolls come from: a *source* (``actors.source.UnrollSource``:
``actors.serial.SerialSource`` in-process, ``actors.ray_source.RaySource`` over Ray) provides

* ``start(version, weights)``: begin acting with these weights;
* ``get() -> list[Unroll]``: the unrolls that have arrived (oldest first; may be empty
  after a short wait, so the loop can notice a stop request);
* ``publish(version, weights)``: new weights, picked up by actors at unroll boundaries;
* ``backlog() -> (ready, in_flight)``: when the learner last asked, how many unrolls were
  finished and waiting for it and how many requests were still being acted;
* ``state_dict()`` / ``load_state_dict()`` (what a resume needs), ``close()``; and it calls
  ``on_event(kind, **fields)`` for restarts.

The loop times each ``get()``: the fraction of wall time the learner spends waiting for unrolls,
with the backlog, tells whether the learner or the actors bound the run (``Reporter``).

Any exception inside the loop (too many actor restarts, an actor that cannot be built, a
failing step or report) ends the run with a final checkpoint, provided the learner's state is
intact (the failure did not happen while an optimizer step was being applied) and it has
updates the last checkpoint lacks; the error and its traceback go to ``events.jsonl`` and
``run`` raises ``TrainingError`` with a one-line message.

On CUDA the step is asynchronous (no host syncs inside it), so stacking and copying
the next batch overlaps the GPU work of the previous one.
"""
from __future__ import annotations

import random
import time
import traceback
from typing import Any, Callable

import numpy as np
import torch

from actors.source import UnrollSource
from agent.diagnostics import batch_diagnostics
from agent.types import EpisodeStat, Unroll
from configs.errors import TrainingError
from learner.checkpoint import TRUST_FLAG, Checkpointer, UntrustedCheckpoint, upgrade
from learner.learner import Learner
from learner.optim import LinearDecay, rescale_optimizer_state
from learner.provenance import CHECKPOINT_FORMAT, code_version
from training.batching import ARRAY_FIELDS, Batcher, DeviceCopier
from training.report import Reporter


def host_weights(module: torch.nn.Module) -> dict[str, np.ndarray]:
    """The module's parameters and buffers as host numpy arrays (what actors load)."""
    return {k: v.detach().to("cpu", copy=True).numpy() for k, v in module.state_dict().items()}


class WeightSnapshot:
    """Copies the agent's weights to host buffers without waiting for the device.

    ``take(version)`` queues the copies (on CUDA: asynchronous, into pinned buffers reused
    across updates, followed by an event); ``result()`` waits for them and returns
    ``(version, {name: array})``. The loop takes a snapshot right after a step and publishes it
    only when it must (before waiting for actors, or before the next step), so on a GPU the
    next batch is stacked and copied while the step still runs.
    """

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module
        self.buffers: dict[str, torch.Tensor] | None = None
        self.event = None
        self.version: int | None = None

    def take(self, version: int) -> None:
        state = self.module.state_dict()
        if self.buffers is None:
            pin = any(v.is_cuda for v in state.values())
            self.buffers = {k: torch.empty(v.shape, dtype=v.dtype, pin_memory=pin) for k, v in state.items()}
        for k, v in state.items():
            self.buffers[k].copy_(v.detach(), non_blocking=True)
        if any(v.is_cuda for v in state.values()):
            self.event = torch.cuda.Event()
            self.event.record()
        self.version = version

    def result(self) -> tuple[int, dict[str, np.ndarray]] | None:
        """The pending snapshot (once), or None if there is none."""
        if self.version is None:
            return None
        if self.event is not None:
            self.event.synchronize()
            self.event = None
        version, self.version = self.version, None
        return version, {k: v.numpy() for k, v in self.buffers.items()}


def describe_error(error: BaseException) -> str:
    """``Type: message`` on one line (at most 500 characters)."""
    text = " ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return f"{type(error).__name__}: {text}"[:500]


def report_error(reporter: Reporter, error: BaseException, **fields: Any) -> None:
    """The ``error`` event (one-line error and the full traceback) in events.jsonl."""
    tb = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    reporter.event("error", error=describe_error(error), **fields, traceback=tb)


def rng_state() -> dict[str, Any]:
    """The process's python, numpy and torch RNG states as plain data (tensors, ints, floats)."""
    version, words, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"python": {"version": version, "state": torch.tensor(words, dtype=torch.int64), "gauss_next": gauss},
            "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
            "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    """Inverse of ``rng_state()``; also takes format 2's objects (python/numpy state tuples)."""
    if isinstance(state["python"], tuple):
        random.setstate(state["python"])
        np.random.set_state(state["numpy"])
        torch.set_rng_state(state["torch"])
        return
    py, npy = state["python"], state["numpy"]
    random.setstate((py["version"], tuple(py["state"].tolist()), py["gauss_next"]))
    np.random.set_state((npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                         npy["cached_gaussian"]))
    torch.set_rng_state(state["torch"])


def _own_array(a: np.ndarray) -> np.ndarray:
    """``a`` if torch may share it, else a contiguous writable copy (arrays from Ray's object store are
    read-only: a tensor over one is undefined behaviour if written, and torch warns)."""
    return a if a.flags.writeable and a.flags.c_contiguous else np.array(a, order="C")


def unroll_to_plain(u: Unroll) -> dict[str, Any]:
    """An ``Unroll`` as a dict of tensors and plain values (what ``torch.load(weights_only=True)`` reads)."""
    plain: dict[str, Any] = {name: torch.from_numpy(_own_array(getattr(u, name))) for name in ARRAY_FIELDS}
    plain.update(policy_version=int(u.policy_version), actor_id=int(u.actor_id), incarnation=int(u.incarnation),
                 episodes=[[int(e.task_id), float(e.episode_return), int(e.length)] for e in u.episodes])
    return plain


def unroll_from_plain(plain: dict[str, Any]) -> Unroll:
    """Inverse of ``unroll_to_plain``."""
    return Unroll(**{name: plain[name].numpy() for name in ARRAY_FIELDS},
                  policy_version=plain["policy_version"], actor_id=plain["actor_id"],
                  incarnation=plain["incarnation"], episodes=tuple(EpisodeStat(*e) for e in plain["episodes"]))


def lr_on_resume(state: dict[str, Any], learner: Learner) -> dict[str, Any]:
    """For the ``resume`` event when ``run.total_frames`` changed (else {}): the budgets, the rate the
    checkpoint's schedule had reached and the rate this run continues with (``LinearDecay``)."""
    config = state["config"]
    saved_total = int(config["run"]["total_frames"])
    if saved_total == learner.schedule.total_frames:
        return {}
    before = LinearDecay(float(config["learner"]["learning_rate"]), saved_total)
    before.load_state_dict(dict(state["learner"]["schedule"], total_frames=saved_total))
    return {"total_frames": f"{saved_total} -> {learner.schedule.total_frames}",
            "lr_schedule_resume": learner.cfg.lr_schedule_resume,
            "learning_rate_at_checkpoint": before.learning_rate, "learning_rate_now": learner.schedule.learning_rate,
            "learning_rate_schedule": learner.schedule.describe()}


def check_trusted(state: dict[str, Any], trust: bool) -> None:
    """``UntrustedCheckpoint`` (one line) if resuming from ``state`` would unpickle its entries and not ``trust``."""
    for name in ("batcher", "rng"):
        _plain_or_trusted(state[name], name, trust, load=False)


def _plain_or_trusted(value: Any, name: str, trust: bool, load: bool = True) -> Any:
    """A checkpoint entry as plain data; ``bytes`` (pickled by checkpoints of format 2) are unpickled
    only with ``trust``, else ``UntrustedCheckpoint``."""
    if not isinstance(value, (bytes, bytearray)):
        return value
    if not trust:
        raise UntrustedCheckpoint(f"the checkpoint's {name!r} entry is pickled (checkpoint format 2), which can run "
                                  f"code; if you wrote this run yourself, resume with {TRUST_FLAG}, else use another "
                                  f"logdir")
    import pickle  # noqa: PLC0415 - only for a checkpoint the user vouched for
    return pickle.loads(value) if load else value


class TrainLoop:
    def __init__(self, *, learner: Learner, source: UnrollSource, reporter: Reporter, checkpointer: Checkpointer,
                 config_dict: dict[str, Any], total_frames: int, batch_size: int, unroll_length: int | None = None,
                 checkpoint_every_seconds: float = 0.0, checkpoint_every_frames: int = 0,
                 stall_seconds: float = 120.0, identity: dict[str, Any] | None = None) -> None:
        self.learner = learner
        self.source = source
        self.reporter = reporter
        self.checkpointer = checkpointer
        self.config_dict = config_dict
        self.identity = identity or {}         # learner/provenance.py: task names, instruction encoding
        self.total_frames = total_frames
        self.batcher = Batcher(batch_size)
        self.unroll_length = unroll_length
        self.every_seconds = checkpoint_every_seconds
        self.every_frames = checkpoint_every_frames
        self.stop_reason: str | None = None   # set (e.g. by a signal handler) to stop after the current step
        self._last_ckpt_time = time.monotonic()
        self._last_ckpt_frames = learner.num_frames
        self._last_ckpt_updates = learner.num_updates
        self.stall_seconds = stall_seconds     # no unroll for this long: say so (e.g. actors cannot be placed)
        self._last_arrival = time.monotonic()

    # ------------------------------------------------------------ checkpoint state
    def state_dict(self) -> dict[str, Any]:
        """What a resume needs, as tensors and plain containers only (``torch.load(path)``,
        weights_only, reads it; nothing in it is unpickled as an object)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "code_version": code_version(),
            "identity": self.identity,
            "config": self.config_dict,
            "agent_spec": self.learner.agent.spec(),        # with config["agent"]: training.restore.load_agent
            "mi_parametrization": self.learner.agent.PARAMETRIZATION,   # agent/multiplicative.py
            "learner": self.learner.state_dict(),
            "source": self.source.state_dict(),
            "batcher": [unroll_to_plain(u) for u in self.batcher.queue],
            "reporter": self.reporter.state_dict(),
            "rng": rng_state(),
            "frames": self.learner.num_frames,
            "updates": self.learner.num_updates,
        }

    def load_state_dict(self, state: dict[str, Any], trust: bool = False) -> None:
        """Restores ``state_dict()``'s result. ``trust``: unpickle what older checkpoints (format 2)
        stored as pickle bytes, and env states not sealed by this user; without it those raise
        ``UntrustedCheckpoint`` (before anything is changed) / start new episodes."""
        queue = _plain_or_trusted(state["batcher"], "batcher", trust)
        rng = _plain_or_trusted(state["rng"], "rng", trust)
        state, factors = upgrade(state)
        learner_state = state["learner"]
        if factors:      # a checkpoint from before the MI layer's 1/C context scale: same function
            learner_state["optimizer"] = rescale_optimizer_state(
                learner_state["optimizer"], [name for name, _ in self.learner.agent.named_parameters()],
                factors)
        self.learner.load_state_dict(learner_state, saved_total_frames=state["config"]["run"]["total_frames"])
        self.source.load_state_dict(state["source"], trust=trust)
        self.reporter.load_state_dict(state["reporter"])
        self.batcher = Batcher(self.batcher.batch_size)
        self.batcher.add(self._accept([u if isinstance(u, Unroll) else unroll_from_plain(u) for u in queue],
                                      why="saved batch queue", arrived=False))
        set_rng_state(rng)
        self._last_ckpt_frames = self.learner.num_frames
        self._last_ckpt_updates = self.learner.num_updates

    def _accept(self, unrolls: list, why: str, arrived: bool = True) -> list:
        """The unrolls of this run's length T + 1; any other is dropped and counted (e.g. a saved
        queue after ``learner.unroll_length`` changed). Whole unrolls only ever reach the batcher.
        ``arrived``: new from the actors (counted as used) rather than restored from a checkpoint."""
        if self.unroll_length is None:          # no length given: nothing to check against
            self.reporter.count_unrolls(used=len(unrolls) if arrived else 0, dropped=0)
            return list(unrolls)
        good = [u for u in unrolls if u.reward.shape[0] == self.unroll_length + 1]
        if len(good) < len(unrolls):
            lengths = sorted({u.reward.shape[0] - 1 for u in unrolls} - {self.unroll_length})
            self.reporter.event("unrolls_dropped", count=len(unrolls) - len(good), source=why,
                                reason=f"unroll length {lengths} is not learner.unroll_length={self.unroll_length}")
        self.reporter.count_unrolls(used=len(good) if arrived else 0, dropped=len(unrolls) - len(good))
        return good

    def save_checkpoint(self, why: str) -> str:
        path = self.checkpointer.save(self.state_dict(), self.learner.num_updates)
        self._last_ckpt_time = time.monotonic()
        self._last_ckpt_frames = self.learner.num_frames
        self._last_ckpt_updates = self.learner.num_updates
        self.reporter.event("checkpoint", path=str(path), frames=self.learner.num_frames,
                            updates=self.learner.num_updates, why=why)
        return str(path)

    def _checkpoint_due(self) -> bool:
        if self.every_seconds and time.monotonic() - self._last_ckpt_time >= self.every_seconds:
            return True
        return bool(self.every_frames) and self.learner.num_frames - self._last_ckpt_frames >= self.every_frames

    def _check_stall(self, arrived: bool) -> None:
        now = time.monotonic()
        if arrived:
            self._last_arrival = now
        elif now - self._last_arrival >= self.stall_seconds:
            self.reporter.event("stall", seconds_without_unrolls=round(now - self._last_arrival),
                                requests_in_flight=self.source.backlog()[1],
                                hint="actors may be unplaceable (too few CPUs left?) or stuck in an env")
            self._last_arrival = now           # report again after another stall_seconds

    # ------------------------------------------------------------ the loop
    def run(self, on_step: Callable[["TrainLoop"], None] | None = None) -> str:
        """Trains until ``total_frames`` or a stop request; returns why it stopped ("done" or the reason).
        Raises ``TrainingError`` (after a final checkpoint, see the module docstring) on any error."""
        try:
            return self._run(on_step)
        except Exception as error:  # noqa: BLE001 - every failure gets the same treatment, then propagates
            raise self._fail(error) from error

    def _fail(self, error: Exception) -> TrainingError:
        learner, path, note = self.learner, None, ""
        if not learner.state_intact:
            note = "no final checkpoint: the error interrupted an optimizer step"
        elif learner.num_updates == self._last_ckpt_updates:
            note = "no final checkpoint needed: no update since the last one"
        else:
            try:
                path = self.save_checkpoint("error")
            except Exception as e:  # noqa: BLE001
                note = f"the final checkpoint failed too ({describe_error(e)})"
        try:
            report_error(self.reporter, error, frames=learner.num_frames, updates=learner.num_updates,
                         checkpoint=path, note=note or None)
        except Exception:  # noqa: BLE001 - the reporter itself may be what failed
            pass
        saved = f"final checkpoint {path}" if path else note
        return TrainingError(f"training stopped at {learner.num_frames:,} frames ({learner.num_updates} updates) "
                             f"by {describe_error(error)}; {saved}. Fix the cause and run the same command to "
                             f"resume (traceback in {self.reporter.logdir}/events.jsonl)", checkpoint=path)

    def _run(self, on_step: Callable[["TrainLoop"], None] | None) -> str:
        learner = self.learner
        snapshot = WeightSnapshot(learner.agent)
        copier = DeviceCopier(learner.device)

        def publish_pending() -> None:
            pending = snapshot.result()
            if pending is not None:
                self.source.publish(*pending)

        self.source.start(learner.num_updates, host_weights(learner.agent))
        batch = None
        while learner.num_frames < self.total_frames and self.stop_reason is None:
            publish_pending()                  # actors must not wait on weights we already have
            asked = time.monotonic()
            unrolls = self._accept(self.source.get(), why="actors")
            self.reporter.add_fetch(time.monotonic() - asked, *self.source.backlog())
            self._check_stall(bool(unrolls))
            for u in unrolls:
                self.reporter.add_episodes(u.episodes)
            self.batcher.add(unrolls)
            while self.batcher.ready() and learner.num_frames < self.total_frames and self.stop_reason is None:
                fields, versions = self.batcher.take()
                batch = copier(fields)   # pinned, double-buffered: overlaps the previous step on a GPU
                publish_pending()
                metrics = learner.step(batch)
                snapshot.take(learner.num_updates)
                lag = float(np.mean(learner.num_updates - 1 - versions))
                self.reporter.add_step(metrics, lag)
                if on_step is not None:
                    on_step(self)
                if self.reporter.due():
                    self.reporter.add_diagnostics(batch_diagnostics(learner.agent, batch))
                    self.reporter.report(learner.num_frames, learner.num_updates)
                if self._checkpoint_due():
                    self.save_checkpoint("periodic")
        publish_pending()
        reason = self.stop_reason or "done"
        if batch is not None:                  # the last batch's head diagnostics go with the last report
            self.reporter.add_diagnostics(batch_diagnostics(learner.agent, batch))
        if self.reporter.has_unreported(learner.num_frames):   # else the last report already says it all
            self.reporter.report(learner.num_frames, learner.num_updates)
        self.save_checkpoint(reason)
        return reason

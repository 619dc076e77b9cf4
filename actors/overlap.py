"""An actor that steps one half of its envs while the network acts on the other (``actors.overlap``).

Today's actor (``actors.actor.UnrollWorker``) alternates: every env steps, then one batched
forward picks every env's action. Its rate is bounded by ``1 / (env time + forward time)`` per
step. ``OverlapWorker`` splits the envs in two groups A and B, keeps the network in this process and
the envs in a child process (``actors.env_process``), and pipelines them::

    child:   step A(t)   step B(t)   step A(t+1)   step B(t+1)  ...
    parent:              act A(t)    act B(t)      act A(t+1)   ...

so each step costs ``max(env time, forward time)`` when the two run on different cores. The
pipeline runs across unrolls too: the last actions of an unroll are sent to the envs before the
unroll is returned (they were picked by the weights of that unroll, as in today's actor).

Everything an unroll holds means what it means in today's actor (same fields, same alignment,
same truncation values); only the order of the random draws differs (one ``multinomial`` per
group). It needs two cores to pay (``actors.cpus_per_actor=2``) and two groups to split
(``actors.envs_per_actor >= 2``). Env states cannot be checkpointed (they live in the child): a
serial-mode resume starts new episodes, as in Ray mode.
"""
from __future__ import annotations

import mmap
import os
import select
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import cloudpickle
import numpy as np

from actors.actor import UnrollWorker, _first_step
from actors.env_process import layout, read_exact, views, write_all
from agent.types import EpisodeStat, Unroll

ROOT = Path(__file__).resolve().parents[1]
CLOSE_SECONDS = 10.0   # how long close() waits for the child to exit before killing it


class EnvProcessError(RuntimeError):
    """The env process failed: an env raised (the message names its exception) or the process died."""


class EnvProcess:
    """The parent's handle on one ``actors.env_process`` child: its pipes, its shared block, its pid."""

    def __init__(self, suite: Any, task_ids: Sequence[int], seeds: Sequence[int], groups: Sequence[slice]) -> None:
        n = len(task_ids)
        self._closed = False
        self.table, size = layout(n, suite.frame_shape, suite.instruction_length)
        self.groups = list(groups)
        self.wait_seconds = 0.0          # time this process spent blocked on the child
        mem_fd = os.memfd_create("impala-mu-envs")
        cmd_r, self._cmd = os.pipe()
        self._result, result_w = os.pipe()
        try:
            os.ftruncate(mem_fd, size)
            self.block = mmap.mmap(mem_fd, size)
            self.a = views(self.block, self.table)
            path = os.pathsep.join(dict.fromkeys([str(ROOT)] + [p for p in sys.path if p]))
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "actors.env_process", str(cmd_r), str(result_w), str(mem_fd)],
                pass_fds=(cmd_r, result_w, mem_fd), cwd=ROOT, env=dict(os.environ, PYTHONPATH=path))
        except BaseException:
            for fd in (self._cmd, self._result):
                os.close(fd)
            raise
        finally:
            for fd in (cmd_r, result_w, mem_fd):
                os.close(fd)
        self.pid = self.proc.pid
        # cloudpickle: a suite Ray shipped by value (a class no module of this process defines) goes on by value
        spec = cloudpickle.dumps({"suite": suite, "task_ids": [int(t) for t in task_ids], "seeds": [int(s) for s in seeds],
                             "groups": [(g.start, g.stop) for g in self.groups],
                             "frame_shape": tuple(suite.frame_shape), "instruction_length": suite.instruction_length})
        try:
            self._send(struct.pack("<Q", len(spec)) + spec)
            self._expect(b"K.")
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------ protocol
    def _expect(self, message: bytes) -> None:
        """Blocks until the child sends ``message``; raises ``EnvProcessError`` if it reports an error or dies
        (its end of the result pipe closes when it exits, however it exits: only it holds that end)."""
        start = time.perf_counter()
        try:
            got = read_exact(self._result, 2)
        except EOFError:
            code = self.proc.wait()
            raise EnvProcessError(f"the env process (pid {self.pid}) exited with code {code}") from None
        self.wait_seconds += time.perf_counter() - start
        if got == b"E.":
            self._raise_reported()
        if got != message:
            raise EnvProcessError(f"the env process sent {got!r}, expected {message!r}")

    def _raise_reported(self) -> None:
        """Reads the child's error report (after ``E.``), prints its traceback, raises it as one line."""
        (size,) = struct.unpack("<I", read_exact(self._result, 4))
        text = read_exact(self._result, size).decode("utf-8", "replace")
        self.proc.wait()
        first, _, trace = text.partition("\n")
        print(trace, file=sys.stderr, flush=True)
        raise EnvProcessError(f"an env raised {first}")

    def _send(self, message: bytes) -> None:
        try:
            write_all(self._cmd, message)
        except BrokenPipeError:              # the child is gone: say why (its error report, else its exit)
            self.proc.wait()
            try:
                while select.select([self._result], [], [], 0)[0]:
                    if read_exact(self._result, 2) == b"E.":
                        self._raise_reported()
            except EOFError:
                pass
            raise EnvProcessError(f"the env process (pid {self.pid}) exited with code {self.proc.returncode}") from None

    def reset(self) -> tuple[np.ndarray, np.ndarray]:
        """Resets every env; their first frames and instructions ``[n, ...]`` (copies)."""
        self._send(b"R.")
        self._expect(b"R.")
        return self.a["frame"].copy(), self.a["instruction"].copy()

    def step(self, g: int, actions: np.ndarray) -> None:
        """Starts group ``g``'s step with ``actions`` (one per env of the group); returns at once."""
        self.a["action"][self.groups[g]] = actions
        self._send(bytes((ord("S"), g)))

    def collect(self, g: int, buf: Mapping[str, np.ndarray], t: int,
                episodes: list[EpisodeStat]) -> list[tuple[int, dict]]:
        """Waits for group ``g``'s step, writes its results into row ``t`` of the unroll ``buf``, appends
        its finished episodes, and returns the final observations of its time-limit ends."""
        self._expect(bytes((ord("D"), g)))
        cols, a = self.groups[g], self.a
        for name in ("frame", "instruction", "reward", "done", "truncated"):
            buf[name][t, cols] = a[name][cols]
        for j in np.flatnonzero(a["done"][cols]) + cols.start:
            episodes.append(EpisodeStat(int(a["ep_task"][j]), float(a["ep_return"][j]), int(a["ep_length"][j])))
        return [(int(j), {"frame": a["final_frame"][j].copy(), "instruction": a["final_instruction"][j].copy()})
                for j in np.flatnonzero(a["truncated"][cols]) + cols.start]

    def close(self) -> None:
        """Asks the child to close its envs and exit; kills it (our own child, not yet reaped) if it
        has not exited after ``CLOSE_SECONDS``."""
        if self._closed:
            return
        self._closed = True
        try:
            write_all(self._cmd, b"Q.")
        except OSError:
            pass
        try:
            self.proc.wait(CLOSE_SECONDS)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._cmd, self._result):
            os.close(fd)
        self.a = {}
        try:
            self.block.close()
        except BufferError:      # a view of the block is still referenced somewhere: the GC frees it later
            pass


class OverlapWorker(UnrollWorker):
    """``UnrollWorker`` with its envs in a child process, stepped in two groups while the other group's
    forward runs here (module docstring). Same constructor and interface."""

    def _groups(self) -> list[slice]:
        if self.num_envs < 2:
            raise ValueError(f"actors.overlap=true needs actors.envs_per_actor >= 2 (got {self.num_envs}): "
                             "it steps one half of the envs while acting on the other")
        half = (self.num_envs + 1) // 2
        return [slice(0, half), slice(half, self.num_envs)]

    def _start_envs(self, seeds: Sequence[int]) -> None:
        self.process = EnvProcess(self.suite, self.task_ids, seeds, self.groups)

    def _reset_all(self) -> dict[str, np.ndarray]:
        return _first_step(*self.process.reset())

    def unroll(self) -> Unroll:
        first = self._last is None
        buf = self._begin()
        if first:                         # start the pipeline: both groups step from step 0's actions
            for g, cols in enumerate(self.groups):
                self.process.step(g, buf["action"][0, cols])
        initial = list(self._states_before_last)
        episodes: list[EpisodeStat] = []
        for t in range(1, self.unroll_length + 1):
            for g, cols in enumerate(self.groups):   # the child steps the other group meanwhile
                finals = self.process.collect(g, buf, t, episodes)
                self._end_of_step(buf, t, g, finals)
                self.process.step(g, buf["action"][t, cols])   # step t+1 (the next unroll's step 1 at t=T)
        return self._finish(buf, initial, episodes)

    def _env_state(self) -> Any:
        raise TypeError("actors.overlap=true keeps the envs in a child process")

    def set_state(self, state: Mapping[str, Any], trust: bool = False) -> str | None:
        return "actors.overlap=true keeps the envs in a child process: their states cannot be restored"

    def close(self) -> None:
        self.process.close()


def make_worker(*, overlap: bool = False, **kwargs: Any) -> UnrollWorker:
    """The actor of ``actors.overlap``: ``OverlapWorker`` if set, else today's ``UnrollWorker``."""
    return (OverlapWorker if overlap else UnrollWorker)(**kwargs)

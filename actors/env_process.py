"""An actor's envs in a process of their own, stepped one group at a time (``actors.overlap``).

``actors.overlap.OverlapWorker`` runs the network; this process runs its envs, so that one group of
envs steps while the network picks the other group's actions. The two talk through

* a shared memory block (``memfd``, mapped by both; ``layout`` gives its arrays): the actions the
  parent writes, and what a step returns (observations, rewards, episode ends, final observations of
  time-limit ends, episode statistics), one row per env;
* two pipes of 2-byte messages: parent -> child ``S g`` (step group g with the actions in the
  block), ``R .`` (reset every env), ``Q .`` (close the envs and exit); child -> parent ``K .``
  (envs built), ``D g`` (group g stepped), ``R .`` (reset done), ``E .`` + 4-byte length + text (an
  env raised: the text names the exception; the child exits 1).

The parent sends the spec (the suite, each env's task and seed, the groups) once, length-prefixed
and cloudpickled, over its own pipe: what Ray sends an actor, between two processes of one run;
nothing is read from a file. The child exits when the parent's end of the command pipe closes (the
parent died), ignores SIGINT (the parent decides when it stops) and imports no torch.

    python -m actors.env_process CMD_FD RESULT_FD MEM_FD    (started by ``EnvProcess``, never by hand)
"""
from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
import traceback
from typing import Any, Sequence

import numpy as np

ALIGN = 64


def step_one(env: Any, action: int) -> tuple[dict, float, bool, bool, dict | None, tuple[int, float, int] | None]:
    """One env step as the actor records it: ``(obs, reward, ended, cut, final, episode)``.

    ``ended``: the episode ended (terminated or truncated) and the env was reset: ``obs`` is the new
    episode's first observation. ``cut``: it ended by the time limit only; ``final`` is then the
    truncated episode's last observation (else None). ``episode``: ``(task_id, return, length)`` of
    the episode that ended (else None).
    """
    obs, reward, terminated, truncated, info = env.step(action)
    ended = terminated or truncated
    cut = truncated and not terminated
    final = episode = None
    if ended:
        if cut:
            final = obs
        ep = info["episode"]
        episode = (int(ep["task_id"]), float(ep["return"]), int(ep["length"]))
        obs, _ = env.reset()
    return obs, reward, ended, cut, final, episode


def layout(n: int, frame_shape: Sequence[int], instruction_length: int) -> tuple[dict[str, tuple], int]:
    """The shared block's arrays: name -> (offset, dtype, shape), and the block's size in bytes."""
    frame, words = (n, *frame_shape), (n, instruction_length)
    fields = [("action", np.int64, (n,)), ("frame", np.uint8, frame), ("instruction", np.int64, words),
              ("reward", np.float32, (n,)), ("done", np.bool_, (n,)), ("truncated", np.bool_, (n,)),
              ("final_frame", np.uint8, frame), ("final_instruction", np.int64, words),
              ("ep_task", np.int64, (n,)), ("ep_return", np.float64, (n,)), ("ep_length", np.int64, (n,))]
    table, offset = {}, 0
    for name, dtype, shape in fields:
        table[name] = (offset, dtype, shape)
        offset += -(-int(np.prod(shape)) * np.dtype(dtype).itemsize // ALIGN) * ALIGN
    return table, max(offset, ALIGN)


def views(buffer: Any, table: dict[str, tuple]) -> dict[str, np.ndarray]:
    """The block's arrays as numpy views of ``buffer`` (an mmap)."""
    return {name: np.ndarray(shape, dtype, buffer=buffer, offset=offset) for name, (offset, dtype, shape) in table.items()}


def read_exact(fd: int, size: int) -> bytes:
    """``size`` bytes from ``fd``; EOFError if the other end closed first."""
    chunks, left = [], size
    while left:
        chunk = os.read(fd, left)
        if not chunk:
            raise EOFError(f"pipe closed with {left} of {size} bytes unread")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def serve(cmd_fd: int, result_fd: int, mem_fd: int) -> int:
    """The child's loop (see the module's docstring); returns the exit code."""
    import mmap  # noqa: PLC0415

    envs: list = []
    try:
        (size,) = struct.unpack("<Q", read_exact(cmd_fd, 8))
        spec = pickle.loads(read_exact(cmd_fd, size))
        table, nbytes = layout(len(spec["task_ids"]), spec["frame_shape"], spec["instruction_length"])
        block = mmap.mmap(mem_fd, nbytes)
        a = views(block, table)
        groups = [slice(lo, hi) for lo, hi in spec["groups"]]
        suite = spec["suite"]
        for task, seed in zip(spec["task_ids"], spec["seeds"]):
            envs.append(suite.make_env(int(task), seed=int(seed)))
        write_all(result_fd, b"K.")
        while True:
            op, arg = read_exact(cmd_fd, 2)
            if op == ord("Q"):
                return 0
            if op == ord("R"):
                for j, env in enumerate(envs):
                    obs, _ = env.reset()
                    a["frame"][j], a["instruction"][j] = obs["frame"], obs["instruction"]
                write_all(result_fd, b"R.")
                continue
            group = groups[arg]
            actions = a["action"][group].tolist()
            for j, action in zip(range(group.start, group.stop), actions):
                obs, a["reward"][j], ended, cut, final, episode = step_one(envs[j], action)
                a["done"][j], a["truncated"][j] = ended, cut
                if final is not None:
                    a["final_frame"][j], a["final_instruction"][j] = final["frame"], final["instruction"]
                if episode is not None:
                    a["ep_task"][j], a["ep_return"][j], a["ep_length"][j] = episode
                a["frame"][j], a["instruction"][j] = obs["frame"], obs["instruction"]
            write_all(result_fd, bytes((ord("D"), arg)))
    except (EOFError, BrokenPipeError):
        return 0                                      # the parent is gone: nobody to report to
    except BaseException as e:  # noqa: BLE001 - every failure goes back to the parent, named
        text = f"{type(e).__name__}: {e}"[:400] + "\n" + traceback.format_exc()[-3000:]
        data = text.encode("utf-8", "replace")
        try:
            write_all(result_fd, b"E." + struct.pack("<I", len(data)) + data)
        except OSError:
            pass
        return 1
    finally:
        for env in envs:
            try:
                env.close()
            except Exception:  # noqa: BLE001 - closing is best effort on the way out
                pass


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(serve(*(int(x) for x in sys.argv[1:4])))

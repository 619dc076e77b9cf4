"""Turning arriving unrolls into learner batches of exactly B columns, oldest first."""
from __future__ import annotations

from collections import deque
from typing import Iterable

import numpy as np
import torch

from agent.types import STATE_FIELDS, TIME_MAJOR_FIELDS, Unroll

ARRAY_FIELDS = TIME_MAJOR_FIELDS + STATE_FIELDS


def _batch_axis(name: str) -> int:
    return 0 if name in STATE_FIELDS else 1


class Batcher:
    """Queues unrolls (each ``[T+1, N]``) and hands out batches of ``batch_size`` columns.

    An unroll whose columns straddle two batches is split; its remainder stays at the
    front of the queue, so columns are consumed strictly in arrival order.
    """

    def __init__(self, batch_size: int) -> None:
        self.batch_size = batch_size
        self.queue: deque[Unroll] = deque()
        self.columns = 0

    def add(self, unrolls: Iterable[Unroll]) -> None:
        for u in unrolls:
            self.queue.append(u)
            self.columns += u.num_envs

    def ready(self) -> bool:
        return self.columns >= self.batch_size

    def take(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Returns (fields ``[T+1, B, ...]`` / ``[B, S]``, behaviour policy version per column ``[B]``)."""
        need, parts = self.batch_size, []
        while need:
            u = self.queue.popleft()
            if u.num_envs > need:
                head, tail = split(u, need)
                self.queue.appendleft(tail)
                u = head
            parts.append(u)
            need -= u.num_envs
        self.columns -= self.batch_size
        fields = {name: np.concatenate([getattr(u, name) for u in parts], axis=_batch_axis(name))
                  for name in ARRAY_FIELDS}
        versions = np.concatenate([np.full(u.num_envs, u.policy_version) for u in parts])
        return fields, versions


def split(u: Unroll, k: int) -> tuple[Unroll, Unroll]:
    """Splits an unroll's columns into ``[:k]`` and ``[k:]`` (episode stats go with the first part)."""
    def part(sl: slice, episodes: tuple) -> Unroll:
        arrays = {n: getattr(u, n)[(slice(None), sl) if _batch_axis(n) == 1 else sl] for n in ARRAY_FIELDS}
        return u._replace(**arrays, episodes=episodes)
    return part(slice(0, k), u.episodes), part(slice(k, None), ())


def to_device(fields: dict[str, np.ndarray], device: torch.device | str) -> dict[str, torch.Tensor]:
    """Copies one batch to ``device`` (the loop reuses a ``DeviceCopier`` instead)."""
    return DeviceCopier(device)(fields)


class DeviceCopier:
    """Host batches to ``device`` through two reused sets of pinned buffers (CUDA) or none (CPU).

    ``copier(fields) -> {name: tensor on device}``. On CUDA each call fills the pinned set not used
    by the previous call and queues asynchronous copies from it, followed by an event; before a set
    is refilled (two calls later) its event is waited for, so the host never overwrites memory a
    copy still reads, and the copy of batch k + 1 overlaps the step on batch k. On CPU the arrays
    are wrapped without copying. Buffers are (re)allocated when a field's shape or dtype changes.
    """

    def __init__(self, device: torch.device | str, slots: int = 2) -> None:
        self.device = torch.device(device)
        self.slots: list[dict[str, torch.Tensor]] = [{} for _ in range(slots)]
        self.events: list = [None] * slots
        self.next = 0

    def __call__(self, fields: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        if self.device.type != "cuda":
            return {name: torch.from_numpy(np.ascontiguousarray(a)) for name, a in fields.items()}
        k, self.next = self.next, (self.next + 1) % len(self.slots)
        if self.events[k] is not None:
            self.events[k].synchronize()          # the copy from this set two calls ago has finished
        pinned = self.slots[k]
        out = {}
        for name, array in fields.items():
            buf = pinned.get(name)
            if buf is None or tuple(buf.shape) != array.shape or buf.numpy().dtype != array.dtype:
                buf = pinned[name] = torch.empty(array.shape, dtype=torch.from_numpy(array[:0]).dtype,
                                                 pin_memory=True)
            np.copyto(buf.numpy(), array)
            out[name] = buf.to(self.device, non_blocking=True)
        self.events[k] = torch.cuda.Event()
        self.events[k].record()
        return out

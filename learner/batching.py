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


def to_device(fields: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    """Copies a batch to ``device``; on CUDA through pinned memory, asynchronously."""
    out = {}
    for name, array in fields.items():
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if device.type == "cuda":
            tensor = tensor.pin_memory().to(device, non_blocking=True)
        out[name] = tensor
    return out

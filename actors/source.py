"""The unroll-source role: where the learner loop (``training.loop.TrainLoop``) gets its unrolls.

Two implementations run the same acting logic (``actors.actor.UnrollWorker``): ``SerialSource``
in-process (``actors.serial``) and ``RaySource`` in Ray actors (``actors.ray_source``). Names:
the prefix is the transport (``Serial``/``Ray``), the suffix the role's Protocol (``UnrollSource``
here, ``evaluation.runners.EpisodeRunner`` for evaluation), docs/DESIGN.md.
"""
from __future__ import annotations

from typing import Any, Mapping, Protocol

import numpy as np

from agent.types import Unroll


class UnrollSource(Protocol):
    def start(self, version: int, weights: Mapping[str, np.ndarray]) -> None:
        """Begin acting with these weights (``version``: the learner's update count)."""

    def get(self) -> list[Unroll]:
        """The unrolls that have arrived, oldest first; may be empty after a short wait, so the
        loop can notice a stop request."""

    def publish(self, version: int, weights: Mapping[str, np.ndarray]) -> None:
        """New weights, picked up by the actors at unroll boundaries."""

    def backlog(self) -> tuple[int, int]:
        """When the learner last asked: (unrolls finished and waiting for it, requests still being acted)."""

    def state_dict(self) -> dict[str, Any]:
        """What a resume needs (plain data; serial env states sealed by ``actors.env_state``)."""

    def load_state_dict(self, state: Mapping[str, Any], trust: bool = False) -> None:
        """Restores ``state_dict()``'s result (``trust``: env states another user sealed)."""

    def close(self) -> None:
        """Stops acting and frees the envs (and Ray actors)."""

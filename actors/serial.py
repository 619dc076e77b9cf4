"""Serial mode: the same ``ActorCore`` as the Ray actors, stepped in-process, in a fixed order.

Every ``get()`` runs one unroll of the next actor (round robin) with the newest weights,
so a serial run is fully deterministic, and ``state_dict()`` captures the envs and RNGs:
stopping and resuming gives exactly the updates of an uninterrupted run.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from actors.actor import ActorCore
from agent.types import Unroll


class SerialSource:
    def __init__(self, make_actor: Callable[[int, int], ActorCore], num_actors: int) -> None:
        self.actors = [make_actor(i, 0) for i in range(num_actors)]
        self.next_actor = 0
        self.version, self.weights = -1, None

    def start(self, version: int, weights: Mapping[str, Any]) -> None:
        self.publish(version, weights)

    def publish(self, version: int, weights: Mapping[str, Any]) -> None:
        self.version, self.weights = version, weights

    def get(self) -> list[Unroll]:
        actor = self.actors[self.next_actor]
        self.next_actor = (self.next_actor + 1) % len(self.actors)
        actor.set_weights(self.version, self.weights)
        return [actor.unroll()]

    def backlog(self) -> tuple[int, int]:
        """Nothing waits and nothing acts in the background: the learner acts itself in ``get()``."""
        return 0, 0

    def state_dict(self) -> dict[str, Any]:
        return {"mode": "serial", "next_actor": self.next_actor, "actors": [a.get_state() for a in self.actors]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("mode") != "serial" or len(state["actors"]) != len(self.actors):
            return   # a distributed checkpoint, or another actor count: actors start fresh episodes
        self.next_actor = state["next_actor"]
        for actor, s in zip(self.actors, state["actors"]):
            actor.set_state(s)

    def close(self) -> None:
        for actor in self.actors:
            actor.close()

"""Serial mode: the same ``UnrollWorker`` as the Ray actors, stepped in-process, in a fixed order.

Every ``get()`` runs one unroll of the next actor (round robin) with the newest weights,
so a serial run is fully deterministic, and ``state_dict()`` captures the envs and RNGs:
stopping and resuming gives exactly the updates of an uninterrupted run.

Exactness needs envs that can be pickled, and env states sealed by this user's key
(``actors/env_state.py``: another user's are never unpickled, unless ``trust``). Otherwise
(real DeepMind Lab, a run dir from someone else), and when the saved
actors do not match the configured ones (another ``num_actors`` or ``envs_per_actor``), or
after an unroll failed half-way, a resume starts new episodes, as Ray mode does; each case is
reported through ``on_event`` (once per checkpointing actor that cannot be copied, and at resume).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from actors.actor import UnrollWorker
from agent.types import Unroll


def _ignore(kind: str, **fields: Any) -> None:
    pass


class SerialSource:
    """An ``actors.source.UnrollSource`` that steps its ``UnrollWorker``s in this process, in turn."""

    def __init__(self, make_actor: Callable[[int, int], UnrollWorker], num_actors: int,
                 on_event: Callable[..., None] = _ignore) -> None:
        self.make_actor = make_actor
        self.actors = [make_actor(i, 0) for i in range(num_actors)]
        self.on_event = on_event
        self.next_actor = 0
        self.version, self.weights = -1, None
        self.broken = False              # an unroll raised half-way: the envs' state is not resumable
        self._told_not_copyable = False

    def start(self, version: int, weights: Mapping[str, Any]) -> None:
        self.publish(version, weights)

    def publish(self, version: int, weights: Mapping[str, Any]) -> None:
        self.version, self.weights = version, weights

    def get(self) -> list[Unroll]:
        actor = self.actors[self.next_actor]
        self.next_actor = (self.next_actor + 1) % len(self.actors)
        actor.set_weights(self.version, self.weights)
        try:
            return [actor.unroll()]
        except BaseException:
            self.broken = True
            raise

    def backlog(self) -> tuple[int, int]:
        """Nothing waits and nothing acts in the background: the learner acts itself in ``get()``."""
        return 0, 0

    def state_dict(self) -> dict[str, Any]:
        if self.broken:
            return {"mode": "serial", "actors": None, "why_not_exact": "an unroll failed half-way",
                    "incarnations": [a.incarnation for a in self.actors]}
        states = [a.get_state() for a in self.actors]
        reasons = [s["not_copyable"] for s in states if s["not_copyable"]]
        if reasons and not self._told_not_copyable:
            self._told_not_copyable = True
            self.on_event("serial_envs_not_copyable", error=reasons[0],
                          consequence="a resume from this run's checkpoints starts new episodes (as in Ray mode)")
        return {"mode": "serial", "next_actor": self.next_actor, "actors": states,
                "incarnations": [a.incarnation for a in self.actors]}

    def load_state_dict(self, state: Mapping[str, Any], trust: bool = False) -> None:
        """``trust``: restore env states not sealed by this user too (``actors/env_state.py``)."""
        why = None
        if state.get("mode") != "serial":
            why = f"the checkpoint is from {state.get('mode')} mode"
        elif state.get("actors") is None:
            why = state.get("why_not_exact", "the checkpoint has no actor state")
        elif len(state["actors"]) != len(self.actors):
            why = f"actors.num_actors changed ({len(state['actors'])} -> {len(self.actors)})"
        if why is None:
            reasons = [actor.set_state(s, trust=trust) for actor, s in zip(self.actors, state["actors"])]
            if not any(reasons):
                self.next_actor = state["next_actor"]
                return
            why = next(r for r in reasons if r)
        # new incarnations (fresh env seeds, as in Ray mode), all of them: half a restored round robin
        # would not be exact either
        previous = list(state.get("incarnations") or [])
        for i, actor in enumerate(self.actors):
            actor.close()
            self.actors[i] = self.make_actor(i, (previous[i] + 1) if i < len(previous) else 1)
        self.on_event("resume_not_exact", mode="serial", reason=why,
                      consequence="actors start new episodes with new seeds")

    def close(self) -> None:
        for actor in self.actors:
            actor.close()

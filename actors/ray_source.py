"""Distributed mode: ``UnrollWorker`` hosted in Ray actors, unrolls streamed to the learner.

Weights travel as one versioned object per update (``ray.put``) whose reference the learner
hands to a small ``WeightStore`` actor; at each unroll boundary an actor asks the store for
anything newer than what it has and loads it, so an unroll always starts from the newest
published weights (a request queued behind another one does not carry stale weights).
Each actor has at most ``unrolls_in_flight`` requests queued, so the object store holds a
bounded number of unrolls whatever the learner's speed.

An actor that fails (its process killed, an env raising, its node lost) makes its
pending requests fail: they are dropped whole (a partial unroll never reaches the
learner), the actor is killed and recreated with ``incarnation + 1`` (fresh env seeds),
and the run goes on. More than ``max_restarts`` restarts in total stops the run.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Mapping

import ray
from ray.exceptions import RayActorError, RayError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from actors.overlap import make_worker


MAX_INIT_FAILURES = 3   # an actor that cannot even be constructed this often in a row stops the run


@ray.remote(num_cpus=0)
class WeightStore:
    """The newest published ``(version, [weights ref])``; the list keeps Ray from resolving the ref."""

    def __init__(self) -> None:
        self.version, self.holder = -1, None

    def publish(self, version: int, holder: list) -> None:
        if version > self.version:
            self.version, self.holder = version, holder

    def newer_than(self, version: int) -> tuple[int, list | None]:
        """``(version, [ref])`` if the store has weights newer than ``version``, else ``(version, None)``."""
        return (self.version, self.holder) if self.version > version else (version, None)


@ray.remote
class RayActor:
    def __init__(self, actor_args: dict[str, Any], store: Any) -> None:
        self.core = make_worker(**actor_args)
        self.store = store

    def info(self) -> dict[str, Any]:
        process = getattr(self.core, "process", None)   # actors.overlap: the child that runs the envs
        return {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(),
                "env_pid": None if process is None else process.pid}

    def unroll(self):
        version, holder = ray.get(self.store.newer_than.remote(self.core.policy_version))
        if holder is not None:
            self.core.set_weights(version, ray.get(holder[0]))
        return self.core.unroll()


def describe(error: BaseException) -> str:
    """One line naming the failure: the env's own exception for a task error, else Ray's message."""
    cause = getattr(error, "cause", None)
    if isinstance(error, RayTaskError) and cause is not None:
        return f"{type(cause).__name__}: {cause}"[:500]
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if isinstance(error, RayActorError) and error.actor_init_failed and lines:
        return f"the actor's constructor raised {lines[-1]}"[:500]   # its traceback ends with the exception
    text = " ".join(lines)
    return f"{type(error).__name__}: {text}"[:500]



def kill_actors(actors) -> None:
    """Kills each Ray actor handle (``None`` entries skipped), ignoring ones that are already gone."""
    for actor in actors:
        if actor is not None:
            try:
                ray.kill(actor, no_restart=True)
            except RayError:
                pass


class RaySource:
    """An ``actors.source.UnrollSource`` whose ``UnrollWorker``s live in Ray actors (``RayActor``)."""

    def __init__(self, actor_args: Callable[[int, int], dict[str, Any]], num_actors: int, *,
                 unrolls_in_flight: int, max_restarts: int, cpus_per_actor: float,
                 on_event: Callable[..., None], wait_seconds: float = 1.0,
                 resources: Mapping[str, float] | None = None) -> None:
        self.actor_args = actor_args
        self.num_actors = num_actors
        self.in_flight = unrolls_in_flight
        self.max_restarts = max_restarts
        self.cpus = cpus_per_actor
        self.resources = dict(resources or {})   # custom Ray resources per actor
        self.on_event = on_event
        self.wait_seconds = wait_seconds
        self.incarnations = [0] * num_actors
        self.restarts = 0
        self.init_failures = [0] * num_actors   # consecutive failures to construct each actor
        self.actors: list[Any] = [None] * num_actors
        self.pending: dict[Any, int] = {}      # ObjectRef -> actor index, in submission order
        self._backlog = (0, 0)
        self.weights_ref = None
        self.store = None
        self.info_refs: dict[Any, tuple[int, int]] = {}   # actor.info() -> (actor index, incarnation)

    # ------------------------------------------------------------ lifecycle
    def start(self, version: int, weights: Mapping[str, Any]) -> None:
        # on the learner's node: losing any other node must not lose the weights
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        self.store = WeightStore.options(scheduling_strategy=here).remote()
        self.publish(version, weights)
        for i in range(self.num_actors):
            self._spawn(i)

    def _spawn(self, i: int) -> None:
        actor = RayActor.options(num_cpus=self.cpus, resources=self.resources or None, max_restarts=0,
                                 scheduling_strategy="SPREAD").remote(
            self.actor_args(i, self.incarnations[i]), self.store)
        self.actors[i] = actor
        self.info_refs[actor.info.remote()] = (i, self.incarnations[i])
        for _ in range(self.in_flight):
            self.pending[actor.unroll.remote()] = i

    def publish(self, version: int, weights: Mapping[str, Any]) -> None:
        self.weights_ref = ray.put(dict(weights))
        self.store.publish.remote(version, [self.weights_ref])   # calls from one caller run in order

    def _restart(self, i: int, error: BaseException) -> None:
        self.restarts += 1
        old = self.incarnations[i]
        dropped = [r for r, a in self.pending.items() if a == i]
        # the failed request (already out of `pending`) and the actor's other requests are dropped whole
        self.on_event("actor_restart", actor=i, incarnation=old, new_incarnation=old + 1, error=describe(error),
                      dropped_unrolls=1 + len(dropped))
        if isinstance(error, RayActorError) and error.actor_init_failed:
            self.init_failures[i] += 1
            if self.init_failures[i] >= MAX_INIT_FAILURES:
                raise RuntimeError(f"actor {i} failed to start {self.init_failures[i]} times in a row; the last "
                                   f"error: {describe(error)}. Check the suite's options and that every node "
                                   "can build the envs (e.g. deepmind_lab installed).")
        if self.restarts > self.max_restarts:
            raise RuntimeError(f"{self.restarts} actor restarts exceed actors.max_restarts={self.max_restarts}; "
                               f"last error: {describe(error)}. Fix the cause, or raise actors.max_restarts.")
        for ref in dropped:
            del self.pending[ref]
        for ref in [r for r, (a, _) in self.info_refs.items() if a == i]:
            del self.info_refs[ref]
        try:
            ray.kill(self.actors[i], no_restart=True)
        except RayError:
            pass
        self.incarnations[i] = old + 1
        self._spawn(i)

    def actor_info(self) -> list[dict[str, Any]]:
        """pid, node and env process pid (``actors.overlap``, else None) of each live actor (for logs and
        fault tests)."""
        return ray.get([a.info.remote() for a in self.actors])

    # ------------------------------------------------------------ data
    def _announce_started(self) -> None:
        """Reports each new actor's pid and node once it is up (non-blocking)."""
        if not self.info_refs:
            return
        ready, _ = ray.wait(list(self.info_refs), num_returns=len(self.info_refs), timeout=0)
        for ref in ready:
            i, incarnation = self.info_refs.pop(ref)
            try:
                info = ray.get(ref)
            except RayError:
                continue   # it died before starting: its unroll requests fail and restart it
            extra = {} if info["env_pid"] is None else {"env_pid": info["env_pid"]}
            self.on_event("actor_started", actor=i, incarnation=incarnation, pid=info["pid"], node=info["node"], **extra)

    def get(self):
        self._announce_started()
        refs = list(self.pending)
        if not refs:
            return []
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)   # finished before the learner asked
        self._backlog = (len(ready), len(refs) - len(ready))
        if not ready:
            ready, _ = ray.wait(refs, num_returns=1, timeout=self.wait_seconds)
            if not ready:
                return []
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)   # everything else already there
        order = {r: k for k, r in enumerate(refs)}
        out = []
        for ref in sorted(ready, key=order.__getitem__):       # oldest request first
            if ref not in self.pending:                         # dropped by a restart of its actor
                continue
            i = self.pending.pop(ref)
            try:
                unroll = ray.get(ref)
            except RayError as e:
                self._restart(i, e)
                continue
            self.init_failures[i] = 0
            out.append(unroll)
            self.pending[self.actors[i].unroll.remote()] = i
        return out

    def backlog(self) -> tuple[int, int]:
        """(unrolls finished and waiting for the learner, requests still being acted) when the learner
        last asked: many waiting = the learner is the bottleneck; none = the actors are."""
        return self._backlog

    def state_dict(self) -> dict[str, Any]:
        return {"mode": "ray", "incarnations": list(self.incarnations), "restarts": self.restarts}

    def load_state_dict(self, state: Mapping[str, Any], trust: bool = False) -> None:
        # Actors of a resumed run are new incarnations: fresh episodes, fresh seeds.
        previous = state.get("incarnations", [])
        for i in range(self.num_actors):
            self.incarnations[i] = (previous[i] + 1) if i < len(previous) else 0

    def close(self) -> None:
        # requests still in flight die with their actors (finished ones included): say how many
        self.on_event("actors_stopped", abandoned_unrolls=len(self.pending))
        kill_actors([*self.actors, self.store])
        self.pending.clear()

"""Ray for one run: join ``run.ray_address`` or start (and later stop) a local cluster sized to the
actors. A local cluster is recorded in the run's logdir and guarded by ``actors.ray_reaper``'s
watchdog, so a crashed run's cluster is ended (here at the next start, or by the watchdog).
"""
from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING

import ray

from actors import ray_reaper
from configs.errors import ConfigError

if TYPE_CHECKING:
    from configs.schema import TrainConfig

log = logging.getLogger("impala_mu")

LOCAL_OVERSUBSCRIPTION = 8   # a local Ray may declare at most this many CPUs per core of the machine


def check_local_capacity(cfg: TrainConfig) -> None:
    """A local Ray (no ``ray_address``) declares at least num_actors x cpus_per_actor CPUs: refuse more
    than ``LOCAL_OVERSUBSCRIPTION`` times this machine's cores (a typo such as num_actors=1000), unless
    ``actors.oversubscribe`` asks for it."""
    if cfg.run.mode != "ray" or cfg.run.ray_address or cfg.actors.oversubscribe:
        return
    need, cores = cfg.actors.num_actors * cfg.actors.cpus_per_actor, os.cpu_count() or 1
    if need > LOCAL_OVERSUBSCRIPTION * cores:
        raise ConfigError(f"num_actors={cfg.actors.num_actors} x actors.cpus_per_actor={cfg.actors.cpus_per_actor:g} "
                          f"needs {need:g} CPUs, more than {LOCAL_OVERSUBSCRIPTION} x this machine's {cores} cores; "
                          "lower num_actors, or join a cluster with ray_address=HOST:PORT")


def start_ray(cfg: TrainConfig, logdir: str | None = None) -> bool:
    """Connects to ``ray_address`` or starts a local Ray sized to the machine. True if we started it.
    ``logdir`` (default ``run.logdir``) is where the local cluster's record goes and leftovers are reaped."""
    logdir = logdir or cfg.run.logdir
    need = cfg.actors.num_actors * cfg.actors.cpus_per_actor
    if cfg.run.ray_address:
        _check_reachable(cfg.run.ray_address)
        try:
            ray.init(address=cfg.run.ray_address, logging_level=logging.WARNING, log_to_driver=True)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ConfigError(f"cannot join the Ray cluster at ray_address={cfg.run.ray_address!r} ({e}); start it "
                              "with `ray start --head` (see README, 'On a cluster') or drop ray_address") from None
        have = ray.cluster_resources()
        if have.get("CPU", 0) < need:
            ray.shutdown()
            raise ConfigError(f"the Ray cluster at {cfg.run.ray_address} has {have.get('CPU', 0):g} CPUs but "
                              f"num_actors x cpus_per_actor needs {need:g}; add worker nodes or lower num_actors")
        for name, amount in cfg.actors.resources.items():
            if have.get(name, 0) < cfg.actors.num_actors * amount:
                ray.shutdown()
                raise ConfigError(f"the Ray cluster at {cfg.run.ray_address} has {have.get(name, 0):g} of resource "
                                  f"{name!r} but num_actors x actors.resources.{name} needs "
                                  f"{cfg.actors.num_actors * amount:g}; start nodes with `ray start "
                                  f"--resources='{{\"{name}\": N}}'` or change actors.resources")
        return False
    reaped = ray_reaper.reap_leftovers(logdir, warn=log.warning)   # a crashed run's cluster (this logdir's only)
    if reaped:
        log.warning("ended %d leftover processes of the local Ray cluster of a crashed run in %s: %s",
                    len(reaped), logdir, reaped)
    # Locally, actors may share cores with the learner: declare at least as many CPUs as they need.
    # address="local": always a new cluster of our own, never one that `ray start` left on the machine.
    ray.init(address="local", num_cpus=max(os.cpu_count() or 1, int(need + 0.999)), include_dashboard=False,
             logging_level=logging.WARNING,
             resources={k: v * cfg.actors.num_actors for k, v in cfg.actors.resources.items()} or None)
    node = getattr(ray._private.worker, "_global_node", None)   # no public API for the session dir
    if node is not None:
        ray_reaper.start_watchdog(logdir, node.get_session_dir_path(), ray.get_runtime_context().get_node_id())
    return True


def stop_ray(cfg: TrainConfig, logdir: str | None = None) -> None:
    """Shuts down the local Ray cluster ``start_ray`` started, and its watchdog."""
    ray.shutdown()
    ray_reaper.stop_watchdog(logdir or cfg.run.logdir)


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """A host:port address must accept a TCP connection (ray.init would otherwise retry for minutes)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return   # "auto", "ray://...": left to Ray
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        raise ConfigError(f"nothing answers at ray_address={address!r} ({e}); start the head node with "
                          "`ray start --head --port=PORT` (see README, 'On a cluster') or drop ray_address") from None

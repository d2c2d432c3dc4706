"""Wiring: one term of leadership runs every enabled controller on shared informers.

Everything (informers, queues, expectations, event recorders) is built anew
each time this process becomes leader and thrown away when it stops leading,
so a new term never trusts state from a term in which another process may
have acted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from kubelite.client import Client
from kubelite.events import EventRecorder
from kubelite.supervise import spawn

from .base import Controller, cancel_and_wait
from .config import Config
from .cronjob import CronJobController, ScaledClock
from .daemonset import DaemonSetController
from .deployment import DeploymentController
from .disruption import DisruptionController
from .endpoints import EndpointsController
from .eventexpiry import EventExpiryController
from .garbagecollector import GarbageCollector
from .hpa import HorizontalPodAutoscalerController, Readiness
from .informers import InformerFactory
from .job import JobController
from .namespace import NamespaceController
from .nodelifecycle import NodeLifecycleController
from .provisioner import LocalPathProvisioner
from .pvbinder import PersistentVolumeBinder
from .replicaset import ReplicaSetController, ReplicationControllerController
from .statefulset import StatefulSetController
from .taintmanager import TaintEvictionController
from .ttlafterfinished import TTLAfterFinishedController
from .zones import EvictionRates

log = logging.getLogger("kubelite.controller")

Builder = Callable[[Client, InformerFactory, Config], Controller]

BUILDERS: dict[str, Builder] = {
    "replicaset": lambda client, factory, config: ReplicaSetController(client, factory),
    "deployment": lambda client, factory, config: DeploymentController(client, factory),
    "daemonset": lambda client, factory, config: DaemonSetController(
        client, factory, backoff_base=config.daemonset_backoff_base,
        backoff_max=config.daemonset_backoff_max),
    "replicationcontroller": lambda client, factory, config: ReplicationControllerController(
        client, factory),
    "job": lambda client, factory, config: JobController(
        client, factory, backoff_base=config.job_backoff_base,
        backoff_max=config.job_backoff_max),
    "ttl-after-finished": lambda client, factory, config: TTLAfterFinishedController(
        client, factory),
    "cronjob": lambda client, factory, config: CronJobController(
        client, factory, clock=ScaledClock(config.cronjob_clock_offset,
                                           config.cronjob_clock_rate)),
    "statefulset": lambda client, factory, config: StatefulSetController(client, factory),
    "endpoint": lambda client, factory, config: EndpointsController(client, factory),
    "garbagecollector": lambda client, factory, config: GarbageCollector(
        client, factory, resources=config.gc_resources),
    "nodelifecycle": lambda client, factory, config: NodeLifecycleController(
        client, factory, grace_period=config.node_monitor_grace_period,
        monitor_period=config.node_monitor_period,
        rates=EvictionRates(config.node_eviction_rate, config.secondary_node_eviction_rate,
                            config.unhealthy_zone_threshold,
                            config.large_cluster_size_threshold)),
    "tainteviction": lambda client, factory, config: TaintEvictionController(client, factory),
    "horizontalpodautoscaling": lambda client, factory, config: HorizontalPodAutoscalerController(
        client, factory, sync_period=config.hpa_sync_period,
        downscale_stabilization=config.hpa_downscale_stabilization,
        tolerance=config.hpa_tolerance,
        readiness=Readiness(config.hpa_cpu_initialization_period,
                            config.hpa_initial_readiness_delay)),
    "namespace": lambda client, factory, config: NamespaceController(client, factory),
    "eventexpiry": lambda client, factory, config: EventExpiryController(
        client, factory, ttl=config.event_ttl),
    "disruption": lambda client, factory, config: DisruptionController(
        client, factory, deletion_timeout=config.disruption_deletion_timeout),
    "persistentvolume-binder": lambda client, factory, config: PersistentVolumeBinder(
        client, factory),
    "local-path-provisioner": lambda client, factory, config: LocalPathProvisioner(
        client, factory),
}


def workers_for(name: str, config: Config) -> int:
    return config.gc_concurrent_syncs if name == "garbagecollector" else config.concurrent_syncs


async def run_controllers(client: Client, config: Config) -> None:
    """Runs the enabled controllers until cancelled (one leadership term)."""
    factory = InformerFactory(client, resync=config.resync_period)
    controllers = {name: BUILDERS[name](client, factory, config)
                   for name in config.controllers}
    factory.start()
    log.info("controllers starting", extra={"kv": {
        "controllers": ",".join(controllers), "informers": ",".join(factory.informers)}})
    # Each controller is supervised on its own: one that raises is logged,
    # counted (kubelite_background_task_failures_total{task="controller-NAME"})
    # and restarted with backoff on the same queue, while the others go on.
    workers = {name: workers_for(name, config) for name in controllers}
    tasks = [spawn(f"controller-{name}", lambda c=c, n=workers[name]: c.run(n), logger=log)
             for name, c in controllers.items()]
    try:
        await asyncio.gather(*tasks)
    finally:
        for controller in controllers.values():
            controller.shut_down()
        await cancel_and_wait(tasks)
        await factory.stop()
        for controller in controllers.values():
            recorder: EventRecorder | None = getattr(controller, "recorder", None)
            if recorder is not None:
                await recorder.stop()


__all__ = ["BUILDERS", "run_controllers"]

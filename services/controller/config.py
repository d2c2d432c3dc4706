"""The controller manager's flags and the frozen Config they become."""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from dataclasses import dataclass

from kubelite.component import (
    CommonConfig,
    LeaderConfig,
    add_common_flags,
    add_leader_flags,
    common_config,
    leader_config,
)
from kubelite.config import add_flag
from kubelite.errors import InvalidError
from kubelite.resources import lookup

HEALTH_PORT = 10257
METRICS_PORT = 10252
LEASE_NAME = "kube-controller-manager"
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:h|ms|m|s))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s)")

#: Every controller this process can run, in start order.
KNOWN_CONTROLLERS = ("replicaset", "deployment", "daemonset", "endpoint", "garbagecollector",
                     "nodelifecycle", "tainteviction", "horizontalpodautoscaling",
                     "disruption", "namespace", "eventexpiry", "replicationcontroller", "job",
                     "ttl-after-finished", "cronjob", "persistentvolume-binder",
                     "local-path-provisioner", "statefulset")


@dataclass(frozen=True)
class Config:
    common: CommonConfig
    leader: LeaderConfig
    controllers: tuple[str, ...]
    concurrent_syncs: int
    gc_concurrent_syncs: int
    resync_period: float
    node_monitor_grace_period: float
    node_monitor_period: float
    gc_resources: tuple[str, ...]
    hpa_sync_period: float = 15.0
    hpa_downscale_stabilization: float = 300.0
    hpa_tolerance: float = 0.1
    hpa_cpu_initialization_period: float = 300.0
    hpa_initial_readiness_delay: float = 30.0
    event_ttl: float = 3600.0
    disruption_deletion_timeout: float = 120.0
    node_eviction_rate: float = 0.1
    secondary_node_eviction_rate: float = 0.01
    unhealthy_zone_threshold: float = 0.55
    large_cluster_size_threshold: int = 50
    job_backoff_base: float = 10.0
    job_backoff_max: float = 360.0
    cronjob_clock_offset: float = 0.0
    cronjob_clock_rate: float = 1.0
    daemonset_backoff_base: float = 1.0
    daemonset_backoff_max: float = 900.0


def select_controllers(spec: str) -> tuple[str, ...]:
    """Kubernetes' --controllers syntax: `*` is all, `name` enables, `-name` disables."""
    items = [item.strip() for item in spec.split(",") if item.strip()]
    enabled: set[str] = set()
    disabled: set[str] = set()
    for item in items:
        name = item.lstrip("-")
        if item != "*" and name not in KNOWN_CONTROLLERS:
            raise ValueError(f"unknown controller {name!r}; known: {', '.join(KNOWN_CONTROLLERS)}")
        if item == "*":
            enabled.update(KNOWN_CONTROLLERS)
        elif item.startswith("-"):
            disabled.add(name)
        else:
            enabled.add(name)
    return tuple(c for c in KNOWN_CONTROLLERS if c in enabled and c not in disabled)


def gc_resources(spec: str) -> tuple[str, ...]:
    """The plural names of the resources listed (any name kubectl accepts)."""
    names: list[str] = []
    for item in spec.split(","):
        if item.strip():
            try:
                plural = lookup(item).plural
            except InvalidError as err:
                raise ValueError(f"--gc-resources: {err}") from None
            if plural not in names:
                names.append(plural)
    return tuple(names)


def duration(text: str) -> float:
    """Seconds from a Go duration (`15s`, `5m`, `1m30s`, `500ms`) or a plain number."""
    text = str(text).strip()
    try:
        return float(text)
    except ValueError:
        pass
    match = _DURATION.fullmatch(text)
    if not text or not match:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (e.g. 15s, 5m, 1m30s)")
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(n) * units[u] for n, u in _DURATION_PART.findall(text))


def parse_args(argv: Sequence[str] | None = None) -> Config:
    p = argparse.ArgumentParser(prog="kubelite-controller-manager",
                                description="Runs kubelite's reconcile loops.")
    add_common_flags(p, health_port=HEALTH_PORT, metrics_port=METRICS_PORT)
    add_leader_flags(p, lease_name=LEASE_NAME)
    add_flag(p, "--controllers", default="*",
             help="controllers to run: '*' for all, 'name' to enable, '-name' to disable "
                  f"(known: {','.join(KNOWN_CONTROLLERS)})")
    add_flag(p, "--concurrent-syncs", default=5,
             help="workers per controller (keys synced at once)")
    add_flag(p, "--concurrent-gc-syncs", default=20, help="garbage collector workers")
    add_flag(p, "--resync-period", default=0.0,
             help="seconds between informer resyncs (0: never; every sync requeues itself)")
    add_flag(p, "--node-monitor-grace-period", default=40.0,
             help="seconds a node's lease may go unrenewed before it is marked Unknown")
    add_flag(p, "--node-monitor-period", default=5.0,
             help="seconds between checks of every node's lease")
    add_flag(p, "--node-eviction-rate", default=0.1,
             help="nodes per second whose pods may start being evicted (NoExecute-tainted), "
                  "per zone, while the zone is healthy")
    add_flag(p, "--secondary-node-eviction-rate", default=0.01,
             help="the same, in a zone where at least --unhealthy-zone-threshold of the nodes "
                  "are not ready (0 in zones of at most --large-cluster-size-threshold nodes)")
    add_flag(p, "--unhealthy-zone-threshold", default=0.55,
             help="fraction of not-ready nodes (more than 2) that makes a zone unhealthy")
    add_flag(p, "--large-cluster-size-threshold", default=50,
             help="zones of at most this many nodes stop evicting while unhealthy")
    add_flag(p, "--gc-resources", default="pods,replicasets,deployments,services,endpoints,"
             "configmaps,horizontalpodautoscalers,replicationcontrollers,jobs,cronjobs,"
             "controllerrevisions,persistentvolumeclaims,statefulsets,daemonsets",
             help="resources whose ownerReferences the garbage collector follows")
    add_flag(p, "--horizontal-pod-autoscaler-sync-period", default="15s", type=duration,
             help="how often each HPA is synced (a duration: 15s, 1m; or seconds)")
    add_flag(p, "--horizontal-pod-autoscaler-downscale-stabilization", default="5m",
             type=duration, help="an HPA scales down to the highest recommendation of this "
                                 "past window")
    add_flag(p, "--horizontal-pod-autoscaler-tolerance", default=0.1,
             help="the HPA does nothing while the metric is within this fraction of its target")
    add_flag(p, "--horizontal-pod-autoscaler-cpu-initialization-period", default="5m",
             type=duration, help="after a pod starts, its cpu samples count only once taken "
                                 "wholly after it became ready")
    add_flag(p, "--horizontal-pod-autoscaler-initial-readiness-delay", default="30s",
             type=duration, help="after a pod starts, readiness changes within this delay "
                                 "count as still starting")
    add_flag(p, "--event-ttl", default="1h", type=duration,
             help="how long an Event is kept after it last occurred (a duration: 1h, 30m; "
                  "or seconds), by the eventexpiry controller")
    add_flag(p, "--disruption-deletion-timeout", default="2m", type=duration,
             help="how long an eviction the apiserver approved may take to show as a "
                  "deletion before its budget counts the pod as healthy again")
    add_flag(p, "--job-backoff-base", default="10s", type=duration,
             help="the Job controller's delay before replacing a failed pod, doubled per "
                  "failure since the last success (a duration or seconds)")
    add_flag(p, "--job-backoff-max", default="6m", type=duration,
             help="the cap of that delay")
    add_flag(p, "--daemonset-backoff-base", default="1s", type=duration,
             help="the DaemonSet controller's delay before deleting (and so replacing) a "
                  "failed daemon pod again on the same node, doubled per failure")
    add_flag(p, "--daemonset-backoff-max", default="15m", type=duration,
             help="the cap of that delay")
    add_flag(p, "--cronjob-clock-offset", default=0.0,
             help="seconds the CronJob controller's clock runs ahead of the wall clock "
                  "(for tests and rehearsals)")
    add_flag(p, "--cronjob-clock-rate", default=1.0,
             help="how many times faster than the wall clock the CronJob controller's clock "
                  "runs (for tests: 60 makes a minute pass each second)")
    args = p.parse_args(argv)
    try:
        controllers = select_controllers(args.controllers)
        resources = gc_resources(args.gc_resources)
    except ValueError as err:
        p.error(str(err))
    if args.node_eviction_rate < 0 or args.secondary_node_eviction_rate < 0:
        p.error("--node-eviction-rate and --secondary-node-eviction-rate must not be negative")
    if not 0 < args.unhealthy_zone_threshold <= 1:
        p.error("--unhealthy-zone-threshold must be in (0, 1]")
    if args.event_ttl <= 0:
        p.error("--event-ttl must be positive")
    if args.cronjob_clock_rate <= 0:
        p.error("--cronjob-clock-rate must be positive")
    if args.concurrent_syncs < 1 or args.concurrent_gc_syncs < 1:
        p.error("--concurrent-syncs and --concurrent-gc-syncs must be at least 1")
    return Config(
        common=common_config(args),
        leader=leader_config(args),
        controllers=controllers,
        concurrent_syncs=args.concurrent_syncs,
        gc_concurrent_syncs=args.concurrent_gc_syncs,
        resync_period=args.resync_period,
        node_monitor_grace_period=args.node_monitor_grace_period,
        node_monitor_period=args.node_monitor_period,
        gc_resources=resources,
        hpa_sync_period=args.horizontal_pod_autoscaler_sync_period,
        hpa_downscale_stabilization=args.horizontal_pod_autoscaler_downscale_stabilization,
        hpa_tolerance=args.horizontal_pod_autoscaler_tolerance,
        hpa_cpu_initialization_period=args.horizontal_pod_autoscaler_cpu_initialization_period,
        hpa_initial_readiness_delay=args.horizontal_pod_autoscaler_initial_readiness_delay,
        event_ttl=args.event_ttl,
        disruption_deletion_timeout=args.disruption_deletion_timeout,
        node_eviction_rate=args.node_eviction_rate,
        secondary_node_eviction_rate=args.secondary_node_eviction_rate,
        unhealthy_zone_threshold=args.unhealthy_zone_threshold,
        large_cluster_size_threshold=args.large_cluster_size_threshold,
        job_backoff_base=args.job_backoff_base,
        job_backoff_max=args.job_backoff_max,
        cronjob_clock_offset=args.cronjob_clock_offset,
        cronjob_clock_rate=args.cronjob_clock_rate,
        daemonset_backoff_base=args.daemonset_backoff_base,
        daemonset_backoff_max=args.daemonset_backoff_max,
    )


__all__ = ["Config", "KNOWN_CONTROLLERS", "LEASE_NAME", "gc_resources", "parse_args",
           "select_controllers"]

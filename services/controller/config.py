"""The controller manager's flags and the frozen Config they become."""

from __future__ import annotations

import argparse
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

#: Every controller this process can run, in start order.
KNOWN_CONTROLLERS = ("replicaset", "deployment", "endpoint", "garbagecollector",
                     "nodelifecycle")


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
    add_flag(p, "--gc-resources", default="pods,replicasets,deployments,services,endpoints,"
             "configmaps,horizontalpodautoscalers",
             help="resources whose ownerReferences the garbage collector follows")
    args = p.parse_args(argv)
    try:
        controllers = select_controllers(args.controllers)
        resources = gc_resources(args.gc_resources)
    except ValueError as err:
        p.error(str(err))
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
    )


__all__ = ["Config", "KNOWN_CONTROLLERS", "LEASE_NAME", "gc_resources", "parse_args",
           "select_controllers"]

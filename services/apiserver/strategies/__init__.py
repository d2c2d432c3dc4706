"""One strategy per kind: everything the apiserver knows about that kind.

Adding a kind means a line in kubelite.resources.RESOURCES (its names, group,
scope) and its strategy here: a module with a Strategy subclass, and a line
in STRATEGIES (a kind with no rules of its own names the base Strategy there).
"""

from __future__ import annotations

import functools
from typing import Any

from kubelite.resources import RESOURCES, ResourceInfo

from ..allocators import ServiceAllocator
from ..validation import validate_schema
from .autoscaling import HorizontalPodAutoscalerStrategy
from .base import Dependencies, Strategy
from .batch import CronJobStrategy, JobStrategy
from .cluster import NamespaceStrategy, NodeStrategy
from .daemonset import DaemonSetStrategy
from .pod import PodStrategy
from .policy import PodDisruptionBudgetStrategy
from .replicationcontroller import ReplicationControllerStrategy
from .secret import SecretStrategy
from .service import ServiceStrategy
from .simple import ConfigMapStrategy, EndpointsStrategy, EventStrategy, LeaseStrategy
from .statefulset import StatefulSetStrategy
from .storage import (
    PersistentVolumeClaimStrategy,
    PersistentVolumeStrategy,
    StorageClassStrategy,
)
from .workloads import ControllerRevisionStrategy, DeploymentStrategy, ReplicaSetStrategy

STRATEGIES: dict[str, type[Strategy]] = {
    "Namespace": NamespaceStrategy,
    "Node": NodeStrategy,
    "Pod": PodStrategy,
    "Service": ServiceStrategy,
    "Endpoints": EndpointsStrategy,
    "Event": EventStrategy,
    "ConfigMap": ConfigMapStrategy,
    "Secret": SecretStrategy,
    "ReplicaSet": ReplicaSetStrategy,
    "Deployment": DeploymentStrategy,
    "ReplicationController": ReplicationControllerStrategy,
    "StatefulSet": StatefulSetStrategy,
    "DaemonSet": DaemonSetStrategy,
    "ControllerRevision": ControllerRevisionStrategy,
    "Job": JobStrategy,
    "CronJob": CronJobStrategy,
    "Lease": LeaseStrategy,
    "HorizontalPodAutoscaler": HorizontalPodAutoscalerStrategy,
    "PodDisruptionBudget": PodDisruptionBudgetStrategy,
    "PersistentVolume": PersistentVolumeStrategy,
    "PersistentVolumeClaim": PersistentVolumeClaimStrategy,
    "StorageClass": StorageClassStrategy,
}


@functools.cache
def _for_reading() -> dict[str, Strategy]:
    return build(allocator=ServiceAllocator("127.96.0.0/16", (30000, 32767)))


def validate_stored(info: ResourceInfo, obj: dict[str, Any], version: str) -> None:
    """Everything an object must satisfy at rest: the checks of a write, for a read-back."""
    validate_schema(info, obj, version)
    _for_reading()[info.kind].validate(obj)


def build(*, allocator: ServiceAllocator, toleration_seconds: tuple[int, int] = (300, 300),
          ) -> dict[str, Strategy]:
    """A strategy for every served kind, keyed by kind; toleration_seconds are the
    DefaultTolerationSeconds admission's (not-ready, unreachable)."""
    deps = Dependencies(allocator=allocator, not_ready_toleration_seconds=toleration_seconds[0],
                        unreachable_toleration_seconds=toleration_seconds[1])
    return {info.kind: STRATEGIES[info.kind](info, deps) for info in RESOURCES}


__all__ = ["STRATEGIES", "Dependencies", "Strategy", "build", "validate_stored"]

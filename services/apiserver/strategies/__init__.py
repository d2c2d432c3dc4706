"""One strategy per kind: everything the apiserver knows about that kind.

Adding a kind means a line in kubelite.resources.RESOURCES (its names, group,
scope) and its strategy here: a module with a Strategy subclass, and a line
in STRATEGIES (a kind with no rules of its own names the base Strategy there).
"""

from __future__ import annotations

from kubelite.resources import RESOURCES

from ..allocators import ServiceAllocator
from .autoscaling import HorizontalPodAutoscalerStrategy
from .base import Dependencies, Strategy
from .batch import CronJobStrategy, JobStrategy
from .cluster import NamespaceStrategy, NodeStrategy
from .pod import PodStrategy
from .policy import PodDisruptionBudgetStrategy
from .replicationcontroller import ReplicationControllerStrategy
from .service import ServiceStrategy
from .simple import DataStrategy, EndpointsStrategy, LeaseStrategy
from .workloads import DeploymentStrategy, ReplicaSetStrategy

STRATEGIES: dict[str, type[Strategy]] = {
    "Namespace": NamespaceStrategy,
    "Node": NodeStrategy,
    "Pod": PodStrategy,
    "Service": ServiceStrategy,
    "Endpoints": EndpointsStrategy,
    "Event": DataStrategy,
    "ConfigMap": DataStrategy,
    "ReplicaSet": ReplicaSetStrategy,
    "Deployment": DeploymentStrategy,
    "ReplicationController": ReplicationControllerStrategy,
    "Job": JobStrategy,
    "CronJob": CronJobStrategy,
    "Lease": LeaseStrategy,
    "HorizontalPodAutoscaler": HorizontalPodAutoscalerStrategy,
    "PodDisruptionBudget": PodDisruptionBudgetStrategy,
}


def build(*, allocator: ServiceAllocator) -> dict[str, Strategy]:
    """A strategy for every served kind, keyed by kind."""
    deps = Dependencies(allocator=allocator)
    return {info.kind: STRATEGIES[info.kind](info, deps) for info in RESOURCES}


__all__ = ["STRATEGIES", "Dependencies", "Strategy", "build"]

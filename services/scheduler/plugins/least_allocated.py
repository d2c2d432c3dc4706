"""LeastAllocated: prefer the node with the most cpu and memory left after this pod.

Per resource, `(allocatable - requested) * 100 // allocatable`, where requested
includes this pod and counts pods without requests at the defaults (100m cpu,
200Mi memory) so that best-effort pods spread too; the score is the weighted
mean over cpu and memory (weight 1 each), as Kubernetes' NodeResourcesFit
LeastAllocated strategy computes it.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..framework import CPU, MAX_NODE_SCORE, MEMORY, NodeInfo, PodInfo

DEFAULT_RESOURCE_WEIGHTS = {CPU: 1, MEMORY: 1}


def least_requested_score(requested: int, allocatable: int) -> int:
    if allocatable <= 0 or requested > allocatable:
        return 0
    return (allocatable - requested) * MAX_NODE_SCORE // allocatable


class LeastAllocated:
    name = "LeastAllocated"

    def __init__(self, resource_weights: Mapping[str, int] | None = None) -> None:
        self.resource_weights = dict(resource_weights or DEFAULT_RESOURCE_WEIGHTS)

    def score(self, pod: PodInfo, node_info: NodeInfo) -> int:
        total = weights = 0
        for resource, weight in self.resource_weights.items():
            allocatable = node_info.allocatable.get(resource, 0)
            if allocatable <= 0:
                continue
            requested = (node_info.non_zero_requested.get(resource, 0)
                         + pod.non_zero_requests.get(resource, 0))
            total += least_requested_score(requested, allocatable) * weight
            weights += weight
        return total // weights if weights else 0

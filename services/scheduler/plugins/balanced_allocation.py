"""BalancedAllocation: prefer the node whose cpu and memory use stay most even.

With f the fraction of each resource requested once this pod is placed (capped
at 1), the score is `(1 - std(f)) * 100`: a node that would end up at 50% cpu
and 50% memory beats one at 90% cpu and 10% memory. As in Kubernetes, actual
requests count here (not the defaults LeastAllocated assumes for pods without
requests).
"""

from __future__ import annotations

import math

from ..framework import CPU, MAX_NODE_SCORE, MEMORY, NodeInfo, PodInfo

RESOURCES = (CPU, MEMORY)


def balanced_score(fractions: list[float]) -> int:
    if len(fractions) == 2:
        std = abs(fractions[0] - fractions[1]) / 2
    elif len(fractions) > 2:
        mean = sum(fractions) / len(fractions)
        std = math.sqrt(sum((f - mean) ** 2 for f in fractions) / len(fractions))
    else:
        std = 0.0
    return int((1 - std) * MAX_NODE_SCORE)


class BalancedAllocation:
    name = "BalancedAllocation"

    def __init__(self, resources: tuple[str, ...] = RESOURCES) -> None:
        self.resources = resources

    def score(self, pod: PodInfo, node_info: NodeInfo) -> int:
        fractions = []
        for resource in self.resources:
            allocatable = node_info.allocatable.get(resource, 0)
            if allocatable <= 0:
                continue
            requested = node_info.requested.get(resource, 0) + pod.requests.get(resource, 0)
            fractions.append(min(1.0, requested / allocatable))
        return balanced_score(fractions)

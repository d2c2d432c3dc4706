"""SelectorSpread: spread the pods of one controller (ReplicaSet, ...) across nodes.

The raw score of a node is how many non-terminating pods in the pod's
namespace share its controller ownerReference; `normalize` maps the fewest to
100 and the most to 0, proportionally (Kubernetes' SelectorSpread, keyed on
the controller instead of on Service/ReplicaSet selectors). A pod with no
controller scores 100 everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..framework import NodeInfo, PodInfo, normalize_reverse


class SelectorSpread:
    name = "SelectorSpread"

    def pre_score(self, pod: PodInfo, nodes: Sequence[NodeInfo]) -> bool:
        return bool(pod.controller_uid)

    def score(self, pod: PodInfo, node_info: NodeInfo) -> int:
        if not pod.controller_uid:
            return 0
        return node_info.owner_counts.get((pod.namespace, pod.controller_uid), 0)

    def normalize(self, pod: PodInfo, scores: dict[str, int]) -> dict[str, int]:
        return normalize_reverse(scores)

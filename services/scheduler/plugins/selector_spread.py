"""SelectorSpread: spread the pods of one controller (ReplicaSet, ...) across nodes.

The raw score of a node is how many non-terminating pods in the pod's
namespace share its controller ownerReference; `normalize` maps the fewest to
100 and the most to 0, proportionally (Kubernetes' SelectorSpread, keyed on
the controller instead of on Service/ReplicaSet selectors). A pod with no
controller scores 100 everywhere.
"""

from __future__ import annotations

from ..framework import NodeInfo, PodInfo, normalize_reverse


class SelectorSpread:
    name = "SelectorSpread"

    def score(self, pod: PodInfo, node_info: NodeInfo) -> int:
        owner = pod.controller_uid
        if not owner:
            return 0
        return sum(1 for other in node_info.pods.values()
                   if other.controller_uid == owner and other.namespace == pod.namespace
                   and not other.terminating and other.uid != pod.uid)

    def normalize(self, pod: PodInfo, scores: dict[str, int]) -> dict[str, int]:
        return normalize_reverse(scores)

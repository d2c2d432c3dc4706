"""NodeSelector: every label in spec.nodeSelector must be on the node, with that value."""

from __future__ import annotations

from ..framework import NodeInfo, PodInfo, Status

#: Kubernetes reports nodeSelector and required node affinity misses alike.
REASON = "node(s) didn't match Pod's node affinity/selector"


class NodeSelector:
    name = "NodeSelector"

    def pre_filter(self, pod: PodInfo) -> bool:
        return bool(pod.spec.get("nodeSelector"))

    def filter(self, pod: PodInfo, node_info: NodeInfo) -> Status:
        selector = pod.spec.get("nodeSelector") or {}
        labels = node_info.labels
        for key, value in selector.items():
            if labels.get(key) != value:
                return Status.unschedulable(REASON)
        return Status.success()

"""NodeUnschedulable: a cordoned node (spec.unschedulable) takes no new pods...

...unless the pod tolerates the `node.kubernetes.io/unschedulable:NoSchedule`
taint, as DaemonSet pods do.
"""

from __future__ import annotations

from ..framework import NodeInfo, PodInfo, Status
from .taint_toleration import tolerations_tolerate

TAINT_NODE_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
REASON = "node(s) were unschedulable"

_TAINT = {"key": TAINT_NODE_UNSCHEDULABLE, "effect": "NoSchedule"}


class NodeUnschedulable:
    name = "NodeUnschedulable"

    def filter(self, pod: PodInfo, node_info: NodeInfo) -> Status:
        if not node_info.spec.get("unschedulable"):
            return Status.success()
        if tolerations_tolerate(pod.tolerations, _TAINT):
            return Status.success()
        return Status.unschedulable(REASON)

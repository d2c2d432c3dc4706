"""NodeReady: only a node whose Ready condition is True takes new pods.

Kubernetes expresses this with the taints its node lifecycle controller puts on
such nodes (`node.kubernetes.io/not-ready` when Ready is False,
`node.kubernetes.io/unreachable` when it is Unknown or missing); here the
scheduler reads the condition itself, so scheduling never depends on that
controller having run. A pod that tolerates the matching NoSchedule taint (as
DaemonSet pods do) may still land there.
"""

from __future__ import annotations

from ..framework import NodeInfo, PodInfo, Status
from .taint_toleration import tolerations_tolerate

TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
REASON = "node(s) were not ready"


def ready_status(node_info: NodeInfo) -> str:
    """"True", "False" or "Unknown" (also when the node reports no Ready condition)."""
    for condition in node_info.conditions:
        if condition.get("type") == "Ready":
            return condition.get("status") or "Unknown"
    return "Unknown"


class NodeReady:
    name = "NodeReady"

    def filter(self, pod: PodInfo, node_info: NodeInfo) -> Status:
        status = ready_status(node_info)
        if status == "True":
            return Status.success()
        key = TAINT_NOT_READY if status == "False" else TAINT_UNREACHABLE
        if tolerations_tolerate(pod.tolerations, {"key": key, "effect": "NoSchedule"}):
            return Status.success()
        return Status.unschedulable(REASON)

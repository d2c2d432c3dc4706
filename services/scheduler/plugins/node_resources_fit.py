"""NodeResourcesFit: the pod's requests fit in what the node has left.

"Left" is status.allocatable (or capacity, if a node reports no allocatable)
minus the requests of the pods already assigned or assumed on the node. A pod's
request is the sum over its containers, maxed with each init container, plus
overhead (framework.pod_requests), with cpu in millicores and everything else
in whole units, parsed exactly as Kubernetes parses quantities. Only resources
the pod requests are checked, each failing with "Insufficient <name>"; the pod
count is checked against allocatable `pods` ("Too many pods").

Deviation: a node that reports no `pods` allocatable is not limited by pod
count (a kubelet always reports it; hand-made Node objects often do not).
"""

from __future__ import annotations

from ..framework import PODS, NodeInfo, PodInfo, Status

TOO_MANY_PODS = "Too many pods"


def insufficient(resource: str) -> str:
    return f"Insufficient {resource}"


class NodeResourcesFit:
    name = "NodeResourcesFit"

    def filter(self, pod: PodInfo, node_info: NodeInfo) -> Status:
        reasons = self.insufficient_resources(pod, node_info)
        return Status.unschedulable(*reasons) if reasons else Status.success()

    @staticmethod
    def insufficient_resources(pod: PodInfo, node_info: NodeInfo) -> list[str]:
        reasons = []
        allowed_pods = node_info.allocatable.get(PODS)
        if allowed_pods is not None and len(node_info.pods) + 1 > allowed_pods:
            reasons.append(TOO_MANY_PODS)
        # cpu and memory first, then the rest in a stable order, as Kubernetes reports them.
        for name, want in pod.nonzero_request_items:
            free = node_info.allocatable.get(name, 0) - node_info.requested.get(name, 0)
            if want > free:
                reasons.append(insufficient(name))
        return reasons

"""NodePorts: a pod's hostPorts must be free on the node.

Two host ports conflict when protocol and port are equal and the host IPs are
equal or either is the wildcard (0.0.0.0 or empty), as in Kubernetes.
"""

from __future__ import annotations

from ..framework import NodeInfo, PodInfo, Status

REASON = "node(s) didn't have free ports for the requested pod ports"


class NodePorts:
    name = "NodePorts"

    def pre_filter(self, pod: PodInfo) -> bool:
        return bool(pod.host_ports)

    def filter(self, pod: PodInfo, node_info: NodeInfo) -> Status:
        if not pod.host_ports or not node_info.used_ports:
            return Status.success()
        for wanted in pod.host_ports:
            for used in node_info.used_ports:
                if wanted.conflicts(used):
                    return Status.unschedulable(REASON)
        return Status.success()

"""The kubelet's Prometheus metrics, named as Kubernetes names them where it can."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RUNNING_PODS = Gauge("kubelet_running_pods", "Number of pods that have a running container.")
RUNNING_CONTAINERS = Gauge("kubelet_running_containers", "Number of containers by state.",
                           ["container_state"])
POD_START_DURATION = Histogram(
    "kubelet_pod_start_duration_seconds",
    "Seconds from the kubelet seeing a pod for the first time to all its containers running.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
)
CONTAINER_RESTARTS = Counter("kubelet_container_restarts_total",
                             "Container instances started again after an exit or a kill.")
PROBE_TOTAL = Counter("prober_probe_total", "Probes run, by type and result.",
                      ["probe_type", "result"])
RUNTIME_OPERATIONS = Histogram(
    "kubelet_runtime_operations_duration_seconds",
    "Duration of container runtime operations, by operation type.",
    ["operation_type"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RUNTIME_OPERATION_ERRORS = Counter("kubelet_runtime_operations_errors_total",
                                   "Failed container runtime operations, by operation type.",
                                   ["operation_type"])
PLEG_RELIST_DURATION = Histogram("kubelet_pleg_relist_duration_seconds",
                                 "Duration of one relist of the runtime's containers.",
                                 buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5))
NODE_LEASE_RENEWALS = Counter("kubelet_node_lease_renewals_total",
                              "Node lease renewals, by result.", ["result"])

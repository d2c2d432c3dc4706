"""The scheduler's Prometheus metrics, named as kube-scheduler names them."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SCHEDULED = "scheduled"
UNSCHEDULABLE = "unschedulable"
ERROR = "error"

SCHEDULE_ATTEMPTS = Counter(
    "scheduler_schedule_attempts_total",
    "Number of attempts to schedule pods, by the result: 'unschedulable' means a pod could "
    "not be scheduled, while 'error' means an internal scheduler problem.",
    ["result"],
)
ATTEMPT_DURATION = Histogram(
    "scheduler_scheduling_attempt_duration_seconds",
    "Scheduling attempt latency in seconds (scheduling algorithm + binding).",
    ["result"],
    buckets=(0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024,
             2.048, 4.096, 8.192, 16.384),
)
PENDING_PODS = Gauge(
    "scheduler_pending_pods",
    "Number of pending pods, by the queue type: 'active' means pods in activeQ; 'backoff' "
    "means pods in backoffQ; 'unschedulable' means pods in unschedulablePods.",
    ["queue"],
)
SLI_DURATION = Histogram(
    "scheduler_pod_scheduling_sli_duration_seconds",
    "E2e latency for a pod being scheduled, from the time the pod enters the scheduling "
    "queue to its binding; may involve multiple scheduling attempts.",
    ["attempts"],
    buckets=(0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96,
             81.92, 163.84, 327.68, 655.36),
)
CACHE_SIZE = Gauge(
    "scheduler_cache_size",
    "Number of nodes, pods, and assumed (bound) pods in the scheduler cache.",
    ["type"],
)

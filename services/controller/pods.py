"""What controllers read off a pod: active, ready, available, and which to delete first.

The deletion order is Kubernetes' `ActivePodsWithRanks` (controller_utils.go):
when a ReplicaSet shrinks, the pods that cost least to lose go first:

1. unscheduled before scheduled;
2. Pending before Unknown before Running;
3. not ready before ready;
4. lower `controller.kubernetes.io/pod-deletion-cost` first;
5. pods doubled up on a node with more related pods first (the rank);
6. of two ready pods, the one ready for less time first;
7. more container restarts first;
8. newer first.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from kubelite.objects import parse_time

Obj = dict[str, Any]

DELETION_COST_ANNOTATION = "controller.kubernetes.io/pod-deletion-cost"
_PHASE_ORDINAL = {"Pending": 0, "Unknown": 1, "Running": 2}


def timestamp(text: str | None) -> float | None:
    """Seconds since the epoch of an RFC 3339 time, None when absent or malformed."""
    if not text:
        return None
    try:
        return parse_time(text).timestamp()
    except ValueError:
        return None


def is_active(pod: Obj) -> bool:
    """Neither terminated (Succeeded/Failed) nor being deleted (Kubernetes' IsPodActive)."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not (pod.get("metadata") or {}).get(
        "deletionTimestamp")


def ready_condition(pod: Obj) -> Obj | None:
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            return cond
    return None


def is_ready(pod: Obj) -> bool:
    cond = ready_condition(pod)
    return cond is not None and cond.get("status") == "True"


def ready_since(pod: Obj) -> float | None:
    """When the pod last became ready (None if it is not ready or no time is known)."""
    cond = ready_condition(pod)
    if cond is None or cond.get("status") != "True":
        return None
    return timestamp(cond.get("lastTransitionTime"))


def is_available(pod: Obj, min_ready_seconds: float, now: float | None = None) -> bool:
    """Ready for at least min_ready_seconds (Kubernetes' IsPodAvailable)."""
    if not is_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = ready_since(pod)
    if since is None:
        return False
    return since + min_ready_seconds <= (time.time() if now is None else now)


def max_restarts(pod: Obj) -> int:
    status = pod.get("status") or {}
    counts = [int(c.get("restartCount") or 0)
              for key in ("containerStatuses", "initContainerStatuses")
              for c in status.get(key) or ()]
    return max(counts, default=0)


def deletion_cost(pod: Obj) -> int:
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(DELETION_COST_ANNOTATION)
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


def node_ranks(pods: Sequence[Obj], related: Iterable[Obj]) -> list[int]:
    """For each pod, how many active related pods share its node (unscheduled counts as one)."""
    on_node = Counter((p.get("spec") or {}).get("nodeName") or "" for p in related
                      if is_active(p))
    return [on_node[(p.get("spec") or {}).get("nodeName") or ""] for p in pods]


def deletion_sort_key(pod: Obj, rank: int) -> tuple:
    """Sorts pods cheapest-to-delete first (see the module docstring)."""
    spec, status, meta = pod.get("spec") or {}, pod.get("status") or {}, pod.get("metadata") or {}
    ready = is_ready(pod)
    if ready:
        since = ready_since(pod)
        # A ready pod with no known time sorts first; then the most recently ready.
        ready_key = (0, 0.0) if since is None else (1, -since)
    else:
        ready_key = (0, 0.0)
    created = timestamp(meta.get("creationTimestamp"))
    created_key = (0, 0.0) if created is None else (1, -created)
    return (
        1 if spec.get("nodeName") else 0,
        _PHASE_ORDINAL.get(status.get("phase") or "", 0),
        1 if ready else 0,
        deletion_cost(pod),
        -rank,
        ready_key,
        -max_restarts(pod),
        created_key,
    )


def pods_to_delete(pods: Sequence[Obj], related: Iterable[Obj], count: int) -> list[Obj]:
    """The `count` pods to delete first (Kubernetes' getPodsToDelete)."""
    if count >= len(pods):
        return list(pods)
    ranks = node_ranks(pods, related)
    order = sorted(range(len(pods)), key=lambda i: deletion_sort_key(pods[i], ranks[i]))
    return [pods[i] for i in order[:count]]


__all__ = [
    "DELETION_COST_ANNOTATION",
    "deletion_sort_key",
    "is_active",
    "is_available",
    "is_ready",
    "max_restarts",
    "node_ranks",
    "pods_to_delete",
    "ready_since",
    "timestamp",
]

"""Taints and tolerations: the matching rules every component must agree on.

The apiserver (DefaultTolerationSeconds admission), the node lifecycle
controller (which taints nodes) and the taint manager (which evicts) all read
taints the same way, so the rules live here once: Kubernetes'
`Toleration.ToleratesTaint`, its `GetMatchingTolerations` and
`getMinTolerationTime`, and the well-known node taints.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Obj = dict[str, Any]

NO_SCHEDULE = "NoSchedule"
NO_EXECUTE = "NoExecute"

TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"

DEFAULT_TOLERATION_SECONDS = 300


def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """True when one toleration tolerates one taint (effect, key, operator, value)."""
    effect = toleration.get("effect") or ""
    if effect and effect != (taint.get("effect") or ""):
        return False
    key = toleration.get("key") or ""
    if key and key != (taint.get("key") or ""):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    if operator == "Equal":
        return (toleration.get("value") or "") == (taint.get("value") or "")
    return False


def no_execute(taints: Iterable[Mapping[str, Any]]) -> list[Obj]:
    return [dict(t) for t in taints if t.get("effect") == NO_EXECUTE]


def toleration_deadline(taints: Sequence[Mapping[str, Any]],
                        tolerations: Sequence[Mapping[str, Any]]) -> float | None:
    """Seconds a pod may stay on a node with these NoExecute taints; None: forever.

    0 when some taint is not tolerated at all. Otherwise the smallest
    tolerationSeconds among the tolerations that match a taint (a negative one
    counts as 0, as Kubernetes does); a matching toleration without seconds
    tolerates forever and does not lower the minimum.
    """
    smallest: float | None = None
    for taint in taints:
        matching = [t for t in tolerations if tolerates(t, taint)]
        if not matching:
            return 0.0
        for toleration in matching:
            seconds = toleration.get("tolerationSeconds")
            if seconds is None:
                continue
            seconds = max(0.0, float(seconds))
            smallest = seconds if smallest is None else min(smallest, seconds)
    return smallest


def has_taint(taints: Iterable[Mapping[str, Any]], key: str, effect: str) -> bool:
    return any(t.get("key") == key and t.get("effect") == effect for t in taints)


def default_tolerations(tolerations: Sequence[Mapping[str, Any]], *, not_ready_seconds: int,
                        unreachable_seconds: int) -> list[Obj]:
    """The pod's tolerations with Kubernetes' DefaultTolerationSeconds additions.

    A pod that does not yet tolerate the not-ready (unreachable) NoExecute taint
    (a toleration with that key or no key, and NoExecute or no effect) gets
    `key: ..., operator: Exists, effect: NoExecute, tolerationSeconds: N`.
    """
    out = [dict(t) for t in tolerations]

    def covered(key: str) -> bool:
        return any((t.get("key") or "") in ("", key)
                   and (t.get("effect") or "") in ("", NO_EXECUTE) for t in out)

    for key, seconds in ((TAINT_NOT_READY, not_ready_seconds),
                         (TAINT_UNREACHABLE, unreachable_seconds)):
        if not covered(key):
            out.append({"key": key, "operator": "Exists", "effect": NO_EXECUTE,
                        "tolerationSeconds": int(seconds)})
    return out


__all__ = ["DEFAULT_TOLERATION_SECONDS", "NO_EXECUTE", "NO_SCHEDULE", "TAINT_NOT_READY",
           "TAINT_UNREACHABLE", "TAINT_UNSCHEDULABLE", "default_tolerations", "has_taint",
           "no_execute", "toleration_deadline", "tolerates"]

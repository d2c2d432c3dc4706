"""TaintToleration: a pod lands only on nodes whose hard taints it tolerates.

Filter: every NoSchedule and NoExecute taint must be tolerated. Score: fewer
untolerated PreferNoSchedule taints is better. Toleration matching is
Kubernetes' `Toleration.ToleratesTaint`: the effect must match unless the
toleration leaves it empty, the key must match unless it is empty (only
allowed with Exists, which then tolerates every taint), and Equal (the default
operator) compares values while Exists ignores them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..framework import NodeInfo, PodInfo, Status, normalize_reverse

NO_SCHEDULE = "NoSchedule"
PREFER_NO_SCHEDULE = "PreferNoSchedule"
NO_EXECUTE = "NoExecute"


def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """True when one toleration tolerates one taint."""
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


def tolerations_tolerate(tolerations: Iterable[Mapping[str, Any]],
                         taint: Mapping[str, Any]) -> bool:
    return any(tolerates(t, taint) for t in tolerations)


def untolerated_taint(taints: Iterable[Mapping[str, Any]], tolerations: Iterable[Mapping[str, Any]],
                      effects: frozenset[str]) -> Mapping[str, Any] | None:
    """The first taint with one of `effects` that no toleration tolerates, or None."""
    tolerations = list(tolerations)
    for taint in taints:
        if taint.get("effect") in effects and not tolerations_tolerate(tolerations, taint):
            return taint
    return None


def untolerated_taint_reason(taint: Mapping[str, Any]) -> str:
    return f"node(s) had untolerated taint {{{taint.get('key') or ''}: {taint.get('value') or ''}}}"


class TaintToleration:
    name = "TaintToleration"
    _hard = frozenset({NO_SCHEDULE, NO_EXECUTE})

    def filter(self, pod: PodInfo, node_info: NodeInfo) -> Status:
        taint = untolerated_taint(node_info.taints, pod.tolerations, self._hard)
        if taint is None:
            return Status.success()
        return Status.unschedulable(untolerated_taint_reason(taint))

    def pre_score(self, pod: PodInfo, nodes: Sequence[NodeInfo]) -> bool:
        return any(t.get("effect") == PREFER_NO_SCHEDULE for n in nodes for t in n.taints)

    def score(self, pod: PodInfo, node_info: NodeInfo) -> int:
        """Raw: the number of PreferNoSchedule taints the pod does not tolerate."""
        soft = [t for t in pod.tolerations if (t.get("effect") or "") in ("", PREFER_NO_SCHEDULE)]
        return sum(1 for taint in node_info.taints
                   if taint.get("effect") == PREFER_NO_SCHEDULE
                   and not tolerations_tolerate(soft, taint))

    def normalize(self, pod: PodInfo, scores: dict[str, int]) -> dict[str, int]:
        return normalize_reverse(scores)

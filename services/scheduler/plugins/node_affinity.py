"""NodeAffinity: spec.affinity.nodeAffinity, required as a filter, preferred as a score.

Required: requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms are
ORed and the requirements inside one term are ANDed; a term with no
requirements, or an empty list of terms, matches no node (as in Kubernetes).
Label requirements (matchExpressions) support In, NotIn, Exists, DoesNotExist,
Gt and Lt (integer comparison of the label's value with the single value);
field requirements (matchFields) support metadata.name with In and NotIn.

The matching rules are the library's (kubelite.nodeaffinity), which the
DaemonSet controller reads too.

Preferred: the score is the sum of the weights of the matching
preferredDuringSchedulingIgnoredDuringExecution terms, scaled so that the
best node gets 100.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kubelite import nodeaffinity
from kubelite.nodeaffinity import field_requirement_matches, requirement_matches

from ..framework import NodeInfo, PodInfo, Status, normalize
from .node_selector import REASON

Obj = Mapping[str, Any]


def term_matches(term: Obj | None, node_info: NodeInfo) -> bool:
    """A NodeSelectorTerm: all of its requirements hold (and it has at least one)."""
    return nodeaffinity.term_matches(term, node_info.labels, node_info.name)


def terms_match(terms: Sequence[Obj], node_info: NodeInfo) -> bool:
    """NodeSelectorTerms: any term matches."""
    return nodeaffinity.terms_match(terms, node_info.labels, node_info.name)


def _node_affinity(pod: PodInfo) -> Obj:
    return (pod.spec.get("affinity") or {}).get("nodeAffinity") or {}


class NodeAffinity:
    name = "NodeAffinity"

    def pre_filter(self, pod: PodInfo) -> bool:
        return "requiredDuringSchedulingIgnoredDuringExecution" in _node_affinity(pod)

    def pre_score(self, pod: PodInfo, nodes: Sequence[NodeInfo]) -> bool:
        return bool(_node_affinity(pod).get("preferredDuringSchedulingIgnoredDuringExecution"))

    def filter(self, pod: PodInfo, node_info: NodeInfo) -> Status:
        required = _node_affinity(pod).get("requiredDuringSchedulingIgnoredDuringExecution")
        if required is None:
            return Status.success()
        if terms_match(required.get("nodeSelectorTerms") or [], node_info):
            return Status.success()
        return Status.unschedulable(REASON)

    def score(self, pod: PodInfo, node_info: NodeInfo) -> int:
        """Raw: the summed weight of the preferred terms this node matches."""
        preferred = _node_affinity(pod).get("preferredDuringSchedulingIgnoredDuringExecution")
        return sum(int(term.get("weight") or 0) for term in preferred or []
                   if term_matches(term.get("preference"), node_info))

    def normalize(self, pod: PodInfo, scores: dict[str, int]) -> dict[str, int]:
        return normalize(scores)


__all__ = ["NodeAffinity", "field_requirement_matches", "requirement_matches",
           "term_matches", "terms_match"]

"""NodeAffinity: spec.affinity.nodeAffinity, required as a filter, preferred as a score.

Required: requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms are
ORed and the requirements inside one term are ANDed; a term with no
requirements, or an empty list of terms, matches no node (as in Kubernetes).
Label requirements (matchExpressions) support In, NotIn, Exists, DoesNotExist,
Gt and Lt (integer comparison of the label's value with the single value);
field requirements (matchFields) support metadata.name with In and NotIn.

Preferred: the score is the sum of the weights of the matching
preferredDuringSchedulingIgnoredDuringExecution terms, scaled so that the
best node gets 100.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..framework import NodeInfo, PodInfo, Status, normalize
from .node_selector import REASON

Obj = Mapping[str, Any]


def _int(text: Any) -> int | None:
    try:
        return int(str(text))
    except (TypeError, ValueError):
        return None


def requirement_matches(requirement: Obj, labels: Mapping[str, str]) -> bool:
    """One matchExpressions entry against a node's labels."""
    key = requirement.get("key") or ""
    operator = requirement.get("operator") or ""
    values = [str(v) for v in requirement.get("values") or []]
    present = key in labels
    value = labels.get(key)
    if operator == "In":
        return present and value in values
    if operator == "NotIn":
        return not present or value not in values
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt"):
        if not present or len(values) != 1:
            return False
        have, want = _int(value), _int(values[0])
        if have is None or want is None:
            return False
        return have > want if operator == "Gt" else have < want
    return False  # an unknown operator matches nothing


def field_requirement_matches(requirement: Obj, node_name: str) -> bool:
    """One matchFields entry; only metadata.name exists as a node field."""
    if requirement.get("key") != "metadata.name":
        return False
    values = [str(v) for v in requirement.get("values") or []]
    operator = requirement.get("operator")
    if operator == "In":
        return node_name in values
    if operator == "NotIn":
        return node_name not in values
    return False


def term_matches(term: Obj | None, node_info: NodeInfo) -> bool:
    """A NodeSelectorTerm: all of its requirements hold (and it has at least one)."""
    term = term or {}
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    labels = node_info.labels
    return (all(requirement_matches(r, labels) for r in expressions)
            and all(field_requirement_matches(r, node_info.name) for r in fields))


def terms_match(terms: Sequence[Obj], node_info: NodeInfo) -> bool:
    """NodeSelectorTerms: any term matches."""
    return any(term_matches(term, node_info) for term in terms)


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

"""Node selectors and required node affinity: whether a pod's spec admits a node.

The scheduler's NodeSelector and NodeAffinity plugins filter with these, and the
DaemonSet controller decides with them which nodes should run a daemon pod (as
Kubernetes' `nodeaffinity.GetRequiredNodeAffinity(pod).Match(node)`), so both
read a term the same way. Label requirements (matchExpressions) support In,
NotIn, Exists, DoesNotExist, Gt and Lt; field requirements (matchFields)
support metadata.name with In and NotIn. The terms of
requiredDuringSchedulingIgnoredDuringExecution are ORed, the requirements
inside a term ANDed, and a term with no requirements matches no node.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Obj = Mapping[str, Any]

#: The field a matchFields requirement may name.
NODE_NAME_FIELD = "metadata.name"


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
    if requirement.get("key") != NODE_NAME_FIELD:
        return False
    values = [str(v) for v in requirement.get("values") or []]
    operator = requirement.get("operator")
    if operator == "In":
        return node_name in values
    if operator == "NotIn":
        return node_name not in values
    return False


def term_matches(term: Obj | None, labels: Mapping[str, str], node_name: str) -> bool:
    """A NodeSelectorTerm: all of its requirements hold (and it has at least one)."""
    term = term or {}
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    return (all(requirement_matches(r, labels) for r in expressions)
            and all(field_requirement_matches(r, node_name) for r in fields))


def terms_match(terms: Sequence[Obj], labels: Mapping[str, str], node_name: str) -> bool:
    """NodeSelectorTerms: any term matches."""
    return any(term_matches(term, labels, node_name) for term in terms)


def node_selector_matches(node_selector: Obj | None, labels: Mapping[str, str]) -> bool:
    """spec.nodeSelector: every label is on the node with that value."""
    return all(labels.get(k) == v for k, v in (node_selector or {}).items())


def required_affinity_matches(pod_spec: Obj, node: Obj) -> bool:
    """The pod spec's nodeSelector and required node affinity both admit the node."""
    meta = node.get("metadata") or {}
    labels = meta.get("labels") or {}
    if not node_selector_matches(pod_spec.get("nodeSelector"), labels):
        return False
    affinity = ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {})
    required = affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if required is None:
        return True
    return terms_match(required.get("nodeSelectorTerms") or [], labels,
                       str(meta.get("name") or ""))


__all__ = ["NODE_NAME_FIELD", "field_requirement_matches", "node_selector_matches",
           "required_affinity_matches", "requirement_matches", "term_matches", "terms_match"]

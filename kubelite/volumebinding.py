"""Which PersistentVolume may serve which claim, on which node: pure functions shared by
the PV binder (services/controller/pvbinder.py) and the scheduler's VolumeBinding
plugin, as Kubernetes' scheduler shares the PV controller's helpers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kubelite.quantity import parse_quantity

Obj = dict[str, Any]

SELECTED_NODE = "volume.kubernetes.io/selected-node"
BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
LOCAL_PATH_PROVISIONERS = ("kubelite.io/local-path", "rancher.io/local-path")
WAIT = "WaitForFirstConsumer"


def storage_of(resources: Mapping[str, Any] | None) -> int:
    value = (resources or {}).get("storage")
    try:
        return int(parse_quantity(value)) if value is not None else 0
    except Exception:  # noqa: BLE001 - validated on write; an unreadable one fits nothing
        return 0


def claim_class(pvc: Obj) -> str:
    return str((pvc.get("spec") or {}).get("storageClassName") or "")


def claim_request(pvc: Obj) -> int:
    return storage_of(((pvc.get("spec") or {}).get("resources") or {}).get("requests"))


def binding_mode(classes: Mapping[str, Obj], name: str) -> str:
    return str((classes.get(name) or {}).get("volumeBindingMode") or "Immediate")


def node_matches_terms(terms: Iterable[Obj], node: Obj) -> bool:
    """NodeSelectorTerms (ORed; requirements ANDed) against a Node object."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    name = (node.get("metadata") or {}).get("name", "")
    for term in terms:
        exprs, fields = term.get("matchExpressions") or [], term.get("matchFields") or []
        if not exprs and not fields:
            continue
        ok = True
        for r in exprs:
            key, op, values = r.get("key"), r.get("operator"), r.get("values") or []
            present = key in labels
            if op == "In":
                ok = present and labels[key] in values
            elif op == "NotIn":
                ok = not present or labels[key] not in values
            elif op == "Exists":
                ok = present
            elif op == "DoesNotExist":
                ok = not present
            else:
                ok = False
            if not ok:
                break
        for r in fields if ok else []:
            values = r.get("values") or []
            ok = r.get("key") == "metadata.name" and (
                (r.get("operator") == "In" and name in values)
                or (r.get("operator") == "NotIn" and name not in values))
            if not ok:
                break
        if ok:
            return True
    return False


def pv_allows_node(pv: Obj, node: Obj | None) -> bool:
    """Whether the PV's required node affinity admits node (no affinity: every node)."""
    terms = ((((pv.get("spec") or {}).get("nodeAffinity") or {}).get("required") or {})
             .get("nodeSelectorTerms"))
    if not terms:
        return True
    return node is not None and node_matches_terms(terms, node)


def pv_fits_claim(pv: Obj, pvc: Obj) -> bool:
    """Class, capacity and access modes (and the claim's selector-free spec)."""
    spec = pv.get("spec") or {}
    cspec = pvc.get("spec") or {}
    if str(spec.get("storageClassName") or "") != claim_class(pvc):
        return False
    if (spec.get("volumeMode") or "Filesystem") != (cspec.get("volumeMode") or "Filesystem"):
        return False
    if storage_of(spec.get("capacity")) < claim_request(pvc):
        return False
    return set(cspec.get("accessModes") or []) <= set(spec.get("accessModes") or [])


def claim_ref_is(pv: Obj, pvc: Obj) -> bool:
    ref = (pv.get("spec") or {}).get("claimRef") or {}
    meta = pvc["metadata"]
    return (ref.get("name") == meta["name"] and ref.get("namespace") == meta.get("namespace")
            and ref.get("uid", meta["uid"]) == meta["uid"])


def find_match(pvc: Obj, pvs: Iterable[Obj], node: Obj | None = None) -> Obj | None:
    """The PV to bind pvc to: one pre-bound to it, else the smallest Available fitting
    PV (allowing node, when given); None if there is none."""
    candidates = []
    for pv in pvs:
        if (pv["metadata"].get("deletionTimestamp")
                or not pv_fits_claim(pv, pvc)
                or (node is not None and not pv_allows_node(pv, node))):
            continue
        ref = (pv.get("spec") or {}).get("claimRef")
        if ref:
            if claim_ref_is(pv, pvc):
                return pv
            continue
        if (pv.get("status") or {}).get("phase") in ("Available", "Pending", None):
            candidates.append(pv)
    if not candidates:
        return None
    return min(candidates, key=lambda pv: (storage_of(pv["spec"].get("capacity")),
                                           pv["metadata"]["name"]))


def released_phase(pv: Obj) -> tuple[str, str]:
    """(phase, message) for a PV whose claim is gone, by its reclaimPolicy."""
    spec = pv.get("spec") or {}
    policy = spec.get("persistentVolumeReclaimPolicy", "Retain")
    if policy == "Delete" and (pv["metadata"].get("annotations") or {}).get(
            PROVISIONED_BY) not in LOCAL_PATH_PROVISIONERS:
        return "Failed", (f'error getting deleter volume plugin for volume '
                          f'"{pv["metadata"]["name"]}": no deletable volume plugin matched')
    return "Released", ""

"""VolumeBinding: a pod goes only where its PersistentVolumeClaims can be mounted.

As Kubernetes' volumebinding plugin:

- a claim that is bound: its PV's required node affinity must admit the node
  (a local-path PV lives on one node, so its pods go there);
- a claim that is unbound, of a WaitForFirstConsumer class: the node must have
  an Available PV that fits the claim and admits the node, or the class must
  provision dynamically there (the local-path provisioner needs the node's
  kubelite.io/local-path-root annotation);
- a claim that is unbound otherwise (Immediate): the pod waits for the binder;
- a claim that does not exist, or is being deleted: the pod waits.

At bind time (`pre_bind`, Kubernetes' PreBind) the chosen node is written on each
unbound WaitForFirstConsumer claim (annotation volume.kubernetes.io/selected-node),
and the pod is bound only once the binder (and the provisioner) have bound those
claims, so the kubelet finds them ready to mount.

The scheduler hands the plugin its PVC, PV and StorageClass caches (`attach`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from kubelite.volumebinding import (
    LOCAL_PATH_PROVISIONERS,
    SELECTED_NODE,
    WAIT,
    binding_mode,
    claim_class,
    find_match,
    pv_allows_node,
)

from ..framework import NodeInfo, PodInfo, Status

Obj = dict[str, Any]
Getter = Callable[[str], Obj | None]
Lister = Callable[[], list[Obj]]

CONFLICT = "node(s) had volume node affinity conflict"
NO_PV = "node(s) didn't find available persistent volumes to bind"
UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"
LOCAL_PATH_ROOT_ANNOTATION = "kubelite.io/local-path-root"
BIND_TIMEOUT = 60.0


def claim_names(spec: Obj) -> list[str]:
    return [v["persistentVolumeClaim"].get("claimName", "")
            for v in spec.get("volumes") or [] if v.get("persistentVolumeClaim")]


class VolumeBinding:
    name = "VolumeBinding"

    def __init__(self) -> None:
        self._pvc: Getter = lambda key: None
        self._pv: Getter = lambda name: None
        self._pvs: Lister = list
        self._classes: Lister = list

    def attach(self, *, pvc: Getter, pv: Getter, pvs: Lister, classes: Lister) -> None:
        self._pvc, self._pv, self._pvs, self._classes = pvc, pv, pvs, classes

    def pre_filter(self, pod: PodInfo) -> bool:
        return bool(claim_names(pod.spec))

    def filter(self, pod: PodInfo, node_info: NodeInfo) -> Status:
        classes = {c["metadata"]["name"]: c for c in self._classes()}
        for name in claim_names(pod.spec):
            pvc = self._pvc(f"{pod.namespace}/{name}")
            if pvc is None:
                return Status.unschedulable(f'persistentvolumeclaim "{name}" not found')
            if pvc["metadata"].get("deletionTimestamp"):
                return Status.unschedulable(f'persistentvolumeclaim "{name}" is being deleted')
            volume = (pvc.get("spec") or {}).get("volumeName")
            if volume:
                pv = self._pv(volume)
                if pv is None:
                    return Status.unschedulable("pvc(s) bound to non-existent pv(s)")
                if not pv_allows_node(pv, node_info.node):
                    return Status.unschedulable(CONFLICT)
                continue
            sc_name = claim_class(pvc)
            if binding_mode(classes, sc_name) != WAIT:
                return Status.unschedulable(UNBOUND_IMMEDIATE)
            if find_match(pvc, self._pvs(), node_info.node) is not None:
                continue
            sc = classes.get(sc_name) or {}
            if sc.get("provisioner") in LOCAL_PATH_PROVISIONERS:
                annotations = ((node_info.node or {}).get("metadata") or {}).get(
                    "annotations") or {}
                if annotations.get(LOCAL_PATH_ROOT_ANNOTATION):
                    continue
            elif sc.get("provisioner") and sc["provisioner"] != "kubernetes.io/no-provisioner":
                continue  # another dynamic provisioner: trust it can provision anywhere
            return Status.unschedulable(NO_PV)
        return Status.success()

    async def pre_bind(self, client: Any, pod: PodInfo, node: str,
                       timeout: float = BIND_TIMEOUT) -> None:
        """Selects the node on the pod's unbound WaitForFirstConsumer claims, then waits
        until every claim of the pod is bound; raises TimeoutError if they are not."""
        names = claim_names(pod.spec)
        if not names:
            return
        classes = {c["metadata"]["name"]: c for c in self._classes()}
        for name in names:
            pvc = self._pvc(f"{pod.namespace}/{name}")
            if pvc is None or (pvc.get("spec") or {}).get("volumeName"):
                continue
            annotations = pvc["metadata"].get("annotations") or {}
            if binding_mode(classes, claim_class(pvc)) == WAIT and \
                    annotations.get(SELECTED_NODE) != node:
                await client.patch("persistentvolumeclaims", name, {"metadata": {
                    "annotations": {SELECTED_NODE: node}}}, namespace=pod.namespace)
        deadline = time.monotonic() + timeout
        while True:
            pending = [n for n in names
                       if ((self._pvc(f"{pod.namespace}/{n}") or {}).get("status") or {})
                       .get("phase") != "Bound"]
            if not pending:
                return
            if time.monotonic() >= deadline:
                raise TimeoutError(f"binding volumes: claims not bound in {timeout:.0f}s: "
                                   f"{', '.join(pending)}")
            await asyncio.sleep(0.1)


__all__ = ["VolumeBinding", "claim_names"]

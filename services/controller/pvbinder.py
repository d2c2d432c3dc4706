"""The PersistentVolume binder: claims meet volumes, and each side says so in its phase.

The one idea, from Kubernetes' PV controller: **a binding is two pointers that
must agree**, the PV's spec.claimRef (with the claim's uid) and the claim's
spec.volumeName. The controller writes the PV's side first, then the claim's;
a sync that stopped half-way finds the PV pointing at the claim and finishes.

- A claim with no volumeName is matched to an Available PV of its class with
  enough capacity and every access mode it asks for (the smallest such PV, as
  Kubernetes picks); a PV pre-bound to the claim (claimRef) wins. A class with
  volumeBindingMode WaitForFirstConsumer waits until the scheduler has chosen
  a node (annotation volume.kubernetes.io/selected-node) and then takes only
  PVs whose node affinity allows that node. A claim no PV fits stays Pending
  (a dynamic provisioner may make one, services/controller/provisioner.py).
- A Bound claim whose PV is gone is Lost.
- A PV is Available while it is not bound, Bound with its claim, Released once
  the claim is gone; then its reclaimPolicy decides: Retain keeps it Released;
  Delete on a local-path PV is left to the node holding the data (its kubelet
  removes the directory and the PV, services/kubelet/volumes.py); Delete on
  anything else fails (kubelite has no deleter for it).

The matching functions are pure and shared with the scheduler's VolumeBinding
plugin, as Kubernetes' scheduler shares the PV controller's helpers.
"""

from __future__ import annotations

import copy
from typing import Any

from kubelite.client import Client
from kubelite.errors import ConflictError, NotFoundError
from kubelite.events import NORMAL, WARNING, EventRecorder
from kubelite.informer import object_key
from kubelite.volumebinding import (
    BIND_COMPLETED,
    BOUND_BY_CONTROLLER,
    LOCAL_PATH_PROVISIONERS,
    SELECTED_NODE,
    WAIT,
    binding_mode,
    claim_class,
    claim_ref_is,
    claim_request,
    find_match,
    node_matches_terms,
    pv_allows_node,
    pv_fits_claim,
    released_phase,
    storage_of,
)

from .base import Controller
from .informers import InformerFactory

Obj = dict[str, Any]


class PersistentVolumeBinder(Controller[str]):
    """Keys: "claim:<namespace>/<name>" and "volume:<name>"."""

    name = "persistentvolume-binder"

    def __init__(self, client: Client, factory: InformerFactory) -> None:
        self.pvcs = factory.informer("persistentvolumeclaims")
        self.pvs = factory.informer("persistentvolumes")
        self.classes = factory.informer("storageclasses")
        self.nodes = factory.informer("nodes")
        super().__init__(informers=[self.pvcs, self.pvs, self.classes, self.nodes])
        self.client = client
        self.recorder = EventRecorder(client, component="persistentvolume-controller")
        self.pvcs.add_handler(on_add=self._claim, on_update=lambda old, new: self._claim(new),
                              on_delete=self._claim_deleted)
        self.pvs.add_handler(on_add=self._volume, on_update=lambda old, new: self._volume(new),
                             on_delete=self._volume_deleted)

    # -- handlers --------------------------------------------------------------------

    def _claim(self, pvc: Obj) -> None:
        self.queue.add(f"claim:{object_key(pvc)}")

    def _claim_deleted(self, pvc: Obj) -> None:
        name = (pvc.get("spec") or {}).get("volumeName")
        if name:
            self.queue.add(f"volume:{name}")
        for pv in self.pvs.list():
            if claim_ref_is(pv, pvc):
                self.queue.add(f"volume:{pv['metadata']['name']}")

    def _volume(self, pv: Obj) -> None:
        self.queue.add(f"volume:{pv['metadata']['name']}")
        ref = (pv.get("spec") or {}).get("claimRef") or {}
        if ref.get("name"):
            self.queue.add(f"claim:{ref.get('namespace')}/{ref['name']}")

    def _volume_deleted(self, pv: Obj) -> None:
        ref = (pv.get("spec") or {}).get("claimRef") or {}
        if ref.get("name"):
            self.queue.add(f"claim:{ref.get('namespace')}/{ref['name']}")

    def object_for(self, key: str) -> Obj | None:
        kind, _, rest = key.partition(":")
        return self.pvcs.get(rest) if kind == "claim" else self.pvs.get(rest)

    # -- sync ------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        kind, _, rest = key.partition(":")
        if kind == "claim":
            await self.sync_claim(rest)
        else:
            await self.sync_volume(rest)

    async def sync_claim(self, key: str) -> None:
        pvc = self.pvcs.get(key)
        if pvc is None or pvc["metadata"].get("deletionTimestamp"):
            return
        volume_name = (pvc.get("spec") or {}).get("volumeName")
        phase = (pvc.get("status") or {}).get("phase")
        if volume_name:
            pv = self.pvs.get(volume_name)
            if pv is None:
                if phase == "Bound":
                    self.recorder.event(pvc, WARNING, "ClaimLost", "Bound claim has lost "
                                        "reference to PersistentVolume. Data on the volume is "
                                        "lost!")
                    await self._claim_status(pvc, {"phase": "Lost"})
                return
            ref = (pv.get("spec") or {}).get("claimRef")
            if ref and not claim_ref_is(pv, pvc):
                return  # the PV is another claim's: this one waits (Pending)
            await self._bind(pvc, pv)
            return
        node = None
        sc_name = claim_class(pvc)
        classes = {c["metadata"]["name"]: c for c in self.classes.list()}
        if binding_mode(classes, sc_name) == WAIT:
            selected = (pvc["metadata"].get("annotations") or {}).get(SELECTED_NODE)
            if not selected:
                self.recorder.event(pvc, NORMAL, "WaitForFirstConsumer", "waiting for first "
                                    "consumer to be created before binding")
                return
            node = self.nodes.get(selected)
            if node is None:
                return
        pv = find_match(pvc, self.pvs.list(), node)
        if pv is not None:
            await self._bind(pvc, pv)
            return
        sc = classes.get(sc_name)
        if sc is None or not sc.get("provisioner") or sc["provisioner"] == \
                "kubernetes.io/no-provisioner":
            message = ("no persistent volumes available for this claim and no storage class "
                       "is set") if not sc_name else (
                f'storageclass.storage.k8s.io "{sc_name}" not found' if sc is None
                else "no persistent volumes available for this claim")
            self.recorder.event(pvc, NORMAL, "FailedBinding", message)

    async def _bind(self, pvc: Obj, pv: Obj) -> None:
        """Writes the PV's side, then the claim's (either may be done already)."""
        meta = pvc["metadata"]
        if not claim_ref_is(pv, pvc) or not (pv["spec"].get("claimRef") or {}).get("uid"):
            new = copy.deepcopy(pv)
            new["spec"]["claimRef"] = {
                "kind": "PersistentVolumeClaim", "apiVersion": "v1",
                "namespace": meta.get("namespace"), "name": meta["name"], "uid": meta["uid"],
                "resourceVersion": meta.get("resourceVersion", "")}
            new["metadata"].setdefault("annotations", {})[BOUND_BY_CONTROLLER] = "yes"
            pv = await self.client.update("persistentvolumes", new)
        if (pv.get("status") or {}).get("phase") != "Bound":
            new = copy.deepcopy(pv)
            new["status"] = {"phase": "Bound"}
            pv = await self.client.update_status("persistentvolumes", new)
        spec = pvc.get("spec") or {}
        annotations = meta.get("annotations") or {}
        if spec.get("volumeName") != pv["metadata"]["name"] or \
                annotations.get(BIND_COMPLETED) != "yes":
            new = copy.deepcopy(pvc)
            new["spec"]["volumeName"] = pv["metadata"]["name"]
            new["metadata"].setdefault("annotations", {})[BIND_COMPLETED] = "yes"
            new["metadata"]["annotations"][BOUND_BY_CONTROLLER] = "yes"
            pvc = await self.client.update("persistentvolumeclaims", new)
        status = {"phase": "Bound", "accessModes": pv["spec"].get("accessModes") or [],
                  "capacity": dict(pv["spec"].get("capacity") or {})}
        if {k: (pvc.get("status") or {}).get(k) for k in status} != status:
            await self._claim_status(pvc, status)
            self.log.info("claim bound", extra={"kv": {
                "claim": object_key(pvc), "volume": pv["metadata"]["name"]}})

    async def _claim_status(self, pvc: Obj, status: Obj) -> None:
        new = copy.deepcopy(pvc)
        new["status"] = {**(pvc.get("status") or {}), **status}
        await self.client.update_status("persistentvolumeclaims", new)

    async def sync_volume(self, name: str) -> None:
        pv = self.pvs.get(name)
        if pv is None:
            return
        ref = (pv.get("spec") or {}).get("claimRef") or {}
        phase = (pv.get("status") or {}).get("phase")
        if not ref.get("name"):
            if phase != "Available":
                await self._volume_status(pv, "Available")
            return
        claim = self.pvcs.get(f"{ref.get('namespace')}/{ref['name']}")
        if claim is not None and (not ref.get("uid") or ref["uid"] == claim["metadata"]["uid"]):
            if phase not in ("Bound", "Available"):
                await self._volume_status(pv, "Available")
            return  # the claim's sync binds (or finishes binding) it
        if not ref.get("uid"):
            if phase != "Available":  # pre-bound to a claim that does not exist yet
                await self._volume_status(pv, "Available")
            return
        if phase in ("Released", "Failed"):
            return
        new_phase, message = released_phase(pv)
        if new_phase == "Failed":
            self.recorder.event(pv, WARNING, "VolumeFailedDelete", message)
        await self._volume_status(pv, new_phase, message)

    async def _volume_status(self, pv: Obj, phase: str, message: str = "") -> None:
        new = copy.deepcopy(pv)
        new["status"] = {"phase": phase, **({"message": message} if message else {})}
        try:
            await self.client.update_status("persistentvolumes", new)
        except (NotFoundError, ConflictError):
            self.queue.add_after(f"volume:{pv['metadata']['name']}", 0.1)


__all__ = ["BIND_COMPLETED", "LOCAL_PATH_PROVISIONERS", "PersistentVolumeBinder",
           "SELECTED_NODE", "WAIT", "binding_mode", "claim_class", "claim_request",
           "find_match", "node_matches_terms", "pv_allows_node", "pv_fits_claim",
           "released_phase", "storage_of"]

"""The local-path provisioner: a claim of a local-path StorageClass gets a PV that is a
directory on one node, as rancher's local-path-provisioner makes them.

The one idea: **the PV names the node and the path; the node makes and removes
the directory.** The controller manager cannot reach a node's disk (in
docker-compose it is another container), so the PV it creates is a hostPath
`<node's local-path root>/pvc-<claim uid>_<namespace>_<name>` (type
DirectoryOrCreate) with a required node affinity to that node and a claimRef
pre-bound to the claim. The node's kubelet publishes its local-path root in the
Node annotation kubelite.io/local-path-root, creates the directory when a pod
mounts the claim, and, for reclaimPolicy Delete, removes the directory and the
PV once the binder has marked it Released (services/kubelet/volumes.py).

Which node: with volumeBindingMode WaitForFirstConsumer the one the scheduler
chose for the first pod (annotation volume.kubernetes.io/selected-node); with
Immediate the Ready node with a local-path root that holds the fewest of these
volumes (ties by name).

On start it also makes sure a default StorageClass exists: if none is marked
default, it creates `standard` (kubelite.io/local-path, WaitForFirstConsumer,
Delete), as the local clusters that ship this provisioner do.
"""

from __future__ import annotations

from typing import Any

from kubelite.client import Client
from kubelite.errors import AlreadyExistsError, ApiError
from kubelite.events import NORMAL, WARNING, EventRecorder
from kubelite.informer import object_key
from kubelite.volumebinding import (
    LOCAL_PATH_PROVISIONERS,
    PROVISIONED_BY,
    SELECTED_NODE,
    WAIT,
    binding_mode,
    claim_class,
)

from .base import Controller
from .informers import InformerFactory

Obj = dict[str, Any]

LOCAL_PATH_ROOT_ANNOTATION = "kubelite.io/local-path-root"
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
PROVISIONER_NAME = "kubelite.io/local-path"
DEFAULT_CLASS: Obj = {
    "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
    "metadata": {"name": "standard", "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
    "provisioner": PROVISIONER_NAME, "reclaimPolicy": "Delete",
    "volumeBindingMode": WAIT,
}


def volume_name(pvc: Obj) -> str:
    return f"pvc-{pvc['metadata']['uid']}"


def node_ready(node: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def local_path_root(node: Obj | None) -> str:
    return str(((node or {}).get("metadata") or {}).get("annotations", {}).get(
        LOCAL_PATH_ROOT_ANNOTATION) or "")


def new_volume(pvc: Obj, sc: Obj, node: Obj) -> Obj:
    """The PV the provisioner makes for pvc on node."""
    meta, spec = pvc["metadata"], pvc.get("spec") or {}
    node_name = node["metadata"]["name"]
    path = f"{local_path_root(node)}/pvc-{meta['uid']}_{meta.get('namespace')}_{meta['name']}"
    return {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": volume_name(pvc),
                     "annotations": {PROVISIONED_BY: PROVISIONER_NAME,
                                     "local.path.provisioner/selected-node": node_name}},
        "spec": {
            "capacity": {"storage": ((spec.get("resources") or {}).get("requests") or {})
                         .get("storage", "0")},
            "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
            "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy") or "Delete",
            "storageClassName": sc["metadata"]["name"],
            "volumeMode": spec.get("volumeMode") or "Filesystem",
            "hostPath": {"path": path, "type": "DirectoryOrCreate"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node_name]}]}]}},
            "claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1",
                         "namespace": meta.get("namespace"), "name": meta["name"],
                         "uid": meta["uid"]},
        },
    }


class LocalPathProvisioner(Controller[str]):
    name = "local-path-provisioner"

    def __init__(self, client: Client, factory: InformerFactory) -> None:
        self.pvcs = factory.informer("persistentvolumeclaims")
        self.pvs = factory.informer("persistentvolumes")
        self.classes = factory.informer("storageclasses")
        self.nodes = factory.informer("nodes")
        super().__init__(informers=[self.pvcs, self.pvs, self.classes, self.nodes])
        self.client = client
        self.recorder = EventRecorder(client, component="kubelite.io/local-path_provisioner")
        self.pvcs.add_handler(on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new))

    async def run(self, workers: int) -> None:
        await self.ensure_default_class()
        await super().run(workers)

    async def ensure_default_class(self) -> None:
        """Creates `standard` when no StorageClass is the default (a default from the
        start, as a fresh cluster has)."""
        await self.classes.wait_synced()
        if any((c["metadata"].get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true"
               for c in self.classes.list()):
            return
        try:
            await self.client.create("storageclasses", DEFAULT_CLASS)
            self.log.info("default StorageClass created", extra={"kv": {"name": "standard"}})
        except AlreadyExistsError:
            pass

    def _pick_node(self) -> Obj | None:
        counts: dict[str, int] = {}
        for pv in self.pvs.list():
            node = (pv["metadata"].get("annotations") or {}).get(
                "local.path.provisioner/selected-node")
            if node:
                counts[node] = counts.get(node, 0) + 1
        nodes = [n for n in self.nodes.list() if node_ready(n) and local_path_root(n)]
        if not nodes:
            return None
        return min(nodes, key=lambda n: (counts.get(n["metadata"]["name"], 0),
                                         n["metadata"]["name"]))

    async def sync(self, key: str) -> None:
        pvc = self.pvcs.get(key)
        if pvc is None or pvc["metadata"].get("deletionTimestamp"):
            return
        if (pvc.get("spec") or {}).get("volumeName") or \
                (pvc.get("status") or {}).get("phase") == "Bound":
            return
        classes = {c["metadata"]["name"]: c for c in self.classes.list()}
        sc = classes.get(claim_class(pvc))
        if sc is None or sc.get("provisioner") not in LOCAL_PATH_PROVISIONERS:
            return
        if self.pvs.get(volume_name(pvc)) is not None:
            return  # made already; the binder binds it
        if binding_mode(classes, claim_class(pvc)) == WAIT:
            selected = (pvc["metadata"].get("annotations") or {}).get(SELECTED_NODE)
            if not selected:
                return
            node = self.nodes.get(selected)
        else:
            node = self._pick_node()
        if node is None or not local_path_root(node):
            self.recorder.event(pvc, WARNING, "ProvisioningFailed",
                                "no node with a local-path directory to provision on (its "
                                f"kubelet sets the annotation {LOCAL_PATH_ROOT_ANNOTATION})")
            self.queue.add_after(key, 2.0)
            return
        self.recorder.event(pvc, NORMAL, "Provisioning", "External provisioner is "
                            f'provisioning volume for claim "{object_key(pvc)}"')
        try:
            await self.client.create("persistentvolumes", new_volume(pvc, sc, node))
        except AlreadyExistsError:
            return
        except ApiError as err:
            self.recorder.event(pvc, WARNING, "ProvisioningFailed", f"failed to provision "
                                f'volume with StorageClass "{sc["metadata"]["name"]}": {err}')
            raise
        self.recorder.event(pvc, NORMAL, "ProvisioningSucceeded",
                            f"Successfully provisioned volume {volume_name(pvc)}")
        self.log.info("volume provisioned", extra={"kv": {
            "claim": key, "volume": volume_name(pvc), "node": node["metadata"]["name"]}})


__all__ = ["DEFAULT_CLASS", "LocalPathProvisioner", "new_volume", "volume_name"]

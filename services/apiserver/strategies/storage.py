"""Storage kinds: PersistentVolume, PersistentVolumeClaim (v1) and StorageClass
(storage.k8s.io/v1), with Kubernetes' defaults, immutability rules and the
DefaultStorageClass admission.

A claim's spec is fixed once made, except that its storage request may grow
(a resize) and that the binder fills in what was left open: volumeName, and a
storageClassName that was unset (Kubernetes' retroactive default class). A
StorageClass is immutable but for its metadata; a PV's source is fixed.
"""

from __future__ import annotations

import json
from typing import Any

from kubelite.quantity import parse_quantity

from ..validation import Problems
from .base import Obj, Strategy, immutable

DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
BETA_DEFAULT_CLASS_ANNOTATION = "storageclass.beta.kubernetes.io/is-default-class"
PV_SOURCES = ("hostPath", "local", "nfs", "csi", "iscsi", "fc", "rbd", "cephfs", "cinder",
              "awsElasticBlockStore", "gcePersistentDisk", "azureDisk", "azureFile",
              "glusterfs", "flexVolume", "vsphereVolume", "portworxVolume", "quobyte",
              "scaleIO", "storageos", "photonPersistentDisk", "flocker")


def is_default_class(sc: Obj) -> bool:
    annotations = (sc.get("metadata") or {}).get("annotations") or {}
    return "true" in (annotations.get(DEFAULT_CLASS_ANNOTATION),
                      annotations.get(BETA_DEFAULT_CLASS_ANNOTATION))


def default_class(classes: list[Obj]) -> str | None:
    """The default StorageClass's name: of several, the newest (as Kubernetes 1.26+)."""
    defaults = [c for c in classes if is_default_class(c)]
    if not defaults:
        return None
    newest = max(defaults, key=lambda c: (c["metadata"].get("creationTimestamp", ""),
                                          c["metadata"]["name"]))
    return str(newest["metadata"]["name"])


def _storage(obj: Any) -> int | None:
    try:
        return int(parse_quantity(obj))
    except Exception:  # noqa: BLE001 - the schema said it is a quantity; any failure: invalid
        return None


class PersistentVolumeStrategy(Strategy):
    initial_status = {"phase": "Pending"}

    def defaults(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
        spec.setdefault("volumeMode", "Filesystem")

    def check(self, problems: Problems, obj: Obj) -> None:
        spec = obj.get("spec") or {}
        if _storage((spec.get("capacity") or {}).get("storage")) is None:
            problems.add("spec.capacity", "Required value: storage")
        if not spec.get("accessModes"):
            problems.add("spec.accessModes", "Required value")
        sources = [k for k in PV_SOURCES if k in spec]
        if not sources:
            problems.add("spec", "Required value: must specify a volume type")
        elif len(sources) > 1:
            problems.add(f"spec.{sources[1]}", "Forbidden: may not specify more than 1 volume "
                         "type")
        for key in ("hostPath", "local"):
            if key in spec and not str((spec[key] or {}).get("path", "")).startswith("/"):
                problems.add(f"spec.{key}.path", "Invalid value: must be an absolute path")

    def check_immutable(self, old: Obj, new: Obj, problems: Problems) -> None:
        old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
        for key in (*PV_SOURCES, "volumeMode"):
            immutable(problems, f"spec.{key}", old_spec.get(key), new_spec.get(key))


class PersistentVolumeClaimStrategy(Strategy):
    initial_status = {"phase": "Pending"}

    def defaults(self, obj: Obj) -> None:
        obj.setdefault("spec", {}).setdefault("volumeMode", "Filesystem")

    async def admit(self, obj: Obj, read_all: Any) -> None:
        """DefaultStorageClass: a claim that names no class (the field unset, not "")
        gets the default StorageClass, if there is one."""
        spec = obj.setdefault("spec", {})
        if "storageClassName" in spec and spec["storageClassName"] is not None:
            return
        classes = [json.loads(raw) for raw in await read_all("storageclasses")]
        name = default_class(classes)
        if name is not None:
            spec["storageClassName"] = name

    def check(self, problems: Problems, obj: Obj) -> None:
        spec = obj.get("spec") or {}
        if not spec.get("accessModes"):
            problems.add("spec.accessModes", "Required value: at least 1 access mode is "
                         "required")
        request = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
        if _storage(request) is None:
            problems.add("spec.resources[storage]", "Required value")

    def check_immutable(self, old: Obj, new: Obj, problems: Problems) -> None:
        old_spec, new_spec = dict(old.get("spec") or {}), dict(new.get("spec") or {})
        old_req = _storage(((old_spec.get("resources") or {}).get("requests") or {})
                           .get("storage"))
        new_req = _storage(((new_spec.get("resources") or {}).get("requests") or {})
                           .get("storage"))
        if old_req is not None and new_req is not None and new_req < old_req:
            problems.add("spec.resources.requests.storage", "Forbidden: field can not be less "
                         "than previous value")
        for key, empty in (("volumeName", ""), ("storageClassName", None)):
            if old_spec.get(key) in (empty, None) and new_spec.get(key):
                old_spec[key] = new_spec[key]  # the binder filling in what was open
        for spec in (old_spec, new_spec):
            spec.pop("resources", None)
        if old_spec != new_spec:
            problems.add("spec", "Forbidden: spec is immutable after creation except "
                         "resources.requests and volumeAttributesClassName for bound claims")


class StorageClassStrategy(Strategy):
    tracks_generation = False

    def defaults(self, obj: Obj) -> None:
        obj.setdefault("reclaimPolicy", "Delete")
        obj.setdefault("volumeBindingMode", "Immediate")

    def check(self, problems: Problems, obj: Obj) -> None:
        if not obj.get("provisioner"):
            problems.add("provisioner", "Required value")
        mode = obj.get("volumeBindingMode")
        if mode not in ("Immediate", "WaitForFirstConsumer"):
            problems.add("volumeBindingMode", f'Unsupported value: "{mode}": supported values: '
                         '"Immediate", "WaitForFirstConsumer"')
        policy = obj.get("reclaimPolicy")
        if policy not in ("Delete", "Retain"):
            problems.add("reclaimPolicy", f'Unsupported value: "{policy}": supported values: '
                         '"Delete", "Retain"')

    def check_immutable(self, old: Obj, new: Obj, problems: Problems) -> None:
        for key in ("provisioner", "parameters", "reclaimPolicy", "volumeBindingMode"):
            immutable(problems, key, old.get(key), new.get(key))

"""The cluster-scoped kinds: Namespaces (a label naming them, the "kubernetes"
finalizer, phase Active) and Nodes (registered by their kubelet, status included)."""

from __future__ import annotations

from ..validation import Problems, check_node
from .base import Obj, Strategy


class NamespaceStrategy(Strategy):
    """Deleting a namespace makes it Terminating; the namespace controller empties it and
    removes the "kubernetes" entry of spec.finalizers, and that update deletes it."""

    initial_status = {"phase": "Active"}
    terminates = True
    name_rule = "label"

    def finalized(self, old: Obj, new: Obj) -> bool:
        meta = new["metadata"]
        return (bool(meta.get("deletionTimestamp"))
                and not (new.get("spec") or {}).get("finalizers")
                and not meta.get("finalizers"))

    def defaults(self, obj: Obj) -> None:
        name = obj["metadata"]["name"]
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])


class NodeStrategy(Strategy):
    # A kubelet registers its Node with its status, as Kubernetes allows.
    initial_status = None

    def check(self, problems: Problems, obj: Obj) -> None:
        check_node(problems, obj)

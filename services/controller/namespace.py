"""The namespace controller: a Terminating namespace is emptied, then let go.

As in Kubernetes, deleting a namespace only marks it: the apiserver sets
deletionTimestamp and phase Terminating and refuses new content in it. This
controller then deletes every namespaced object in it through the API (pods
get their graceful deletion; an object with finalizers is deleted once and
waited for), reports progress in the namespace's status conditions
(NamespaceContentRemaining, NamespaceFinalizersRemaining,
NamespaceDeletionContentFailure), and once nothing is left removes its
"kubernetes" entry from `spec.finalizers`. kubelite has no namespaces/finalize
subresource: that removal is a plain Update of the namespace, and the update
that leaves a deleted namespace with no finalizer at all deletes it.

It runs in the controller manager, under leader election, so that N apiserver
replicas do not each delete the same objects.
"""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

from kubelite.client import Client
from kubelite.errors import ApiError, NotFoundError
from kubelite.events import EventRecorder
from kubelite.objects import now_rfc3339
from kubelite.resources import RESOURCES, ResourceInfo

from .base import Controller
from .informers import InformerFactory

Obj = dict[str, Any]

FINALIZER = "kubernetes"
CONTENT_REMAINING = "NamespaceContentRemaining"
FINALIZERS_REMAINING = "NamespaceFinalizersRemaining"
CONTENT_FAILURE = "NamespaceDeletionContentFailure"
_CONDITIONS = (CONTENT_FAILURE, CONTENT_REMAINING, FINALIZERS_REMAINING)
# Kubernetes' reasons and messages for a condition that no longer holds.
_CLEARED = {
    CONTENT_FAILURE: ("ContentDeleted",
                      "All content successfully deleted, may be waiting on finalization"),
    CONTENT_REMAINING: ("ContentRemoved", "All content successfully removed"),
    FINALIZERS_REMAINING: ("ContentHasNoFinalizers",
                           "All content-preserving finalizers finished"),
}


def namespaced_resources() -> list[ResourceInfo]:
    """Every namespaced kind, events last so that they record the deletion while they can."""
    kinds = [info for info in RESOURCES if info.namespaced]
    return sorted(kinds, key=lambda info: info.kind == "Event")


class NamespaceController(Controller[str]):
    name = "namespace"

    def __init__(self, client: Client, factory: InformerFactory, *,
                 recorder: EventRecorder | None = None, poll: float = 0.5) -> None:
        self.ns_informer = factory.informer("namespaces")
        super().__init__(informers=[self.ns_informer])
        self.client = client
        self.recorder = recorder or EventRecorder(client, component="namespace-controller")
        self.poll = poll
        self.ns_informer.add_handler(on_add=self._changed,
                                     on_update=lambda old, cur: self._changed(cur))

    def _changed(self, ns: Obj) -> None:
        if (ns.get("metadata") or {}).get("deletionTimestamp"):
            self.enqueue(ns)

    async def sync(self, name: str) -> None:
        ns = self.ns_informer.get(name)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        if FINALIZER not in ((ns.get("spec") or {}).get("finalizers") or ()):
            return  # done by us; other finalizers are someone else's
        failures = await self._delete_content(name)
        remaining, finalizers = await self._remaining(name)
        await self._report(ns, remaining, finalizers, failures)
        if remaining or failures:
            self.queue.add_after(name, self.poll)  # pods terminate, finalizers go: look again
            return
        await self._finalize(name)

    async def _delete_content(self, namespace: str) -> list[str]:
        """Deletes every object in the namespace not yet being deleted; returns failures."""
        failures: list[str] = []
        for info in namespaced_resources():
            try:
                items = (await self.client.list(info.plural, namespace=namespace)).items
            except ApiError as err:
                failures.append(f"{info.plural}: {err}")
                continue
            for obj in items:
                meta = obj["metadata"]
                if meta.get("deletionTimestamp"):
                    continue  # a pod terminating gracefully, or finalizers pending
                try:
                    await self.client.delete(info.plural, meta["name"], namespace=namespace,
                                             uid=meta.get("uid", ""))
                except NotFoundError:
                    pass
                except ApiError as err:
                    failures.append(f'{info.plural} "{meta["name"]}": {err}')
        return failures

    async def _remaining(self, namespace: str) -> tuple[Counter[str], Counter[str]]:
        """Objects left per resource, and objects per finalizer that holds them."""
        remaining: Counter[str] = Counter()
        finalizers: Counter[str] = Counter()
        for info in namespaced_resources():
            for obj in (await self.client.list(info.plural, namespace=namespace)).items:
                remaining[info.plural] += 1
                for finalizer in obj["metadata"].get("finalizers") or ():
                    finalizers[finalizer] += 1
        return remaining, finalizers

    async def _report(self, ns: Obj, remaining: Counter[str], finalizers: Counter[str],
                      failures: list[str]) -> None:
        """Sets the deletion conditions Kubernetes sets, writing only when they change."""
        def condition(type_: str, true: bool, reason: str, message: str) -> Obj:
            if true:
                return {"type": type_, "status": "True", "reason": reason, "message": message}
            reason, message = _CLEARED[type_]
            return {"type": type_, "status": "False", "reason": reason, "message": message}

        content = ", ".join(f"{r} has {n} resource instances"
                            for r, n in sorted(remaining.items()))
        held = ", ".join(f"{f} in {n} resource instances" for f, n in sorted(finalizers.items()))
        wanted = [
            condition(CONTENT_FAILURE, bool(failures), "ContentDeletionFailed",
                      "Failed to delete all resource types, "
                      f"{len(failures)} remaining: {'; '.join(failures)[:900]}"),
            condition(CONTENT_REMAINING, bool(remaining), "SomeResourcesRemain",
                      f"Some resources are remaining: {content}"),
            condition(FINALIZERS_REMAINING, bool(finalizers), "SomeFinalizersRemain",
                      f"Some content in the namespace has finalizers remaining: {held}"),
        ]
        status = ns.get("status") or {}
        current = {c.get("type"): c for c in status.get("conditions") or ()}
        if all({k: current.get(c["type"], {}).get(k) for k in ("status", "reason", "message")}
               == {k: c[k] for k in ("status", "reason", "message")} for c in wanted):
            return
        stamp = now_rfc3339()
        conditions = [c for c in status.get("conditions") or () if c.get("type")
                      not in _CONDITIONS]
        for c in wanted:
            old = current.get(c["type"])
            same = old is not None and old.get("status") == c["status"]
            conditions.append({**c, "lastTransitionTime":
                               old.get("lastTransitionTime") if same else stamp})
        updated = copy.deepcopy(ns)
        updated["status"] = {**status, "conditions": conditions}
        try:
            await self.client.update_status("namespaces", updated)
        except NotFoundError:
            pass

    async def _finalize(self, name: str) -> None:
        """Removes our finalizer from the live namespace (which the apiserver then deletes)."""
        try:
            ns = await self.client.get("namespaces", name)
        except NotFoundError:
            return
        spec = ns.setdefault("spec", {})
        spec["finalizers"] = [f for f in spec.get("finalizers") or () if f != FINALIZER]
        await self.client.update("namespaces", ns)
        self.log.info("namespace emptied; finalizer removed", extra={"kv": {"namespace": name}})


__all__ = ["FINALIZER", "NamespaceController", "namespaced_resources"]

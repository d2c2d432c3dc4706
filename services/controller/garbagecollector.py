"""The garbage collector: deleting an owner deletes what it owns.

An object lists its owners in `metadata.ownerReferences`. The collector keeps
one informer per watched resource, each indexed by owner uid, so "who depends
on X" is a dictionary lookup. Its work items are objects (resource,
namespace, name, uid), and one level-triggered `sync(item)` decides, from the
current state alone, what that object needs (Kubernetes' attemptToDeleteItem,
processDeletingDependentsItem and orphanDependents in one place):

- **The object is gone.** Its dependents now dangle: queue them.
- **It is being deleted with the `orphan` finalizer.** Remove the references
  to it from every dependent, then remove the finalizer (the apiserver then
  deletes the object).
- **It is being deleted with the `foregroundDeletion` finalizer.** Queue its
  dependents (they see their owner waiting and are deleted, those with
  blockOwnerDeletion first); once no dependent that blocks owner deletion is
  left, remove the finalizer.
- **It has owners.** Classify each: *solid* (exists), *dangling* (absent, or
  a different uid under that name) or *waiting* (being deleted in the
  foreground). With a solid owner the object stays (dangling and waiting
  references are dropped from it). Otherwise it is deleted: in the foreground
  if an owner waits and the object has dependents of its own (so the wait
  cascades), else with the policy its own finalizers ask for, else in the
  background.

An owner is judged absent only after an uncached GET says so (its uid is then
remembered), because a cache may simply not have seen a new owner yet. That
GET is also what finds dependents whose owner was deleted while the collector
was down: every object with owners is checked once when the caches fill.

Foreground deletion waits only for dependents whose reference to the owner
says blockOwnerDeletion, as Kubernetes does; the others are deleted too, but
the owner does not wait for them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kubelite.client import Client
from kubelite.errors import ConflictError, InvalidError, NotFoundError, PreconditionFailedError
from kubelite.events import EventRecorder
from kubelite.informer import Informer
from kubelite.resources import for_kind

from .base import Controller
from .controllerref import owner_references
from .informers import InformerFactory

Obj = dict[str, Any]

OWNER_UID_INDEX = "gc-owner-uid"
ORPHAN_FINALIZER = "orphan"
FOREGROUND_FINALIZER = "foregroundDeletion"
DEFAULT_RESOURCES = ("pods", "replicasets", "deployments", "services", "endpoints",
                     "configmaps", "horizontalpodautoscalers", "replicationcontrollers", "jobs",
                     "cronjobs", "controllerrevisions", "persistentvolumeclaims",
                     "statefulsets", "daemonsets")
_ABSENT_CACHE_SIZE = 4096
_WRITE_ATTEMPTS = 3

SOLID, DANGLING, WAITING = "solid", "dangling", "waiting"


def owner_uids(obj: Obj) -> list[str]:
    """Index function: the uids of an object's owners."""
    return [ref["uid"] for ref in owner_references(obj) if ref.get("uid")]


@dataclass(frozen=True)
class Item:
    """A work item: one object, by resource and identity."""

    resource: str
    namespace: str
    name: str
    uid: str

    @classmethod
    def of(cls, resource: str, obj: Obj) -> Item:
        meta = obj.get("metadata") or {}
        return cls(resource, meta.get("namespace") or "", meta.get("name") or "",
                   meta.get("uid") or "")

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    def __str__(self) -> str:
        return f"{self.resource}/{self.key}"


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _finalizers(obj: Obj) -> list[str]:
    return list(_meta(obj).get("finalizers") or ())


def _deleting(obj: Obj) -> bool:
    return bool(_meta(obj).get("deletionTimestamp"))


def _ref_to(obj: Obj, uid: str) -> Obj | None:
    for ref in owner_references(obj):
        if ref.get("uid") == uid:
            return ref
    return None


class GarbageCollector(Controller[Item]):
    name = "garbagecollector"

    def __init__(self, client: Client, factory: InformerFactory, *,
                 resources: Sequence[str] = DEFAULT_RESOURCES) -> None:
        self.by_resource: dict[str, Informer] = {}
        for resource in resources:
            informer = factory.informer(resource)
            factory.ensure_index(resource, OWNER_UID_INDEX, owner_uids)
            self.by_resource[resource] = informer
        super().__init__(informers=list(self.by_resource.values()))
        self.client = client
        self.recorder = EventRecorder(client, component="garbage-collector-controller")
        self._absent: OrderedDict[str, None] = OrderedDict()
        for resource, informer in self.by_resource.items():
            informer.add_handler(
                on_add=lambda obj, r=resource: self._observe(r, None, obj),
                on_update=lambda old, cur, r=resource: self._observe(r, old, cur),
                on_delete=lambda obj, r=resource: self._on_delete(r, obj),
            )

    def object_for(self, key: Item) -> Obj | None:
        informer = self.by_resource.get(key.resource)
        obj = informer.get(key.key) if informer is not None else None
        return obj if obj is not None and _meta(obj).get("uid") == key.uid else None

    # -- handlers ---------------------------------------------------------------

    def _observe(self, resource: str, old: Obj | None, cur: Obj) -> None:
        meta = _meta(cur)
        if old is not None and _meta(old).get("resourceVersion") == meta.get("resourceVersion"):
            return
        refs_changed = old is None or owner_references(old) != owner_references(cur)
        if meta.get("ownerReferences") and refs_changed:
            self.queue.add(Item.of(resource, cur))
        if refs_changed and old is not None:
            self._enqueue_waiting_owners(old)  # a released dependent may unblock its owner
        if _deleting(cur) and {ORPHAN_FINALIZER, FOREGROUND_FINALIZER} & set(_finalizers(cur)):
            self.queue.add(Item.of(resource, cur))

    def _on_delete(self, resource: str, obj: Obj) -> None:
        uid = _meta(obj).get("uid") or ""
        self._enqueue_dependents(uid)
        self._enqueue_waiting_owners(obj)

    def _dependents(self, uid: str) -> list[tuple[str, Obj]]:
        return [(resource, dep) for resource, informer in self.by_resource.items()
                for dep in informer.by_index(OWNER_UID_INDEX, uid)]

    def _enqueue_dependents(self, uid: str) -> None:
        for resource, dep in self._dependents(uid):
            self.queue.add(Item.of(resource, dep))

    def _cached_owner(self, ref: Obj, namespace: str) -> tuple[str, Obj | None]:
        """(resource, the cached owner with the reference's uid, or None)."""
        try:
            info = for_kind(ref.get("apiVersion", ""), ref.get("kind", ""))
        except InvalidError:
            return "", None
        informer = self.by_resource.get(info.plural)
        if informer is None:
            return info.plural, None
        key = f"{namespace}/{ref.get('name')}" if info.namespaced else ref.get("name", "")
        owner = informer.get(key)
        if owner is None or _meta(owner).get("uid") != ref.get("uid"):
            return info.plural, None
        return info.plural, owner

    def _enqueue_waiting_owners(self, obj: Obj) -> None:
        namespace = _meta(obj).get("namespace") or ""
        for ref in owner_references(obj):
            resource, owner = self._cached_owner(ref, namespace)
            if owner is not None and _deleting(owner):
                self.queue.add(Item.of(resource, owner))

    # -- sync ---------------------------------------------------------------------

    async def sync(self, item: Item) -> None:
        informer = self.by_resource.get(item.resource)
        if informer is None:
            return
        obj = informer.get(item.key)
        if obj is None or _meta(obj).get("uid") != item.uid:
            self._enqueue_dependents(item.uid)
            return
        finalizers = _finalizers(obj)
        if _deleting(obj):
            if ORPHAN_FINALIZER in finalizers:
                await self._orphan_dependents(item, obj)
            elif FOREGROUND_FINALIZER in finalizers:
                await self._process_deleting_dependents(item, obj)
            return
        if owner_references(obj):
            await self._attempt_to_delete(item, obj)

    async def _classify(self, ref: Obj, namespace: str) -> str:
        uid = ref.get("uid") or ""
        if uid in self._absent:
            return DANGLING
        try:
            info = for_kind(ref.get("apiVersion", ""), ref.get("kind", ""))
        except InvalidError:
            # A kind this cluster does not serve: we cannot know, so never delete for it.
            self.log.info("owner of unknown kind", extra={"kv": {
                "apiVersion": ref.get("apiVersion"), "kind": ref.get("kind")}})
            return SOLID
        _, owner = self._cached_owner(ref, namespace)
        if owner is None:
            try:
                owner = await self.client.get(info.plural, ref.get("name", ""),
                                              namespace=namespace if info.namespaced else None)
            except NotFoundError:
                owner = None
            if owner is None or _meta(owner).get("uid") != uid:
                self._remember_absent(uid)
                return DANGLING
        if _deleting(owner) and FOREGROUND_FINALIZER in _finalizers(owner):
            return WAITING
        return SOLID

    def _remember_absent(self, uid: str) -> None:
        self._absent[uid] = None
        self._absent.move_to_end(uid)
        while len(self._absent) > _ABSENT_CACHE_SIZE:
            self._absent.popitem(last=False)

    async def _attempt_to_delete(self, item: Item, obj: Obj) -> None:
        states: dict[str, list[Obj]] = {SOLID: [], DANGLING: [], WAITING: []}
        for ref in owner_references(obj):
            states[await self._classify(ref, item.namespace)].append(ref)
        if states[SOLID]:
            stale = {ref.get("uid") for ref in states[DANGLING] + states[WAITING]}
            if stale:
                await self._remove_owner_refs(item, obj, stale)
            return
        if states[WAITING] and self._dependents(item.uid):
            # Our owner waits for us, and we have dependents: make the wait cascade.
            # Break the cycle where a dependent of ours waits for us as well.
            for resource, dep in self._dependents(item.uid):
                if _deleting(dep) and FOREGROUND_FINALIZER in _finalizers(dep):
                    await self._unblock(Item.of(resource, dep), dep, item.uid)
            await self._delete(item, "Foreground")
            return
        finalizers = _finalizers(obj)
        if ORPHAN_FINALIZER in finalizers:
            policy = "Orphan"
        elif FOREGROUND_FINALIZER in finalizers:
            policy = "Foreground"
        else:
            policy = "Background"
        await self._delete(item, policy)

    async def _delete(self, item: Item, policy: str) -> None:
        self.log.info("deleting object", extra={"kv": {"object": str(item),
                                                        "propagation": policy}})
        try:
            await self.client.delete(item.resource, item.name, namespace=item.namespace or None,
                                     uid=item.uid, propagation_policy=policy)
        except (NotFoundError, PreconditionFailedError):
            pass  # already gone, or replaced by a namesake we must not touch

    async def _process_deleting_dependents(self, item: Item, owner: Obj) -> None:
        dependents = self._dependents(item.uid)
        blocking = [(r, d) for r, d in dependents if (_ref_to(d, item.uid) or {}).get(
            "blockOwnerDeletion")]
        if not blocking:
            await self._remove_finalizer(item, owner, FOREGROUND_FINALIZER)
            return
        blocking_ids = {id(d) for _, d in blocking}
        others = [(r, d) for r, d in dependents if id(d) not in blocking_ids]
        for resource, dep in blocking + others:
            self.queue.add(Item.of(resource, dep))

    async def _orphan_dependents(self, item: Item, owner: Obj) -> None:
        for resource, dep in self._dependents(item.uid):
            await self._remove_owner_refs(Item.of(resource, dep), dep, {item.uid})
        await self._remove_finalizer(item, owner, ORPHAN_FINALIZER)

    # -- writes, each pinned to the resourceVersion it was computed from ----------

    async def _patch_meta(self, item: Item, obj: Obj, change: Any) -> None:
        """Applies change(metadata) -> patch-or-None, re-reading on conflict."""
        current = obj
        for attempt in range(_WRITE_ATTEMPTS):
            if attempt:
                try:
                    current = await self.client.get(item.resource, item.name,
                                                    namespace=item.namespace or None)
                except NotFoundError:
                    return
                if _meta(current).get("uid") != item.uid:
                    return
            patch = change(_meta(current))
            if patch is None:
                return
            patch["resourceVersion"] = _meta(current).get("resourceVersion")
            try:
                await self.client.patch(item.resource, item.name, {"metadata": patch},
                                        namespace=item.namespace or None)
                return
            except NotFoundError:
                return
            except ConflictError:
                if attempt == _WRITE_ATTEMPTS - 1:
                    raise

    async def _remove_owner_refs(self, item: Item, obj: Obj, uids: set[str]) -> None:
        def change(meta: Obj) -> Obj | None:
            refs = list(meta.get("ownerReferences") or ())
            kept = [r for r in refs if r.get("uid") not in uids]
            if len(kept) == len(refs):
                return None
            return {"ownerReferences": kept or None}

        self.log.info("removing owner references", extra={"kv": {
            "object": str(item), "owners": ",".join(sorted(uids))}})
        await self._patch_meta(item, obj, change)

    async def _unblock(self, item: Item, obj: Obj, owner_uid: str) -> None:
        def change(meta: Obj) -> Obj | None:
            refs = [dict(r) for r in meta.get("ownerReferences") or ()]
            touched = False
            for ref in refs:
                if ref.get("uid") == owner_uid and ref.get("blockOwnerDeletion"):
                    ref["blockOwnerDeletion"] = False
                    touched = True
            return {"ownerReferences": refs} if touched else None

        await self._patch_meta(item, obj, change)

    async def _remove_finalizer(self, item: Item, obj: Obj, finalizer: str) -> None:
        def change(meta: Obj) -> Obj | None:
            finalizers = list(meta.get("finalizers") or ())
            if finalizer not in finalizers:
                return None
            kept = [f for f in finalizers if f != finalizer]
            return {"finalizers": kept or None}

        self.log.info("removing finalizer", extra={"kv": {"object": str(item),
                                                           "finalizer": finalizer}})
        await self._patch_meta(item, obj, change)


__all__ = [
    "DEFAULT_RESOURCES",
    "FOREGROUND_FINALIZER",
    "GarbageCollector",
    "Item",
    "ORPHAN_FINALIZER",
    "OWNER_UID_INDEX",
    "owner_uids",
]

"""ownerReferences: who controls an object, and claiming objects by selector.

The one idea, from Kubernetes' `controller_ref_manager.go`: an owner's
selector decides which objects it *should* own, and the controller reference
(the ownerReference with `controller: true`) records which it *does*. A sync
first reconciles the two: it adopts orphans that match (adds a controller
reference) and releases objects it owns that no longer match (removes it).
Objects controlled by someone else are never touched.

Adoption checks once, with an uncached GET, that the owner still exists and is
not being deleted, because an owner on its way out must not grab new objects.

Writes are JSON merge patches that replace the whole `ownerReferences` list,
so each is pinned to the resourceVersion it was computed from; a conflict
re-reads the object and tries again.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from kubelite.client import Client
from kubelite.errors import ConflictError, NotFoundError
from kubelite.selectors import LabelSelector, selector_from_label_selector_spec

Obj = dict[str, Any]

_WRITE_ATTEMPTS = 3


def owner_references(obj: Obj) -> list[Obj]:
    return list((obj.get("metadata") or {}).get("ownerReferences") or ())


def controller_ref(obj: Obj) -> Obj | None:
    """The ownerReference with controller: true, if any."""
    for ref in owner_references(obj):
        if ref.get("controller"):
            return ref
    return None


def controller_ref_for(owner: Obj) -> Obj:
    """A controller reference to owner (blockOwnerDeletion: true, as Kubernetes sets it)."""
    meta = owner.get("metadata") or {}
    return {
        "apiVersion": owner.get("apiVersion", ""),
        "kind": owner.get("kind", ""),
        "name": meta.get("name", ""),
        "uid": meta.get("uid", ""),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def is_controlled_by(obj: Obj, owner: Obj) -> bool:
    ref = controller_ref(obj)
    return ref is not None and ref.get("uid") == (owner.get("metadata") or {}).get("uid")


def _deleting(obj: Obj) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


class OwnerRecheckError(Exception):
    """The owner was deleted or replaced since the cache saw it: do not adopt for it."""


class ControllerRefManager:
    """Claims objects of one resource for one owner (see the module docstring)."""

    def __init__(self, client: Client, *, owner: Obj, owner_resource: str,
                 selector: LabelSelector, resource: str) -> None:
        self.client = client
        self.owner = owner
        self.owner_resource = owner_resource
        self.selector = selector
        self.resource = resource
        meta = owner.get("metadata") or {}
        self._uid = meta.get("uid", "")
        self._namespace = meta.get("namespace") or ""
        self._rechecked = False
        self._owner_gone = False

    async def claim(self, objs: Sequence[Obj]) -> list[Obj]:
        """The objects owner controls after adopting and releasing as its selector says.

        Raises the first write error after trying every object, so that the
        caller's sync is retried, as Kubernetes' ClaimPods does.
        """
        claimed: list[Obj] = []
        first_error: Exception | None = None
        for obj in objs:
            try:
                result = await self._claim_one(obj)
            except (NotFoundError, OwnerRecheckError):
                continue  # gone, or our owner is leaving: nothing to claim now
            except Exception as err:  # noqa: BLE001 - retried by the caller's sync
                first_error = first_error or err
                continue
            if result is not None:
                claimed.append(result)
        if first_error is not None:
            raise first_error
        return claimed

    async def _claim_one(self, obj: Obj) -> Obj | None:
        ref = controller_ref(obj)
        if ref is not None:
            if ref.get("uid") != self._uid:
                return None  # controlled by someone else
            if self.selector.matches_object(obj):
                return obj
            if _deleting(self.owner):
                return None  # an owner being deleted lets the GC handle its objects
            await self._release(obj)
            return None
        if _deleting(self.owner) or _deleting(obj) or not self.selector.matches_object(obj):
            return None
        return await self._adopt(obj)

    async def _recheck_owner(self) -> None:
        if self._rechecked:
            if self._owner_gone:
                raise OwnerRecheckError("owner is gone or being deleted")
            return
        self._rechecked = True
        meta = self.owner.get("metadata") or {}
        try:
            fresh = await self.client.get(self.owner_resource, meta.get("name", ""),
                                          namespace=self._namespace)
        except NotFoundError:
            fresh = None
        if (fresh is None or (fresh.get("metadata") or {}).get("uid") != self._uid
                or _deleting(fresh)):
            self._owner_gone = True
            raise OwnerRecheckError(f"{self.owner_resource} {meta.get('name')} has just been "
                                    "deleted or replaced")

    async def _adopt(self, obj: Obj) -> Obj | None:
        await self._recheck_owner()
        current = obj
        for attempt in range(_WRITE_ATTEMPTS):
            if attempt:
                current = await self.client.get(self.resource, current["metadata"]["name"],
                                                 namespace=self._namespace)
                if (controller_ref(current) is not None or _deleting(current)
                        or not self.selector.matches_object(current)):
                    return current if is_controlled_by(current, self.owner) else None
            refs = [r for r in owner_references(current) if r.get("uid") != self._uid]
            refs.append(controller_ref_for(self.owner))
            patch = {"metadata": {"ownerReferences": refs,
                                  "resourceVersion": current["metadata"]["resourceVersion"]}}
            try:
                return await self.client.patch(self.resource, current["metadata"]["name"],
                                               patch, namespace=self._namespace)
            except ConflictError:
                if attempt == _WRITE_ATTEMPTS - 1:
                    raise
        return None

    async def _release(self, obj: Obj) -> None:
        current = obj
        for attempt in range(_WRITE_ATTEMPTS):
            if attempt:
                current = await self.client.get(self.resource, current["metadata"]["name"],
                                                namespace=self._namespace)
                if not any(r.get("uid") == self._uid for r in owner_references(current)):
                    return
            refs = [r for r in owner_references(current) if r.get("uid") != self._uid]
            patch = {"metadata": {"ownerReferences": refs or None,
                                  "resourceVersion": current["metadata"]["resourceVersion"]}}
            try:
                await self.client.patch(self.resource, current["metadata"]["name"], patch,
                                        namespace=self._namespace)
                return
            except NotFoundError:
                return
            except ConflictError:
                if attempt == _WRITE_ATTEMPTS - 1:
                    raise




_SELECTOR_CACHE: dict[str, LabelSelector] = {}
_SELECTOR_CACHE_SIZE = 4096


def selector_of(obj: Obj) -> LabelSelector:
    """The parsed `spec.selector` of a workload, memoised by its JSON text.

    A selector is parsed once however many pod events consult it. Raises
    InvalidError for a malformed selector (the apiserver validates them, so
    that means a bug or an old object).
    """
    spec = (obj.get("spec") or {}).get("selector")
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    selector = _SELECTOR_CACHE.get(text)
    if selector is None:
        selector = selector_from_label_selector_spec(spec)
        if len(_SELECTOR_CACHE) >= _SELECTOR_CACHE_SIZE:
            _SELECTOR_CACHE.clear()
        _SELECTOR_CACHE[text] = selector
    return selector


__all__ = [
    "ControllerRefManager",
    "OwnerRecheckError",
    "controller_ref",
    "controller_ref_for",
    "is_controlled_by",
    "owner_references",
    "selector_of",
]

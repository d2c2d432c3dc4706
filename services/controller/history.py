"""Controller history: the ControllerRevisions a DaemonSet or a StatefulSet keeps.

As Kubernetes' `pkg/controller/history`: each distinct pod template an owner
has run is one ControllerRevision, named `<owner>-<hash>`, holding the
template as a strategic-merge patch (`{"spec": {"template": {..., "$patch":
"replace"}}}`, what `kubectl rollout undo` applies) and a `revision` number
that grows with each new template. Rolling back to an old template does not
copy it: the controller renumbers the old revision to the next number. The
owner's pods carry the hash as the `controller-revision-hash` label.

The hash is the one of `templatehash` (FNV-32a over canonical JSON, then a
wordless alphabet), so equal data always gives the same name. Two different
templates with one hash are told apart by `status.collisionCount`, which is
fed into the hash: `create_revision` bumps it when the name is taken by other
data, and the owner records it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

from kubelite.client import Client
from kubelite.errors import AlreadyExistsError, NotFoundError

from .controllerref import controller_ref, controller_ref_for
from .templatehash import compute_hash

Obj = dict[str, Any]

CONTROLLER_REVISION_HASH_LABEL = "controller-revision-hash"
# Kubernetes keeps the name within 253 characters: at most 223 of the owner's name.
_MAX_PREFIX = 223
_COLLISION_ATTEMPTS = 10


def revision_data(template: Obj) -> Obj:
    """A pod template as a revision's data, the patch Kubernetes stores."""
    return {"spec": {"template": {**copy.deepcopy(template), "$patch": "replace"}}}


def template_of(revision: Obj) -> Obj:
    """The pod template a revision holds."""
    template = dict(((revision.get("data") or {}).get("spec") or {}).get("template") or {})
    template.pop("$patch", None)
    return copy.deepcopy(template)


def hash_revision(data: Obj, collision_count: int | None = None) -> str:
    return compute_hash(data, collision_count)


def revision_name(owner_name: str, hash_: str) -> str:
    return f"{owner_name[:_MAX_PREFIX]}-{hash_}"


def new_revision(owner: Obj, data: Obj, revision: int, labels: dict[str, str],
                 collision_count: int | None = None) -> Obj:
    """An unsaved ControllerRevision of owner's data, labelled with its hash."""
    meta = owner.get("metadata") or {}
    hash_ = hash_revision(data, collision_count)
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "name": revision_name(meta.get("name", ""), hash_),
            "namespace": meta.get("namespace", ""),
            "labels": {**labels, CONTROLLER_REVISION_HASH_LABEL: hash_},
            "ownerReferences": [controller_ref_for(owner)],
        },
        "data": copy.deepcopy(data),
        "revision": revision,
    }


def owned_revisions(revisions: Iterable[Obj], owner: Obj) -> list[Obj]:
    """The revisions whose controller reference is owner."""
    uid = (owner.get("metadata") or {}).get("uid")
    return [r for r in revisions if (ref := controller_ref(r)) is not None
            and ref.get("uid") == uid]


def _sort_key(revision: Obj) -> tuple[int, str, str]:
    meta = revision.get("metadata") or {}
    return (int(revision.get("revision") or 0), meta.get("creationTimestamp") or "",
            meta.get("name") or "")


def sort_revisions(revisions: Iterable[Obj]) -> list[Obj]:
    """Oldest first: by revision number, then creation time, then name."""
    return sorted(revisions, key=_sort_key)


def next_revision(revisions: Iterable[Obj]) -> int:
    """The number a new revision gets: one more than the highest (1 for the first)."""
    return max((int(r.get("revision") or 0) for r in revisions), default=0) + 1


def _hash_label(revision: Obj) -> str | None:
    return ((revision.get("metadata") or {}).get("labels") or {}).get(
        CONTROLLER_REVISION_HASH_LABEL)


def equal_revisions(a: Obj, b: Obj) -> bool:
    """Same data (and, where both carry one, the same hash label)."""
    ha, hb = _hash_label(a), _hash_label(b)
    if ha is not None and hb is not None and ha != hb:
        return False
    return (a.get("data") or {}) == (b.get("data") or {})


def find_equal_revisions(revisions: Iterable[Obj], needle: Obj) -> list[Obj]:
    return [r for r in revisions if equal_revisions(r, needle)]


async def create_revision(client: Client, revision: Obj,
                          collision_count: int) -> tuple[Obj, int]:
    """Stores revision, or finds it stored; returns (the stored one, the collision count).

    A name already taken by the same data is that revision. A name taken by
    other data is a hash collision: the count goes up and the name is
    computed again, as Kubernetes' `CreateControllerRevision` does.
    """
    meta = revision["metadata"]
    namespace = meta.get("namespace") or None
    refs = meta.get("ownerReferences") or []
    owner_name = refs[0]["name"] if refs else meta["name"].rsplit("-", 1)[0]
    count = collision_count
    for _ in range(_COLLISION_ATTEMPTS):
        hash_ = hash_revision(revision["data"], count if count else None)
        candidate = copy.deepcopy(revision)
        candidate["metadata"]["name"] = revision_name(owner_name, hash_)
        candidate["metadata"].setdefault("labels", {})[CONTROLLER_REVISION_HASH_LABEL] = hash_
        try:
            return await client.create("controllerrevisions", candidate,
                                       namespace=namespace), count
        except AlreadyExistsError:
            pass
        try:
            existing = await client.get("controllerrevisions", candidate["metadata"]["name"],
                                        namespace=namespace)
        except NotFoundError:
            continue  # deleted meanwhile: try the same name again
        if (existing.get("data") or {}) == candidate["data"]:
            return existing, count
        count += 1
    raise AlreadyExistsError(f"controllerrevisions \"{owner_name}\": no free name after "
                             f"{_COLLISION_ATTEMPTS} hash collisions")


async def update_revision_number(client: Client, revision: Obj, number: int) -> Obj:
    """Renumbers a revision (a rollback to an old template makes it the newest)."""
    if int(revision.get("revision") or 0) == number:
        return revision
    meta = revision.get("metadata") or {}
    return await client.patch("controllerrevisions", meta.get("name", ""),
                              {"revision": number}, namespace=meta.get("namespace") or None)


async def truncate_history(client: Client, revisions: list[Obj], live: set[str],
                           limit: int) -> None:
    """Deletes the oldest revisions beyond `limit`, never one named in `live`."""
    old = [r for r in sort_revisions(revisions)
           if (r.get("metadata") or {}).get("name") not in live]
    for revision in old[:max(0, len(old) - limit)]:
        meta = revision.get("metadata") or {}
        try:
            await client.delete("controllerrevisions", meta.get("name", ""),
                                namespace=meta.get("namespace") or None,
                                uid=meta.get("uid", ""))
        except NotFoundError:
            pass


__all__ = [
    "CONTROLLER_REVISION_HASH_LABEL", "create_revision", "equal_revisions",
    "find_equal_revisions", "hash_revision", "new_revision", "next_revision",
    "owned_revisions", "revision_data", "revision_name", "sort_revisions", "template_of",
    "truncate_history", "update_revision_number",
]

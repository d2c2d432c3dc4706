"""The verbs: what Create, Update, Delete and friends mean for an object.

This is the apiserver's strategy layer (Kubernetes' registry/rest strategies):
typing, validation, defaults, which fields each verb may change, generation,
graceful deletion and finalizers, and the namespace lifecycle. Storage does the
atomic compare-and-swap; this layer decides what to swap in.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kubelite import selectors
from kubelite.errors import (
    AlreadyExistsError,
    BadRequestError,
    Cause,
    ConflictError,
    InvalidError,
    NotFoundError,
    PreconditionFailedError,
    UnavailableError,
    clip,
)
from kubelite.objects import merge_patch, now_rfc3339
from kubelite.resources import ResourceInfo, lookup

from . import strategies
from .allocators import CLUSTER_IP, Claim, ServiceAllocator
from .decode import drop_nulls, loads_object
from .storage import RV_PLACEHOLDER, AllocationConflict, Storage, split_serialized
from .strategies import Strategy
from .validation import check_request_name, show, validate_schema

log = logging.getLogger("kubelite.apiserver.registry")

MAX_OBJECT_BYTES = 1536 * 1024  # 1.5 MiB, as etcd's default request limit
# Longer than any real grace period, short enough that now + grace is a date.
MAX_GRACE_SECONDS = 2**31 - 1
PROTECTED_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_GENERATE_CHARS = "bcdfghjklmnpqrstvwxz2456789"
_SYSTEM_META = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
                "generation", "resourceVersion", "name", "namespace", "selfLink")
_META_ORDER = ("name", "generateName", "namespace", "uid", "resourceVersion")
_CONFLICT_RETRIES = 20


@dataclass
class Result:
    """An object as stored (JSON) and the warnings for the caller."""

    raw: bytes
    warnings: list[str] = field(default_factory=list)


@dataclass
class Page:
    items: list[bytes]
    revision: int
    continue_token: str


def _ordered(info: ResourceInfo, obj: dict[str, Any]) -> dict[str, Any]:
    """The object in Kubernetes' field order, with the revision placeholder in metadata.

    apiVersion and kind come from the resource table and name, namespace and uid
    are validated or generated, so the placeholder is the first string that could
    hold it (see storage.split_serialized).
    """
    meta = obj.get("metadata") or {}
    ordered_meta = {k: meta[k] for k in _META_ORDER if k in meta}
    ordered_meta["resourceVersion"] = RV_PLACEHOLDER
    ordered_meta.update({k: v for k, v in meta.items() if k not in ordered_meta})
    out = {"apiVersion": info.api_version, "kind": info.kind, "metadata": ordered_meta}
    out.update({k: v for k, v in obj.items() if k not in out})
    return out


def _content(obj: dict[str, Any]) -> dict[str, Any]:
    """Everything that is neither metadata nor status: what bumps generation."""
    return {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata", "status")}


def selector_view(obj: dict[str, Any]) -> dict[str, Any]:
    """The fields label and field selectors read, kept with each event as its 'before'."""
    meta = obj.get("metadata") or {}
    return {
        "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace"),
                     "labels": meta.get("labels") or {}},
        "spec": {"nodeName": (obj.get("spec") or {}).get("nodeName")},
        "status": {"phase": (obj.get("status") or {}).get("phase")},
    }


def _rv(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _json_object(body: bytes, what: str = "object") -> dict[str, Any]:
    obj = loads_object(body, what)
    return obj if what == "patch" else drop_nulls(obj)  # in a patch, null means delete


def encode_continue(revision: int, key: str) -> str:
    raw = json.dumps({"rv": revision, "key": key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_continue(token: str) -> tuple[int, str]:
    try:
        data = loads_object(base64.urlsafe_b64decode(token.encode()), "continue")
        rv, key = data["rv"], data["key"]
    except (ValueError, KeyError, TypeError, binascii.Error, BadRequestError):
        rv = key = None
    if not (isinstance(rv, int) and rv >= 0 and isinstance(key, str)):
        raise BadRequestError("continue: Invalid value: the continue token is malformed",
                              field="continue")
    return rv, key


class Registry:
    def __init__(self, storage: Storage, *, schema_version: str,
                 services: ServiceAllocator | None = None,
                 toleration_seconds: tuple[int, int] = (300, 300)) -> None:
        self.storage = storage
        self.services = services or ServiceAllocator("127.96.0.0/16", (30000, 32767))
        self.schema_version = schema_version
        self.strategies = strategies.build(allocator=self.services,
                                           toleration_seconds=toleration_seconds)

    # -- helpers ---------------------------------------------------------------

    def strategy(self, info: ResourceInfo) -> Strategy:
        return self.strategies[info.kind]

    def _namespace(self, info: ResourceInfo, requested: str, obj: dict[str, Any] | None) -> str:
        if not info.namespaced:
            return ""
        in_obj = ((obj or {}).get("metadata") or {}).get("namespace") or ""
        if requested and in_obj and requested != in_obj:
            raise InvalidError(
                "the namespace of the provided object does not match the namespace sent on "
                "the request", field="metadata.namespace")
        return requested or in_obj or "default"

    def _typed(self, info: ResourceInfo, obj: dict[str, Any]) -> None:
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if api_version in (None, "") and kind in (None, ""):
            obj["apiVersion"], obj["kind"] = info.api_version, info.kind
            return
        if api_version != info.api_version or kind != info.kind:
            raise InvalidError(
                f"the object is {show(api_version)}/{show(kind)} but the request is for "
                f"{info.api_version}/{info.kind} ({info.plural})", field="kind")

    def _serialize(self, info: ResourceInfo, obj: dict[str, Any]) -> tuple[str, str]:
        parts = split_serialized(_ordered(info, obj))
        size = len(parts[0].encode()) + len(parts[1].encode()) + 20
        if size > MAX_OBJECT_BYTES:
            raise InvalidError(
                f'{info.kind} "{obj["metadata"].get("name", "")}" is invalid: the object is too '
                f"large: {size} bytes, the limit is {MAX_OBJECT_BYTES} bytes (1.5 MiB)")
        return parts

    async def _read(self, info: ResourceInfo, namespace: str, name: str) -> dict[str, Any]:
        raw = await self.storage.get(info.plural, namespace, name)
        if raw is None:
            raise NotFoundError(f'{info.qualified_plural} "{name}" not found')
        return json.loads(raw)

    # -- create ----------------------------------------------------------------

    async def create(self, info: ResourceInfo, namespace: str, body: bytes) -> Result:
        obj = _json_object(body)
        self._typed(info, obj)
        validate_schema(info, obj, self.schema_version)
        meta = obj.setdefault("metadata", {})
        ns = self._namespace(info, namespace, obj)
        if meta.get("resourceVersion"):
            raise InvalidError("resourceVersion should not be set on objects to be created",
                               field="metadata.resourceVersion")
        generate = not meta.get("name") and meta.get("generateName")
        if not meta.get("name") and not generate:  # before defaulting, which reads the name
            raise InvalidError(f"{info.kind} is invalid: metadata.name: Required value: name or "
                               "generateName is required",
                               causes=[Cause.from_message("metadata.name", "Required value: "
                                                          "name or generateName is required")])
        for attempt in range(5):
            if generate:
                meta["name"] = str(meta["generateName"]) + "".join(
                    random.choices(_GENERATE_CHARS, k=5))
            try:
                return await self._create_once(info, ns, obj)
            except AlreadyExistsError:
                if not (generate and attempt < 4):
                    raise
        raise AssertionError("unreachable")

    async def _create_once(self, info: ResourceInfo, ns: str, given: dict[str, Any]) -> Result:
        obj = json.loads(json.dumps(given))
        meta = obj["metadata"]
        if info.namespaced:
            meta["namespace"] = ns
        else:
            meta.pop("namespace", None)
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(key, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        strategy = self.strategy(info)
        if _content(obj) and strategy.tracks_generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        strategy.prepare_for_create(obj)
        await strategy.admit(obj, self._read_all)
        strategy.validate(obj)
        warnings = strategy.warnings(obj)
        claims = strategy.claims_for_create(obj)
        raw = await self._commit_claiming(
            "create", info, ns, obj, claims, [], event_type="ADDED",
            check_namespace=ns if info.namespaced else "")
        return Result(raw, warnings)

    async def _commit_claiming(self, op: str, info: ResourceInfo, ns: str, obj: dict[str, Any],
                               claims: list[Claim], releases: list[tuple[str, str]],
                               **kwargs: Any) -> bytes:
        """Commits obj with its claims, re-picking random values that turn out taken."""
        for attempt in range(10):
            parts = self._serialize(info, obj)
            try:
                _, raw = await self.storage.commit(
                    op, info.plural, ns, obj["metadata"]["name"], parts,
                    claims=[c.pair for c in claims], releases=releases, **kwargs)
                return raw
            except AllocationConflict as err:
                claim = claims[err.index]
                if claim.user_specified:
                    what = "IP" if claim.allocator == CLUSTER_IP else "port"
                    raise InvalidError(
                        f'{info.kind} "{obj["metadata"]["name"]}" is invalid: {claim.path}: '
                        f'Invalid value: "{claim.value}": provided {what} is already allocated'
                    ) from None
                taken = await self.storage.allocated(claim.allocator) if attempt >= 3 else None
                self.services.repick(obj, claim, taken)
        raise UnavailableError("could not allocate a free value; try again")

    async def _commit_delete(self, info: ResourceInfo, ns: str, old: dict[str, Any],
                             expected_rv: str = "") -> bytes:
        """Removes an object for good, giving back what it held (ClusterIP, NodePorts)."""
        releases = self.strategy(info).releases_for_delete(old)
        parts = split_serialized(_ordered(info, old))
        _, raw = await self.storage.commit("delete", info.plural, ns, old["metadata"]["name"],
                                           parts, expected_rv=expected_rv,
                                           event_type="DELETED", releases=releases)
        return raw

    # -- read ------------------------------------------------------------------

    async def get(self, info: ResourceInfo, namespace: str, name: str) -> bytes:
        ns = self._namespace(info, namespace, None)
        raw = await self.storage.get(info.plural, ns, name)
        if raw is None:
            raise NotFoundError(f'{info.qualified_plural} "{name}" not found')
        return raw

    async def list(self, info: ResourceInfo, namespace: str, *, label_selector: str = "",
                   field_selector: str = "", limit: int = 0, continue_token: str = "") -> Page:
        ns = namespace if info.namespaced else ""
        matches = compile_filter(label_selector, field_selector)
        if limit < 0:
            raise BadRequestError(f"Invalid value: {limit}: must be 0 or greater", field="limit")
        after, first_rev = "", 0
        if continue_token:
            first_rev, after = decode_continue(continue_token)
        if not limit:
            rev, pairs = await self.storage.list(info.plural, ns, after=after)
            items = [raw for _, raw in pairs if matches is None or matches(json.loads(raw))]
            return Page(items, first_rev or rev, "")
        items: list[bytes] = []
        chunk = min(max(limit * 2, 100), 5000)  # a huge limit must not become a huge read
        last_key = after
        while True:
            rev, pairs = await self.storage.list(info.plural, ns, after=last_key, count=chunk)
            first_rev = first_rev or rev
            for key, raw in pairs:
                if matches is None or matches(json.loads(raw)):
                    items.append(raw)
                last_key = key
                if len(items) == limit:
                    more = key != pairs[-1][0] or len(pairs) == chunk
                    return Page(items, first_rev, encode_continue(first_rev, key) if more else "")
            if len(pairs) < chunk:
                return Page(items, first_rev, "")

    # -- update ----------------------------------------------------------------

    async def update(self, info: ResourceInfo, namespace: str, body: bytes, *,
                     status: bool = False) -> Result:
        if status and not info.has_status:
            raise NotFoundError(f"{info.plural} have no status subresource")
        obj = _json_object(body)
        self._typed(info, obj)
        if status or not info.has_status:
            validate_schema(info, obj, self.schema_version)
        else:  # Update ignores status, so a stale or partial one must not fail it
            validate_schema(info, {k: v for k, v in obj.items() if k != "status"},
                            self.schema_version)
        meta = obj.get("metadata") or {}
        name = meta.get("name")
        if not name:
            raise InvalidError("metadata.name: Required value", field="metadata.name")
        check_request_name(name)
        ns = self._namespace(info, namespace, obj)
        old = await self._read(info, ns, name)
        old_meta = old["metadata"]
        if meta.get("resourceVersion") and str(meta["resourceVersion"]) != _rv(old):
            raise ConflictError(
                f'Operation cannot be fulfilled on {info.qualified_plural} "{name}": the object '
                "has been modified; please apply your changes to the latest version and try "
                "again")
        if meta.get("uid") and meta["uid"] != old_meta.get("uid"):
            raise ConflictError(f"Precondition failed: UID in object meta: {show(meta['uid'])}, "
                                f"stored UID: {old_meta.get('uid')}")
        if status:
            new = self.strategy(info).prepare_for_status_update(old, obj)
        else:
            new = self._merge_for_update(info, old, obj)
        return await self._write_update(info, ns, old, new)

    def _merge_for_update(self, info: ResourceInfo, old: dict[str, Any],
                          obj: dict[str, Any]) -> dict[str, Any]:
        new = json.loads(json.dumps(obj))
        meta = new.setdefault("metadata", {})
        for key in _SYSTEM_META:
            if key in old["metadata"]:
                meta[key] = old["metadata"][key]
            else:
                meta.pop(key, None)
        strategy = self.strategy(info)
        strategy.prepare_for_update(old, new)
        strategy.validate_update(old, new)
        return new

    async def _write_update(self, info: ResourceInfo, ns: str, old: dict[str, Any],
                            new: dict[str, Any]) -> Result:
        meta = new["metadata"]
        strategy = self.strategy(info)
        if strategy.finalized(old, new):
            # The last finalizer is gone: the deletion the object waited for happens now.
            if strategy.terminates:
                return await self._finalize_namespace(info, old)
            return Result(await self._commit_delete(info, ns, old, _rv(old)))
        claims, releases = strategy.claims_for_update(old, new)
        new_meta_cmp = dict(meta, resourceVersion=_rv(old))
        if dict(new, metadata=new_meta_cmp) == old:
            return Result(json.dumps(old, separators=(",", ":")).encode())
        if _content(new) != _content(old) and "generation" in old["metadata"]:
            meta["generation"] = int(old["metadata"]["generation"]) + 1
        # The object as it will be stored, not only the request, must be valid.
        validate_schema(info, new, self.schema_version)
        strategy.validate(new)
        warnings = strategy.warnings(new)
        raw = await self._commit_claiming(
            "update", info, ns, new, claims, releases, expected_rv=_rv(old),
            event_type="MODIFIED", prev=json.dumps(selector_view(old)).encode())
        return Result(raw, warnings)

    async def patch(self, info: ResourceInfo, namespace: str, name: str, body: bytes) -> Result:
        patch = _json_object(body, "patch")
        if not isinstance(patch.get("metadata", {}), dict | None):
            raise InvalidError(f"Invalid value: {show(patch['metadata'])}: must be an object",
                               field="metadata")
        ns = self._namespace(info, namespace, None)
        pinned = str((patch.get("metadata") or {}).get("resourceVersion") or "")
        for _ in range(_CONFLICT_RETRIES):
            old = await self._read(info, ns, name)
            if pinned and pinned != _rv(old):
                raise ConflictError(
                    f'Operation cannot be fulfilled on {info.qualified_plural} "{name}": the '
                    "object has been modified; please apply your changes to the latest version "
                    "and try again")
            patched = merge_patch(old, patch)
            if not isinstance(patched.get("metadata"), dict):
                raise InvalidError("metadata: Invalid value: must be an object")
            patched["metadata"]["name"] = name
            self._typed(info, patched)
            validate_schema(info, {k: v for k, v in patched.items() if k != "status"},
                            self.schema_version)
            new = self._merge_for_update(info, old, patched)
            try:
                return await self._write_update(info, ns, old, new)
            except ConflictError:
                if pinned:
                    raise
        raise ConflictError(f'too many conflicts patching {info.qualified_plural} "{name}"')

    # -- delete ----------------------------------------------------------------

    async def delete(self, info: ResourceInfo, namespace: str, name: str, *, uid: str = "",
                     resource_version: str = "", grace: int | None = None,
                     propagation: str = "") -> Result:
        if propagation not in ("", "Background", "Foreground", "Orphan"):
            raise BadRequestError(f"Unsupported value: {show(propagation)}: supported values: "
                                  '"Background", "Foreground", "Orphan"',
                                  field="propagationPolicy")
        if grace is not None and not 0 <= grace <= MAX_GRACE_SECONDS:
            raise BadRequestError(f"Invalid value: {grace}: must be between 0 and "
                                  f"{MAX_GRACE_SECONDS}, inclusive", field="gracePeriodSeconds")
        ns = self._namespace(info, namespace, None)
        for _ in range(_CONFLICT_RETRIES):
            old = await self._read(info, ns, name)
            old_meta = old["metadata"]
            if uid and uid != old_meta.get("uid"):
                raise PreconditionFailedError(
                    f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
                    f"{old_meta.get('uid')}")
            if resource_version and resource_version != _rv(old):
                raise PreconditionFailedError(
                    f"Precondition failed: ResourceVersion in precondition: {resource_version}, "
                    f"ResourceVersion in object meta: {_rv(old)}")
            try:
                if self.strategy(info).terminates:
                    return await self._delete_namespace(info, old)
                return await self._delete_once(info, ns, old, grace, propagation)
            except ConflictError:
                continue
        raise ConflictError(f'too many conflicts deleting {info.qualified_plural} "{name}"')

    async def _delete_once(self, info: ResourceInfo, ns: str, old: dict[str, Any],
                           grace: int | None, propagation: str) -> Result:
        new = json.loads(json.dumps(old))
        meta = new["metadata"]
        finalizers = list(meta.get("finalizers") or [])
        wanted = {"Foreground": "foregroundDeletion", "Orphan": "orphan"}.get(propagation)
        if wanted and wanted not in finalizers and not meta.get("deletionTimestamp"):
            finalizers.append(wanted)
        # Clamped: an object stored before the bound existed may ask for more.
        period = min(self.strategy(info).grace_period(old, grace), MAX_GRACE_SECONDS)
        now = datetime.now(UTC)
        if period > 0:
            current = meta.get("deletionGracePeriodSeconds")
            if meta.get("deletionTimestamp") and current is not None and current <= period:
                return Result(json.dumps(old, separators=(",", ":")).encode())
            meta["deletionTimestamp"] = (now + timedelta(seconds=period)).strftime(
                "%Y-%m-%dT%H:%M:%SZ")
            meta["deletionGracePeriodSeconds"] = period
        elif finalizers:
            meta.setdefault("deletionTimestamp", now.strftime("%Y-%m-%dT%H:%M:%SZ"))
            meta["deletionGracePeriodSeconds"] = 0
        if finalizers:
            meta["finalizers"] = finalizers
        if period > 0 or finalizers:
            return await self._write_update(info, ns, old, new)
        return Result(await self._commit_delete(info, ns, old, _rv(old)))

    # -- bind ------------------------------------------------------------------

    async def bind(self, namespace: str, name: str, node_name: str, uid: str = "") -> Result:
        info = lookup("pods")
        if not node_name:
            raise InvalidError("target.name: Required value", field="target.name")
        ns = namespace or "default"
        for _ in range(_CONFLICT_RETRIES):
            old = await self._read(info, ns, name)
            if uid and uid != old["metadata"].get("uid"):
                raise PreconditionFailedError(
                    f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
                    f"{old['metadata'].get('uid')}")
            if old["metadata"].get("deletionTimestamp"):
                raise ConflictError(f'pod "{name}" is being deleted, cannot be assigned to a '
                                    "host")
            current = (old.get("spec") or {}).get("nodeName")
            if current:
                raise ConflictError(f'pod "{name}" is already assigned to node "{current}"')
            new = json.loads(json.dumps(old))
            new["spec"]["nodeName"] = node_name
            status = new.setdefault("status", {})
            conditions = [c for c in status.get("conditions") or []
                          if c.get("type") != "PodScheduled"]
            conditions.append({"type": "PodScheduled", "status": "True",
                               "lastProbeTime": None, "lastTransitionTime": now_rfc3339()})
            status["conditions"] = conditions
            try:
                return await self._write_update(info, ns, old, new)
            except ConflictError:
                continue
        raise ConflictError(f'too many conflicts binding pod "{name}"')

    # -- pods/log --------------------------------------------------------------

    async def kubelet_endpoint(self, namespace: str, name: str) -> str:
        """host:port of the kubelet running a pod, from the pod's Node status."""
        pod = await self._read(lookup("pods"), namespace or "default", name)
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            raise BadRequestError(f'pod "{name}" does not have a host assigned')
        return node_endpoint(await self._read(lookup("nodes"), "", node_name))

    # -- namespaces ------------------------------------------------------------

    async def _read_all(self, plural: str) -> list[bytes]:
        return [raw for _, raw in (await self.storage.list(plural, ""))[1]]

    async def ensure_initial_namespaces(self) -> None:
        info = lookup("namespaces")
        for name in INITIAL_NAMESPACES:
            if await self.storage.get(info.plural, "", name) is None:
                body = json.dumps({"metadata": {"name": name}}).encode()
                try:
                    await self.create(info, "", body)
                except AlreadyExistsError:
                    pass  # another replica won the race

    async def _delete_namespace(self, info: ResourceInfo, old: dict[str, Any]) -> Result:
        """Marks a namespace Terminating; the namespace controller empties it.

        As Kubernetes' namespace registry: the namespace gets deletionTimestamp
        and phase Terminating and is marked in storage so that creates in it
        fail. The controller manager's namespace controller deletes what it
        holds and then removes the "kubernetes" entry of spec.finalizers, and
        the update that leaves no finalizer deletes the namespace for good
        (see _finalize_namespace). A namespace with no finalizers at all goes at once.
        """
        name = old["metadata"]["name"]
        if name in PROTECTED_NAMESPACES:
            raise PreconditionFailedError(f'namespace "{name}" is protected and may not be '
                                          "deleted")
        await self.storage.mark_terminating(name)
        if old["metadata"].get("deletionTimestamp"):
            return Result(json.dumps(old, separators=(",", ":")).encode())
        new = json.loads(json.dumps(old))
        new["metadata"]["deletionTimestamp"] = now_rfc3339()
        new["status"] = {**(old.get("status") or {}), "phase": "Terminating"}
        return await self._write_update(info, "", old, new)

    async def _finalize_namespace(self, info: ResourceInfo, old: dict[str, Any]) -> Result:
        """Deletes a namespace whose last finalizer is gone, and lets its name be reused."""
        name = old["metadata"]["name"]
        raw = await self._commit_delete(info, "", old, _rv(old))
        await self.storage.unmark_terminating(name)
        log.info("namespace deleted", extra={"kv": {"namespace": name}})
        return Result(raw)


def node_endpoint(node: dict[str, Any]) -> str:
    """host:port of a node's kubelet, as the node publishes it in its status."""
    status = node.get("status") or {}
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    host = addresses.get("InternalIP") or addresses.get("Hostname")
    if not port or not host:
        raise UnavailableError(f'node "{node["metadata"]["name"]}" publishes no kubelet '
                               "endpoint")
    return f"{host}:{port}"


def compile_filter(label_selector: str, field_selector: str):
    """One predicate for both selectors, or None when neither selects anything."""
    try:
        labels = selectors.parse_label_selector(label_selector) if label_selector else None
    except InvalidError as err:  # a malformed request, not an invalid object: a 400
        raise BadRequestError(f"unable to parse requirement: {clip(err.message, 200)}",
                              field="labelSelector") from None
    try:
        fields = selectors.parse_field_selector(field_selector) if field_selector else None
    except InvalidError as err:
        raise BadRequestError(clip(err.message, 200), field="fieldSelector") from None
    if labels is None and fields is None:
        return None

    def matches(obj: dict[str, Any]) -> bool:
        if labels is not None and not labels.matches((obj.get("metadata") or {}).get("labels")):
            return False
        return fields is None or fields.matches(obj)

    return matches

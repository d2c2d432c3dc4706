"""The REST face of the apiserver: Kubernetes' HTTP API over the same Registry.

Every handler turns a URL into (resource, namespace, name, subresource), calls
the Registry, WatchCache or ApiService objects the gRPC face uses, and sends
the answer as Kubernetes does: objects as stored (their JSON is passed through
untouched), lists assembled from the stored bytes, errors as Status objects
with the HTTP code of the ApiError, watches as newline-delimited JSON events.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import jsonpatch
from aiohttp import web

from kubelite import printing
from kubelite.api.v1 import api_pb2, api_pb2_grpc
from kubelite.errors import (
    ApiError,
    BadRequestError,
    ConflictError,
    ExpiredError,
    InternalError,
    InvalidError,
    MethodNotSupportedError,
    NotFoundError,
    UnavailableError,
    from_rpc_error,
)
from kubelite.resources import RESOURCES, ResourceInfo

from ..metrics import REQUEST_DURATION, REQUESTS
from ..validation import validate_schema
from . import discovery, openapi, protobuf, strategicpatch, tables

log = logging.getLogger("kubelite.apiserver.rest")

JSON = "application/json"
PROTOBUF = "application/vnd.kubernetes.protobuf"
_BY_GV_PLURAL = {(i.api_version, i.plural): i for i in RESOURCES}
_CONFLICT_RETRIES = 20
DEFAULT_WATCH_TIMEOUT = 1800.0  # Kubernetes' --min-request-timeout


class UnsupportedMediaTypeError(ApiError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "UnsupportedMediaType"
    http_status = 415


class NotAcceptableError(ApiError):
    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "NotAcceptable"
    http_status = 406


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _json_response(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=_dumps(obj), status=status, content_type=JSON)


def _raw_response(raw: bytes, status: int = 200,
                  warnings: list[str] | tuple[str, ...] = ()) -> web.Response:
    resp = web.Response(body=raw, status=status, content_type=JSON)
    for text in warnings:
        resp.headers.add("Warning", f'299 - "{text}"')
    return resp


def error_response(err: ApiError) -> web.Response:
    return _json_response(err.status(), err.http_status)


def _success(details: dict[str, Any] | None = None, code: int = 200) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                           "status": "Success", "code": code}
    if details:
        out["details"] = details
    return out


async def _read(request: web.Request) -> bytes:
    """The body as JSON bytes; the few protobuf bodies kubectl's typed commands send are
    decoded (protobuf.py)."""
    raw = await request.read()
    if request.content_type == PROTOBUF and raw:
        return _dumps(protobuf.to_object(raw))
    return raw


def _body(raw: bytes, what: str = "body") -> Any:
    try:
        return json.loads(raw) if raw else {}
    except (ValueError, UnicodeDecodeError) as err:
        raise BadRequestError(f"the {what} is not valid JSON: {err}") from None


def _int_param(query: Any, name: str) -> int | None:
    value = query.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise BadRequestError(f'{name}: Invalid value: "{value}": must be an integer') from None


def _flag(query: Any, name: str) -> bool:
    return str(query.get(name, "")).lower() in ("1", "true", "yes")


def _dry_run(query: Any, body: Any = None) -> bool:
    values = query.getall("dryRun", [])
    if isinstance(body, dict) and isinstance(body.get("dryRun"), list):
        values = [*values, *body["dryRun"]]
    for value in values:
        if value != "All":
            raise BadRequestError(f'dryRun: Unsupported value: "{value}": supported values: '
                                  '"All"')
    return bool(values)


class Target:
    """What a URL names: a resource, maybe a namespace, an object and a subresource."""

    __slots__ = ("info", "namespace", "name", "sub")

    def __init__(self, info: ResourceInfo, namespace: str, name: str, sub: str) -> None:
        self.info, self.namespace, self.name, self.sub = info, namespace, name, sub


def _not_found() -> NotFoundError:
    return NotFoundError("the server could not find the requested resource")


def parse_path(gv: str, rest: list[str]) -> tuple[str, str, str, str]:
    """(namespace, plural, name, subresource) of the segments after the group version."""
    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces" and (
            (gv, rest[2]) in _BY_GV_PLURAL or gv == f"{discovery.METRICS_GROUP}/"
            f"{discovery.METRICS_VERSION}"):
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3 or not all(rest):
        raise _not_found()
    return (namespace, rest[0], rest[1] if len(rest) > 1 else "",
            rest[2] if len(rest) > 2 else "")


def _selector_string(selector: dict[str, Any] | None) -> str:
    text = printing.format_selector(selector)
    return "" if text in ("<none>", "") else text


class RestApi:
    def __init__(self, service: Any, *, schema_version: str, address: str) -> None:
        # service: the gRPC ApiService, whose registry, cache, metrics and watch logic
        # this face shares, so that both faces behave identically.
        self.service = service
        self.registry = service.registry
        self.schema_version = schema_version
        self.address = address
        self._defs = openapi.definitions(schema_version)
        self._version = {
            "major": "1", "minor": schema_version.split(".")[1],
            "gitVersion": f"v{schema_version}.0-kubelite", "gitCommit": "",
            "gitTreeState": "clean", "buildDate": "", "goVersion": "", "compiler": "",
            "platform": "linux/amd64"}

    def app(self) -> web.Application:
        app = web.Application(client_max_size=3 * 1024 * 1024, handler_args={
            "max_field_size": 65536})
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    # -- dispatch ----------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        verb, resource, code = request.method.lower(), "", 200
        try:
            resp, verb, resource = await self._route(request)
            code = resp.status
            return resp
        except ApiError as err:
            code = err.http_status
            return error_response(err)
        except asyncio.CancelledError:
            code = 499
            raise
        except Exception:
            log.exception("internal error", extra={"kv": {"path": request.path}})
            code = 500
            return error_response(InternalError("internal error (a kubelite bug)"))
        finally:
            if resource:
                REQUESTS.labels(f"rest_{verb}", resource, str(code)).inc()
                REQUEST_DURATION.labels(f"rest_{verb}", resource).observe(
                    time.perf_counter() - started)

    async def _route(self, request: web.Request) -> tuple[web.StreamResponse, str, str]:
        segs = [s for s in request.path.split("/") if s]
        method = request.method
        if not segs:
            return _json_response({"paths": ["/api", "/api/v1", "/apis", "/openapi/v2",
                                             "/openapi/v3", "/version"]}), "get", ""
        head = segs[0]
        if head in ("healthz", "livez", "readyz") and method == "GET":
            return web.Response(text="ok"), "get", ""
        if head == "version" and len(segs) == 1:
            return _json_response(self._version), "get", ""
        if head == "openapi":
            return self._openapi(request, segs[1:]), "get", ""
        if head == "api":
            if len(segs) == 1:
                return _json_response(discovery.api_versions(self.address)), "get", ""
            if segs[1] != "v1":
                raise _not_found()
            gv, rest = "v1", segs[2:]
        elif head == "apis":
            if len(segs) == 1:
                return _json_response(discovery.api_groups()), "get", ""
            if len(segs) == 2:
                group = discovery.api_group(segs[1])
                if group is None:
                    raise _not_found()
                return _json_response(group), "get", ""
            gv, rest = f"{segs[1]}/{segs[2]}", segs[3:]
        else:
            raise _not_found()
        if not rest:
            doc = discovery.resource_list(gv)
            if doc is None:
                raise _not_found()
            return _json_response(doc), "get", ""
        namespace, plural, name, sub = parse_path(gv, rest)
        if gv == f"{discovery.METRICS_GROUP}/{discovery.METRICS_VERSION}":
            return await self._metrics(request, namespace, plural, name, sub), "get", plural
        info = _BY_GV_PLURAL.get((gv, plural))
        if info is None or (namespace and not info.namespaced):
            raise _not_found()
        target = Target(info, namespace if info.namespaced else "", name, sub)
        handler, verb = self._handler(method, target, request)
        return await handler(request, target), verb, info.plural

    def _handler(self, method: str, t: Target, request: web.Request
                 ) -> tuple[Callable[[web.Request, Target], Awaitable[web.StreamResponse]], str]:
        if not t.name:
            if method == "GET":
                if _flag(request.query, "watch"):
                    return self.watch, "watch"
                return self.list, "list"
            table = {"POST": (self.create, "create"),
                     "DELETE": (self.delete_collection, "deletecollection")}
        elif not t.sub:
            table = {"GET": (self.get, "get"), "PUT": (self.update, "update"),
                     "PATCH": (self.patch, "patch"), "DELETE": (self.delete, "delete")}
        elif t.sub == "status" and t.info.has_status:
            table = {"GET": (self.get, "get"), "PUT": (self.update, "update_status"),
                     "PATCH": (self.patch, "patch_status")}
        elif t.sub == "scale" and t.info.kind in discovery.SCALABLE:
            table = {"GET": (self.get_scale, "get_scale"), "PUT": (self.put_scale, "scale"),
                     "PATCH": (self.patch_scale, "scale")}
        elif t.sub == "log" and t.info.kind == "Pod":
            table = {"GET": (self.logs, "logs")}
        elif t.sub == "binding" and t.info.kind == "Pod":
            table = {"POST": (self.bind, "bind")}
        elif t.sub == "eviction" and t.info.kind == "Pod":
            table = {"POST": (self.evict, "evict")}
        else:
            raise _not_found()
        if method not in table:
            raise MethodNotSupportedError(f"the server does not allow this method on the "
                                          f"requested resource ({method})")
        return table[method]

    # -- discovery and schemas --------------------------------------------------

    def _openapi(self, request: web.Request, rest: list[str]) -> web.Response:
        if rest == ["v2"]:
            accept = request.headers.get("Accept", "")
            if "protobuf" in accept and JSON not in accept and "*/*" not in accept:
                raise NotAcceptableError("only application/json is served for /openapi/v2")
            return web.Response(body=openapi.v2_document(self.schema_version),
                                content_type=JSON)
        if rest == ["v3"]:
            return web.Response(body=openapi.v3_index(self.schema_version), content_type=JSON)
        if len(rest) >= 2 and rest[0] == "v3":
            doc = openapi.v3_document(self.schema_version, "/".join(rest[1:]))
            if doc is not None:
                resp = web.Response(body=doc, content_type=JSON)
                resp.headers["Cache-Control"] = "public, immutable"
                return resp
        raise _not_found()

    # -- reads -------------------------------------------------------------------

    async def get(self, request: web.Request, t: Target) -> web.StreamResponse:
        raw = await self.registry.get(t.info, t.namespace, t.name)
        if tables.wants_table(request.headers.get("Accept", "")):
            obj = json.loads(raw)
            return _json_response(tables.table(
                t.info, [obj], resource_version=str(obj["metadata"].get("resourceVersion", "")),
                include=request.query.get("includeObject", "PartialObjectMetadata")))
        return _raw_response(raw)

    def _selectors(self, t: Target, query: Any) -> tuple[str, str, Callable | None]:
        """The label and field selectors for the registry, and a filter for the field
        selectors it does not support (events' involvedObject.*, as kubectl describe asks)."""
        fields, extra = [], []
        for term in filter(None, (s.strip() for s in query.get("fieldSelector", "").split(","))):
            (extra if term.startswith("involvedObject.") or term.startswith("type=")
             and t.info.kind == "Event" else fields).append(term)
        if not extra:
            return query.get("labelSelector", ""), ",".join(fields), None
        wanted = []
        for term in extra:
            negate = "!=" in term
            key, _, value = term.replace("!=", "=").replace("==", "=").partition("=")
            wanted.append((key.split("."), value, negate))

        def matches(obj: dict[str, Any]) -> bool:
            for path, value, negate in wanted:
                node: Any = obj
                for part in path:
                    node = node.get(part) if isinstance(node, dict) else None
                if (str(node or "") == value) == negate:
                    return False
            return True

        return query.get("labelSelector", ""), ",".join(fields), matches

    async def list(self, request: web.Request, t: Target) -> web.StreamResponse:
        q = request.query
        labels, fields, extra = self._selectors(t, q)
        limit = _int_param(q, "limit") or 0
        page = await self.registry.list(t.info, t.namespace, label_selector=labels,
                                        field_selector=fields, limit=limit,
                                        continue_token=q.get("continue", ""))
        rv, match = q.get("resourceVersion", ""), q.get("resourceVersionMatch", "")
        if match and match not in ("Exact", "NotOlderThan"):
            raise BadRequestError(f'resourceVersionMatch: Unsupported value: "{match}"')
        if match == "Exact" and rv and rv != str(page.revision):
            raise ExpiredError(f"too old resource version: {rv} ({page.revision})")
        items = page.items
        if extra is not None:
            items = [raw for raw in items if extra(json.loads(raw))]
        if tables.wants_table(request.headers.get("Accept", "")):
            return _json_response(tables.table(
                t.info, [json.loads(raw) for raw in items],
                resource_version=str(page.revision), continue_token=page.continue_token,
                include=q.get("includeObject", "PartialObjectMetadata")))
        meta: dict[str, Any] = {"resourceVersion": str(page.revision)}
        if page.continue_token:
            meta["continue"] = page.continue_token
        head = _dumps({"kind": f"{t.info.kind}List", "apiVersion": t.info.api_version,
                       "metadata": meta})[:-1]
        return _raw_response(head + b',"items":[' + b",".join(items) + b"]}")

    # -- writes ------------------------------------------------------------------

    async def create(self, request: web.Request, t: Target) -> web.StreamResponse:
        raw = await _read(request)
        if _dry_run(request.query):
            obj = self._typed(t.info, _body(raw))
            validate_schema(t.info, obj, self.schema_version)
            strategy = self.registry.strategy(t.info)
            obj.setdefault("metadata", {})
            if t.info.namespaced:
                obj["metadata"].setdefault("namespace", t.namespace or "default")
            strategy.prepare_for_create(obj)
            strategy.validate(obj)
            return _json_response(obj, 201)
        result = await self.registry.create(t.info, t.namespace, raw)
        return _raw_response(result.raw, 201, result.warnings)

    def _typed(self, info: ResourceInfo, obj: Any) -> dict[str, Any]:
        if not isinstance(obj, dict):
            raise BadRequestError("the body must be a JSON object")
        obj.setdefault("apiVersion", info.api_version)
        obj.setdefault("kind", info.kind)
        return obj

    async def update(self, request: web.Request, t: Target) -> web.StreamResponse:
        raw = await _read(request)
        obj = _body(raw)
        if isinstance(obj, dict) and (obj.get("metadata") or {}).get("name") not in (None,
                                                                                   t.name):
            raise BadRequestError("the name of the object does not match the name on the URL",
                                  field="metadata.name")
        if _dry_run(request.query):
            old = json.loads(await self.registry.get(t.info, t.namespace, t.name))
            return _json_response(self._dry_update(t, old, self._typed(t.info, obj)))
        result = await self.registry.update(t.info, t.namespace, raw, status=t.sub == "status")
        return _raw_response(result.raw, 200, result.warnings)

    def _dry_update(self, t: Target, old: dict[str, Any], new: dict[str, Any]) -> dict:
        validate_schema(t.info, {k: v for k, v in new.items() if k != "status"},
                        self.schema_version)
        new.setdefault("metadata", {})
        for key in ("uid", "creationTimestamp", "resourceVersion", "namespace", "generation"):
            if key in old["metadata"]:
                new["metadata"][key] = old["metadata"][key]
        strategy = self.registry.strategy(t.info)
        strategy.validate_update(old, new)
        strategy.validate(new)
        return new

    def _apply_patch(self, info: ResourceInfo, content_type: str, old: dict[str, Any],
                     patch: Any, schema: str = "") -> dict[str, Any]:
        if content_type == "application/json-patch+json":
            if not isinstance(patch, list):
                raise BadRequestError("a JSON patch must be a list of operations")
            try:
                new = jsonpatch.apply_patch(old, patch)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException,
                    TypeError, KeyError, IndexError) as err:
                raise InvalidError(f"the JSON patch could not be applied: {err}") from None
        elif content_type == "application/strategic-merge-patch+json":
            name = schema or openapi.definition_name(self.schema_version, info)
            new = strategicpatch.apply(old, patch, strategicpatch.Schema(
                self._defs, self._defs.get(name)))
        elif content_type == "application/merge-patch+json":
            if not isinstance(patch, dict):
                raise BadRequestError("a merge patch must be a JSON object")
            from kubelite.objects import merge_patch

            new = merge_patch(copy.deepcopy(old), patch)
        elif content_type == "application/apply-patch+yaml":
            raise UnsupportedMediaTypeError(
                "server-side apply is not supported by kubelite; use client-side apply")
        else:
            raise UnsupportedMediaTypeError(
                f'the body of the request was in an unknown format - accepted media types '
                f'include: application/json-patch+json, application/merge-patch+json, '
                f'application/strategic-merge-patch+json (got "{content_type}")')
        if not isinstance(new, dict):
            raise InvalidError("the patched object is not a JSON object")
        return new

    async def patch(self, request: web.Request, t: Target) -> web.StreamResponse:
        content_type = request.content_type
        raw = await _read(request)
        patch = _body(raw, "patch")
        dry = _dry_run(request.query)
        status = t.sub == "status"
        if content_type == "application/merge-patch+json" and not status and not dry:
            result = await self.registry.patch(t.info, t.namespace, t.name, raw)
            return _raw_response(result.raw, 200, result.warnings)
        pinned = ""
        for _ in range(_CONFLICT_RETRIES):
            old = json.loads(await self.registry.get(t.info, t.namespace, t.name))
            new = self._apply_patch(t.info, content_type, old, patch)
            meta = new.get("metadata")
            if not isinstance(meta, dict):
                raise InvalidError("metadata: Invalid value: must be an object")
            rv = str(meta.get("resourceVersion") or "")
            old_rv = str(old["metadata"].get("resourceVersion") or "")
            if rv != old_rv:
                pinned = rv  # the patch itself names a version: a precondition
            meta["resourceVersion"] = rv or old_rv
            meta["name"] = t.name
            if dry:
                return _json_response(self._dry_update(t, old, new))
            try:
                result = await self.registry.update(t.info, t.namespace, _dumps(new),
                                                    status=status)
                return _raw_response(result.raw, 200, result.warnings)
            except ConflictError:
                if pinned:
                    raise
        raise ConflictError(f'too many conflicts patching {t.info.qualified_plural} "{t.name}"')

    async def _delete_options(self, request: web.Request) -> dict[str, Any]:
        raw = await _read(request)
        opts = _body(raw, "DeleteOptions") if raw else {}
        if not isinstance(opts, dict):
            raise BadRequestError("DeleteOptions must be a JSON object")
        q = request.query
        grace = _int_param(q, "gracePeriodSeconds")
        if grace is None and opts.get("gracePeriodSeconds") is not None:
            grace = int(opts["gracePeriodSeconds"])
        propagation = q.get("propagationPolicy") or opts.get("propagationPolicy") or ""
        if not propagation and opts.get("orphanDependents") is True:
            propagation = "Orphan"
        pre = opts.get("preconditions") or {}
        return {"grace": grace, "propagation": propagation, "uid": pre.get("uid") or "",
                "resource_version": pre.get("resourceVersion") or "",
                "dry": _dry_run(q, opts)}

    async def delete(self, request: web.Request, t: Target) -> web.StreamResponse:
        opts = await self._delete_options(request)
        if opts.pop("dry"):
            return _raw_response(await self.registry.get(t.info, t.namespace, t.name))
        result = await self.registry.delete(t.info, t.namespace, t.name, **opts)
        return _raw_response(result.raw, 200, result.warnings)

    async def delete_collection(self, request: web.Request, t: Target) -> web.StreamResponse:
        opts = await self._delete_options(request)
        dry = opts.pop("dry")
        labels, fields, extra = self._selectors(t, request.query)
        page = await self.registry.list(t.info, t.namespace, label_selector=labels,
                                        field_selector=fields)
        deleted = []
        for raw in page.items:
            obj = json.loads(raw)
            if extra is not None and not extra(obj):
                continue
            if dry:
                deleted.append(raw)
                continue
            meta = obj["metadata"]
            try:
                result = await self.registry.delete(t.info, meta.get("namespace", ""),
                                                    meta["name"], **opts)
                deleted.append(result.raw)
            except NotFoundError:
                pass
        head = _dumps({"kind": f"{t.info.kind}List", "apiVersion": t.info.api_version,
                       "metadata": {"resourceVersion": str(page.revision)}})[:-1]
        return _raw_response(head + b',"items":[' + b",".join(deleted) + b"]}")

    # -- subresources ------------------------------------------------------------

    def _scale_of(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        selector = spec.get("selector")
        if obj.get("kind") == "ReplicationController":  # a plain label map
            selector = {"matchLabels": selector or {}}
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {k: meta[k] for k in ("name", "namespace", "uid",
                                                  "resourceVersion", "creationTimestamp")
                             if k in meta},
                "spec": {"replicas": spec.get("replicas", 1)},
                "status": {"replicas": status.get("replicas", 0),
                           "selector": _selector_string(selector)}}

    async def get_scale(self, request: web.Request, t: Target) -> web.StreamResponse:
        obj = json.loads(await self.registry.get(t.info, t.namespace, t.name))
        return _json_response(self._scale_of(obj))

    async def _set_replicas(self, t: Target, scale: Any, dry: bool) -> web.Response:
        if not isinstance(scale, dict):
            raise BadRequestError("the body must be a Scale object")
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or replicas < 0:
            raise InvalidError(f'spec.replicas: Invalid value: {replicas!r}: must be greater '
                               "than or equal to 0", field="spec.replicas")
        rv = str((scale.get("metadata") or {}).get("resourceVersion") or "")
        for _ in range(_CONFLICT_RETRIES):
            obj = json.loads(await self.registry.get(t.info, t.namespace, t.name))
            if rv and rv != obj["metadata"].get("resourceVersion"):
                raise ConflictError(
                    f'Operation cannot be fulfilled on {t.info.qualified_plural} "{t.name}": '
                    "the object has been modified; please apply your changes to the latest "
                    "version and try again")
            obj.setdefault("spec", {})["replicas"] = replicas
            if dry:
                return _json_response(self._scale_of(obj))
            try:
                result = await self.registry.update(t.info, t.namespace, _dumps(obj))
                return _json_response(self._scale_of(json.loads(result.raw)))
            except ConflictError:
                if rv:
                    raise
        raise ConflictError(f'too many conflicts scaling {t.info.qualified_plural} "{t.name}"')

    async def put_scale(self, request: web.Request, t: Target) -> web.StreamResponse:
        return await self._set_replicas(t, _body(await _read(request)),
                                        _dry_run(request.query))

    async def patch_scale(self, request: web.Request, t: Target) -> web.StreamResponse:
        patch = _body(await _read(request), "patch")
        obj = json.loads(await self.registry.get(t.info, t.namespace, t.name))
        scale = self._scale_of(obj)
        scale["metadata"].pop("resourceVersion", None)  # a patch is not pinned unless it says
        new = self._apply_patch(t.info, request.content_type, scale, patch,
                                schema="io.k8s.api.autoscaling.v1.Scale")
        return await self._set_replicas(t, new, _dry_run(request.query))

    async def bind(self, request: web.Request, t: Target) -> web.StreamResponse:
        body = _body(await _read(request))
        if not isinstance(body, dict):
            raise BadRequestError("the body must be a Binding object")
        node = (body.get("target") or {}).get("name") or ""
        uid = ((body.get("metadata") or {}).get("uid")) or ""
        if not _dry_run(request.query):
            await self.registry.bind(t.namespace, t.name, node, uid)
        return _json_response(_success(code=201), 201)

    async def evict(self, request: web.Request, t: Target) -> web.StreamResponse:
        body = _body(await _read(request))
        opts = (body.get("deleteOptions") if isinstance(body, dict) else None) or {}
        pre = opts.get("preconditions") or {}
        if not _dry_run(request.query, opts):
            await self.registry.delete(
                t.info, t.namespace, t.name, grace=opts.get("gracePeriodSeconds"),
                propagation=opts.get("propagationPolicy") or "", uid=pre.get("uid") or "",
                resource_version=pre.get("resourceVersion") or "")
        return _json_response(_success(code=201), 201)

    async def logs(self, request: web.Request, t: Target) -> web.StreamResponse:
        """Proxies pods/log to the pod's kubelet, as the gRPC Logs verb does.

        sinceSeconds needs each line's time: it asks the kubelet for timestamps and
        filters on them; a runtime that keeps no timestamps sends the whole log."""
        q = request.query
        since = _int_param(q, "sinceSeconds")
        stamps = _flag(q, "timestamps")
        try:
            return await self._logs(request, t, since, stamps)
        except InvalidError:
            if since is None or stamps:
                raise
            return await self._logs(request, t, None, False)

    async def _logs(self, request: web.Request, t: Target, since: int | None,
                    stamps: bool) -> web.StreamResponse:
        q = request.query
        tail = _int_param(q, "tailLines")
        req = api_pb2.LogsRequest(namespace=t.namespace, name=t.name,
                                  container=q.get("container", ""), follow=_flag(q, "follow"),
                                  previous=_flag(q, "previous"),
                                  timestamps=stamps or since is not None)
        if tail is not None:
            req.tail_lines = tail
        cutoff = time.time() - since if since is not None else None
        target = await self.registry.kubelet_endpoint(t.namespace, t.name)
        async with grpc.aio.insecure_channel(target) as channel:
            call = api_pb2_grpc.KubeletStub(channel).Logs(req)
            resp: web.StreamResponse | None = None
            try:
                async for chunk in call:
                    data = chunk.data
                    if cutoff is not None:
                        data = _since(data, cutoff, not stamps)
                    if resp is None:
                        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
                        await resp.prepare(request)
                    if data:
                        await resp.write(data)
            except grpc.aio.AioRpcError as err:
                if resp is not None:
                    return resp  # the kubelet went away mid-stream: the log simply ends
                if err.code() == grpc.StatusCode.UNAVAILABLE:
                    raise UnavailableError(
                        f"cannot reach the kubelet at {target}: {err.details()}") from None
                raise from_rpc_error(err) from None
            except ConnectionResetError:
                return resp or web.Response(status=499)
            if resp is None:
                return web.Response(body=b"", content_type="text/plain")
            await resp.write_eof()
            return resp

    # -- watch -------------------------------------------------------------------

    async def watch(self, request: web.Request, t: Target) -> web.StreamResponse:
        q = request.query
        labels, fields, extra = self._selectors(t, q)
        rv = q.get("resourceVersion", "")
        timeout = _int_param(q, "timeoutSeconds")
        as_table = tables.wants_table(request.headers.get("Accept", ""))
        include = q.get("includeObject", "PartialObjectMetadata")
        # Kubernetes' "" and "0" both start with the current state; the gRPC "" does.
        grpc_rv = "" if rv in ("", "0") else rv
        initial: list[bytes] = []
        initial_rv = ""
        if _flag(q, "sendInitialEvents"):
            # A streaming list (client-go's WatchList): the current state as ADDED
            # events, a bookmark marking their end, then the changes after it.
            page = await self.registry.list(t.info, t.namespace, label_selector=labels,
                                            field_selector=fields)
            initial, initial_rv = page.items, str(page.revision)
            grpc_rv = initial_rv
        watch_request = api_pb2.WatchRequest(
            resource=t.info.plural, namespace=t.namespace, label_selector=labels,
            field_selector=fields, resource_version=grpc_rv,
            allow_bookmarks=_flag(q, "allowWatchBookmarks"))
        if t.name:
            raise BadRequestError("watch one object with fieldSelector=metadata.name=NAME")
        events = self.service._watch(t.info, watch_request)
        resp = web.StreamResponse(headers={"Content-Type": JSON,
                                           "Transfer-Encoding": "chunked"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        deadline = timeout if timeout is not None and timeout > 0 else DEFAULT_WATCH_TIMEOUT
        try:
            async with asyncio.timeout(deadline):
                for raw in initial:
                    if extra is None or extra(json.loads(raw)):
                        if as_table:
                            raw = _dumps(tables.table(t.info, [json.loads(raw)],
                                                      include=include))
                        await resp.write(b'{"type":"ADDED","object":' + raw + b"}\n")
                if initial_rv:
                    await resp.write(_dumps({"type": "BOOKMARK", "object": {
                        "apiVersion": t.info.api_version, "kind": t.info.kind,
                        "metadata": {"resourceVersion": initial_rv, "annotations": {
                            "k8s.io/initial-events-end": "true"}}}}) + b"\n")
                async for event in events:
                    raw = event.object
                    if event.type != "BOOKMARK" and extra is not None and not extra(
                            json.loads(raw)):
                        continue
                    if as_table and event.type != "BOOKMARK":
                        raw = _dumps(tables.table(t.info, [json.loads(raw)], include=include))
                    await resp.write(b'{"type":"' + event.type.encode() + b'","object":'
                                     + raw + b"}\n")
        except TimeoutError:
            pass
        except ExpiredError as err:
            await resp.write(_watch_error(err, rv))
        except ApiError as err:
            await resp.write(_dumps({"type": "ERROR", "object": err.status()}) + b"\n")
        except ConnectionResetError:
            return resp  # the client went away
        finally:
            await events.aclose()
        try:
            await resp.write_eof()
        except ConnectionResetError:
            pass
        return resp

    # -- metrics.k8s.io ----------------------------------------------------------

    async def _metrics(self, request: web.Request, namespace: str, plural: str, name: str,
                       sub: str) -> web.Response:
        if request.method != "GET":
            raise MethodNotSupportedError("the metrics API is read-only")
        if sub:
            raise _not_found()
        selector = request.query.get("labelSelector", "")
        metrics = self.service.metrics
        if plural == "nodes" and not namespace:
            items, kind = await metrics.nodes(name=name, label_selector=selector), "NodeMetrics"
        elif plural == "pods":
            items, kind = await metrics.pods(namespace=namespace, name=name,
                                             label_selector=selector), "PodMetrics"
        else:
            raise _not_found()
        if name:
            return _raw_response(items[0])
        head = _dumps({"kind": f"{kind}List", "apiVersion": "metrics.k8s.io/v1beta1",
                       "metadata": {}})[:-1]
        return _raw_response(head + b',"items":[' + b",".join(items) + b"]}")


def _watch_error(err: ExpiredError, rv: str) -> bytes:
    """The ERROR event client-go and the Python client expect for a trimmed history."""
    status = err.status()
    status["code"] = 410
    status["reason"] = "Expired"
    status["message"] = f"too old resource version: {rv} ({err.message})"
    return _dumps({"type": "ERROR", "object": status}) + b"\n"


def _since(data: bytes, cutoff: float, strip: bool) -> bytes:
    """The lines of a timestamped log chunk written after cutoff (sinceSeconds)."""
    from kubelite.objects import parse_time

    out = []
    for line in data.splitlines(keepends=True):
        stamp, _, rest = line.partition(b" ")
        try:
            when = parse_time(stamp.decode()).timestamp()
        except (ValueError, UnicodeDecodeError):
            when = cutoff
        if when >= cutoff:
            out.append(rest if strip else line)
    return b"".join(out)


async def start(service: Any, *, listen: str, schema_version: str,
                shutdown_grace: float = 5.0) -> web.AppRunner:
    """Serves the REST API on listen (HOST:PORT) until the runner is cleaned up.

    On cleanup, requests still running after shutdown_grace (a followed log, say)
    are cut, as the gRPC server cuts its calls."""
    host, _, port = listen.rpartition(":")
    api = RestApi(service, schema_version=schema_version, address=listen)
    runner = web.AppRunner(api.app(), access_log=None, handle_signals=False,
                           shutdown_timeout=shutdown_grace)
    await runner.setup()
    site = web.TCPSite(runner, host or "127.0.0.1", int(port), reuse_port=False)
    await site.start()
    return runner

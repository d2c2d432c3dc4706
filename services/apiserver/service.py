"""The gRPC face of the apiserver: requests in, kubelite errors out as status codes.

Every handler resolves the resource, calls the registry and turns ApiError into
its gRPC code. Anything else is a bug and is logged as one (INTERNAL).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from kubelite.api.v1 import api_pb2, api_pb2_grpc
from kubelite.errors import (
    RESOURCE_VERSION_TOO_LARGE,
    ApiError,
    BadRequestError,
    Cause,
    DeadlineExceededError,
    InternalError,
    UnavailableError,
    from_rpc_error,
    to_trailing_metadata,
)
from kubelite.resources import ResourceInfo, lookup

from .eviction import Evictor
from .metrics import REQUEST_DURATION, REQUESTS
from .metricsapi import ResourceMetrics
from .registry import Registry, Result, compile_filter
from .validation import ascii_text, check_request_name, require_name, show
from .watchcache import WatchCache

log = logging.getLogger("kubelite.apiserver")


def _result(result: Result) -> api_pb2.ObjectResponse:
    return api_pb2.ObjectResponse(object=result.raw, warnings=result.warnings)


async def _abort(context: grpc.aio.ServicerContext, err: ApiError) -> None:
    """Ends the call with err's code, message, and its reason and causes as details."""
    await context.abort(err.code, str(err), trailing_metadata=to_trailing_metadata(err))


def _names(request: Any) -> None:
    """Refuses request name fields no object can have, before any lookup (and so before
    any error message could quote a 200 KB name)."""
    if getattr(request, "name", ""):
        check_request_name(request.name)
    if len(getattr(request, "namespace", "")) > 63:
        check_request_name(request.namespace, "metadata.namespace", 63)
    preconditions = getattr(request, "preconditions", None)
    for path, value in (("preconditions.uid", preconditions.uid if preconditions else ""),
                        ("preconditions.resourceVersion",
                         preconditions.resource_version if preconditions else ""),
                        ("uid", getattr(request, "uid", ""))):
        if len(value) > 253:  # a UID is 36 characters, a resourceVersion at most 20
            raise BadRequestError(f"Invalid value: {show(value)}: must be no more than 253 "
                                  "characters", field=path)
    if len(getattr(request, "resource", "")) > 253:
        raise BadRequestError(f"the server doesn't have a resource type "
                              f"{show(request.resource)}")


def _check_log_container(pod: dict[str, Any], container: str) -> None:
    """Kubernetes' answers (in its words, as the kubelet gives them) to a log request
    naming no container, or one the pod lacks. Both names are bounded by now."""
    names = [str(c.get("name")) for c in (pod.get("spec") or {}).get("containers") or []
             if isinstance(c, dict)]
    pod_name = (pod.get("metadata") or {}).get("name")
    if not container and len(names) > 1:
        raise BadRequestError(f"a container name must be specified for pod {pod_name}, "
                              f"choose one of: [{' '.join(names)}]", field="container")
    if container and container not in names:
        raise BadRequestError(f"container {ascii_text(container)} is not valid for pod "
                              f"{pod_name}", field="container")


def _resource_label(request: Any) -> str:
    """The resource's plural name, however the client spelled it (one series per resource)."""
    name = getattr(request, "resource", "pods") or ""
    try:
        return lookup(name).plural
    except ApiError:
        return "unknown"


def unary(verb: str) -> Callable:
    """Wraps a unary handler: metrics, the request deadline, and error mapping."""

    def decorate(fn: Callable[..., Awaitable[Any]]) -> Callable:
        @functools.wraps(fn)
        async def handler(self: ApiService, request: Any, context: grpc.aio.ServicerContext):
            started = time.perf_counter()
            resource = _resource_label(request)
            code = grpc.StatusCode.OK
            try:
                budget = context.time_remaining()
                if budget is None:
                    return await fn(self, request, context)
                try:
                    # asyncio.timeout, not wait_for: no extra Task per request.
                    async with asyncio.timeout(max(budget - 0.05, 0.01)):
                        return await fn(self, request, context)
                except TimeoutError:
                    raise UnavailableError(
                        "storage did not answer within the request deadline") from None
            except ApiError as err:
                code = err.code
                await _abort(context, err)
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except Exception:
                code = grpc.StatusCode.INTERNAL
                log.exception("internal error", extra={"kv": {"verb": verb}})
                await _abort(context, InternalError("internal error (a kubelite bug)"))
            finally:
                REQUESTS.labels(verb, resource, code.name).inc()
                REQUEST_DURATION.labels(verb, resource).observe(time.perf_counter() - started)

        return handler

    return decorate


def streaming(verb: str) -> Callable:
    """Wraps a server-streaming handler: metrics and error mapping, as `unary` does."""

    def decorate(fn: Callable[..., AsyncIterator[Any]]) -> Callable:
        @functools.wraps(fn)
        async def handler(self: ApiService, request: Any, context: grpc.aio.ServicerContext):
            resource = _resource_label(request)
            code = grpc.StatusCode.OK
            try:
                async for item in fn(self, request, context):
                    yield item
            except ApiError as err:
                code = err.code
                await _abort(context, err)
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED
                raise
            except Exception:
                code = grpc.StatusCode.INTERNAL
                log.exception("internal error", extra={"kv": {"verb": verb}})
                await _abort(context, InternalError("internal error (a kubelite bug)"))
            finally:
                REQUESTS.labels(verb, resource, code.name).inc()

        return handler

    return decorate


class ApiService(api_pb2_grpc.ApiServicer):
    def __init__(self, registry: Registry, cache: WatchCache, *,
                 bookmark_interval: float) -> None:
        self.registry = registry
        self.cache = cache
        self.metrics = ResourceMetrics(registry)
        self.bookmark_interval = bookmark_interval
        self.too_large_wait = 3.0  # Kubernetes' watch cache waits as long

    @unary("create")
    async def Create(self, request, context):
        return _result(await self.registry.create(lookup(request.resource), request.namespace,
                                                  request.object))

    @unary("get")
    async def Get(self, request, context):
        _names(request)
        raw = await self.registry.get(lookup(request.resource), request.namespace, request.name)
        return api_pb2.ObjectResponse(object=raw)

    @unary("list")
    async def List(self, request, context):
        _names(request)
        info = lookup(request.resource)
        page = await self.registry.list(
            info, request.namespace, label_selector=request.label_selector,
            field_selector=request.field_selector, limit=request.limit,
            continue_token=request.continue_token,
        )
        return api_pb2.ListResponse(
            items=page.items, resource_version=str(page.revision),
            continue_token=page.continue_token, kind=f"{info.kind}List",
            api_version=info.api_version,
        )

    @unary("update")
    async def Update(self, request, context):
        return _result(await self.registry.update(lookup(request.resource), request.namespace,
                                                  request.object))

    @unary("update_status")
    async def UpdateStatus(self, request, context):
        return _result(await self.registry.update(lookup(request.resource), request.namespace,
                                                  request.object, status=True))

    @unary("patch")
    async def Patch(self, request, context):
        _names(request)
        return _result(await self.registry.patch(lookup(request.resource), request.namespace,
                                                 request.name, request.patch))

    @unary("delete")
    async def Delete(self, request, context):
        _names(request)
        grace = (request.grace_period_seconds if request.HasField("grace_period_seconds")
                 else None)
        return _result(await self.registry.delete(
            lookup(request.resource), request.namespace, request.name,
            uid=request.preconditions.uid,
            resource_version=request.preconditions.resource_version,
            grace=grace, propagation=request.propagation_policy,
        ))

    @unary("bind")
    async def Bind(self, request, context):
        _names(request)
        if request.node_name:
            require_name(request.node_name, "target.name")
        return _result(await self.registry.bind(request.namespace, request.name,
                                                request.node_name, request.uid))

    @unary("evict")
    async def Evict(self, request, context):
        _names(request)
        grace = (request.grace_period_seconds if request.HasField("grace_period_seconds")
                 else None)
        return _result(await Evictor(self.registry).evict(
            request.namespace, request.name, uid=request.preconditions.uid,
            resource_version=request.preconditions.resource_version, grace=grace,
            dry_run=request.dry_run))

    @unary("metrics")
    async def Metrics(self, request, context):
        _names(request)
        which = lookup(request.resource or "?").plural
        if which == "nodes":
            items = await self.metrics.nodes(name=request.name,
                                             label_selector=request.label_selector)
        elif which == "pods":
            items = await self.metrics.pods(namespace=request.namespace, name=request.name,
                                            label_selector=request.label_selector)
        else:
            raise BadRequestError(
                f"the metrics API serves nodes and pods, not {show(request.resource)}")
        return api_pb2.MetricsResponse(items=items)

    @streaming("logs")
    async def Logs(self, request, context) -> AsyncIterator[api_pb2.LogChunk]:
        """Proxies pods/log to the kubelet of the pod's node, as Kubernetes does."""
        _names(request)
        if request.HasField("tail_lines") and request.tail_lines < 0:
            raise BadRequestError(f"Invalid value: {request.tail_lines}: must be greater than "
                                  "or equal to 0", field="tailLines")
        if request.container:
            check_request_name(request.container, "container", 63)
        pod = json.loads(await self.registry.get(lookup("pods"), request.namespace or "default",
                                                 request.name))
        _check_log_container(pod, request.container)
        target = await self.registry.kubelet_endpoint(request.namespace, request.name)
        async with grpc.aio.insecure_channel(target) as channel:
            try:
                async for chunk in api_pb2_grpc.KubeletStub(channel).Logs(request):
                    yield chunk
            except grpc.aio.AioRpcError as err:
                if err.code() == grpc.StatusCode.UNAVAILABLE:
                    raise UnavailableError(
                        f"cannot reach the kubelet at {target}: {err.details()}") from None
                raise from_rpc_error(err) from None

    async def _wait_fresh(self, revision: int) -> None:
        """Waits (briefly) until the watch cache has seen `revision`, as Kubernetes'
        watch cache does; a revision the store has not reached is an error, not a
        watch that would silently wait forever."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.too_large_wait
        while self.cache.revision < revision:
            if loop.time() >= deadline:
                message = (f"Too large resource version: {revision}, current: "
                           f"{self.cache.revision}")
                raise DeadlineExceededError(
                    message, reason="Timeout", retry_after=1,
                    causes=[Cause(RESOURCE_VERSION_TOO_LARGE, "Too large resource version")])
            await asyncio.sleep(0.05)

    @streaming("watch")
    async def Watch(self, request, context) -> AsyncIterator[api_pb2.WatchEvent]:
        async for event in self._watch(lookup(request.resource), request):
            yield event

    async def _watch(self, info: ResourceInfo, request) -> AsyncIterator[api_pb2.WatchEvent]:
        _names(request)
        namespace = request.namespace if info.namespaced else ""
        matches = compile_filter(request.label_selector, request.field_selector)
        rv = request.resource_version
        after: int | None
        if rv == "":
            page = await self.registry.list(info, namespace,
                                            label_selector=request.label_selector,
                                            field_selector=request.field_selector)
            for raw in page.items:
                yield api_pb2.WatchEvent(type="ADDED", object=raw)
            after = page.revision
        elif rv == "0":
            after = None
        else:
            if not (rv.isascii() and rv.isdigit() and int(rv) < 2**63):
                raise BadRequestError(f"Invalid value: {show(rv)}: must be a revision number",
                                      field="resourceVersion")
            after = int(rv)
            await self._wait_fresh(after)
        interval = self.bookmark_interval if request.allow_bookmarks else None
        async for delivery in self.cache.watch(resource=info.plural, namespace=namespace,
                                               matches=matches, after=after,
                                               bookmark_interval=interval):
            if delivery.type == "BOOKMARK":
                raw = json.dumps({"apiVersion": info.api_version, "kind": info.kind,
                                  "metadata": {"resourceVersion": str(delivery.revision)}},
                                 separators=(",", ":")).encode()
                yield api_pb2.WatchEvent(type="BOOKMARK", object=raw)
            else:
                yield api_pb2.WatchEvent(type=delivery.type, object=delivery.raw)

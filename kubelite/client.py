"""A typed async client for the kubelite API.

Every method takes and returns plain dicts (Kubernetes-shaped objects) and
raises the errors of kubelite.errors, never grpc's.

A client may be given several apiserver addresses ("a:6443,b:6443" or a list):
it talks to one at a time and moves to the next when that one cannot be reached.
A call that never reached a server (no connection) is retried on the next one;
a read is retried there after any transport failure; a write whose connection
broke midway is not (it may have been applied): it raises UnavailableError, and
the next call goes to the next server. Watches end with UnavailableError and
are resumed by the caller (the informer) from their last resourceVersion, on
whichever server is current: every apiserver serves the one revision order.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from kubelite.api.v1 import api_pb2, api_pb2_grpc
from kubelite.errors import ApiError, from_rpc_error

DEFAULT_SERVER = "127.0.0.1:6443"
MAX_MESSAGE_BYTES = 16 * 1024 * 1024

log = logging.getLogger("kubelite.client")


def default_server() -> str:
    """The apiserver address(es): $KUBELITE_SERVER, else where `kubelite up` listens."""
    return os.environ.get("KUBELITE_SERVER") or DEFAULT_SERVER


def split_targets(target: str | Sequence[str]) -> list[str]:
    """The addresses of "a:1,b:2" (or of a list of such strings), in order, without blanks."""
    parts = [target] if isinstance(target, str) else list(target)
    return [t.strip() for part in parts for t in part.split(",") if t.strip()]


# Failures on the way to a server (not answers from it) that make a client try another.
_SWITCH_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK
    object: dict[str, Any]

    @property
    def resource_version(self) -> str:
        return self.object.get("metadata", {}).get("resourceVersion", "")


@dataclass
class ObjectList:
    items: list[dict[str, Any]]
    resource_version: str
    continue_token: str = ""
    kind: str = ""
    api_version: str = "v1"

    def to_dict(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"resourceVersion": self.resource_version}
        if self.continue_token:
            meta["continue"] = self.continue_token
        return {"apiVersion": self.api_version, "kind": self.kind, "metadata": meta,
                "items": self.items}


def _dump(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _ns(namespace: str | None, obj: dict[str, Any] | None = None) -> str:
    if namespace:
        return namespace
    if obj is not None:
        return (obj.get("metadata") or {}).get("namespace") or ""
    return ""


class Client:
    """An async client for one apiserver, or several that serve the same cluster.

    `target` is an address, a comma-separated list of them, or a list (see the
    module docstring for how it fails over). `timeout` is the deadline of every
    unary call; watches have none. `on_warning` receives the warnings the server
    attaches to a response.
    """

    def __init__(
        self,
        target: str | Sequence[str] | None = None,
        *,
        timeout: float = 10.0,
        on_warning: Callable[[str], None] | None = None,
    ) -> None:
        self.targets = split_targets(target or default_server()) or [DEFAULT_SERVER]
        self.target = ",".join(self.targets)
        self.timeout = timeout
        self.on_warning = on_warning or (lambda w: log.warning("server warning: %s", w))
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[str, api_pb2_grpc.ApiStub] = {}
        self._active = 0
        #: How many times the client moved to another address.
        self.failovers = 0

    @property
    def current_target(self) -> str:
        """The address calls go to now."""
        return self.targets[self._active]

    def _stub_for(self, index: int) -> api_pb2_grpc.ApiStub:
        target = self.targets[index]
        stub = self._stubs.get(target)
        if stub is None:
            channel = grpc.aio.insecure_channel(
                target,
                options=[
                    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                    ("grpc.keepalive_time_ms", 30_000),
                    # Reconnect fast after an apiserver restart (gRPC's default starts at 1 s).
                    ("grpc.initial_reconnect_backoff_ms", 100),
                    ("grpc.min_reconnect_backoff_ms", 100),
                    ("grpc.max_reconnect_backoff_ms", 2000),
                    ("grpc.keepalive_permit_without_calls", 1),
                ],
            )
            self._channels[target] = channel
            stub = self._stubs[target] = api_pb2_grpc.ApiStub(channel)
        return stub

    def _switch_from(self, index: int, err: grpc.aio.AioRpcError) -> None:
        """Moves to the next address, unless another call already moved on from this one."""
        if len(self.targets) > 1 and self._active == index:
            self._active = (index + 1) % len(self.targets)
            self.failovers += 1
            log.info("apiserver %s failed (%s); switching to %s", self.targets[index],
                     err.code().name, self.targets[self._active])

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()

    async def _call(self, method: str, request: Any, timeout: float | None = None, *,
                    idempotent: bool = True) -> Any:
        last: grpc.aio.AioRpcError | None = None
        for _ in range(len(self.targets)):
            index = self._active
            try:
                return await getattr(self._stub_for(index), method)(
                    request, timeout=timeout or self.timeout)
            except grpc.aio.AioRpcError as err:
                if err.code() not in _SWITCH_CODES or _answered_by_server(err):
                    raise from_rpc_error(err) from None
                last = err
                self._switch_from(index, err)
                never_sent = "failed to connect" in (err.details() or "")
                if err.code() != grpc.StatusCode.UNAVAILABLE or not (idempotent or never_sent):
                    break
        assert last is not None
        raise from_rpc_error(last) from None

    def _object(self, response: api_pb2.ObjectResponse) -> dict[str, Any]:
        for warning in response.warnings:
            self.on_warning(warning)
        return json.loads(response.object)

    async def create(
        self, resource: str, obj: dict[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]:
        req = api_pb2.CreateRequest(resource=resource, namespace=_ns(namespace, obj),
                                    object=_dump(obj))
        return self._object(await self._call("Create", req, idempotent=False))

    async def get(
        self, resource: str, name: str, *, namespace: str | None = None
    ) -> dict[str, Any]:
        req = api_pb2.GetRequest(resource=resource, namespace=namespace or "", name=name)
        return self._object(await self._call("Get", req))

    async def list(
        self,
        resource: str,
        *,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
        limit: int = 0,
        continue_token: str = "",
    ) -> ObjectList:
        """Lists one page (all of it when limit is 0); namespace None means all namespaces."""
        req = api_pb2.ListRequest(
            resource=resource, namespace=namespace or "", label_selector=label_selector,
            field_selector=field_selector, limit=limit, continue_token=continue_token,
        )
        resp = await self._call("List", req)
        return ObjectList(
            items=[json.loads(item) for item in resp.items],
            resource_version=resp.resource_version,
            continue_token=resp.continue_token,
            kind=resp.kind,
            api_version=resp.api_version,
        )

    async def update(
        self, resource: str, obj: dict[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]:
        req = api_pb2.UpdateRequest(resource=resource, namespace=_ns(namespace, obj),
                                    object=_dump(obj))
        return self._object(await self._call("Update", req, idempotent=False))

    async def update_status(
        self, resource: str, obj: dict[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]:
        req = api_pb2.UpdateRequest(resource=resource, namespace=_ns(namespace, obj),
                                    object=_dump(obj))
        return self._object(await self._call("UpdateStatus", req, idempotent=False))

    async def patch(
        self, resource: str, name: str, patch: dict[str, Any], *, namespace: str | None = None
    ) -> dict[str, Any]:
        """Applies a JSON merge patch (RFC 7386)."""
        req = api_pb2.PatchRequest(resource=resource, namespace=namespace or "", name=name,
                                   patch=_dump(patch))
        return self._object(await self._call("Patch", req, idempotent=False))

    async def delete(
        self,
        resource: str,
        name: str,
        *,
        namespace: str | None = None,
        grace_period_seconds: int | None = None,
        propagation_policy: str = "",
        uid: str = "",
        resource_version: str = "",
    ) -> dict[str, Any]:
        """Deletes an object; returns its last state (or its state while it terminates)."""
        req = api_pb2.DeleteRequest(
            resource=resource, namespace=namespace or "", name=name,
            preconditions=api_pb2.Preconditions(uid=uid, resource_version=resource_version),
            propagation_policy=propagation_policy,
        )
        if grace_period_seconds is not None:
            req.grace_period_seconds = grace_period_seconds
        return self._object(await self._call("Delete", req, idempotent=False))

    async def evict(
        self,
        name: str,
        *,
        namespace: str | None = None,
        grace_period_seconds: int | None = None,
        uid: str = "",
        resource_version: str = "",
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Evicts a pod (pods/eviction): deletes it if its PodDisruptionBudget allows.

        Raises TooManyRequestsError while the budget allows no disruption.
        """
        req = api_pb2.EvictRequest(
            namespace=namespace or "", name=name, dry_run=dry_run,
            preconditions=api_pb2.Preconditions(uid=uid, resource_version=resource_version),
        )
        if grace_period_seconds is not None:
            req.grace_period_seconds = grace_period_seconds
        return self._object(await self._call(self._stub.Evict, req))

    async def bind(
        self, name: str, node_name: str, *, namespace: str | None = None, uid: str = ""
    ) -> dict[str, Any]:
        """Binds a pod to a node (sets spec.nodeName once)."""
        req = api_pb2.BindRequest(namespace=namespace or "", name=name, node_name=node_name,
                                  uid=uid)
        return self._object(await self._call("Bind", req, idempotent=False))

    async def logs(
        self,
        name: str,
        *,
        namespace: str | None = None,
        container: str = "",
        follow: bool = False,
        previous: bool = False,
        tail_lines: int | None = None,
        timestamps: bool = False,
    ) -> AsyncIterator[bytes]:
        """Streams a pod's container log through the apiserver (from its kubelet)."""
        req = api_pb2.LogsRequest(namespace=namespace or "default", name=name,
                                  container=container, follow=follow, previous=previous,
                                  timestamps=timestamps)
        if tail_lines is not None:
            req.tail_lines = tail_lines
        index = self._active
        call = self._stub_for(index).Logs(req, timeout=None if follow else self.timeout * 3)
        try:
            async for chunk in call:
                yield chunk.data
        except grpc.aio.AioRpcError as err:
            if err.code() in _SWITCH_CODES and not _answered_by_server(err):
                self._switch_from(index, err)
            raise from_rpc_error(err) from None
        finally:
            call.cancel()

    async def metrics(self, resource: str, *, namespace: str | None = None, name: str = "",
                      label_selector: str = "") -> list[dict[str, Any]]:
        """Current usage of "nodes" or "pods" (metrics.k8s.io NodeMetrics / PodMetrics)."""
        req = api_pb2.MetricsRequest(resource=resource, namespace=namespace or "", name=name,
                                     label_selector=label_selector)
        resp = await self._call("Metrics", req)
        return [json.loads(item) for item in resp.items]

    async def watch(
        self,
        resource: str,
        *,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
        resource_version: str = "",
        allow_bookmarks: bool = True,
    ) -> AsyncIterator[WatchEvent]:
        """Streams changes after resource_version ("" sends the current state first).

        Raises ExpiredError when that revision has been trimmed from history.
        """
        req = api_pb2.WatchRequest(
            resource=resource, namespace=namespace or "", label_selector=label_selector,
            field_selector=field_selector, resource_version=resource_version,
            allow_bookmarks=allow_bookmarks,
        )
        index = self._active
        call = self._stub_for(index).Watch(req)
        try:
            async for event in call:
                yield WatchEvent(event.type, json.loads(event.object))
        except grpc.aio.AioRpcError as err:
            if err.code() in _SWITCH_CODES and not _answered_by_server(err):
                self._switch_from(index, err)
            raise from_rpc_error(err) from None
        finally:
            call.cancel()


def _answered_by_server(err: grpc.aio.AioRpcError) -> bool:
    """Whether the apiserver itself sent this status (it attaches rich details)."""
    return from_rpc_error(err).from_server


__all__ = ["ApiError", "Client", "ObjectList", "WatchEvent", "default_server", "split_targets",
           "DEFAULT_SERVER"]

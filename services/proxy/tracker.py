"""Feeds a proxier from two informers, Services and Endpoints.

Whenever either object of a `namespace/name` changes, the tracker rebuilds
that Service's ServicePorts (a pure function of the two cached objects) and,
if they differ from the last ones it handed on, calls `proxier.update(key,
ports, trigger_time)`. The handlers are registered only once both informers
have synced, as kube-proxy waits for its caches, so the first rules never show
a Service without the endpoints that were already there.

`trigger_time` is set for Endpoints changes only: the object's
`endpoints.kubernetes.io/last-change-trigger-time` annotation when the writer
set one (the Endpoints controller does), else the moment the proxy saw the
change; the proxier observes the network programming latency from it.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from kubelite.informer import Informer, ListWatchClient, object_key
from kubelite.objects import parse_time

from .model import ServicePort, service_ports

log = logging.getLogger("kubelite.proxy")

TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"


class Proxier(Protocol):
    def update(self, key: str, ports: list[ServicePort],
               trigger_time: float | None = None) -> None: ...


def trigger_time(endpoints: dict[str, Any]) -> float:
    annotations = (endpoints.get("metadata") or {}).get("annotations") or {}
    text = annotations.get(TRIGGER_TIME_ANNOTATION)
    if text:
        try:
            return parse_time(text).timestamp()
        except ValueError:
            pass
    return time.time()


class ServiceTracker:
    def __init__(self, client: ListWatchClient, proxier: Proxier, *,
                 backoff_cap: float = 5.0) -> None:
        self.proxier = proxier
        self.services = Informer(client, "services", backoff_cap=backoff_cap)
        self.endpoints = Informer(client, "endpoints", backoff_cap=backoff_cap)
        self._last: dict[str, list[ServicePort]] = {}

    async def start(self) -> None:
        """Starts both informers and returns once both synced and the proxier has the lot."""
        self.services.start()
        self.endpoints.start()
        await self.services.wait_synced()
        await self.endpoints.wait_synced()
        self.services.add_handler(
            on_add=lambda obj: self._changed(object_key(obj)),
            on_update=lambda old, new: self._changed(object_key(new)),
            on_delete=lambda obj: self._changed(object_key(obj)))
        self.endpoints.add_handler(
            on_add=lambda obj: self._changed(object_key(obj), trigger_time(obj)),
            on_update=lambda old, new: self._changed(object_key(new), trigger_time(new)),
            on_delete=lambda obj: self._changed(object_key(obj), time.time()))
        log.info("caches synced", extra={"kv": {
            "services": len(self.services.store), "endpoints": len(self.endpoints.store)}})

    async def stop(self) -> None:
        await self.services.stop()
        await self.endpoints.stop()

    def _changed(self, key: str, trigger: float | None = None) -> None:
        service = self.services.get(key)
        ports = service_ports(service, self.endpoints.get(key)) if service else []
        if ports == self._last.get(key, []):
            return
        if ports:
            self._last[key] = ports
        else:
            self._last.pop(key, None)
        self.proxier.update(key, ports, trigger)

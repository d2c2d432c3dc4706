"""Keeps the RecordTable in step with the apiserver: two informers, Services and
Endpoints, and on any change to `namespace/name` the records of that one
Service are rebuilt from the two cached objects (a pure function, see records)
and swapped in. The table is filled before the server answers its first query,
so a restarted DNS never says NXDOMAIN for a Service that exists.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from kubelite.informer import Informer, ListWatchClient, object_key
from kubelite.objects import parse_time

from . import metrics
from .records import RecordTable, service_records

log = logging.getLogger("kubelite.dns")

TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"


def _service_kind(service: dict[str, Any]) -> str:
    spec = service.get("spec") or {}
    if spec.get("type") == "ExternalName":
        return "external_name"
    return "headless_with_selector" if spec.get("clusterIP") == "None" else "cluster_ip"


class RecordWatcher:
    def __init__(self, client: ListWatchClient, table: RecordTable, *,
                 backoff_cap: float = 5.0) -> None:
        self.table = table
        self.services = Informer(client, "services", backoff_cap=backoff_cap)
        self.endpoints = Informer(client, "endpoints", backoff_cap=backoff_cap)

    async def start(self) -> None:
        """Starts both informers; returns once both synced and the table has every Service."""
        self.services.start()
        self.endpoints.start()
        await self.services.wait_synced()
        await self.endpoints.wait_synced()
        self.services.add_handler(
            on_add=lambda obj: self._changed(object_key(obj)),
            on_update=lambda old, new: self._changed(object_key(new)),
            on_delete=lambda obj: self._changed(object_key(obj)))
        self.endpoints.add_handler(
            on_add=lambda obj: self._changed(object_key(obj), obj),
            on_update=lambda old, new: self._changed(object_key(new), new),
            on_delete=lambda obj: self._changed(object_key(obj)))
        log.info("caches synced", extra={"kv": {
            "services": len(self.services.store), "endpoints": len(self.endpoints.store),
            "names": len(self.table)}})

    async def stop(self) -> None:
        await self.services.stop()
        await self.endpoints.stop()

    def _changed(self, key: str, endpoints_changed: dict[str, Any] | None = None) -> None:
        service = self.services.get(key)
        if service is None:
            self.table.remove(key)
        else:
            self.table.set(key, service_records(service, self.endpoints.get(key),
                                                self.table.zone))
        metrics.RECORD_NAMES.set(len(self.table))
        if service is not None and endpoints_changed is not None:
            annotations = (endpoints_changed.get("metadata") or {}).get("annotations") or {}
            text = annotations.get(TRIGGER_TIME_ANNOTATION)
            try:
                if text:
                    metrics.PROGRAMMING_DURATION.labels(_service_kind(service)).observe(
                        max(0.0, time.time() - parse_time(text).timestamp()))
            except ValueError:
                pass

"""Kubernetes-style Events, recorded without ever blocking the caller.

`EventRecorder.event(obj, type, reason, message)` queues the event; a
background task writes it. A repeat of the same (object, type, reason,
message) bumps `count` and `lastTimestamp` on the existing Event instead of
creating another, as client-go's EventCorrelator does.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from typing import Any

from kubelite.client import Client
from kubelite.errors import ApiError, NotFoundError
from kubelite.objects import now_rfc3339
from kubelite.supervise import spawn

log = logging.getLogger("kubelite.events")

MAX_NAME = 253
NORMAL = "Normal"
WARNING = "Warning"


def involved_object(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    ref = {"kind": obj.get("kind", ""), "apiVersion": obj.get("apiVersion", ""),
           "name": meta.get("name", ""), "uid": meta.get("uid", "")}
    if meta.get("namespace"):
        ref["namespace"] = meta["namespace"]
    if meta.get("resourceVersion"):
        ref["resourceVersion"] = meta["resourceVersion"]
    return ref


class EventRecorder:
    def __init__(self, client: Client, *, component: str, host: str = "",
                 cache_size: int = 4096, max_pending: int = 1000) -> None:
        self.client = client
        self.component = component
        self.host = host
        self._seen: OrderedDict[tuple, tuple[str, str, int]] = OrderedDict()
        self._cache_size = cache_size
        self._queue: asyncio.Queue[tuple] = asyncio.Queue(max_pending)
        self._task: asyncio.Task | None = None

    def event(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """Queues an event about obj; drops it (with a log line) if the queue is full."""
        if self._task is None or self._task.done():
            self._task = spawn(f"event-recorder-{self.component}", self._run, logger=log)
        try:
            self._queue.put_nowait((involved_object(obj), type_, reason, message[:1024]))
        except asyncio.QueueFull:
            log.warning("event dropped: recorder queue full", extra={"kv": {"reason": reason}})

    async def flush(self) -> None:
        """Waits until every queued event has been written (for tests and shutdown)."""
        await self._queue.join()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            ref, type_, reason, message = await self._queue.get()
            try:
                await self._write(ref, type_, reason, message)
            except ApiError as err:
                log.warning("event not recorded", extra={"kv": {
                    "reason": reason, "object": ref.get("name"), "error": str(err)}})
            finally:
                self._queue.task_done()

    async def _write(self, ref: dict[str, Any], type_: str, reason: str, message: str) -> None:
        namespace = ref.get("namespace") or "default"
        key = (ref.get("kind"), namespace, ref.get("name"), ref.get("uid"), type_, reason,
               message)
        now = now_rfc3339()
        seen = self._seen.get(key)
        if seen is not None:
            name, first, count = seen
            try:
                await self.client.patch("events", name, {"count": count + 1,
                                                         "lastTimestamp": now},
                                        namespace=namespace)
                self._seen[key] = (name, first, count + 1)
                self._seen.move_to_end(key)
                return
            except NotFoundError:
                pass  # expired: start a new series
        suffix = f".{time.time_ns():x}"
        # Cut a long object name so that the Event's name stays a valid one (253).
        name = f"{ref.get('name', 'unknown')[:MAX_NAME - len(suffix)]}{suffix}"
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": ref, "reason": reason, "message": message, "type": type_,
            "source": {"component": self.component, **({"host": self.host} if self.host else {})},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
            "reportingComponent": self.component, "reportingInstance": self.host,
        }
        await self.client.create("events", event)
        self._seen[key] = (name, now, 1)
        if len(self._seen) > self._cache_size:
            self._seen.popitem(last=False)

"""Event expiry: an Event is deleted `--event-ttl` after it last occurred.

Kubernetes gives each Event an etcd lease of --event-ttl (1 h). kubelite's
storage has no leases, so the leader-elected controller manager does it, once
for the cluster: every Event in the informer's cache is queued to be looked at
when its TTL runs out, counted from its last occurrence (lastTimestamp, else
eventTime, else creationTimestamp). A repeat that bumped lastTimestamp
meanwhile simply moves the deadline. The delete carries the resourceVersion
seen, so an Event repeated since is kept (and queued again by its update).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from kubelite.client import Client
from kubelite.errors import NotFoundError, PreconditionFailedError
from kubelite.informer import object_key

from .base import Controller
from .informers import InformerFactory

Obj = dict[str, Any]

DEFAULT_TTL = 3600.0


def last_occurrence(event: Obj) -> float | None:
    """When the event last happened, in seconds since the epoch (None if unreadable)."""
    meta = event.get("metadata") or {}
    for stamp in (event.get("lastTimestamp"), event.get("eventTime"),
                  meta.get("creationTimestamp")):
        if not stamp:
            continue
        try:
            when = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
        except ValueError:
            continue
        return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    return None


class EventExpiryController(Controller[str]):
    name = "eventexpiry"

    def __init__(self, client: Client, factory: InformerFactory, *,
                 ttl: float = DEFAULT_TTL) -> None:
        self.event_informer = factory.informer("events")
        super().__init__(informers=[self.event_informer])
        self.client = client
        self.ttl = ttl
        self.event_informer.add_handler(on_add=self._schedule,
                                        on_update=lambda old, cur: self._schedule(cur))

    def _remaining(self, event: Obj) -> float:
        last = last_occurrence(event)
        # No readable time at all: kept, as before (nothing says it is old).
        return float("inf") if last is None else last + self.ttl - time.time()

    def _schedule(self, event: Obj) -> None:
        left = self._remaining(event)
        if left != float("inf"):
            self.queue.add_after(object_key(event), max(left, 0.0))

    async def sync(self, key: str) -> None:
        event = self.event_informer.get(key)
        if event is None:
            return
        left = self._remaining(event)
        if left > 0:
            if left != float("inf"):
                self.queue.add_after(key, left)
            return
        meta = event["metadata"]
        try:
            await self.client.delete("events", meta["name"], namespace=meta.get("namespace"),
                                     resource_version=str(meta.get("resourceVersion") or ""))
        except (NotFoundError, PreconditionFailedError):
            pass  # gone already, or repeated since we looked (its update queues it again)


__all__ = ["DEFAULT_TTL", "EventExpiryController", "last_occurrence"]

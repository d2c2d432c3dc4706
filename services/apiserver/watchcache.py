"""The watch cache: one stream reader per apiserver, fanned out in process.

A single task follows the Redis event stream with blocking XREADs, decodes
each event once, keeps the most recent ones in a ring, and hands every event to
the watchers whose filters match. A thousand watchers therefore cost one XREAD
loop, not a thousand.

A new watcher registers first and backfills second: events committed after it
registered reach its queue live; older ones come from the ring or, if the ring
no longer covers them, from the stream itself. Revisions it has already sent
are skipped, so the seam between backfill and live events is exact.

With replicas required (--redis-min-replicas) the reader fans out a batch only
once WAIT confirms that the replicas hold it, so no watcher ever sees an event a
primary failover then loses. A FAILOVER entry in the stream (the revision jump
on a new primary) continues the revision it jumped from; a watch resuming from
a revision inside the jump (one the old primary handed out and lost) is told to
list again (ExpiredError).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from kubelite.errors import ExpiredError, UnavailableError
from kubelite.supervise import spawn

from .metrics import REGISTERED_WATCHERS, WATCH_CACHE_REVISION, WATCH_EVENTS
from .storage import FAILOVER, Storage, StoredEvent

log = logging.getLogger("kubelite.apiserver.watchcache")

Filter = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True)
class CachedEvent:
    revision: int
    type: str
    resource: str
    raw: bytes
    obj: dict[str, Any]
    prev: dict[str, Any] | None
    jumped_from: int = 0  # FAILOVER markers only


@dataclass(eq=False)
class Watcher:
    resource: str
    namespace: str
    matches: Filter | None  # label and field selectors; None matches everything
    queue: asyncio.Queue[CachedEvent | None] = field(default_factory=asyncio.Queue)
    overflowed: bool = False
    max_queue: int = 10000

    def offer(self, event: CachedEvent) -> None:
        if self.overflowed:
            return
        if self.queue.qsize() >= self.max_queue:
            # A consumer this slow is cut off; it resumes from its last revision.
            self.overflowed = True
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait(event)


@dataclass(frozen=True)
class Delivery:
    """What a watcher is sent: an event type and the object's JSON."""

    type: str
    raw: bytes
    revision: int


def _decode(event: StoredEvent) -> CachedEvent:
    if event.type == FAILOVER:
        return CachedEvent(revision=event.revision, type=FAILOVER, resource="", raw=b"",
                           obj={}, prev=None, jumped_from=event.jumped_from)
    return CachedEvent(
        revision=event.revision, type=event.type, resource=event.resource, raw=event.raw,
        obj=json.loads(event.raw), prev=json.loads(event.prev) if event.prev else None,
    )


def lost_in_failover(event: CachedEvent, last: int) -> bool:
    """Whether `last` is a revision the failover this marker records has lost."""
    return event.type == FAILOVER and event.jumped_from < last < event.revision


def _expired_by_failover(last: int) -> ExpiredError:
    return ExpiredError(f"too old resource version: {last} (lost in a storage failover; "
                        "list again)")


def translate(watcher: Watcher, event: CachedEvent) -> str | None:
    """The event type this watcher should see, or None when it should see nothing.

    An object that starts matching a selector is ADDED for that watcher; one that
    stops matching is DELETED, as Kubernetes' watch cache does.
    """
    if event.resource != watcher.resource:
        return None
    if watcher.namespace and event.obj.get("metadata", {}).get("namespace") != watcher.namespace:
        return None
    if watcher.matches is None:
        return event.type
    now = watcher.matches(event.obj)
    if event.type != "MODIFIED" or event.prev is None:
        return event.type if now else None
    before = watcher.matches(event.prev)
    if now and before:
        return "MODIFIED"
    if now:
        return "ADDED"
    if before:
        return "DELETED"
    return None


class WatchCache:
    def __init__(self, storage: Storage, *, size: int = 5000, block_ms: int = 1000,
                 max_queue: int = 10000) -> None:
        self.storage = storage
        self.ring: deque[CachedEvent] = deque(maxlen=size)
        self.block_ms = block_ms
        self.max_queue = max_queue
        self.revision = 0  # the last revision fanned out
        self.watchers: dict[str, set[Watcher]] = {}
        self.ready = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.reads = 0  # XREAD calls made, for tests and metrics

    async def start(self) -> None:
        # Supervised: a reader that died would freeze every watch of this replica.
        self._task = spawn("watchcache-reader", self._run, logger=log)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for group in self.watchers.values():
            for w in group:
                w.queue.put_nowait(None)

    async def _run(self) -> None:
        delay = 0.1
        while True:
            try:
                if not self.ready.is_set():
                    revision = await self.storage.last_stream_revision()
                    if not await self.storage.replicated():
                        raise UnavailableError("the replicas do not confirm the stream yet")
                    self.revision = revision
                    WATCH_CACHE_REVISION.set(self.revision)
                    self.ready.set()
                    log.info("watch cache following the event stream",
                             extra={"kv": {"revision": self.revision}})
                events = await self.storage.read_stream(self.revision, self.block_ms)
                self.reads += 1
                # Only what the replicas hold is fanned out; the batch is read again
                # until they confirm it (after a failover it may be another batch).
                if events and not await self.storage.replicated():
                    raise UnavailableError("the replicas do not confirm the new events yet")
                delay = 0.1
            except UnavailableError as err:
                log.warning("event stream unavailable; retrying",
                            extra={"kv": {"error": err.message, "retry_in": round(delay, 2)}})
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 2.0)
                continue
            for stored in events:
                self._dispatch(_decode(stored))

    def _dispatch(self, event: CachedEvent) -> None:
        if event.revision <= self.revision:
            return
        continues = event.type == FAILOVER and event.jumped_from == self.revision
        if event.revision > self.revision + 1 and not continues:
            # The reader fell further behind than the stream's history: events
            # were trimmed before it saw them. (Or, without --redis-min-replicas, a
            # failover lost events it had already fanned out.) Every watcher must
            # resume, and will learn from the stream itself that it has to list again.
            log.warning("watch cache lost events to trimming; closing watches",
                        extra={"kv": {"from": self.revision, "to": event.revision}})
            self.ring.clear()
            for group in self.watchers.values():
                for w in group:
                    w.overflowed = True
                    w.queue.put_nowait(None)
        self.ring.append(event)
        self.revision = event.revision
        WATCH_CACHE_REVISION.set(event.revision)
        if event.type == FAILOVER:
            for group in self.watchers.values():
                for watcher in group:
                    watcher.offer(event)
            return
        for watcher in self.watchers.get(event.resource, ()):
            watcher.offer(event)

    async def _backfill(self, after: int, upto: int) -> list[CachedEvent]:
        if after >= upto:
            return []
        if self.ring and self.ring[0].revision <= after + 1:
            return [e for e in self.ring if after < e.revision <= upto]
        return [_decode(e) for e in await self.storage.read_range(after, upto)]

    async def watch(
        self,
        *,
        resource: str,
        namespace: str,
        matches: Filter | None,
        after: int | None,
        bookmark_interval: float | None,
    ) -> AsyncIterator[Delivery]:
        """Yields the events after revision `after` (None: from now) that pass the filters.

        Yields a BOOKMARK (raw is empty) when idle for bookmark_interval seconds.
        Raises ExpiredError if `after` is older than the retained history.
        """
        await self.ready.wait()
        watcher = Watcher(resource, namespace, matches, max_queue=self.max_queue)
        group = self.watchers.setdefault(resource, set())
        group.add(watcher)
        REGISTERED_WATCHERS.labels(resource).inc()
        try:
            last = self.revision if after is None else after
            for event in await self._backfill(last, self.revision):
                if lost_in_failover(event, last):
                    raise _expired_by_failover(last)
                kind = translate(watcher, event)
                if kind:
                    yield Delivery(kind, event.raw, event.revision)
                    WATCH_EVENTS.labels(resource).inc()
                last = max(last, event.revision)
            sent = WATCH_EVENTS.labels(resource)
            queue = watcher.queue
            while True:
                # No Task per event: take what is queued, and wait only when idle.
                if not queue.empty():
                    event = queue.get_nowait()
                elif bookmark_interval:
                    try:
                        async with asyncio.timeout(bookmark_interval):
                            event = await queue.get()
                    except TimeoutError:
                        if self.revision > last and queue.empty():
                            last = self.revision
                        yield Delivery("BOOKMARK", b"", last)
                        continue
                else:
                    event = await queue.get()
                if event is None:
                    return
                if event.revision <= last:
                    continue
                if lost_in_failover(event, last):
                    raise _expired_by_failover(last)
                last = event.revision
                kind = translate(watcher, event)
                if kind:
                    sent.inc()
                    yield Delivery(kind, event.raw, event.revision)
        finally:
            group.discard(watcher)
            REGISTERED_WATCHERS.labels(resource).dec()

    def watcher_count(self) -> int:
        return sum(len(g) for g in self.watchers.values())


__all__ = ["WatchCache", "Delivery", "ExpiredError"]

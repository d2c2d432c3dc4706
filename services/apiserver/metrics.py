"""The apiserver's Prometheus metrics, named as Kubernetes names them."""

import asyncio
import logging

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "apiserver_request_total", "Requests by verb, resource and gRPC code.",
    ["verb", "resource", "code"],
)
REQUEST_DURATION = Histogram(
    "apiserver_request_duration_seconds", "Request latency by verb and resource.",
    ["verb", "resource"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
WATCH_EVENTS = Counter(
    "apiserver_watch_events_total", "Events sent to watchers.", ["resource"],
)
REGISTERED_WATCHERS = Gauge(
    "apiserver_registered_watchers", "Open watches.", ["resource"],
)
WATCH_CACHE_REVISION = Gauge(
    "apiserver_watch_cache_revision", "The last revision the watch cache fanned out.",
)
STORAGE_OBJECTS = Gauge(
    "apiserver_storage_objects", "Number of stored objects at the time of last check, split "
    "by kind.", ["resource"],
)
WATCH_CACHE_LAG = Gauge(
    "apiserver_watch_cache_lag_revisions",
    "The storage's current revision minus the last revision the watch cache fanned out.",
)

STORAGE_SAMPLE_SECONDS = 2.0


async def track_storage(storage, cache, resources, *, every=STORAGE_SAMPLE_SECONDS):
    """Sets STORAGE_OBJECTS and WATCH_CACHE_LAG every `every` seconds, until cancelled
    (Kubernetes counts stored objects periodically too, rather than on every write)."""
    async def read():
        pipe = storage.redis.pipeline(transaction=False)
        pipe.get(storage.rev_key)
        for resource in resources:
            pipe.hlen(storage.hash_key(resource))
        return await pipe.execute()

    while True:
        try:
            revision, *counts = await storage.guard(read)
            WATCH_CACHE_LAG.set(max(0, int(revision or 0) - cache.revision))
            for resource, count in zip(resources, counts, strict=True):
                STORAGE_OBJECTS.labels(resource).set(count)
        except Exception as err:  # noqa: BLE001 - a missed sample is only a stale gauge
            logging.getLogger("kubelite.apiserver.metrics").debug(
                "storage metrics not sampled", extra={"kv": {"error": str(err)}})
        await asyncio.sleep(every)

"""The apiserver's Prometheus metrics, named as Kubernetes names them."""

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

"""The proxy's Prometheus metrics: kube-proxy's names where kube-proxy has one,
`kubelite_proxy_*` for the userspace forwarder that kube-proxy no longer has."""

from prometheus_client import Counter, Gauge, Histogram

_SYNC_BUCKETS = tuple(0.001 * 2 ** i for i in range(15))  # 1 ms .. 16 s, as kube-proxy's
_PROGRAMMING_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 15, 30, 60, 120)

SYNC_DURATION = Histogram(
    "kubeproxy_sync_proxy_rules_duration_seconds",
    "How long one sync of the proxy rules (or listeners) took.", buckets=_SYNC_BUCKETS,
)
SYNC_LAST_TIMESTAMP = Gauge(
    "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
    "The Unix time of the last successful sync.",
)
NETWORK_PROGRAMMING = Histogram(
    "kubeproxy_network_programming_duration_seconds",
    "From an Endpoints change (its last-change-trigger-time annotation, else the moment "
    "the proxy saw it) to the change being programmed.", buckets=_PROGRAMMING_BUCKETS,
)
RESTORE_FAILURES = Counter(
    "kubeproxy_sync_proxy_rules_iptables_restore_failures_total",
    "iptables-restore runs that failed.",
)
IPTABLES_RULES = Gauge(
    "kubeproxy_sync_proxy_rules_iptables_total",
    "Rules in the last rule set applied, by table.", ["table"],
)
IPTABLES_RESTORES = Counter(
    "kubelite_proxy_iptables_restores_total",
    "iptables-restore runs (a sync whose rules did not change runs none).",
)
SYNCS_SKIPPED = Counter(
    "kubelite_proxy_syncs_skipped_total",
    "Syncs that rendered the rules already applied, so ran no iptables-restore.",
)
LISTENERS = Gauge(
    "kubelite_proxy_listeners", "Userspace listeners open (ClusterIP:port and NodeIP:nodePort).",
)
ACTIVE_CONNECTIONS = Gauge(
    "kubelite_proxy_active_connections", "Userspace connections being forwarded.", ["service"],
)
CONNECTIONS = Counter(
    "kubelite_proxy_connections_total", "Userspace connections accepted.", ["service"],
)
BYTES = Counter(
    "kubelite_proxy_bytes_total",
    "Bytes forwarded; direction is `in` (client to endpoint) or `out` (endpoint to client).",
    ["service", "direction"],
)
ERRORS = Counter(
    "kubelite_proxy_errors_total",
    "Userspace failures: connect (an endpoint refused or timed out, retried on another), "
    "no_endpoint (a connection found none that worked), listen (a port could not be bound).",
    ["service", "reason"],
)

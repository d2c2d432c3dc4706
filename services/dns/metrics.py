"""The DNS server's Prometheus metrics, under CoreDNS's names and labels, so that
CoreDNS's dashboards and alerts work on kubelite's DNS unchanged."""

from prometheus_client import Counter, Gauge, Histogram

# CoreDNS's buckets: 0.25 ms doubling up to ~8 s.
_DURATION_BUCKETS = tuple(0.00025 * 2 ** i for i in range(16))
_SIZE_BUCKETS = (0, 100, 200, 300, 400, 511, 1023, 2047, 4095, 8291, 16000, 32000, 48000,
                 64000)

REQUESTS = Counter(
    "coredns_dns_requests_total", "Counter of DNS requests made per zone, protocol and family.",
    ["server", "zone", "view", "proto", "family", "type"],
)
RESPONSES = Counter(
    "coredns_dns_responses_total", "Counter of response status codes.",
    ["server", "zone", "view", "rcode", "plugin"],
)
REQUEST_DURATION = Histogram(
    "coredns_dns_request_duration_seconds", "Histogram of the time (in seconds) each request "
    "took.", ["server", "zone", "view", "type"], buckets=_DURATION_BUCKETS,
)
REQUEST_SIZE = Histogram(
    "coredns_dns_request_size_bytes", "Size of the EDNS0 UDP buffer in bytes (64K for TCP).",
    ["server", "zone", "view", "proto"], buckets=_SIZE_BUCKETS,
)
RESPONSE_SIZE = Histogram(
    "coredns_dns_response_size_bytes", "Size of the returned response in bytes.",
    ["server", "zone", "view", "proto"], buckets=_SIZE_BUCKETS,
)
FORWARD_REQUESTS = Counter(
    "coredns_forward_requests_total", "Counter of requests made per upstream.", ["to"],
)
FORWARD_RESPONSES = Counter(
    "coredns_forward_responses_total", "Counter of responses received per upstream.",
    ["to", "rcode"],
)
FORWARD_DURATION = Histogram(
    "coredns_forward_request_duration_seconds", "Histogram of the time each request took.",
    ["to", "rcode"], buckets=_DURATION_BUCKETS,
)
FORWARD_HEALTHCHECK_FAILURES = Counter(
    "coredns_forward_healthcheck_failures_total",
    "Counter of the number of failed queries to an upstream (timeouts, refused).", ["to"],
)
PROGRAMMING_DURATION = Histogram(
    "coredns_kubernetes_dns_programming_duration_seconds",
    "Histogram of the time (in seconds) it took to program a dns instance.",
    ["service_kind"], buckets=(0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256,
                               0.512, 1.024, 2.048, 4.096, 8.192, 16.384, 32.768, 65.536),
)
RECORD_NAMES = Gauge(
    "kubelite_dns_record_names", "Names the cluster zone holds (Services, SRV, PTR, endpoints).",
)

"""Issue 6's metrics acceptance: every component of `kubelite up` serves /metrics that
prometheus_client's parser reads, every metric the issue lists is there, and each one
moves when the action it counts happens (each test does the action and checks the delta).

The metrics URLs are the ones `kubelite up` prints.
"""

from __future__ import annotations

import asyncio
import random
import re
import socket
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kubelite.client import Client

from .e2e import ECHO, Cluster, eventually, is_ready, start_cluster, wait_nodes_ready

pytestmark = pytest.mark.slow

ECHO_PORT = random.randint(18000, 19999)  # per run: other clusters share the loopback IPs

# The issue's minimum, by component (family names: counters without `_total`).
LISTED: dict[str, tuple[str, ...]] = {
    "apiserver": ("apiserver_request", "apiserver_request_duration_seconds",
                  "apiserver_watch_events", "apiserver_registered_watchers",
                  "apiserver_storage_objects", "apiserver_watch_cache_lag_revisions"),
    "scheduler": ("scheduler_schedule_attempts", "scheduler_scheduling_attempt_duration_seconds",
                  "scheduler_pending_pods", "scheduler_pod_scheduling_sli_duration_seconds",
                  "leader_election_master_status"),
    "controller": ("workqueue_depth", "workqueue_adds", "workqueue_queue_duration_seconds",
                   "workqueue_work_duration_seconds", "workqueue_retries",
                   "controller_reconcile_errors", "leader_election_master_status"),
    "kubelet": ("kubelet_running_pods", "kubelet_running_containers",
                "kubelet_pod_start_duration_seconds", "kubelet_container_restarts",
                "prober_probe", "kubelet_runtime_operations_duration_seconds"),
    "proxy": ("kubeproxy_sync_proxy_rules_duration_seconds",
              "kubeproxy_sync_proxy_rules_last_timestamp_seconds",
              "kubelite_proxy_active_connections", "kubelite_proxy_bytes",
              "kubelite_proxy_errors"),
    # CoreDNS's names (the families, without _total; the series appear once used).
    "dns": ("coredns_dns_requests", "coredns_dns_responses",
            "coredns_dns_request_duration_seconds", "coredns_forward_requests"),
}
PROCESS = ("process_cpu_seconds", "process_resident_memory_bytes", "process_start_time_seconds")


def metrics_urls(cluster: Cluster, timeout: float = 30.0) -> dict[str, str]:
    """{component instance: URL} from the `metrics:` block `kubelite up` printed."""
    deadline = time.monotonic() + timeout
    while True:
        text = (cluster.data_dir / "up.out").read_text(errors="replace")
        if "Press Ctrl-C" in text:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"kubelite up printed no metrics URLs:\n{text}")
        time.sleep(0.1)
    return dict(re.findall(r"^\s+([\w-]+):\s+(http://\S+/metrics)$", text, re.M))


def wait_serving(urls: Any, timeout: float = 30.0) -> None:
    """Waits until every URL answers (the components start their servers after `up`
    prints)."""
    deadline = time.monotonic() + timeout
    for url in urls:
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


class Scrape:
    """One scrape of one /metrics, parsed."""

    def __init__(self, url: str) -> None:
        with urllib.request.urlopen(url, timeout=5) as resp:
            self.text = resp.read().decode()
        self.families = {f.name: f for f in text_string_to_metric_families(self.text)}

    def value(self, sample: str, **labels: str) -> float:
        """The sum of the samples named `sample` whose labels include `labels` (0 if none)."""
        total = 0.0
        for family in self.families.values():
            for s in family.samples:
                if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
                    total += s.value
        return total


def scrape(urls: dict[str, str], component: str) -> Scrape:
    return Scrape(urls[component])


async def moved(urls: dict[str, str], component: str, sample: str, before: float,
                *, by: float = 1.0, within: float = 30.0, **labels: str) -> float:
    """Waits until the sample has grown by at least `by`; returns the new value."""
    async def grown() -> float | None:
        now = scrape(urls, component).value(sample, **labels)
        return now if now >= before + by else None

    return await eventually(grown, timeout=within, interval=0.2,
                            what=f"{component} {sample}{labels} to grow by {by} from {before}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start_cluster(tmp_path_factory.mktemp("metrics"), nodes=1,
                      env={"KUBELITE_STATS_PERIOD": "1"})
    yield c
    c.stop()


@pytest.fixture(scope="module")
def urls(cluster: Cluster) -> dict[str, str]:
    found = metrics_urls(cluster)
    assert set(found) == {"apiserver", "controller", "scheduler", "kubelet", "proxy", "dns"}, \
        found
    wait_serving(found.values())
    return found


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[Client]:
    async with Client(cluster.target) as c:
        await wait_nodes_ready(c, 1)
        yield c


@pytest.fixture
async def ns(api: Client) -> str:
    name = f"m-{uuid.uuid4().hex[:8]}"
    await api.create("namespaces", {"metadata": {"name": name}})
    return name


def sleeper(name: str, **extra: Any) -> dict[str, Any]:
    container = {"name": "c", "image": "python:3",
                 "command": [sys.executable, "-c", "import time; time.sleep(3600)"], **extra}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"containers": [container], "terminationGracePeriodSeconds": 1}}


# -- well-formed and complete ------------------------------------------------------------


def test_every_service_serves_parseable_metrics_with_every_listed_name(
        urls: dict[str, str]) -> None:
    for component, url in urls.items():
        parsed = Scrape(url)
        assert parsed.families, f"{component} served no metrics"
        missing = [n for n in (*LISTED[component], *PROCESS) if n not in parsed.families]
        assert not missing, f"{component} ({url}) lacks {missing}"
    for component in ("scheduler", "controller"):
        assert scrape(urls, component).value("leader_election_master_status") == 1.0


# -- each metric moves with its action -------------------------------------------------------


async def test_apiserver_request_watch_and_storage_metrics_move(
        api: Client, ns: str, urls: dict[str, str]) -> None:
    before = scrape(urls, "apiserver")
    requests = before.value("apiserver_request_total", verb="create", resource="configmaps",
                            code="OK")
    latencies = before.value("apiserver_request_duration_seconds_count", verb="create",
                             resource="configmaps")
    watchers = before.value("apiserver_registered_watchers", resource="configmaps")
    sent = before.value("apiserver_watch_events_total", resource="configmaps")
    revision = before.value("apiserver_watch_cache_revision")
    stored = before.value("apiserver_storage_objects", resource="configmaps")

    seen = asyncio.Event()

    async def watch() -> None:
        async for event in api.watch("configmaps", namespace=ns, resource_version="0"):
            if event.type == "ADDED":
                seen.set()

    watching = asyncio.create_task(watch())
    try:
        await moved(urls, "apiserver", "apiserver_registered_watchers", watchers,
                    resource="configmaps")
        await api.create("configmaps", {"metadata": {"name": "one"}, "data": {"a": "1"}},
                         namespace=ns)
        await asyncio.wait_for(seen.wait(), 10)
        after = scrape(urls, "apiserver")
        assert after.value("apiserver_request_total", verb="create", resource="configmaps",
                           code="OK") == requests + 1
        assert after.value("apiserver_request_duration_seconds_count", verb="create",
                           resource="configmaps") == latencies + 1
        assert after.value("apiserver_watch_events_total", resource="configmaps") >= sent + 1
        assert after.value("apiserver_watch_cache_revision") > revision
    finally:
        watching.cancel()
    await moved(urls, "apiserver", "apiserver_storage_objects", stored, resource="configmaps",
                within=10)
    await eventually(lambda: scrape(urls, "apiserver").value(
        "apiserver_registered_watchers", resource="configmaps") == watchers, timeout=10,
        what="the watcher to be unregistered")
    # Caught up once the writes stop: lag (current revision - fanned out) is back at 0.
    await eventually(lambda: scrape(urls, "apiserver").value(
        "apiserver_watch_cache_lag_revisions") == 0, timeout=10, what="no watch-cache lag")


async def test_scheduler_attempts_latency_and_pending_pods_move(
        api: Client, ns: str, urls: dict[str, str]) -> None:
    before = scrape(urls, "scheduler")
    scheduled = before.value("scheduler_schedule_attempts_total", result="scheduled")
    attempts = before.value("scheduler_scheduling_attempt_duration_seconds_count",
                            result="scheduled")
    sli = before.value("scheduler_pod_scheduling_sli_duration_seconds_count")
    unschedulable = before.value("scheduler_schedule_attempts_total", result="unschedulable")

    await api.create("pods", sleeper("fits"), namespace=ns)
    await moved(urls, "scheduler", "scheduler_schedule_attempts_total", scheduled,
                result="scheduled")
    after = scrape(urls, "scheduler")
    assert after.value("scheduler_schedule_attempts_total", result="scheduled") == scheduled + 1
    assert after.value("scheduler_scheduling_attempt_duration_seconds_count",
                       result="scheduled") == attempts + 1
    assert after.value("scheduler_pod_scheduling_sli_duration_seconds_count") == sli + 1

    nowhere = sleeper("nowhere")
    nowhere["spec"]["nodeSelector"] = {"no-such-label": "x"}
    await api.create("pods", nowhere, namespace=ns)
    await moved(urls, "scheduler", "scheduler_schedule_attempts_total", unschedulable,
                result="unschedulable")
    await eventually(lambda: scrape(urls, "scheduler").value(
        "scheduler_pending_pods", queue="unschedulable") >= 1, what="a pending pod")
    await api.delete("pods", "nowhere", namespace=ns)
    await eventually(lambda: scrape(urls, "scheduler").value(
        "scheduler_pending_pods", queue="unschedulable") == 0, what="no pending pods")


async def test_controller_workqueue_and_reconcile_error_metrics_move(
        api: Client, ns: str, urls: dict[str, str]) -> None:
    before = scrape(urls, "controller")
    q = {"name": "deployment"}
    adds = before.value("workqueue_adds_total", **q)
    work = before.value("workqueue_work_duration_seconds_count", **q)
    waited = before.value("workqueue_queue_duration_seconds_count", **q)
    retries = before.value("workqueue_retries_total", **q)
    errors = before.value("controller_reconcile_errors_total", controller="deployment")
    assert "workqueue_depth" in before.families
    assert any(s.labels.get("name") == "deployment"
               for s in before.families["workqueue_depth"].samples)

    def deployment(name: str) -> dict[str, Any]:
        return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
                "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "m"}},
                         "template": {"metadata": {"labels": {"app": "m"}}, "spec": {
                             "containers": [{"name": "c", "image": "x",
                                             "command": ["true"]}]}}}}

    await api.create("deployments", deployment("fine"), namespace=ns)
    await moved(urls, "controller", "workqueue_work_duration_seconds_count", work, **q)
    after = scrape(urls, "controller")
    assert after.value("workqueue_adds_total", **q) >= adds + 1
    assert after.value("workqueue_queue_duration_seconds_count", **q) >= waited + 1

    # A valid Deployment name too long for its ReplicaSet's (name + "-" + hash): its
    # sync fails at the apiserver with Invalid, a permanent error: counted, reported,
    # and not retried until the Deployment changes (a retryable failure moves
    # workqueue_retries_total: tests/test_controller_logic.py).
    permanent = before.value("controller_reconcile_permanent_errors_total",
                             controller="deployment")
    retries = scrape(urls, "controller").value("workqueue_retries_total", **q)
    await api.create("deployments", deployment("x" * 250), namespace=ns)
    await moved(urls, "controller", "controller_reconcile_errors_total", errors,
                controller="deployment")
    await moved(urls, "controller", "controller_reconcile_permanent_errors_total", permanent,
                controller="deployment")
    # Rate-limited requeues would retry it several times within a second; at most one
    # retry may come from elsewhere ("fine"'s status writes can lose a race).
    await asyncio.sleep(1.0)
    assert scrape(urls, "controller").value("workqueue_retries_total", **q) <= retries + 1
    await api.delete("deployments", "x" * 250, namespace=ns)


async def test_kubelet_pod_container_probe_restart_and_runtime_metrics_move(
        api: Client, ns: str, urls: dict[str, str]) -> None:
    before = scrape(urls, "kubelet")
    pods = before.value("kubelet_running_pods")
    containers = before.value("kubelet_running_containers", container_state="running")
    starts = before.value("kubelet_pod_start_duration_seconds_count")
    started = before.value("kubelet_runtime_operations_duration_seconds_count",
                           operation_type="start_container")
    probes = before.value("prober_probe_total", probe_type="readiness", result="successful")
    restarts = before.value("kubelet_container_restarts_total")

    await api.create("pods", sleeper("probed", readinessProbe={
        "exec": {"command": ["true"]}, "periodSeconds": 1}), namespace=ns)
    await eventually(lambda: _ready(api, ns, "probed"), timeout=30, what="a ready pod")
    await moved(urls, "kubelet", "kubelet_running_pods", pods)
    await moved(urls, "kubelet", "prober_probe_total", probes, probe_type="readiness",
                result="successful")
    after = scrape(urls, "kubelet")
    assert after.value("kubelet_running_containers", container_state="running") >= \
        containers + 1
    assert after.value("kubelet_pod_start_duration_seconds_count") >= starts + 1
    assert after.value("kubelet_runtime_operations_duration_seconds_count",
                       operation_type="start_container") >= started + 1

    crash = sleeper("crash")
    crash["spec"]["containers"][0]["command"] = [sys.executable, "-c", "raise SystemExit(1)"]
    await api.create("pods", crash, namespace=ns)
    await moved(urls, "kubelet", "kubelet_container_restarts_total", restarts)
    await api.delete("pods", "crash", namespace=ns, grace_period_seconds=0)


async def test_proxy_sync_connection_byte_and_error_metrics_move(
        api: Client, ns: str, urls: dict[str, str]) -> None:
    before = scrape(urls, "proxy")
    syncs = before.value("kubeproxy_sync_proxy_rules_duration_seconds_count")
    synced_at = before.value("kubeproxy_sync_proxy_rules_last_timestamp_seconds")

    echo = {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "echo", "labels": {"app": "echo"}},
            "spec": {"containers": [{
                "name": "web", "image": "kubelite/demo:latest",
                "command": [sys.executable, ECHO],
                "env": [{"name": "PORT", "value": str(ECHO_PORT)},
                        {"name": "BIND", "valueFrom": {
                            "fieldRef": {"fieldPath": "status.podIP"}}}],
                "readinessProbe": {"tcpSocket": {"port": ECHO_PORT}, "periodSeconds": 1}}]}}
    await api.create("pods", echo, namespace=ns)
    port = random.randint(20000, 29999)
    svc = await api.create("services", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo"},
        "spec": {"selector": {"app": "echo"},
                 "ports": [{"port": port, "targetPort": ECHO_PORT}]}}, namespace=ns)
    empty = await api.create("services", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "empty"},
        "spec": {"selector": {"app": "nobody"}, "ports": [{"port": port}]}}, namespace=ns)
    await eventually(lambda: _ready(api, ns, "echo"), timeout=30, what="a ready echo pod")
    await moved(urls, "proxy", "kubeproxy_sync_proxy_rules_duration_seconds_count", syncs)
    assert scrape(urls, "proxy").value(
        "kubeproxy_sync_proxy_rules_last_timestamp_seconds") > synced_at

    label = {"service": f"{ns}/echo"}
    ip = svc["spec"]["clusterIP"]
    reply = await eventually(lambda: _http(ip, port), timeout=20, what="a reply via ClusterIP")
    assert reply.startswith("echo")
    after = scrape(urls, "proxy")
    assert after.value("kubelite_proxy_connections_total", **label) >= 1
    assert after.value("kubelite_proxy_bytes_total", direction="in", **label) > 0
    assert after.value("kubelite_proxy_bytes_total", direction="out", **label) > 0

    # An open connection is active until it closes. The proxy sees the earlier
    # request's connection close a moment after the reply: wait for it first.
    await eventually(lambda: scrape(urls, "proxy").value(
        "kubelite_proxy_active_connections", **label) == 0, what="no active connection")
    active = 0.0
    reader, writer = await asyncio.open_connection(ip, port)
    await moved(urls, "proxy", "kubelite_proxy_active_connections", active, **label)
    writer.close()
    await eventually(lambda: scrape(urls, "proxy").value(
        "kubelite_proxy_active_connections", **label) == active, what="the connection closed")

    # A Service without endpoints refuses the connection and counts it.
    errors = after.value("kubelite_proxy_errors_total", service=f"{ns}/empty",
                         reason="no_endpoint")
    await asyncio.to_thread(_connect_and_read, empty["spec"]["clusterIP"], port)
    await moved(urls, "proxy", "kubelite_proxy_errors_total", errors,
                service=f"{ns}/empty", reason="no_endpoint")


# -- helpers -----------------------------------------------------------------------------------


async def _ready(api: Client, ns: str, name: str) -> bool:
    return is_ready(await api.get("pods", name, namespace=ns))


def _http(ip: str, port: int) -> str | None:
    try:
        return _connect_and_read(ip, port, b"GET / HTTP/1.0\r\n\r\n").split("\r\n\r\n", 1)[-1]
    except OSError:
        return None


def _connect_and_read(ip: str, port: int, send: bytes = b"") -> str:
    with socket.create_connection((ip, port), timeout=3) as sock:
        if send:
            sock.sendall(send)
        chunks = []
        try:
            while data := sock.recv(65536):
                chunks.append(data)
        except OSError:
            pass
    return b"".join(chunks).decode(errors="replace")


async def test_watch_cache_lag_and_storage_objects_follow_the_storage() -> None:
    """The sampler behind apiserver_watch_cache_lag_revisions and apiserver_storage_objects:
    lag is the storage's revision minus the watch cache's, objects are each hash's size."""
    from services.apiserver import metrics as apiserver_metrics

    class Pipeline:
        def __init__(self, store: FakeStorage) -> None:
            self.store, self.ops = store, []

        def get(self, key: str) -> None:
            self.ops.append(self.store.revision)

        def hlen(self, key: str) -> None:
            self.ops.append(self.store.sizes[key])

        async def execute(self) -> list[Any]:
            return self.ops

    class FakeStorage:
        rev_key = "rev"

        def __init__(self) -> None:
            self.revision, self.sizes = b"10", {"o:pods": 4, "o:events": 2}
            self.redis = self

        def pipeline(self, transaction: bool = True) -> Pipeline:
            return Pipeline(self)

        def hash_key(self, resource: str) -> str:
            return f"o:{resource}"

        async def guard(self, op: Any) -> Any:
            return await op()

    class Cache:
        revision = 7

    storage, cache = FakeStorage(), Cache()
    task = asyncio.create_task(apiserver_metrics.track_storage(
        storage, cache, ["pods", "events"], every=0.01))
    try:
        await asyncio.sleep(0.05)
        assert apiserver_metrics.WATCH_CACHE_LAG._value.get() == 3
        assert apiserver_metrics.STORAGE_OBJECTS.labels("pods")._value.get() == 4
        cache.revision = 10
        storage.sizes["o:pods"] = 5
        await asyncio.sleep(0.05)
        assert apiserver_metrics.WATCH_CACHE_LAG._value.get() == 0
        assert apiserver_metrics.STORAGE_OBJECTS.labels("pods")._value.get() == 5
    finally:
        task.cancel()

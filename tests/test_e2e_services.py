"""Issue 4's acceptance, end to end: Services on `kubelite up --nodes 2` with the process
runtime. Requests go from the host to ClusterIP:port (127.96.0.0/16) and NodeIP:nodePort,
through the two node proxies in userspace mode, to echo pods that answer with their name."""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kubelite.client import Client
from kubelite.errors import NotFoundError
from kubelite.objects import parse_time

from .e2e import (
    Cluster,
    echo_container,
    eventually,
    http_get,
    is_ready,
    start_cluster,
    wait_nodes_ready,
)

pytestmark = pytest.mark.slow

KUBELITE = str(Path(sys.executable).parent / "kubelite")
NODE_IPS = ("127.10.0.1", "127.10.0.2")
TRIGGER_TIME = "endpoints.kubernetes.io/last-change-trigger-time"


def _low_ports_allowed() -> bool:
    try:
        start = int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    except (OSError, ValueError):
        start = 1024
    return os.geteuid() == 0 or start <= 80


# The userspace proxy binds ClusterIP:port itself, so port 80 needs root (or a lowered
# ip_unprivileged_port_start); elsewhere the tests use 8080.
SERVICE_PORT = 80 if _low_ports_allowed() else 8080
# The echo pods listen on a port of this run's own. Every `kubelite up` on a host hands out
# pod IPs from the same loopback ranges, so a fixed port would let another cluster's pod
# (or a process it leaked) on the same IP answer our probes and requests.
ECHO_PORT = random.randint(18000, 19999)


def echo() -> dict[str, Any]:
    """The demo echo server (tests/e2e.py's container) on ECHO_PORT."""
    container = echo_container()
    container["env"].append({"name": "PORT", "value": str(ECHO_PORT)})
    container["ports"] = [{"containerPort": ECHO_PORT, "name": "http"}]
    container["readinessProbe"]["httpGet"]["port"] = ECHO_PORT
    return container


async def _nodes_ready(target: str) -> None:
    async with Client(target) as c:
        await wait_nodes_ready(c, 2)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start_cluster(tmp_path_factory.mktemp("e2e-svc"), nodes=2)
    try:
        # Once per module: a cluster whose nodes never get Ready fails every test at once.
        asyncio.run(_nodes_ready(c.target))
    except BaseException as err:
        logs = "\n".join(f"--- {name}\n{c.log(name)[-1500:]}"
                         for name in ("kubelet-0", "kubelet-1", "controller"))
        c.stop()
        raise AssertionError(f"{err}\n{(c.data_dir / 'up.out').read_text()[-1500:]}\n{logs}") \
            from err
    yield c
    c.stop()
    assert c.process.returncode == 0, c.log("proxy-0")[-2000:]


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[Client]:
    async with Client(cluster.target) as c:
        yield c


@pytest.fixture
async def ns(api: Client) -> str:
    name = f"svc-{uuid.uuid4().hex[:8]}"
    await api.create("namespaces", {"metadata": {"name": name}})
    return name


# -- building blocks ----------------------------------------------------------------------


def deployment(name: str, replicas: int) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [echo()],
                                           "terminationGracePeriodSeconds": 2}}}}


def service(name: str, *, selector: dict | None = None, port: int = SERVICE_PORT,
            target: int | str = ECHO_PORT, type_: str = "ClusterIP",
            cluster_ip: str | None = None) -> dict:
    spec: dict[str, Any] = {"type": type_, "selector": selector or {"app": name},
                            "ports": [{"name": "http", "port": port, "targetPort": target}]}
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def addresses(endpoints: dict | None, field: str = "addresses") -> list[dict]:
    return [a for s in (endpoints or {}).get("subsets") or [] for a in s.get(field) or []]


async def endpoints_with(api: Client, ns: str, name: str, ready: int) -> dict | None:
    try:
        ep = await api.get("endpoints", name, namespace=ns)
    except NotFoundError:
        return None
    return ep if len(addresses(ep)) == ready else None


async def ready_pod_names(api: Client, ns: str, selector: str) -> set[str]:
    pods = (await api.list("pods", namespace=ns, label_selector=selector)).items
    return {p["metadata"]["name"] for p in pods
            if is_ready(p) and not p["metadata"].get("deletionTimestamp")}


async def answers(host: str, port: int, count: int, *, concurrency: int = 8) -> Counter:
    """count GETs (at most `concurrency` at once): how many each pod answered."""
    got: Counter = Counter()
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with sem:
            got[await http_get(host, port)] += 1

    await asyncio.gather(*(one() for _ in range(count)))
    return got


async def routed_to(host: str, port: int, names: set[str], *, within: float = 15.0) -> None:
    """Waits until the answers through host:port come from exactly `names`."""
    seen: list[str] = []

    async def exactly() -> bool:
        try:
            got = await answers(host, port, 10 * len(names), concurrency=4)
        except (OSError, AssertionError, TimeoutError):
            return False
        seen[:] = sorted(got)
        return set(got) == names

    await eventually(exactly, timeout=within, interval=0.1,
                     what=f"{host}:{port} routed to {sorted(names)}; answering: {seen}")


class RequestLoop:
    """GETs in a loop from `workers` tasks until stopped; each result timed (monotonic)."""

    def __init__(self, host: str, port: int, *, workers: int = 4, limit: float = 60.0) -> None:
        self.host, self.port = host, port
        self.results: list[tuple[float, float, str]] = []  # (sent, answered, name)
        self.failures: list[tuple[float, str]] = []
        self._stop = asyncio.Event()
        self._limit = limit
        self._tasks = [asyncio.create_task(self._worker()) for _ in range(workers)]

    async def _worker(self) -> None:
        deadline = time.monotonic() + self._limit  # bounded even if never stopped
        while not self._stop.is_set() and time.monotonic() < deadline:
            sent = time.monotonic()
            try:
                name = await http_get(self.host, self.port)
            except (OSError, AssertionError, TimeoutError) as err:
                self.failures.append((sent, f"{type(err).__name__}: {err}"))
                await asyncio.sleep(0.01)
                continue
            self.results.append((sent, time.monotonic(), name))

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)


def cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([KUBELITE, "--server", cluster.target, *args],
                          capture_output=True, text=True, timeout=30)


# -- the acceptance ------------------------------------------------------------------------


async def test_cluster_ip_spreads_requests_over_every_ready_pod(api: Client, ns: str,
                                                                 cluster: Cluster) -> None:
    """300 requests to ClusterIP:port reach all 3 pods of a Deployment, each with >= 20%;
    the Endpoints carry the last-change-trigger-time annotation and `get svc,ep` shows
    them."""
    await api.create("deployments", deployment("web", 3), namespace=ns)
    svc = await api.create("services", service("web"), namespace=ns)
    ip = svc["spec"]["clusterIP"]
    ep = await eventually(lambda: endpoints_with(api, ns, "web", 3), timeout=60,
                          what="3 ready addresses")
    names = await ready_pod_names(api, ns, "app=web")
    assert {a["targetRef"]["name"] for a in addresses(ep)} == names
    assert {a["nodeName"] for a in addresses(ep)} == {"node-0", "node-1"}
    await routed_to(ip, SERVICE_PORT, names)

    got = await answers(ip, SERVICE_PORT, 300)
    assert sum(got.values()) == 300
    assert set(got) == names
    assert min(got.values()) >= 60, got

    # The time of the change that made the controller write: a pod's Ready transition,
    # at or after the Service's creation (second precision) and not in the future.
    stamp = parse_time(ep["metadata"]["annotations"][TRIGGER_TIME])
    created = parse_time(svc["metadata"]["creationTimestamp"])
    assert created - timedelta(seconds=1) <= stamp <= datetime.now(UTC)

    out = cli(cluster, "get", "svc,ep", "-n", ns)
    assert out.returncode == 0, out.stderr
    assert ip in out.stdout and f"{SERVICE_PORT}/TCP" in out.stdout
    assert f'{addresses(ep)[0]["ip"]}:{ECHO_PORT}' in out.stdout


async def _watch_ready(api: Client, ns: str, rv: str, name: str, ready: bool,
                       seen: asyncio.Future) -> None:
    """Resolves `seen` with the monotonic time the watch first shows pod `name` at `ready`."""
    async for event in api.watch("pods", namespace=ns, resource_version=rv):
        pod = event.object
        if event.type == "MODIFIED" and pod["metadata"]["name"] == name \
                and is_ready(pod) == ready:
            seen.set_result(time.monotonic())
            return


async def test_an_unready_backend_gets_no_new_connections_and_comes_back(
        api: Client, ns: str, tmp_path: Path) -> None:
    """A backend whose readiness probe fails stops getting new connections within 2 s of
    the watch showing Ready=False, and gets them again once it is Ready."""
    for i in range(3):
        (tmp_path / f"ready-{i}").touch()
        container = echo()
        container["readinessProbe"] = {
            "exec": {"command": ["test", "-f", str(tmp_path / f"ready-{i}")]},
            "periodSeconds": 1, "failureThreshold": 1}
        await api.create("pods", {"metadata": {"name": f"r{i}", "labels": {"app": "r"}},
                                  "spec": {"containers": [container],
                                           "terminationGracePeriodSeconds": 1}},
                         namespace=ns)
    svc = await api.create("services", service("r"), namespace=ns)
    ip = svc["spec"]["clusterIP"]
    await eventually(lambda: endpoints_with(api, ns, "r", 3), timeout=60, what="3 addresses")
    await routed_to(ip, SERVICE_PORT, {"r0", "r1", "r2"})

    loop = RequestLoop(ip, SERVICE_PORT)
    try:
        rv = (await api.list("pods", namespace=ns)).resource_version
        unready: asyncio.Future = asyncio.get_running_loop().create_future()
        watcher = asyncio.create_task(_watch_ready(api, ns, rv, "r1", False, unready))
        (tmp_path / "ready-1").unlink()
        t0 = await asyncio.wait_for(unready, 15)
        await asyncio.sleep(3.0)
        rv = (await api.list("pods", namespace=ns)).resource_version
        ready: asyncio.Future = asyncio.get_running_loop().create_future()
        watcher = asyncio.create_task(_watch_ready(api, ns, rv, "r1", True, ready))
        touched = time.monotonic()
        (tmp_path / "ready-1").touch()
        t1 = await asyncio.wait_for(ready, 15)

        async def back() -> bool:
            return any(name == "r1" and sent > touched for sent, _, name in loop.results)

        await eventually(back, timeout=5, interval=0.05, what="r1 answering again")
    finally:
        await loop.stop()
        watcher.cancel()
    assert not loop.failures, loop.failures[:5]
    # Requests sent while r1's probe was failing: none after the first 2 s reached it.
    unready_window = [(sent, name) for sent, _, name in loop.results if t0 <= sent < touched]
    last = max((sent - t0 for sent, name in unready_window if name == "r1"), default=0.0)
    assert last <= 2.0, f"r1 got a new connection {last:.2f}s after Ready=False was reported"
    quiet = Counter(name for sent, name in unready_window if sent >= t0 + 2.0)
    assert sum(quiet.values()) >= 20 and set(quiet) == {"r0", "r2"}, quiet
    back_at = min(sent for sent, _, name in loop.results if name == "r1" and sent > touched)
    print(f"r1 last connected {last * 1000:.0f} ms after the watch showed Ready=False; "
          f"back {(back_at - t1) * 1000:+.0f} ms from the watch showing Ready=True")


async def test_scaling_is_followed_by_endpoints_and_routing(api: Client, ns: str,
                                                            cluster: Cluster) -> None:
    """3 -> 5 -> 1 replicas: the Endpoints and the set of pods answering follow, and no
    request fails while scaling up."""
    await api.create("deployments", deployment("scaled", 3), namespace=ns)
    svc = await api.create("services", service("scaled"), namespace=ns)
    ip = svc["spec"]["clusterIP"]
    await eventually(lambda: endpoints_with(api, ns, "scaled", 3), timeout=60, what="3")
    await routed_to(ip, SERVICE_PORT, await ready_pod_names(api, ns, "app=scaled"))

    loop = RequestLoop(ip, SERVICE_PORT)
    try:
        out = cli(cluster, "scale", "deployment/scaled", "--replicas", "5", "-n", ns)
        assert out.returncode == 0, out.stderr
        ep = await eventually(lambda: endpoints_with(api, ns, "scaled", 5), timeout=60,
                              what="5 ready addresses")
        five = {a["targetRef"]["name"] for a in addresses(ep)}
        assert five == await ready_pod_names(api, ns, "app=scaled")

        async def all_five_answer() -> bool:
            return {name for _, _, name in loop.results} >= five

        await eventually(all_five_answer, timeout=10, what="all 5 pods answering")
    finally:
        await loop.stop()
    assert not loop.failures, loop.failures[:5]
    assert len(loop.results) >= 50

    out = cli(cluster, "scale", "deployment/scaled", "--replicas", "1", "-n", ns)
    assert out.returncode == 0, out.stderr
    ep = await eventually(lambda: endpoints_with(api, ns, "scaled", 1), timeout=60,
                          what="1 ready address")
    one = {a["targetRef"]["name"] for a in addresses(ep)}
    assert one <= five
    await routed_to(ip, SERVICE_PORT, one)


async def test_a_node_port_answers_on_every_node(api: Client, ns: str,
                                                 cluster: Cluster) -> None:
    """`kubelite expose --type NodePort`: the port answers on both nodes' IPs."""
    await api.create("deployments", deployment("np", 2), namespace=ns)
    out = cli(cluster, "expose", "deployment/np", "--port", "8080", "--target-port", "http",
              "--type", "NodePort", "-n", ns)
    assert out.returncode == 0, out.stderr
    svc = await api.get("services", "np", namespace=ns)
    node_port = svc["spec"]["ports"][0]["nodePort"]
    assert 30000 <= node_port <= 32767
    await eventually(lambda: endpoints_with(api, ns, "np", 2), timeout=60, what="2 addresses")
    names = await ready_pod_names(api, ns, "app=np")
    for node_ip in NODE_IPS:
        await routed_to(node_ip, node_port, names)
    await routed_to(svc["spec"]["clusterIP"], 8080, names)


async def test_pods_started_after_a_service_get_its_variables(api: Client, ns: str,
                                                              cluster: Cluster) -> None:
    """A pod started after a Service has <SVC>_SERVICE_HOST/_PORT; one started before
    has not."""
    printer = {"name": "c", "image": "busybox",
               "command": ["sh", "-c", "env | sort; echo END-OF-ENV; sleep 300"]}

    async def env_of(pod: str) -> str:
        def logs() -> str:
            out = cli(cluster, "logs", pod, "-n", ns)
            return out.stdout if out.returncode == 0 and "END-OF-ENV" in out.stdout else ""

        return await eventually(logs, timeout=30, what=f"the environment of {pod}")

    await api.create("pods", {"metadata": {"name": "before"}, "spec": {"containers": [printer]}},
                     namespace=ns)
    before = await env_of("before")
    svc = await api.create("services", service("db-main", port=5432, target=5432),
                           namespace=ns)
    await api.create("pods", {"metadata": {"name": "after"}, "spec": {"containers": [printer]}},
                     namespace=ns)
    after = await env_of("after")
    assert f"DB_MAIN_SERVICE_HOST={svc['spec']['clusterIP']}\n" in after
    assert "DB_MAIN_SERVICE_PORT=5432\n" in after
    assert "DB_MAIN_SERVICE_PORT_HTTP=5432\n" in after
    assert f"DB_MAIN_PORT=tcp://{svc['spec']['clusterIP']}:5432\n" in after
    assert "DB_MAIN_SERVICE_HOST" not in before


async def test_bad_service_input_is_refused_clearly_and_nothing_crashes(
        api: Client, ns: str, cluster: Cluster, tmp_path: Path) -> None:
    """A taken or out-of-range clusterIP and an out-of-range port are one-line Invalid
    errors (exit 1); a named targetPort no pod defines gives an Endpoints without
    addresses and one Warning Event; every component is still running afterwards."""
    taken = (await api.create("services", service("first"), namespace=ns))["spec"]["clusterIP"]

    def create(obj: dict) -> subprocess.CompletedProcess:
        path = tmp_path / f"{obj['metadata']['name']}.json"
        path.write_text(json.dumps(obj))
        return cli(cluster, "create", "-f", str(path), "-n", ns)

    cases = {
        "dup": (service("dup", cluster_ip=taken), "already allocated"),
        "outside": (service("outside", cluster_ip="10.0.0.5"), "not in the valid range"),
        "bigport": (service("bigport", port=70000), "between 1 and 65535"),
    }
    for name, (obj, phrase) in cases.items():
        out = create(obj)
        assert out.returncode == 1, (name, out.stdout, out.stderr)
        assert out.stderr.count("\n") == 1, (name, out.stderr)
        assert out.stderr.startswith("Error from server (Invalid): "), (name, out.stderr)
        assert phrase in out.stderr, (name, out.stderr)
        with pytest.raises(NotFoundError):
            await api.get("services", name, namespace=ns)

    await api.create("deployments", deployment("named", 2), namespace=ns)
    await api.create("services", service("named", target="nope"), namespace=ns)

    async def two_ready() -> bool:
        return len(await ready_pod_names(api, ns, "app=named")) == 2

    await eventually(two_ready, timeout=60, what="2 ready pods")

    async def warned() -> list[dict]:
        events = (await api.list("events", namespace=ns)).items
        return [e for e in events if e["involvedObject"].get("name") == "named"
                and e["involvedObject"].get("kind") == "Service"
                and e["reason"] == "FailedToResolvePort"]

    [event] = await eventually(warned, timeout=15, what="a FailedToResolvePort Event")
    assert event["type"] == "Warning"
    assert '"nope"' in event["message"] and "no selected pod" in event["message"]
    ep = await api.get("endpoints", "named", namespace=ns)
    assert not addresses(ep) and not addresses(ep, "notReadyAddresses")

    await asyncio.sleep(1.0)  # time for anything that was going to fall over
    assert cluster.process.poll() is None, cluster.log("controller")[-2000:]
    for component in ("apiserver", "controller", "proxy-0", "proxy-1"):
        assert "Traceback" not in cluster.log(component), cluster.log(component)[-3000:]


# -- the Endpoints controller's additions, as pure logic --------------------------------
# (beside the end-to-end tests that exercise them; they need no cluster)


def _pod(name: str, ready: str, at: str, port_name: str = "http") -> dict:
    return {"metadata": {"name": name, "namespace": "ns", "labels": {"app": "a"}},
            "spec": {"containers": [{"name": "c", "ports": [
                {"name": port_name, "containerPort": 9000}]}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1", "conditions": [
                {"type": "Ready", "status": ready, "lastTransitionTime": at}]}}


def test_trigger_time_is_the_earliest_change_the_endpoints_have_not_reflected() -> None:
    """As Kubernetes' TriggerTimeTracker: the Service's creation and each pod's Ready
    transition count once; a flip within the same second still counts; a failed write
    (no commit) keeps its trigger time for the retry."""
    from services.controller.endpoints import TriggerTimeTracker, format_trigger_time

    svc = {"metadata": {"name": "a", "creationTimestamp": "2026-01-01T00:00:05Z"}}
    tracker = TriggerTimeTracker()
    pods = [_pod("p1", "True", "2026-01-01T00:00:07Z"), _pod("p2", "False", "2026-01-01T00:00:06Z")]
    when, state = tracker.compute("ns/a", svc, pods)
    assert when is not None and format_trigger_time(when) == "2026-01-01T00:00:05Z"
    tracker.commit("ns/a", state)
    assert tracker.compute("ns/a", svc, pods)[0] is None

    pods[1] = _pod("p2", "True", "2026-01-01T00:00:06Z")  # Ready within the same second
    when, state = tracker.compute("ns/a", svc, pods)
    assert when is not None and format_trigger_time(when) == "2026-01-01T00:00:06Z"
    assert tracker.compute("ns/a", svc, pods)[0] == when  # not committed: still pending
    tracker.commit("ns/a", state)
    assert tracker.compute("ns/a", svc, pods)[0] is None


def test_named_target_ports_no_pod_defines_are_reported_per_service_port() -> None:
    """A named targetPort missing on all (or some) selected pods is reported with a stable
    message; numeric targetPorts and unselected pods are never reported."""
    from services.controller.endpoints import unresolved_message, unresolved_target_ports

    svc = {"metadata": {"name": "a"},
           "spec": {"selector": {"app": "a"}, "ports": [
               {"port": 80, "targetPort": "web", "protocol": "TCP"},
               {"port": 81, "targetPort": 9000, "protocol": "TCP"}]}}
    at = "2026-01-01T00:00:00Z"
    other = _pod("x", "True", at, "web")
    other["metadata"]["labels"] = {"app": "b"}
    found = unresolved_target_ports(svc, [_pod("p1", "True", at), _pod("p2", "False", at),
                                          other])
    assert [(sp["port"], missing, total) for sp, missing, total in found] == [(80, 2, 2)]
    assert unresolved_message(*found[0]) == (
        'port 80/TCP: no selected pod defines a container port named "web" (TCP); '
        "those pods are left out of the Endpoints for it")
    some = unresolved_target_ports(svc, [_pod("p1", "True", at), _pod("p3", "True", at, "web")])
    assert "some selected pods do not define" in unresolved_message(*some[0])

"""The userspace proxy as a real process against a real apiserver.

Services are created through the API (the apiserver allocates the ClusterIP
from 127.96.0.0/16); their Endpoints are written by hand (a selector-less
Service keeps user-written Endpoints) and point at small asyncio servers on
127.11.0.x that answer with their name. Unit tests of the balancer come first.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from kubelite import testing
from kubelite.client import Client
from services.proxy.balancer import RANDOM, ROUND_ROBIN, Balancer
from services.proxy.model import Endpoint, ServicePort, service_ports
from tests.helpers import ProxyProcess, metric_value

NODE_IP = "127.10.200.1"  # kubelite up uses 127.10.0.N: keep clear of a dev cluster
OTHER_NODE_IP = "127.10.200.2"


def _service_port() -> int:
    """80 where this user may bind it (root, or a lowered ip_unprivileged_port_start),
    else 8080: the userspace proxy binds ClusterIP:port itself."""
    try:
        start = int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    except (OSError, ValueError):
        start = 1024
    return 80 if os.geteuid() == 0 or start <= 80 else 8080


PORT = _service_port()

# -- unit: endpoints from objects, and the balancer -----------------------------------


def test_service_ports_match_endpoint_ports_by_name_and_skip_not_ready() -> None:
    """Endpoints ports are matched by name; notReadyAddresses never count."""
    svc = {"metadata": {"name": "web", "namespace": "ns"},
           "spec": {"clusterIP": "127.96.0.9", "type": "NodePort",
                    "sessionAffinity": "ClientIP",
                    "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
                    "ports": [{"name": "http", "port": 80, "nodePort": 30080},
                              {"name": "admin", "port": 81, "nodePort": 30081}]}}
    eps = {"subsets": [
        {"addresses": [{"ip": "10.0.0.2"}, {"ip": "10.0.0.1"}],
         "notReadyAddresses": [{"ip": "10.0.0.3"}],
         "ports": [{"name": "http", "port": 8080}, {"name": "admin", "port": 9090}]},
        {"addresses": [{"ip": "10.0.0.4"}], "ports": [{"name": "http", "port": 8081}]},
    ]}
    http, admin = service_ports(svc, eps)
    assert http.port_name_string == "ns/web:http" and http.node_port == 30080
    assert http.affinity_timeout == 60
    assert [e.address for e in http.endpoints] == ["10.0.0.1:8080", "10.0.0.2:8080",
                                                   "10.0.0.4:8081"]
    assert [e.address for e in admin.endpoints] == ["10.0.0.1:9090", "10.0.0.2:9090"]
    headless = {"metadata": {"name": "h", "namespace": "ns"},
                "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}
    assert service_ports(headless, eps) == []
    plain = {"metadata": {"name": "p", "namespace": "ns"},
             "spec": {"clusterIP": "127.96.0.8", "ports": [{"port": 80, "nodePort": 30001}]}}
    (only,) = service_ports(plain, None)
    assert only.port_name_string == "ns/p" and only.node_port == 0 and not only.endpoints


EPS = [Endpoint("10.0.0.1", 80), Endpoint("10.0.0.2", 80), Endpoint("10.0.0.3", 80)]


def test_round_robin_rotates_and_skips_failed_endpoints() -> None:
    """Round-robin visits every endpoint in turn; a failed one is avoided for a while."""
    now = [0.0]
    b = Balancer(EPS, mode=ROUND_ROBIN, clock=lambda: now[0], quarantine=2.0)
    assert [b.pick("c") for _ in range(6)] == EPS + EPS
    b.failed("c", EPS[1])
    assert [b.pick("c") for _ in range(4)] == [EPS[0], EPS[2], EPS[0], EPS[2]]
    assert b.pick("c", exclude={EPS[0], EPS[2]}) == EPS[1]  # quarantine is a preference
    now[0] = 3.0
    assert {b.pick("c") for _ in range(3)} == set(EPS)
    assert b.pick("c", exclude=set(EPS)) is None
    assert Balancer([]).pick("c") is None


def test_session_affinity_sticks_until_idle_timeout_or_endpoint_leaves() -> None:
    """ClientIP affinity keeps a client on its endpoint; it expires when idle, or moves."""
    now = [0.0]
    b = Balancer(EPS, mode=RANDOM, affinity_timeout=10, clock=lambda: now[0])
    first = b.pick("1.1.1.1")
    assert first is not None
    b.connected("1.1.1.1", first)
    for _ in range(50):
        now[0] += 5  # never idle for longer than the timeout
        assert b.pick("1.1.1.1") == first
        b.connected("1.1.1.1", first)
    b.update([e for e in EPS if e != first], 10)
    moved = b.pick("1.1.1.1")
    assert moved is not None and moved != first
    b.connected("1.1.1.1", moved)
    now[0] += 11
    assert b.affinity_size() == 1
    picks = set()
    for _ in range(40):  # expired: random again (2 endpoints left)
        ep = b.pick("1.1.1.1")
        picks.add(ep)
    assert len(picks) == 2


def test_random_spreads_evenly() -> None:
    """Random balancing gives each of three endpoints about a third."""
    import random

    b = Balancer(EPS, mode=RANDOM, rng=random.Random(7))
    counts = Counter(b.pick("c") for _ in range(3000))
    assert all(900 < counts[e] < 1100 for e in EPS), counts


def test_routes_follow_port_changes_and_contested_addresses() -> None:
    """A changed port moves its route; an address two services want goes to the one
    left when the other is removed (the routing table, without listeners)."""
    from services.proxy.userspace import UserspaceProxier

    p = UserspaceProxier(node_ip="127.12.0.9")
    a = ServicePort("ns", "a", "http", "TCP", "127.96.1.1", 80, node_port=30001)
    b = ServicePort("ns", "b", "http", "TCP", "127.96.1.2", 80, node_port=30001)
    p.update("ns/a", [a])
    p.update("ns/b", [b])
    assert p._routes[("127.12.0.9", 30001)] == "ns/a:http"
    p.update("ns/a", [])
    assert p._routes == {("127.96.1.2", 80): "ns/b:http", ("127.12.0.9", 30001): "ns/b:http"}
    p.update("ns/b", [ServicePort("ns", "b", "http", "TCP", "127.96.1.2", 81)])
    assert p._routes == {("127.96.1.2", 81): "ns/b:http"} and not p._node_ports


# -- component: a real proxy process -------------------------------------------------------


class Backend:
    """A TCP server that reads a request until EOF and answers `name length sha256`."""

    def __init__(self, name: str, host: str) -> None:
        self.name = name
        self.host = host
        self.port = 0
        self.server: asyncio.base_events.Server | None = None
        self.peers: list[str] = []

    async def start(self) -> Backend:
        self.server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.peers.append(writer.get_extra_info("peername")[0])
        try:
            data = await reader.read()
            writer.write(f"{self.name} {len(data)} {hashlib.sha256(data).hexdigest()}".encode())
            await writer.drain()
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port


async def request(ip: str, port: int, payload: bytes = b"ping", *, source: str | None = None,
                  wait: float = 5.0) -> str:
    """Sends payload, half-closes, and returns the answer."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(ip, port, local_addr=(source, 0) if source else None), wait)
    try:
        writer.write(payload)
        writer.write_eof()
        return (await asyncio.wait_for(reader.read(), wait)).decode()
    finally:
        writer.close()


async def name_of(ip: str, port: int, **kw: Any) -> str:
    return (await request(ip, port, **kw)).split(" ")[0]


async def until_served(ip: str, port: int, within: float = 10.0, **kw: Any) -> str:
    """Retries until the proxy answers at ip:port (its listener is up)."""
    deadline = time.monotonic() + within
    while True:
        try:
            answer = await name_of(ip, port, wait=1.0, **kw)
            if answer:
                return answer
        except (OSError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"nothing served {ip}:{port} within {within}s")
        await asyncio.sleep(0.05)


# The proxier's state is in this process: poll it often, for up to 5 s.
until = partial(testing.eventually, timeout=5, interval=0.01)


def service(name: str, namespace: str, *ports: tuple[str, int], type_: str = "ClusterIP",
            affinity: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": type_,
                            "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports]}
    if affinity:
        spec["sessionAffinity"] = "ClientIP"
        spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": affinity}}
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def endpoints(name: str, namespace: str, ready: list[Backend], not_ready: list[Backend] = (),
              port_name: str = "http") -> dict[str, Any]:
    """One subset per backend (their ports differ)."""
    subsets = []
    for group, field in ((ready, "addresses"), (not_ready, "notReadyAddresses")):
        for b in group:
            subsets.append({field: [{"ip": b.host}],
                            "ports": [{"name": port_name, "port": b.port, "protocol": "TCP"}]})
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": name, "namespace": namespace}, "subsets": subsets}


@pytest.fixture(scope="module")
def proxy(shared_apiserver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    """One proxy (random balancing) for the module; tests are isolated by namespace."""
    workdir: Path = tmp_path_factory.mktemp("proxy")
    proc = ProxyProcess(workdir, shared_apiserver.target, "--node-ip", NODE_IP,
                        "--node-name", "node-a", "--balancing", "random",
                        "--connect-timeout", "0.5").start()
    yield proc
    proc.stop()
    print(proc.process.tail(40))


@pytest.fixture
async def backends() -> Any:
    started: list[Backend] = []

    async def make(*names: str) -> list[Backend]:
        out = [await Backend(n, f"127.11.0.{len(started) + i + 1}").start()
               for i, n in enumerate(names)]
        started.extend(out)
        return out

    yield make
    for b in started:
        await b.stop()


async def test_cluster_ip_spreads_over_all_ready_endpoints(
        proxy: ProxyProcess, client: Client, namespace: str, backends: Any) -> None:
    """300 requests to ClusterIP:port reach all three backends, each at least 20%."""
    b = await backends("b1", "b2", "b3")
    svc = await client.create("services", service("web", namespace, ("http", PORT)))
    await client.create("endpoints", endpoints("web", namespace, b))
    ip = svc["spec"]["clusterIP"]
    await until_served(ip, PORT)
    answers = Counter([await name_of(ip, PORT) for _ in range(300)])
    assert set(answers) == {"b1", "b2", "b3"}
    assert all(n >= 60 for n in answers.values()), answers
    text = await asyncio.to_thread(proxy.metrics)
    label = f"{namespace}/web:http"
    assert metric_value(text, "kubelite_proxy_connections_total", service=label) >= 300
    assert metric_value(text, "kubelite_proxy_bytes_total", service=label,
                        direction="in") >= 300 * 4


async def test_unready_endpoint_stops_getting_connections_and_comes_back(
        proxy: ProxyProcess, client: Client, namespace: str, backends: Any) -> None:
    """An address moved to notReadyAddresses gets no new connections within 2 s; re-added,
    it gets them again within 2 s."""
    b1, b2, b3 = await backends("b1", "b2", "b3")
    svc = await client.create("services", service("web", namespace, ("http", PORT)))
    await client.create("endpoints", endpoints("web", namespace, [b1, b2, b3]))
    ip = svc["spec"]["clusterIP"]
    await until_served(ip, PORT)

    eps = await client.get("endpoints", "web", namespace=namespace)
    eps["subsets"] = endpoints("web", namespace, [b1, b2], [b3])["subsets"]
    changed = time.monotonic()
    await client.update("endpoints", eps)
    last_b3 = None
    while time.monotonic() - changed < 2.0:
        if await name_of(ip, PORT) == "b3":
            last_b3 = time.monotonic() - changed
    after = Counter([await name_of(ip, PORT) for _ in range(60)])
    assert "b3" not in after and set(after) == {"b1", "b2"}, after
    print(f"last connection to the unready endpoint {last_b3}s after the update")

    eps = await client.get("endpoints", "web", namespace=namespace)
    eps["subsets"] = endpoints("web", namespace, [b1, b2, b3])["subsets"]
    changed = time.monotonic()
    await client.update("endpoints", eps)
    while await name_of(ip, PORT) != "b3":
        assert time.monotonic() - changed < 2.0, "the endpoint did not come back within 2 s"


async def test_dead_endpoint_is_retried_on_another(
        proxy: ProxyProcess, client: Client, namespace: str, backends: Any) -> None:
    """An endpoint whose server is gone (still listed as ready) costs no failed request."""
    b1, b2, b3 = await backends("b1", "b2", "b3")
    svc = await client.create("services", service("web", namespace, ("http", PORT)))
    await client.create("endpoints", endpoints("web", namespace, [b1, b2, b3]))
    ip = svc["spec"]["clusterIP"]
    await until_served(ip, PORT)
    await b2.stop()
    answers = Counter([await name_of(ip, PORT) for _ in range(60)])
    assert set(answers) == {"b1", "b3"}, answers
    text = await asyncio.to_thread(proxy.metrics)
    assert metric_value(text, "kubelite_proxy_errors_total", service=f"{namespace}/web:http",
                        reason="connect") >= 1
    # With every endpoint dead the client gets a prompt reset, not a hang.
    await b1.stop()
    await b3.stop()
    started = time.monotonic()
    with pytest.raises((ConnectionError, OSError)):
        answer = await request(ip, PORT)
        if not answer:
            raise ConnectionResetError("closed without an answer")
    assert time.monotonic() - started < 3.0


async def test_node_port_answers_on_the_node_ip_and_ports_match_by_name(
        proxy: ProxyProcess, client: Client, namespace: str, backends: Any) -> None:
    """A NodePort Service answers on NodeIP:nodePort; each port reaches its named target."""
    web, admin = await backends("web", "admin")
    svc = await client.create("services", service("np", namespace, ("http", PORT),
                                                  ("admin", PORT + 1), type_="NodePort"))
    eps = endpoints("np", namespace, [web])
    eps["subsets"] += endpoints("np", namespace, [admin], port_name="admin")["subsets"]
    await client.create("endpoints", eps)
    ip = svc["spec"]["clusterIP"]
    http_np, admin_np = (p["nodePort"] for p in svc["spec"]["ports"])
    assert await until_served(NODE_IP, http_np) == "web"
    assert await until_served(NODE_IP, admin_np) == "admin"
    assert await name_of(ip, PORT) == "web"
    assert await name_of(ip, PORT + 1) == "admin"
    # A NodePort is this node's: nothing listens on another node's IP.
    with pytest.raises(OSError):
        await request(OTHER_NODE_IP, http_np, wait=1.0)


async def test_session_affinity_client_ip_sticks(
        proxy: ProxyProcess, client: Client, namespace: str, backends: Any) -> None:
    """With sessionAffinity ClientIP each client IP keeps one backend; clients spread."""
    b = await backends("b1", "b2", "b3")
    svc = await client.create("services", service("sticky", namespace, ("http", PORT),
                                                  affinity=600))
    await client.create("endpoints", endpoints("sticky", namespace, b))
    ip = svc["spec"]["clusterIP"]
    await until_served(ip, PORT, source="127.20.0.1")
    chosen = {}
    for i in range(1, 11):
        source = f"127.20.0.{i}"
        answers = {await name_of(ip, PORT, source=source) for _ in range(15)}
        assert len(answers) == 1, (source, answers)
        chosen[source] = answers.pop()
    assert len(set(chosen.values())) >= 2, chosen


async def test_large_transfers_and_half_close_pass_through(
        proxy: ProxyProcess, client: Client, namespace: str, backends: Any) -> None:
    """8 MiB each way of 4 concurrent connections arrive intact (backpressure, EOF)."""
    (b1,) = await backends("b1")
    svc = await client.create("services", service("bulk", namespace, ("http", PORT)))
    await client.create("endpoints", endpoints("bulk", namespace, [b1]))
    ip = svc["spec"]["clusterIP"]
    await until_served(ip, PORT)
    payload = uuid.uuid4().bytes * (8 * 1024 * 1024 // 16)
    answers = await asyncio.gather(*(request(ip, PORT, payload, wait=30) for _ in range(4)))
    expected = f"b1 {len(payload)} {hashlib.sha256(payload).hexdigest()}"
    assert answers == [expected] * 4


async def test_deleting_a_service_closes_its_listener(
        proxy: ProxyProcess, client: Client, namespace: str, backends: Any) -> None:
    """Once the Service is deleted its ClusterIP:port refuses connections."""
    (b1,) = await backends("b1")
    svc = await client.create("services", service("gone", namespace, ("http", PORT)))
    await client.create("endpoints", endpoints("gone", namespace, [b1]))
    ip = svc["spec"]["clusterIP"]
    await until_served(ip, PORT)
    await client.delete("services", "gone", namespace=namespace)
    deadline = time.monotonic() + 3
    while True:
        try:
            await request(ip, PORT, wait=1.0)
        except ConnectionRefusedError:
            break
        except (ConnectionResetError, BrokenPipeError):
            pass  # the route is gone and the listener not yet: a reset
        except OSError as err:
            if err.errno != errno.ENOTCONN:
                raise
            # Accepted, then closed with the listener before the half-close: a reset too.
        assert time.monotonic() < deadline, "the listener stayed open"
        await asyncio.sleep(0.05)


async def test_two_node_proxies_share_cluster_ips_and_own_their_node_ports(
        proxy: ProxyProcess, shared_apiserver, tmp_path: Path, client: Client,
        namespace: str, backends: Any) -> None:
    """A second proxy (another node) binds the same ClusterIP:port (SO_REUSEPORT) and
    serves the NodePort on its own node IP; stopping it leaves the first serving."""
    b1, b2 = await backends("b1", "b2")
    svc = await client.create("services", service("shared", namespace, ("http", PORT),
                                                  type_="NodePort"))
    await client.create("endpoints", endpoints("shared", namespace, [b1, b2]))
    ip, node_port = svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["nodePort"]
    await until_served(ip, PORT)
    second = await asyncio.to_thread(
        ProxyProcess(tmp_path, shared_apiserver.target, "--node-ip", OTHER_NODE_IP,
                     "--node-name", "node-b", "--balancing", "round-robin", name="proxy-b").start)
    try:
        assert await until_served(OTHER_NODE_IP, node_port) in {"b1", "b2"}
        assert await until_served(NODE_IP, node_port) in {"b1", "b2"}
        answers = Counter([await name_of(ip, PORT) for _ in range(40)])
        assert set(answers) == {"b1", "b2"}
    finally:
        await asyncio.to_thread(second.stop)
    answers = Counter([await name_of(ip, PORT) for _ in range(20)])
    assert sum(answers.values()) == 20


async def test_a_port_in_use_is_reported_as_an_event_and_retried(
        proxy: ProxyProcess, client: Client, namespace: str, backends: Any) -> None:
    """A NodePort that something else holds gives a FailedToListen Warning on the Service;
    once it is free the proxy listens after all."""
    import random
    import socket

    (b1,) = await backends("b1")
    squatter = socket.socket()
    for _ in range(50):
        node_port = random.randint(30000, 32767)
        try:
            squatter.bind((NODE_IP, node_port))
            break
        except OSError:
            continue
    squatter.listen()
    try:
        manifest = service("busy", namespace, ("http", PORT), type_="NodePort")
        manifest["spec"]["ports"][0]["nodePort"] = node_port
        await client.create("services", manifest)
        await client.create("endpoints", endpoints("busy", namespace, [b1]))
        deadline = time.monotonic() + 10
        while True:
            events = (await client.list("events", namespace=namespace)).items
            if any(e["reason"] == "FailedToListen" for e in events):
                break
            assert time.monotonic() < deadline, "no FailedToListen event"
            await asyncio.sleep(0.1)
        event = next(e for e in events if e["reason"] == "FailedToListen")
        assert event["type"] == "Warning" and event["involvedObject"]["name"] == "busy"
        assert f"{NODE_IP}:{node_port}" in event["message"]
    finally:
        squatter.close()
    assert await until_served(NODE_IP, node_port, within=10) == "b1"


async def test_cluster_ips_are_added_to_an_interface_when_asked() -> None:
    """With --cluster-ip-interface each ClusterIP is added as a /32 before it is bound,
    and removed when its last listener closes (an in-process proxier, a fake `ip`)."""
    from services.proxy.commands import CommandResult
    from services.proxy.userspace import UserspaceProxier
    from services.proxy.vips import VipManager

    calls: list[list[str]] = []

    async def fake_ip(argv: Any) -> CommandResult:
        calls.append(list(argv))
        return CommandResult(0, b"", b"")

    proxier = UserspaceProxier(node_ip=NODE_IP, vips=VipManager("eth9", runner=fake_ip))
    task = asyncio.create_task(proxier.run())
    try:
        ports = [ServicePort("ns", "v", name, "TCP", "127.96.250.1", port)
                 for name, port in (("a", 18080), ("b", 18081))]
        proxier.update("ns/v", ports)
        await until(lambda: len(proxier.listening) == 2)
        assert calls == [["ip", "addr", "replace", "127.96.250.1/32", "dev", "eth9"]]
        proxier.update("ns/v", ports[:1])
        await until(lambda: len(proxier.listening) == 1)
        assert len(calls) == 1  # one listener still uses the address
        proxier.update("ns/v", [])
        await until(lambda: not proxier.listening)
        assert calls[-1] == ["ip", "addr", "del", "127.96.250.1/32", "dev", "eth9"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

"""The cluster DNS (services/dns) as a real process against a real apiserver:
Services and Endpoints written through the API, queries over UDP and TCP.

The test network has no resolvers of its own, so forwarding is tested against
a small dnspython upstream this module starts on loopback: it stands for the
world outside the cluster. Pure logic (records of one Service, pod names) is
tested beside it without processes.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kubelite.client import Client
from kubelite.localcluster import ManagedProcess, free_port, python_module_argv, wait_healthy
from services.dns.__main__ import parse_args, parse_host_port, resolv_conf_nameservers
from services.dns.records import (
    RecordTable,
    dashed,
    pod_address,
    reverse_name,
    service_records,
)
from services.dns.server import question_length
from tests.helpers import metric_value

ZONE = "cluster.local."
EXTERNAL_NAME = "www.example.test."
EXTERNAL_IP = "192.0.2.7"


# -- a fake upstream: the world outside the cluster ---------------------------------


class FakeUpstream:
    """Answers A for www.example.test., NXDOMAIN for everything else, on loopback UDP."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.queries: list[str] = []
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                data, addr = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            query = dns.message.from_wire(data)
            name = query.question[0].name.to_text().lower()
            self.queries.append(name)
            response = dns.message.make_response(query)
            if name == EXTERNAL_NAME and query.question[0].rdtype == dns.rdatatype.A:
                response.answer.append(dns.rrset.from_text(name, 60, "IN", "A", EXTERNAL_IP))
            elif name != EXTERNAL_NAME:
                response.set_rcode(dns.rcode.NXDOMAIN)
            self.sock.sendto(response.to_wire(), addr)

    def start(self) -> FakeUpstream:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop = True
        self.thread.join(2)
        self.sock.close()


class DnsProcess:
    """A `python -m services.dns` child on free ports."""

    def __init__(self, workdir: Path, server: str, upstream: str) -> None:
        self.port = free_port()
        self.health = f"127.0.0.1:{free_port()}"
        self.metrics_port = free_port()
        argv = python_module_argv(
            "services.dns", "--server", server, "--listen", f"127.0.0.1:{self.port}",
            "--upstream", upstream, "--forward-timeout", "1", "--health-listen", self.health,
            "--metrics-port", str(self.metrics_port), "--log-level", "debug")
        self.process = ManagedProcess("dns", argv, workdir / "dns.log")

    def start(self) -> DnsProcess:
        self.process.start()
        try:
            wait_healthy(self.health, 30, self.process.proc)
        except Exception:
            print(self.process.tail())
            self.process.kill()
            raise
        return self

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.read().decode()


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def dns_server(shared_apiserver, upstream: FakeUpstream,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnsProcess]:
    proc = DnsProcess(tmp_path_factory.mktemp("dns"), shared_apiserver.target,
                      f"127.0.0.1:{upstream.port}").start()
    yield proc
    proc.process.stop()


async def query(server: DnsProcess, name: str, rdtype: str = "A", *,
                tcp: bool = False, timeout: float = 3) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype)
    if tcp:
        return await dns.asyncquery.tcp(q, "127.0.0.1", port=server.port, timeout=timeout)
    return await dns.asyncquery.udp(q, "127.0.0.1", port=server.port, timeout=timeout)


def values(response: dns.message.Message, rdtype: str) -> set[str]:
    wanted = dns.rdatatype.from_text(rdtype)
    return {rd.to_text() for rrset in response.answer if rrset.rdtype == wanted for rd in rrset}


async def until(check, timeout: float = 5.0, interval: float = 0.02):
    """Polls the coroutine function `check` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s (last: {result!r})")
        await asyncio.sleep(interval)


def service(name: str, namespace: str, *, headless: bool = False,
            ports: list[dict] | None = None) -> dict:
    spec: dict = {"selector": {"app": name},
                  "ports": ports or [{"name": "http", "port": 80, "protocol": "TCP"}]}
    if headless:
        spec["clusterIP"] = "None"
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def endpoints(name: str, namespace: str, ready: list[str], not_ready: list[str] = (),
              hostnames: dict[str, str] | None = None) -> dict:
    hostnames = hostnames or {}

    def address(ip: str) -> dict:
        return {"ip": ip, **({"hostname": hostnames[ip]} if ip in hostnames else {})}

    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": name, "namespace": namespace},
            "subsets": [{"addresses": [address(ip) for ip in ready],
                         "notReadyAddresses": [address(ip) for ip in not_ready],
                         "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]}


# -- against the real process -------------------------------------------------------


async def test_service_name_resolves_to_its_cluster_ip(dns_server: DnsProcess, client: Client,
                                                       namespace: str) -> None:
    """A/ SRV/ PTR of a ClusterIP Service, over UDP and TCP, authoritative."""
    svc = await client.create("services", service("web", namespace))
    ip = svc["spec"]["clusterIP"]
    name = f"web.{namespace}.svc.cluster.local."

    async def answered() -> set[str]:
        return values(await query(dns_server, name), "A")

    assert await until(answered) == {ip}
    response = await query(dns_server, name, tcp=True)
    assert values(response, "A") == {ip}
    assert response.flags & dns.flags.AA
    srv = await query(dns_server, f"_http._tcp.web.{namespace}.svc.cluster.local.", "SRV")
    assert values(srv, "SRV") == {f"0 100 80 {name}"}
    ptr = await query(dns_server, reverse_name(ip), "PTR")
    assert values(ptr, "PTR") == {name}
    nodata = await query(dns_server, name, "AAAA")
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    assert nodata.authority and nodata.authority[0].rdtype == dns.rdatatype.SOA


async def test_unknown_cluster_name_is_nxdomain_with_soa(dns_server: DnsProcess,
                                                         namespace: str,
                                                         upstream: FakeUpstream) -> None:
    """Names under the zone are never forwarded: an unknown one is NXDOMAIN with the SOA."""
    response = await query(dns_server, f"nothing.{namespace}.svc.cluster.local.")
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert response.authority[0].rdtype == dns.rdatatype.SOA
    assert str(response.authority[0].name) == ZONE
    assert not any("cluster.local" in q for q in upstream.queries)


async def test_headless_service_answers_ready_endpoints_only(
        dns_server: DnsProcess, client: Client, namespace: str) -> None:
    """Headless: the ready addresses; one that turns not-ready leaves within 2 s."""
    await client.create("services", service("db", namespace, headless=True))
    await client.create("endpoints", endpoints(
        "db", namespace, ["10.1.0.1", "10.1.0.2"], ["10.1.0.3"],
        hostnames={"10.1.0.1": "db-0"}))
    name = f"db.{namespace}.svc.cluster.local."

    async def answered() -> set[str]:
        return values(await query(dns_server, name), "A")

    assert await until(lambda: _equals(answered, {"10.1.0.1", "10.1.0.2"}))
    host = await query(dns_server, f"db-0.db.{namespace}.svc.cluster.local.")
    assert values(host, "A") == {"10.1.0.1"}
    dashed_host = await query(dns_server, f"10-1-0-2.db.{namespace}.svc.cluster.local.")
    assert values(dashed_host, "A") == {"10.1.0.2"}
    srv = await query(dns_server, f"_http._tcp.db.{namespace}.svc.cluster.local.", "SRV")
    assert values(srv, "SRV") == {
        f"0 100 8080 db-0.db.{namespace}.svc.cluster.local.",
        f"0 100 8080 10-1-0-2.db.{namespace}.svc.cluster.local."}
    ptr = await query(dns_server, reverse_name("10.1.0.1"), "PTR")
    assert values(ptr, "PTR") == {f"db-0.db.{namespace}.svc.cluster.local."}

    current = await client.get("endpoints", "db", namespace=namespace)
    current["subsets"] = endpoints("db", namespace, ["10.1.0.1"],
                                   ["10.1.0.2", "10.1.0.3"])["subsets"]
    start = time.monotonic()
    await client.update("endpoints", current)
    assert await until(lambda: _equals(answered, {"10.1.0.1"}), timeout=2.0)
    assert time.monotonic() - start < 2.0


async def _equals(check, expected) -> bool:
    return await check() == expected


async def test_external_name_service_is_a_cname(dns_server: DnsProcess, client: Client,
                                                namespace: str) -> None:
    obj = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "ext", "namespace": namespace},
           "spec": {"type": "ExternalName", "externalName": "www.example.test"}}
    await client.create("services", obj)

    async def answered() -> set[str]:
        return values(await query(dns_server, f"ext.{namespace}.svc.cluster.local."), "CNAME")

    assert await until(answered) == {EXTERNAL_NAME}


async def test_pod_names_resolve_to_the_address_they_spell(dns_server: DnsProcess,
                                                           namespace: str) -> None:
    response = await query(dns_server, f"10-2-3-4.{namespace}.pod.cluster.local.")
    assert values(response, "A") == {"10.2.3.4"}


async def test_deleted_service_is_gone(dns_server: DnsProcess, client: Client,
                                       namespace: str) -> None:
    await client.create("services", service("gone", namespace))
    name = f"gone.{namespace}.svc.cluster.local."

    async def rcode() -> int:
        return (await query(dns_server, name)).rcode()

    assert await until(lambda: _is(rcode, dns.rcode.NOERROR))
    await client.delete("services", "gone", namespace=namespace)
    assert await until(lambda: _is(rcode, dns.rcode.NXDOMAIN), timeout=2.0)


async def _is(check, expected) -> bool:
    return await check() == expected


async def test_other_names_are_forwarded_upstream(dns_server: DnsProcess,
                                                  upstream: FakeUpstream) -> None:
    """The upstream's answer comes back unchanged, NXDOMAIN included, over UDP and TCP."""
    response = await query(dns_server, EXTERNAL_NAME)
    assert values(response, "A") == {EXTERNAL_IP}
    assert not response.flags & dns.flags.AA
    assert values(await query(dns_server, EXTERNAL_NAME, tcp=True), "A") == {EXTERNAL_IP}
    missing = await query(dns_server, "nowhere.example.test.")
    assert missing.rcode() == dns.rcode.NXDOMAIN
    assert "nowhere.example.test." in upstream.queries


async def test_unanswered_forward_is_servfail(shared_apiserver, tmp_path: Path) -> None:
    """An upstream that never answers: SERVFAIL after the timeout, as CoreDNS's forward."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        proc = await asyncio.to_thread(
            lambda: DnsProcess(tmp_path, shared_apiserver.target,
                               f"127.0.0.1:{silent.getsockname()[1]}").start())
        try:
            # SERVFAIL comes after the 2 s forward timeout: leave room on a busy machine.
            response = await query(proc, EXTERNAL_NAME, timeout=10)
            assert response.rcode() == dns.rcode.SERVFAIL
        finally:
            await asyncio.to_thread(proc.process.stop)
    finally:
        silent.close()


async def test_metrics_carry_corednss_names(dns_server: DnsProcess) -> None:
    await query(dns_server, "kubernetes.default.svc.cluster.local.")
    await query(dns_server, EXTERNAL_NAME)
    text = await asyncio.to_thread(dns_server.metrics)
    for name in ("coredns_dns_requests_total", "coredns_dns_responses_total",
                 "coredns_dns_request_duration_seconds_bucket",
                 "coredns_dns_response_size_bytes_bucket", "coredns_forward_requests_total"):
        assert name in text, name
    assert metric_value(text, "coredns_dns_requests_total", zone=ZONE, proto="udp",
                        type="A") >= 1
    assert metric_value(text, "coredns_dns_responses_total", rcode="NXDOMAIN",
                        plugin="kubernetes") >= 1
    assert metric_value(text, "coredns_dns_requests_total", zone=".", proto="udp",
                        type="A") >= 1


async def test_health_is_serving(dns_server: DnsProcess) -> None:
    async with grpc.aio.insecure_channel(dns_server.health) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


# -- pure logic -----------------------------------------------------------------------


def test_records_of_a_cluster_ip_service() -> None:
    svc = {"metadata": {"name": "Web", "namespace": "ns"},
           "spec": {"clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5"],
                    "ports": [{"name": "http", "port": 80}, {"port": 81}]}}
    names = service_records(svc, None, ZONE).names
    assert [r.value for r in names["web.ns.svc.cluster.local."]] == ["10.96.0.5"]
    assert [r.value for r in names["5.0.96.10.in-addr.arpa."]] == ["web.ns.svc.cluster.local."]
    assert set(names) == {"web.ns.svc.cluster.local.", "5.0.96.10.in-addr.arpa.",
                          "_http._tcp.web.ns.svc.cluster.local."}


def test_headless_without_endpoints_exists_but_is_empty() -> None:
    table = RecordTable("cluster.local")
    svc = {"metadata": {"name": "db", "namespace": "ns"}, "spec": {"clusterIP": "None"}}
    table.set("ns/db", service_records(svc, None, table.zone))
    assert table.lookup("db.ns.svc.cluster.local.") == (True, [])
    assert table.lookup("ns.svc.cluster.local.") == (True, [])
    assert table.lookup("other.svc.cluster.local.") == (False, [])
    table.remove("ns/db")
    assert table.lookup("db.ns.svc.cluster.local.") == (False, [])
    assert table.lookup("ns.svc.cluster.local.") == (False, [])


def test_publish_not_ready_addresses_includes_them() -> None:
    svc = {"metadata": {"name": "db", "namespace": "ns"},
           "spec": {"clusterIP": "None", "publishNotReadyAddresses": True}}
    eps = {"subsets": [{"addresses": [{"ip": "10.0.0.1"}],
                        "notReadyAddresses": [{"ip": "10.0.0.2"}]}]}
    names = service_records(svc, eps, ZONE).names
    assert {r.value for r in names["db.ns.svc.cluster.local."]} == {"10.0.0.1", "10.0.0.2"}


def test_two_services_share_an_endpoint_ip_ptr() -> None:
    table = RecordTable("cluster.local")
    eps = {"subsets": [{"addresses": [{"ip": "10.0.0.1"}]}]}
    for name in ("a", "b"):
        svc = {"metadata": {"name": name, "namespace": "ns"}, "spec": {"clusterIP": "None"}}
        table.set(f"ns/{name}", service_records(svc, eps, table.zone))
    _, records = table.lookup("1.0.0.10.in-addr.arpa.")
    assert {r.value for r in records} == {"10-0-0-1.a.ns.svc.cluster.local.",
                                          "10-0-0-1.b.ns.svc.cluster.local."}
    table.remove("ns/a")
    _, records = table.lookup("1.0.0.10.in-addr.arpa.")
    assert {r.value for r in records} == {"10-0-0-1.b.ns.svc.cluster.local."}


@pytest.mark.parametrize(("name", "expected"), [
    ("10-1-2-3.ns.pod.cluster.local.", ("10.1.2.3", "ns")),
    ("fd00--1.ns.pod.cluster.local.", ("fd00::1", "ns")),
    ("10-1-2.ns.pod.cluster.local.", None),
    ("10-1-2-3.pod.cluster.local.", None),
    ("web.ns.svc.cluster.local.", None),
])
def test_pod_names(name: str, expected) -> None:
    assert pod_address(name, ZONE) == expected


def test_dashed_and_reverse_names() -> None:
    assert dashed("10.0.0.1") == "10-0-0-1"
    assert reverse_name("10.0.0.1") == "1.0.0.10.in-addr.arpa."


def test_flags_parse_upstreams_and_addresses(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("# comment\nnameserver 127.0.0.53\nnameserver ::1\nsearch x\n")
    assert resolv_conf_nameservers(str(conf)) == ["127.0.0.53", "::1"]
    assert resolv_conf_nameservers(str(tmp_path / "missing")) == []
    assert parse_host_port("[::1]:5353", 53) == ("::1", 5353)
    assert parse_host_port("::1", 53) == ("::1", 53)
    config = parse_args(["--listen", "127.0.0.1:5300", "--resolv-conf", str(conf),
                         "--cluster-domain", "Example.Org."])
    assert (config.listen_host, config.listen_port) == ("127.0.0.1", 5300)
    assert [str(u) for u in config.upstreams] == ["127.0.0.53:53", "::1:53"]
    assert config.cluster_domain == "example.org"


def test_question_length_spans_name_type_and_class() -> None:
    wire = dns.message.make_query("web.ns.svc.cluster.local.", "A").to_wire()
    length = question_length(wire)
    assert length == len(b"\x03web\x02ns\x03svc\x07cluster\x05local\x00") + 4
    assert wire[12 + length:] == b""  # no EDNS: the question is all there is

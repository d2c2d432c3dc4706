"""iptables mode: the syncer against a fake iptables (when it restores, how often, what
it deletes), then for real inside a network namespace that the test creates.

The namespace tests need root, `ip` (iproute2) and `iptables`; they skip without
them. They never touch the host's own rules: every iptables command runs under
`ip netns exec kl-test-<random>`, and the namespace is deleted afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from kubelite import testing
from kubelite.client import Client
from services.proxy import metrics
from services.proxy.iptables import IptablesError, IptablesProxier
from services.proxy.model import Endpoint, ServicePort
from services.proxy.rules import JUMP_RULES, RenderOptions, service_chain
from tests.helpers import ProxyProcess, metric_value, missing_prerequisite

# -- the syncer, against a fake iptables ------------------------------------------------


class FakeIptables:
    """Records what the proxier asks of iptables; `fail` makes restores fail."""

    def __init__(self, saved_nat: str = "*nat\nCOMMIT\n") -> None:
        self.saved_nat = saved_nat
        self.restores: list[str] = []
        self.ensured: list[tuple[str, str, tuple[str, ...]]] = []
        self.saves = 0
        self.fail = False

    async def ensure_chain(self, table: str, chain: str) -> None:
        pass

    async def ensure_rule_first(self, table: str, chain: str, args: list[str]) -> bool:
        self.ensured.append((table, chain, tuple(args)))
        return True

    async def save(self, table: str) -> str:
        self.saves += 1
        return self.saved_nat

    async def restore(self, text: str) -> None:
        if self.fail:
            raise IptablesError("iptables-restore: line 3 failed")
        self.restores.append(text)


def sp(name: str, ip: str, *eps: str) -> ServicePort:
    return ServicePort("ns", name, "http", "TCP", ip, 80,
                       endpoints=tuple(Endpoint(e, 8080) for e in eps))


# The proxier's state is in this process: poll it often, for up to 5 s.
until = partial(testing.eventually, timeout=5, interval=0.01)


@pytest.fixture
async def syncer() -> Any:
    started: list[asyncio.Task[None]] = []

    def start(fake: FakeIptables, **kw: float) -> IptablesProxier:
        proxier = IptablesProxier(iptables=fake, options=RenderOptions(), **kw)
        started.append(asyncio.create_task(proxier.run()))
        return proxier

    yield start
    for task in started:
        task.cancel()
    await asyncio.gather(*started, return_exceptions=True)


async def test_first_sync_ensures_jumps_and_deletes_stale_chains(syncer: Any) -> None:
    """The first sync is full: jump rules ensured, leftover per-service chains deleted."""
    fake = FakeIptables("*nat\n:PREROUTING ACCEPT [0:0]\n:KUBE-SVC-LEFTOVER0000000 - [0:0]\n"
                        ":DOCKER - [0:0]\nCOMMIT\n")
    proxier = syncer(fake, min_sync_period=0.0, sync_period=60.0)
    proxier.update("ns/a", [sp("a", "10.96.0.1", "10.0.0.1")])
    await until(lambda: fake.restores)
    assert {(t, c) for t, c, _ in fake.ensured} == {(j.table, j.source) for j in JUMP_RULES}
    text = fake.restores[0]
    assert "-X KUBE-SVC-LEFTOVER0000000" in text and "DOCKER" not in text


async def test_restores_only_when_the_rules_change_and_at_most_once_per_min_period(
        syncer: Any) -> None:
    """Unchanged rules run no restore; a burst of changes is coalesced by --min-sync-period."""
    fake = FakeIptables()
    proxier = syncer(fake, min_sync_period=0.3, sync_period=60.0)
    proxier.update("ns/a", [sp("a", "10.96.0.1", "10.0.0.1")])
    await until(lambda: len(fake.restores) == 1)
    skipped = metrics.SYNCS_SKIPPED._value.get()
    proxier.update("ns/a", [sp("a", "10.96.0.1", "10.0.0.1")])  # same rules
    await until(lambda: metrics.SYNCS_SKIPPED._value.get() > skipped)
    assert len(fake.restores) == 1
    started = time.monotonic()
    for i in range(2, 12):
        proxier.update("ns/a", [sp("a", "10.96.0.1", *(f"10.0.0.{j}" for j in range(1, i)))])
        await asyncio.sleep(0.02)
    await until(lambda: "10.0.0.10:8080" in fake.restores[-1])
    elapsed = time.monotonic() - started
    # Ten changes over ~0.2 s: at most one restore per 0.3 s window.
    assert len(fake.restores) - 1 <= 1 + int(elapsed / 0.3) + 1, (len(fake.restores), elapsed)


async def test_removed_service_chains_are_deleted(syncer: Any) -> None:
    """When a Service goes, its KUBE-SVC and KUBE-SEP chains are flushed and deleted."""
    fake = FakeIptables()
    proxier = syncer(fake, min_sync_period=0.0, sync_period=60.0)
    proxier.update("ns/a", [sp("a", "10.96.0.1", "10.0.0.1")])
    proxier.update("ns/b", [sp("b", "10.96.0.2", "10.0.0.2")])
    await until(lambda: fake.restores and "10.96.0.2" in fake.restores[-1])
    chain = service_chain("ns/b:http", "TCP")
    proxier.update("ns/b", [])
    await until(lambda: f"-X {chain}" in fake.restores[-1])
    assert f"-A {chain}" not in fake.restores[-1]
    proxier.update("ns/a", [sp("a", "10.96.0.1", "10.0.0.3")])
    await until(lambda: "10.0.0.3" in fake.restores[-1])
    assert f"-X {chain}" not in fake.restores[-1]  # deleted once, then forgotten


async def test_failed_restore_is_retried_and_full_resync_reapplies(syncer: Any) -> None:
    """A failed restore is retried with backoff; every --sync-period the rules are
    re-applied even though they did not change."""
    fake = FakeIptables()
    fake.fail = True
    proxier = syncer(fake, min_sync_period=0.05, sync_period=0.5)
    proxier.update("ns/a", [sp("a", "10.96.0.1", "10.0.0.1")])
    await asyncio.sleep(0.3)
    assert not fake.restores and proxier.runner.runs >= 2
    fake.fail = False
    await until(lambda: fake.restores, timeout=3)
    saves = fake.saves
    await until(lambda: len(fake.restores) >= 3, timeout=3)  # periodic full syncs
    assert fake.restores[-1] == fake.restores[0] and fake.saves > saves


# -- for real, in a network namespace ------------------------------------------------------

BACKEND = r"""
import socket, sys
name, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port))
s.listen(128)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(name.encode())
    c.close()
"""

CLIENT = r"""
import json, socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = []
for _ in range(n):
    try:
        with socket.create_connection((host, port), timeout=2) as s:
            out.append(s.recv(100).decode() or "closed")
    except OSError as err:
        out.append(type(err).__name__)
print(json.dumps(out))
"""

BACKENDS = {"b1": "10.99.0.1", "b2": "10.99.0.2", "b3": "10.99.0.3"}


def _can_make_namespaces() -> str:
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("ip", "iptables", "iptables-restore", "iptables-save"):
        if shutil.which(tool) is None:
            return f"needs {tool} (apt-get install -y iproute2 iptables)"
    return ""


class Namespace:
    def __init__(self, name: str) -> None:
        self.name = name
        self.prefix = ["ip", "netns", "exec", name]

    def run(self, *argv: str, check: bool = True, stdin: str | None = None
            ) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.prefix, *argv], input=stdin, capture_output=True,
                              text=True, check=check, timeout=30)

    def save(self, table: str = "nat") -> str:
        return self.run("iptables-save", "-t", table).stdout

    async def connect(self, host: str, port: int, n: int) -> list[str]:
        proc = await asyncio.create_subprocess_exec(
            *self.prefix, sys.executable, "-c", CLIENT, host, str(port), str(n),
            stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
        return json.loads(out)


@pytest.fixture
def netns() -> Iterator[Namespace]:
    """A fresh network namespace with 10.99.0.1-3/24 on an interface and a route to the
    service range, and three TCP servers in it answering b1, b2, b3 on port 8080."""
    reason = _can_make_namespaces()
    if reason:
        missing_prerequisite(reason)
    name = f"kl-test-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
    ns = Namespace(name)
    servers: list[subprocess.Popen[str]] = []
    try:
        ns.run("ip", "link", "set", "lo", "up")
        if ns.run("ip", "link", "add", "kl0", "type", "dummy", check=False).returncode != 0:
            # No dummy driver in this kernel: a veth pair, both ends in the namespace.
            ns.run("ip", "link", "add", "kl0", "type", "veth", "peer", "name", "kl1")
            ns.run("ip", "link", "set", "kl1", "up")
        for ip in BACKENDS.values():
            ns.run("ip", "addr", "add", f"{ip}/24", "dev", "kl0")
        ns.run("ip", "link", "set", "kl0", "up")
        # Locally generated packets are routed before nat OUTPUT rewrites them.
        ns.run("ip", "route", "add", "10.96.0.0/16", "dev", "kl0")
        for backend, ip in BACKENDS.items():
            proc = subprocess.Popen([*ns.prefix, sys.executable, "-c", BACKEND, backend, ip,
                                     "8080"], stdout=subprocess.PIPE, text=True)
            servers.append(proc)
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        yield ns
    finally:
        for proc in servers:
            proc.kill()
            proc.wait()
        subprocess.run(["ip", "netns", "del", name], check=False, capture_output=True)


async def eventually(check: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while True:
        result = await asyncio.to_thread(check)
        if result:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within}s: {what}")
        await asyncio.sleep(0.05)


def test_golden_rules_load_into_a_real_kernel(netns: Namespace) -> None:
    """Every construct the renderer writes (recent, statistic, UDP, REJECT…) is accepted."""
    golden = (Path(__file__).parent / "golden" / "proxy" / "iptables.rules").read_text()
    netns.run("iptables-restore", "--noflush", stdin=golden)
    assert "KUBE-SVC-" in netns.save("nat") and "has no endpoints" in netns.save("filter")


async def test_iptables_mode_dnats_cluster_ip_and_node_port_in_a_namespace(
        netns: Namespace, apiserver_factory: Any, tmp_path: Path) -> None:
    """A real proxy in iptables mode programs the namespace: VIP:port and NodePort reach
    the backends by DNAT, unready endpoints leave the rules, ClientIP affinity sticks,
    and other chains survive."""
    # Someone else's rules, which the proxy must leave exactly as they are.
    netns.run("iptables", "-t", "nat", "-N", "KL-OTHER")
    netns.run("iptables", "-t", "nat", "-A", "KL-OTHER", "-p", "tcp", "--dport", "9",
              "-j", "RETURN")
    netns.run("iptables", "-t", "nat", "-A", "OUTPUT", "-j", "KL-OTHER")
    netns.run("iptables", "-t", "nat", "-N", "KUBE-SVC-STALE0000000000")
    server = apiserver_factory("--service-cluster-ip-range", "10.96.0.0/16")
    proxy = await asyncio.to_thread(ProxyProcess(
        tmp_path, server.target, "--mode", "iptables", "--node-name", "ns-node",
        "--iptables-exec-prefix", f"ip netns exec {netns.name}",
        "--min-sync-period", "0.1", "--sync-period", "1").start)
    try:
        async with Client(server.target) as client:
            svc = await client.create("services", {
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {"type": "NodePort",
                         "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})
            vip, node_port = svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["nodePort"]
            subset = {"addresses": [{"ip": ip} for ip in BACKENDS.values()],
                      "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}
            await client.create("endpoints", {
                "apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": "web", "namespace": "default"}, "subsets": [subset]})
            await eventually(lambda: "10.99.0.3:8080" in netns.save(), 10,
                             "the endpoints' DNAT rules")

            answers = await netns.connect(vip, 80, 90)
            assert set(answers) == {"b1", "b2", "b3"}, answers
            assert all(answers.count(b) >= 10 for b in BACKENDS), answers
            assert set(await netns.connect("10.99.0.2", node_port, 20)) <= set(BACKENDS)

            subset = {"addresses": [{"ip": "10.99.0.1"}, {"ip": "10.99.0.2"}],
                      "notReadyAddresses": [{"ip": "10.99.0.3"}],
                      "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}
            eps = await client.get("endpoints", "web", namespace="default")
            eps["subsets"] = [subset]
            await client.update("endpoints", eps)
            await eventually(lambda: "10.99.0.3" not in netns.save(), 5,
                             "the unready endpoint's rules to go")
            answers = await netns.connect(vip, 80, 40)
            assert set(answers) == {"b1", "b2"}, answers

            saved = netns.save()
            assert "-A KL-OTHER -p tcp -m tcp --dport 9 -j RETURN" in saved
            assert "-A OUTPUT -j KL-OTHER" in saved
            assert "KUBE-SVC-STALE0000000000" not in saved
            for jump in ("-A PREROUTING -m comment --comment \"kubernetes service portals\" "
                         "-j KUBE-SERVICES",
                         "-A OUTPUT -m comment --comment \"kubernetes service portals\" "
                         "-j KUBE-SERVICES"):
                assert saved.count(jump) == 1, saved

            sticky = await client.create("services", {
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "sticky", "namespace": "default"},
                "spec": {"sessionAffinity": "ClientIP",
                         "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}})
            await client.create("endpoints", {
                "apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": "sticky", "namespace": "default"}, "subsets": [subset]})
            sticky_ip = sticky["spec"]["clusterIP"]
            await eventually(lambda: f"-d {sticky_ip}/32" in netns.save(), 5,
                             "the sticky service's rules")
            answers = await netns.connect(sticky_ip, 80, 20)
            assert len(set(answers)) == 1 and answers[0] in {"b1", "b2"}, answers

            chain = service_chain("default/web:http", "TCP")
            await client.delete("services", "web", namespace="default")
            await eventually(lambda: chain not in netns.save(), 5, "the service's chains to go")
        text = await asyncio.to_thread(proxy.metrics)
        assert metric_value(text, "kubeproxy_sync_proxy_rules_last_timestamp_seconds") > 0
        assert metric_value(text, "kubeproxy_sync_proxy_rules_duration_seconds_count") >= 3
        assert metric_value(text, "kubeproxy_network_programming_duration_seconds_count") >= 1
        assert metric_value(text, "kubeproxy_sync_proxy_rules_iptables_restore_failures_total") \
            == 0
    finally:
        await asyncio.to_thread(proxy.stop)
        print(proxy.process.tail(30))

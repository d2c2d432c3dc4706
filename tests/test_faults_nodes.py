"""Node faults against real processes: a kubelet SIGKILLed or SIGSTOPped, a runtime
that stops answering, and most nodes silenced at once.

Timings are short (grace 3 s, tolerations 2 s, leases renewed every second) and
the bounds are the issue's: a lost node is NotReady/Unknown within grace + 5 s,
its pods run again on another node within grace + toleration + 10 s, and once
its kubelet is back no pod runs twice. The zone cases use nodes this test
registers itself, with Leases it renews and then stops renewing, so that only the
node lifecycle controller's zone logic decides what is evicted.

Every case runs under a steady write load (kubelite.testing.load.Writer): losing
nodes must not stall the control plane's writes or lose one of them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kubelite.client import Client
from kubelite.errors import NotFoundError
from kubelite.localcluster import ManagedProcess, free_port, python_module_argv, wait_healthy
from kubelite.objects import now_rfc3339
from kubelite.taints import TAINT_NOT_READY, TAINT_UNREACHABLE
from kubelite.testing.load import Writer
from tests.e2e import (
    FAST_TIMINGS,
    echo_container,
    eventually,
    is_ready,
    pids_with,
    wait_nodes_ready,
)

Obj = dict[str, Any]

GRACE = 3.0
TOLERATION = 2
MONITOR_PERIOD = 0.5
LEASE_ENV = {"KUBELITE_NODE_LEASE_RENEW_INTERVAL": "1",
             "KUBELITE_NODE_STATUS_UPDATE_FREQUENCY": "1"}


# -- a cluster of our own processes (a kubelet may die without taking `up` down) ------------


@dataclass
class Kubelet:
    name: str
    argv: list[str]
    log: Path
    cidr: str
    process: ManagedProcess | None = None

    def start(self) -> Kubelet:
        self.process = ManagedProcess(self.name, self.argv, self.log, {
            **FAST_TIMINGS, **LEASE_ENV, "KUBELITE_METRICS_PORT": str(free_port())}).start()
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid


@dataclass
class NodeCluster:
    target: str
    workdir: Path
    controller: ManagedProcess | None = None
    scheduler: ManagedProcess | None = None
    kubelets: dict[str, Kubelet] = field(default_factory=dict)

    def start_control_plane(self, *controller_flags: str, scheduler: bool = True) -> None:
        env = dict(FAST_TIMINGS, KUBELITE_METRICS_PORT=str(free_port()))
        health = f"127.0.0.1:{free_port()}"
        self.controller = ManagedProcess("controller", python_module_argv(
            "services.controller", "--server", self.target, "--health-listen", health,
            "--node-monitor-grace-period", str(GRACE),
            "--node-monitor-period", str(MONITOR_PERIOD), *controller_flags),
            self.workdir / "controller.log", env).start()
        wait_healthy(health, 30, self.controller.proc)
        if scheduler:
            health = f"127.0.0.1:{free_port()}"
            self.scheduler = ManagedProcess("scheduler", python_module_argv(
                "services.scheduler", "--server", self.target, "--health-listen", health),
                self.workdir / "scheduler.log",
                dict(env, KUBELITE_METRICS_PORT=str(free_port()))).start()
            wait_healthy(health, 30, self.scheduler.proc)

    def add_kubelet(self, name: str) -> Kubelet:
        # Random loopback ranges: other clusters on this machine use the usual ones.
        ip = f"127.10.{random.randint(100, 250)}.{len(self.kubelets) + 1}"
        cidr = f"127.{random.randint(30, 90)}.{random.randint(0, 255)}.0/24"
        argv = python_module_argv(
            "services.kubelet", "--server", self.target, "--node-name", name,
            "--listen", f"{ip}:{free_port(ip)}", "--root-dir", str(self.workdir / name),
            "--pod-cidr", cidr, "--kill-pods-on-exit", "true")
        kubelet = Kubelet(name, argv, self.workdir / f"{name}.log", cidr).start()
        self.kubelets[name] = kubelet
        return kubelet

    def stop(self) -> None:
        for kubelet in self.kubelets.values():
            if kubelet.process is not None and kubelet.process.alive():
                os.kill(kubelet.pid, signal.SIGCONT)
                kubelet.process.stop(10)
        for process in (self.scheduler, self.controller):
            if process is not None:
                process.stop(5)


@pytest.fixture
async def cluster(apiserver_factory, tmp_path: Path) -> AsyncIterator[NodeCluster]:
    server = apiserver_factory("--default-not-ready-toleration-seconds", str(TOLERATION),
                               "--default-unreachable-toleration-seconds", str(TOLERATION))
    nodes = NodeCluster(server.target, tmp_path)
    try:
        yield nodes
    finally:
        nodes.stop()
        for name in ("controller", "scheduler", *nodes.kubelets):
            path = tmp_path / f"{name}.log"
            if path.exists():
                print(f"--- {name} ---\n" + "\n".join(path.read_text(
                    errors="replace").splitlines()[-25:]))


# -- reading the cluster -----------------------------------------------------------------------


# Writes keep flowing while nodes are lost: no gap longer than this (seconds).
WRITE_GAP = 5.0


@asynccontextmanager
async def steady_writes(client: Client) -> AsyncIterator[Writer]:
    """A writer creating and patching ConfigMaps throughout the block; afterwards every
    acknowledged write is present and none waited longer than WRITE_GAP."""
    namespace = f"load-{uuid.uuid4().hex[:8]}"
    await client.create("namespaces", {"metadata": {"name": namespace}})
    writer = Writer(client, namespace, pause=0.05).start()
    started = time.monotonic()
    try:
        yield writer
    finally:
        await writer.stop()
    assert len(writer.acked) > 0 and writer.counter > 20, "the load never ran"
    await writer.assert_acknowledged_present()
    gap = writer.longest_gap(started)
    assert gap < WRITE_GAP, f"writes stalled for {gap:.1f}s while nodes were lost"


def deployment(name: str, replicas: int, marker: str) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [echo_container(marker=marker)],
                                           "terminationGracePeriodSeconds": 2}}}}


async def live_ready(client: Client, app: str) -> list[Obj]:
    pods = (await client.list("pods", namespace="default", label_selector=f"app={app}")).items
    return [p for p in pods if is_ready(p) and not p["metadata"].get("deletionTimestamp")]


async def ready_status(client: Client, node: str) -> str:
    obj = await client.get("nodes", node)
    return next((c["status"] for c in obj.get("status", {}).get("conditions", [])
                 if c["type"] == "Ready"), "")


async def taints(client: Client, node: str) -> set[tuple[str, str]]:
    obj = await client.get("nodes", node)
    return {(t["key"], t["effect"]) for t in obj.get("spec", {}).get("taints") or []}


def _environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0")
                if "=" in item)


def running_pods(marker: str, cidrs: dict[str, str]) -> dict[str, set[str]]:
    """Pod name -> the nodes whose pod range holds the IP its process serves on."""
    out: dict[str, set[str]] = {}
    for pid in pids_with(marker):
        env = _environ(pid)
        if "POD_NAME" not in env:
            continue
        ip = ipaddress.ip_address(env.get("BIND", "0.0.0.0"))
        node = next((n for n, c in cidrs.items() if ip in ipaddress.ip_network(c)), "?")
        out.setdefault(env["POD_NAME"], set()).add(node)
    return out


async def no_pod_twice(client: Client, app: str, marker: str, cidrs: dict[str, str],
                       gone: set[str]) -> bool:
    """Every live pod runs on one node only, its own; the evicted ones run nowhere."""
    running = running_pods(marker, cidrs)
    pods = (await client.list("pods", namespace="default", label_selector=f"app={app}")).items
    where = {p["metadata"]["name"]: p["spec"].get("nodeName") for p in pods}
    if gone & set(running) or gone & set(where):
        return False
    return all(nodes == {where.get(name)} for name, nodes in running.items())


async def lose_node_and_replace(client: Client, app: str, victim: str, *, lost_at: float
                                ) -> tuple[float, float]:
    """Waits for the victim node Unknown and the app's pods Ready elsewhere; returns
    (detection, replacement) seconds after lost_at, each checked against its bound."""
    await eventually(lambda: _eq(ready_status(client, victim), "Unknown"),
                     timeout=GRACE + 5 + 5, interval=0.1, what=f"{victim} Unknown")
    detected = time.monotonic() - lost_at
    # The grace runs from the last renewal seen, up to one renew interval (1 s) before.
    assert GRACE - 1.5 <= detected <= GRACE + 5, detected

    async def replaced() -> bool:
        pods = await live_ready(client, app)
        return len(pods) == 4 and all(p["spec"]["nodeName"] != victim for p in pods)

    await eventually(replaced, timeout=GRACE + TOLERATION + 10 + 10, interval=0.2,
                     what="the lost node's pods replaced on the other node")
    replacement = time.monotonic() - lost_at
    assert replacement <= GRACE + TOLERATION + 10, replacement
    assert {(TAINT_UNREACHABLE, "NoExecute"), (TAINT_UNREACHABLE, "NoSchedule")} <= \
        await taints(client, victim)
    return detected, replacement


async def _eq(value: Any, expected: Any) -> bool:
    return (await value) == expected


async def spread_deployment(client: Client, app: str, marker: str) -> dict[str, list[str]]:
    """4 Ready replicas of the echo server on 2 Ready nodes; returns node -> its pods."""
    await wait_nodes_ready(client, 2, timeout=60)
    await client.create("deployments", deployment(app, 4, marker), namespace="default")
    pods = await eventually(lambda: _four(live_ready(client, app)), timeout=60,
                            what="4 ready pods")
    by_node: dict[str, list[str]] = {}
    for p in pods:
        by_node.setdefault(p["spec"]["nodeName"], []).append(p["metadata"]["name"])
    return by_node


async def _four(pods: Any) -> list[Obj]:
    found = await pods
    return found if len(found) == 4 else []


async def returned_cleanly(client: Client, node: str, app: str, marker: str,
                           cidrs: dict[str, str], evicted: set[str]) -> None:
    """After the node's kubelet is back: Ready, taints lifted, evicted pods deleted and
    their processes gone, and no pod running on two nodes."""
    await eventually(lambda: _eq(ready_status(client, node), "True"), timeout=20,
                     what=f"{node} Ready again")
    await eventually(lambda: _none_of(taints(client, node), {TAINT_UNREACHABLE,
                                                             TAINT_NOT_READY}),
                     timeout=15, what="the node's taints lifted")
    await eventually(lambda: no_pod_twice(client, app, marker, cidrs, evicted), timeout=20,
                     what="the evicted pods' processes gone, every pod on one node")
    assert len(await live_ready(client, app)) == 4


async def _none_of(found: Any, keys: set[str]) -> bool:
    return not any(key in keys for key, _ in await found)


# -- kubelet SIGKILLed -------------------------------------------------------------------------


async def test_kubelet_sigkilled_pods_move_and_restarted_kubelet_kills_its_copies(
        cluster: NodeCluster):
    cluster.start_control_plane()
    for name in ("fk-a", "fk-b"):
        cluster.add_kubelet(name)
    cidrs = {n: k.cidr for n, k in cluster.kubelets.items()}
    marker = uuid.uuid4().hex
    async with Client(cluster.target) as client, steady_writes(client):
        by_node = await spread_deployment(client, "web", marker)
        victim = max(by_node, key=lambda n: len(by_node[n]))
        evicted = set(by_node[victim])
        assert await no_pod_twice(client, "web", marker, cidrs, set())
        kubelet = cluster.kubelets[victim]
        lost_at = time.monotonic()
        kubelet.process.kill()  # type: ignore[union-attr]
        detected, replaced = await lose_node_and_replace(client, "web", victim, lost_at=lost_at)
        print(f"SIGKILL: detected after {detected:.1f}s, replaced after {replaced:.1f}s")
        # Its containers outlive it (shims); the evicted pods wait, Terminating, for it.
        assert evicted <= set(running_pods(marker, cidrs))
        kubelet.start()
        await returned_cleanly(client, victim, "web", marker, cidrs, evicted)

        # The runtime fails its health check: NotReady, not-ready taints, nothing new lands.
        containers = cluster.workdir / victim / "containers"
        containers.rename(containers.with_name("containers.away"))
        try:
            async def not_ready() -> bool:
                node = await client.get("nodes", victim)
                ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
                return ready["status"] == "False" and ready["reason"] == "KubeletNotReady"

            await eventually(not_ready, timeout=10, what="NotReady while the runtime is down")
            await eventually(lambda: _has(taints(client, victim),
                                          (TAINT_NOT_READY, "NoSchedule")),
                             timeout=10, what="the not-ready NoSchedule taint")
            await client.patch("deployments", "web", {"spec": {"replicas": 6}},
                               namespace="default")
            pods = await eventually(lambda: _n(live_ready(client, "web"), 6), timeout=30,
                                    what="6 ready pods")
            assert all(p["spec"]["nodeName"] != victim for p in pods)
        finally:
            containers.with_name("containers.away").rename(containers)
        await eventually(lambda: _eq(ready_status(client, victim), "True"), timeout=15,
                         what="Ready once the runtime answers again")
        await eventually(lambda: _none_of(taints(client, victim), {TAINT_NOT_READY}),
                         timeout=15, what="the not-ready taints lifted")


async def _has(found: Any, taint: tuple[str, str]) -> bool:
    return taint in await found


async def _n(pods: Any, n: int) -> list[Obj]:
    found = await pods
    return found if len(found) == n else []


# -- kubelet SIGSTOPped, under `kubelite up` with Kubernetes' flag names ------------------------


def _children_cmdlines(data_dir: Path) -> list[list[str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if str(data_dir) in " ".join(argv) or any(a.startswith("services.") for a in argv):
            found.append([entry.name, *argv])
    return found


def _pid_of(cmdlines: list[list[str]], module: str, *needles: str) -> int:
    for argv in cmdlines:
        joined = " ".join(argv)
        if f"-m {module} " in joined and all(n in joined for n in needles) \
                and "setpriv" not in argv[1]:
            return int(argv[0])
    raise AssertionError(f"no {module} process with {needles}")


def _kubelite_up(data_dir: Path, target: str, flags: list[str]) -> subprocess.Popen:
    out = open(data_dir / "up.out", "wb")  # noqa: SIM115 - the child owns it
    up = subprocess.Popen(
        [str(Path(sys.executable).parent / "kubelite"), "up", "--listen", target,
         "--data-dir", str(data_dir), "--nodes", "2", *flags],
        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env={**os.environ, **FAST_TIMINGS})
    out.close()
    return up


async def test_kubelet_sigstopped_partition_under_kubelite_up(tmp_path: Path):
    target = f"127.0.0.1:{free_port()}"
    flags = ["--node-monitor-grace-period", str(GRACE), "--node-monitor-period",
             str(MONITOR_PERIOD), "--default-unreachable-toleration-seconds", str(TOLERATION),
             "--default-not-ready-toleration-seconds", str(TOLERATION),
             "--node-lease-renew-interval", "1", "--node-status-update-frequency", "1",
             "--node-eviction-rate", "0.5"]
    up = _kubelite_up(tmp_path, target, flags)
    stopped: int | None = None
    try:
        wait_healthy(target, 60, up)

        def flags_passed_on() -> list[list[str]]:
            cmdlines = [c for c in _children_cmdlines(tmp_path) if target in " ".join(c)]
            # The flags reached their components; each kubelet's command line names its node.
            try:
                _pid_of(cmdlines, "services.controller", f"--node-monitor-grace-period {GRACE}",
                        "--node-eviction-rate 0.5")
                _pid_of(cmdlines, "services.apiserver",
                        f"--default-unreachable-toleration-seconds {TOLERATION}")
                for node in ("node-0", "node-1"):
                    _pid_of(cmdlines, "services.kubelet", f"--node-name {node}",
                            "--node-lease-renew-interval 1", "--node-status-update-frequency 1")
            except AssertionError:
                return []
            return cmdlines

        cmdlines = await eventually(flags_passed_on, timeout=15,
                                    what="every component running with the flags passed on")
        cidrs = {"node-0": "127.11.0.0/16", "node-1": "127.12.0.0/16"}
        marker = uuid.uuid4().hex
        async with Client(target) as client, steady_writes(client):
            by_node = await spread_deployment(client, "web", marker)
            victim = max(by_node, key=lambda n: len(by_node[n]))
            evicted = set(by_node[victim])
            template = (await live_ready(client, "web"))[0]
            assert {"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
                    "tolerationSeconds": TOLERATION} in template["spec"]["tolerations"]
            stopped = _pid_of(cmdlines, "services.kubelet", f"--node-name {victim}")
            lost_at = time.monotonic()
            os.kill(stopped, signal.SIGSTOP)
            detected, replaced = await lose_node_and_replace(client, "web", victim,
                                                             lost_at=lost_at)
            print(f"SIGSTOP: detected after {detected:.1f}s, replaced after {replaced:.1f}s")
            assert evicted <= set(running_pods(marker, cidrs))  # the partitioned copies
            os.kill(stopped, signal.SIGCONT)
            stopped = None
            await returned_cleanly(client, victim, "web", marker, cidrs, evicted)
            assert up.poll() is None
    finally:
        if stopped is not None:
            os.kill(stopped, signal.SIGCONT)
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(timeout=40)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()
        for name in ("controller", "kubelet-0", "kubelet-1"):
            path = tmp_path / "logs" / f"{name}.log"
            if path.exists():
                print(f"--- {name} ---\n" + "\n".join(path.read_text(
                    errors="replace").splitlines()[-20:]))


# -- most nodes silenced at once: the zone logic ---------------------------------------------------


class HollowNodes:
    """Nodes registered through the API whose Leases this test renews, or stops renewing."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.alive: set[str] = set()
        self._task: asyncio.Task[None] | None = None

    async def add(self, name: str, zone: str = "") -> None:
        stamp = now_rfc3339()
        labels = {"topology.kubernetes.io/zone": zone} if zone else {}
        await self.client.create("nodes", {
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels},
            "status": {"conditions": [{"type": "Ready", "status": "True",
                                       "reason": "KubeletReady", "lastHeartbeatTime": stamp,
                                       "lastTransitionTime": stamp}]}})
        await self.client.create("leases", {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": 40,
                     "renewTime": now_rfc3339(micro=True)}})
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": f"pod-{name}", "namespace": "default"},
               "spec": {"nodeName": name, "containers": [{"name": "c", "image": "x"}]}}
        await self.client.create("pods", pod)
        self.alive.add(name)

    def start(self) -> None:
        self._task = asyncio.create_task(self._renew())

    async def _renew(self) -> None:
        while True:
            for name in sorted(self.alive):
                try:
                    lease = await self.client.get("leases", name, namespace="kube-node-lease")
                    lease["spec"]["renewTime"] = now_rfc3339(micro=True)
                    await self.client.update("leases", lease, namespace="kube-node-lease")
                    node = await self.client.get("nodes", name)
                    ready = node["status"]["conditions"][0]
                    if ready["status"] != "True":  # back: say Ready, as a kubelet would
                        stamp = now_rfc3339()
                        ready.update(status="True", reason="KubeletReady",
                                     lastHeartbeatTime=stamp, lastTransitionTime=stamp)
                        await self.client.update_status("nodes", node)
                except Exception:  # noqa: BLE001 - a missed renewal is the next one's job
                    pass
            await asyncio.sleep(0.3)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def evicted(self, name: str) -> bool:
        try:
            pod = await self.client.get("pods", f"pod-{name}", namespace="default")
        except NotFoundError:
            return True
        return bool(pod["metadata"].get("deletionTimestamp"))


async def test_most_of_a_zone_silenced_stops_its_evictions(cluster: NodeCluster):
    """Zone a loses 3 of 4 nodes (PartialDisruption, a small zone: rate 0): at most the
    one tainted before the zone state caught up is evicted. Zone b loses 1 of 4 (Normal):
    that node's pod is evicted."""
    cluster.start_control_plane("--controllers", "nodelifecycle,tainteviction",
                                scheduler=False)
    async with Client(cluster.target) as client, steady_writes(client):
        hollow = HollowNodes(client)
        for i in range(4):
            await hollow.add(f"a{i}", "a")
            await hollow.add(f"b{i}", "b")
        hollow.start()
        try:
            await asyncio.sleep(GRACE + 1)  # every node seen healthy for a while
            silenced = {"a1", "a2", "a3", "b1"}
            hollow.alive -= silenced
            await eventually(lambda: hollow.evicted("b1"),
                             timeout=GRACE + TOLERATION + 10, what="b1's pod evicted")
            for name in silenced:
                assert await ready_status(client, name) == "Unknown"
                assert (TAINT_UNREACHABLE, "NoSchedule") in await taints(client, name)
            await asyncio.sleep(TOLERATION + 3)
            a_tainted = [n for n in ("a1", "a2", "a3")
                         if (TAINT_UNREACHABLE, "NoExecute") in await taints(client, n)]
            a_evicted = [n for n in ("a1", "a2", "a3") if await hollow.evicted(n)]
            assert len(a_tainted) <= 1 and len(a_evicted) <= 1, (a_tainted, a_evicted)
            for name in ("a0", "b0", "b2", "b3"):
                assert await ready_status(client, name) == "True"
                assert not await hollow.evicted(name)
        finally:
            await hollow.stop()


async def test_every_node_silenced_evicts_nothing_until_some_node_returns(cluster: NodeCluster):
    """All nodes silent (FullDisruption everywhere): no NoExecute taint, no eviction.
    One node back: the zone is Normal again (2 of 3 not ready) and the other two are
    evicted one at a time, at --node-eviction-rate."""
    cluster.start_control_plane("--controllers", "nodelifecycle,tainteviction",
                                "--node-eviction-rate", "0.5", scheduler=False)
    async with Client(cluster.target) as client, steady_writes(client):
        hollow = HollowNodes(client)
        names = ["n0", "n1", "n2"]
        for name in names:
            await hollow.add(name)
        hollow.start()
        try:
            await asyncio.sleep(GRACE + 1)
            hollow.alive.clear()
            await eventually(lambda: _all_unknown(client, names), timeout=GRACE + 5,
                             what="every node Unknown")
            await asyncio.sleep(TOLERATION + 3)
            for name in names:
                assert (TAINT_UNREACHABLE, "NoExecute") not in await taints(client, name)
                assert (TAINT_UNREACHABLE, "NoSchedule") in await taints(client, name)
                assert not await hollow.evicted(name)
            hollow.alive.add("n0")
            seen: dict[str, float] = {}

            async def both_tainted() -> bool:
                for name in ("n1", "n2"):
                    if name not in seen and (TAINT_UNREACHABLE, "NoExecute") in \
                            await taints(client, name):
                        seen[name] = time.monotonic()
                return len(seen) == 2

            await eventually(both_tainted, timeout=GRACE + 15, interval=0.1,
                             what="n1 and n2 NoExecute-tainted")
            gap = abs(seen["n1"] - seen["n2"])
            assert gap >= 1.5, f"two nodes tainted {gap:.2f}s apart at 0.5 nodes/s"
            await eventually(lambda: _all_evicted(hollow, ["n1", "n2"]),
                             timeout=TOLERATION + 10, what="their pods evicted")
            assert not await hollow.evicted("n0")
        finally:
            await hollow.stop()


async def _all_unknown(client: Client, names: list[str]) -> bool:
    return all([await ready_status(client, n) == "Unknown" for n in names])


async def _all_evicted(hollow: HollowNodes, names: list[str]) -> bool:
    return all([await hollow.evicted(n) for n in names])

"""High availability under faults, against real processes and a steady write load.

Each case runs a writer that creates and patches ConfigMaps and records every
acknowledged write with its resourceVersion, and informers (through clients
given both apiserver addresses) that record every event they see. The checks:

- every acknowledged write is present afterwards (a ConfigMap's counter only
  grows, so its final value is at least the last acknowledged one);
- a resourceVersion names one change: every (name, counter) seen for an rv, by
  the writer, a watcher or a List, is the same;
- every informer converges: its cache equals a final List;
- where no storage failover happens, no event is lost or duplicated.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from kubelite.client import Client
from kubelite.errors import ApiError, NotFoundError, UnavailableError
from kubelite.informer import Informer, object_key
from kubelite.localcluster import (
    ManagedProcess,
    RedisHA,
    RedisServer,
    SentinelTimings,
    apiserver_process,
    free_port,
    python_module_argv,
    wait_healthy,
)
from kubelite.testing.load import Ledger, Writer
from services.apiserver.storage import (
    EPOCH_BLOCK,
    RV_PLACEHOLDER,
    Storage,
    parse_sentinels,
    split_serialized,
)

FAST_SENTINEL = SentinelTimings(down_after_ms=1000, failover_timeout_ms=3000)
WAIT_TIMEOUT = 0.5


async def eventually(check: Callable[[], Any], *, within: float = 30.0,
                     what: str = "condition") -> Any:
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {within}s waiting for {what}; last: {last!r}")


# -- the processes ---------------------------------------------------------------------


@dataclass
class Apiservers:
    processes: list[ManagedProcess]
    targets: list[str]

    @property
    def all(self) -> str:
        return ",".join(self.targets)

    def stop(self) -> None:
        for process in self.processes:
            process.stop()


def start_apiservers(workdir: Path, count: int, *, redis_url: str = "redis://127.0.0.1:1/0",
                     extra: tuple[str, ...] = ()) -> Apiservers:
    processes, targets = [], []
    for i in range(count):
        target = f"127.0.0.1:{free_port()}"
        process = apiserver_process(workdir, listen=target, redis_url=redis_url,
                                    name=f"apiserver-{i}",
                                    extra=("--bookmark-interval", "1", "--storage-timeout", "2",
                                           *extra)).start()
        processes.append(process)
        targets.append(target)
    for target, process in zip(targets, processes, strict=True):
        try:
            wait_healthy(target, 30, process.proc)
        except Exception:
            print(process.tail())
            raise
    return Apiservers(processes, targets)


@pytest.fixture
def redis_ha(tmp_path: Path) -> Iterator[RedisHA]:
    """A primary, two replicas (so that one remains after a failover) and three Sentinels."""
    ha = RedisHA(tmp_path / "redis", replicas=2, timings=FAST_SENTINEL).start()
    yield ha
    ha.stop()


def ha_flags(ha: RedisHA) -> tuple[str, ...]:
    return ("--redis-sentinels", ha.sentinel_addresses, "--redis-master-name", ha.master_name,
            "--redis-min-replicas", "1", "--redis-wait-timeout", str(WAIT_TIMEOUT))


@pytest.fixture
def ha_apiservers(tmp_path: Path, redis_ha: RedisHA) -> Iterator[Apiservers]:
    servers = start_apiservers(tmp_path, 2, extra=ha_flags(redis_ha))
    yield servers
    servers.stop()
    for process in servers.processes:
        print(f"--- {process.name} ---\n{process.tail(15)}")


# -- the load and the observers ----------------------------------------------------------


@dataclass
class Observer:
    """An informer on the namespace's ConfigMaps that logs every event's rv per key."""

    informer: Informer
    client: Client
    events: list[tuple[str, int]] = field(default_factory=list)

    @classmethod
    async def start(cls, targets: str, namespace: str, ledger: Ledger) -> Observer:
        client = Client(targets, timeout=3)
        informer = Informer(client, "configmaps", namespace=namespace, backoff_base=0.05,
                            backoff_cap=0.5)
        observer = cls(informer, client)

        def record(obj: dict[str, Any]) -> None:
            observer.events.append((object_key(obj), int(obj["metadata"]["resourceVersion"])))
            ledger.saw(obj, f"watch via {client.current_target}")

        informer.add_handler(on_add=record, on_update=lambda old, new: record(new),
                             on_delete=lambda obj: None)
        informer.start()
        await informer.wait_synced()
        return observer

    def cache(self) -> dict[str, str]:
        return {object_key(o): o["metadata"]["resourceVersion"] for o in self.informer.list()}

    async def close(self) -> None:
        await self.informer.stop()
        await self.client.close()


async def converged(observers: list[Observer], client: Client, namespace: str,
                    ledger: Ledger) -> None:
    async def same() -> bool:
        listed = await client.list("configmaps", namespace=namespace)
        truth = {object_key(o): o["metadata"]["resourceVersion"] for o in listed.items}
        for obj in listed.items:
            ledger.saw(obj, "list")
        return all(o.cache() == truth for o in observers)

    await eventually(same, within=30, what="every informer's cache to equal a List")


async def new_namespace(client: Client) -> str:
    name = f"ha-{uuid.uuid4().hex[:8]}"
    await eventually(lambda: _try_create_ns(client, name), what="the namespace created")
    return name


async def _try_create_ns(client: Client, name: str) -> bool:
    try:
        await client.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                           "metadata": {"name": name}})
    except UnavailableError:
        return False
    return True


@pytest.fixture
async def ha_client(ha_apiservers: Apiservers) -> AsyncIterator[Client]:
    async with Client(ha_apiservers.all, timeout=3) as client:
        yield client


# -- the cases -------------------------------------------------------------------------


async def test_client_fails_over_to_the_next_address(tmp_path: Path, redis_server: RedisServer
                                                       ) -> None:
    """A dead first address costs one refused connection, then the second one serves."""
    servers = start_apiservers(tmp_path, 1, redis_url=redis_server.url)
    try:
        dead = f"127.0.0.1:{free_port()}"
        async with Client(f"{dead},{servers.targets[0]}", timeout=3) as client:
            namespace = await new_namespace(client)
            assert client.current_target == servers.targets[0]
            assert client.failovers == 1
            created = await client.create("configmaps", {
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "namespace": namespace}})
            assert created["metadata"]["resourceVersion"]
    finally:
        servers.stop()


async def test_apiserver_replica_killed(tmp_path: Path, redis_server: RedisServer) -> None:
    """SIGKILL one of two apiservers under load: clients move to the other; informers
    resume from their resourceVersion without a relist, and see every acknowledged write
    exactly once, in one revision order."""
    servers = start_apiservers(tmp_path, 2, redis_url=redis_server.url)
    a, b = servers.targets
    ledger = Ledger()
    try:
        async with Client(f"{a},{b}", timeout=3) as client:
            namespace = await new_namespace(client)
            observers = [await Observer.start(f"{a},{b}", namespace, ledger),
                         await Observer.start(f"{b},{a}", namespace, ledger)]
            writer = Writer(client, namespace, ledger)
            writer.start()
            await eventually(lambda: len(writer.acked_rvs) > 30, what="some writes")
            servers.processes[0].kill()
            killed = time.monotonic()
            await writer.acks_after(killed, count=30)
            await writer.stop()
            gap = writer.longest_gap(killed)
            await converged(observers, client, namespace, ledger)
            assert not ledger.clashes, ledger.clashes[:5]
            await writer.assert_acknowledged_present(client)
            for observer in observers:
                assert observer.informer.relists == 0
                rvs = [rv for _, rv in observer.events]
                assert rvs == sorted(set(rvs)), "an event was duplicated or out of order"
                missing = set(writer.acked_rvs) - set(rvs)
                assert not missing, f"events lost: {sorted(missing)[:10]}"
            assert observers[0].client.current_target == b
            print(f"apiserver failover: longest time without an acknowledged write {gap:.2f}s")
            assert gap < 3.0
            for observer in observers:
                await observer.close()
    finally:
        servers.stop()


async def test_redis_primary_killed(redis_ha: RedisHA, ha_apiservers: Apiservers,
                                    ha_client: Client) -> None:
    """SIGKILL the Redis primary under load: Sentinel promotes a replica, the apiservers
    follow without a restart, nothing acknowledged is lost, no resourceVersion names two
    changes, and every informer converges."""
    a, b = ha_apiservers.targets
    ledger = Ledger()
    namespace = await new_namespace(ha_client)
    observers = [await Observer.start(f"{a},{b}", namespace, ledger),
                 await Observer.start(f"{b},{a}", namespace, ledger)]
    writer = Writer(ha_client, namespace, ledger)
    writer.start()
    await eventually(lambda: len(writer.acked_rvs) > 30, what="some writes")
    old = redis_ha.primary()
    assert old is not None
    old.kill()
    killed = time.monotonic()
    await writer.acks_after(killed, count=20, within=40)
    await writer.stop()
    gap = writer.longest_gap(killed)
    new = redis_ha.primary()
    assert new is not None and new is not old
    await converged(observers, ha_client, namespace, ledger)
    assert not ledger.clashes, ledger.clashes[:5]
    await writer.assert_acknowledged_present(ha_client)
    # The new primary's revisions start past anything the old one could hand out.
    assert max(writer.acked_rvs) > EPOCH_BLOCK
    print(f"redis failover: {gap:.2f}s without an acknowledged write "
          f"(down-after {FAST_SENTINEL.down_after_ms} ms)")
    for observer in observers:
        await observer.close()


async def test_unreplicated_write_is_refused_never_watched_and_its_revision_never_reused(
        redis_ha: RedisHA, ha_apiservers: Apiservers, ha_client: Client) -> None:
    """A write the replicas never got: refused (UNAVAILABLE), never delivered to a
    watcher, lost by the failover, and its resourceVersion (which a GET did see) is
    never handed to another change."""
    namespace = await new_namespace(ha_client)
    ledger = Ledger()
    observer = await Observer.start(ha_apiservers.all, namespace, ledger)
    base = await ha_client.create("configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "base", "namespace": namespace}, "data": {"v": "0"}})
    await eventually(lambda: observer.informer.get(f"{namespace}/base"), what="base watched")
    primary = redis_ha.primary()
    assert primary is not None
    replicas = [s for s in redis_ha.servers if s is not primary]
    for replica in replicas:
        os.kill(replica.process.pid, signal.SIGSTOP)
    # The primary drops its replicas' links while they are stopped, so that nothing
    # written from now on sits in their sockets for them to read when they resume.
    with redis.Redis(primary.host, primary.port) as conn:
        conn.client_kill_filter(_type="replica")
    try:
        with pytest.raises(UnavailableError, match="not confirmed"):
            await ha_client.create("configmaps", {
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "ghost", "namespace": namespace}, "data": {"v": "1"}})
        ghost = await ha_client.get("configmaps", "ghost", namespace=namespace)  # on the primary
        ghost_rv = int(ghost["metadata"]["resourceVersion"])
        assert ghost_rv > int(base["metadata"]["resourceVersion"])
        ledger.saw(ghost, "get")
        await asyncio.sleep(WAIT_TIMEOUT * 2)
        assert observer.informer.get(f"{namespace}/ghost") is None, "a watcher saw it"
        primary.kill()
    finally:
        for replica in replicas:
            os.kill(replica.process.pid, signal.SIGCONT)

    async def written() -> dict[str, Any] | None:
        try:
            return await ha_client.create("configmaps", {
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "after", "namespace": namespace}, "data": {"v": "2"}})
        except UnavailableError:
            return None

    after = await eventually(written, within=40, what="a write on the new primary")
    ledger.saw(after, "writer")
    after_rv = int(after["metadata"]["resourceVersion"])
    assert after_rv > ghost_rv and after_rv > EPOCH_BLOCK
    with pytest.raises(NotFoundError):
        await ha_client.get("configmaps", "ghost", namespace=namespace)
    await converged([observer], ha_client, namespace, ledger)
    assert not ledger.clashes, ledger.clashes
    assert observer.informer.get(f"{namespace}/ghost") is None
    assert all(rv != ghost_rv for _, rv in observer.events)
    # A watch resuming from the lost revision is told to list again.
    with pytest.raises(ApiError) as expired:
        async for _ in ha_client.watch("configmaps", namespace=namespace,
                                       resource_version=str(ghost_rv)):
            pass
    assert expired.value.reason in ("Expired", "Gone")
    await observer.close()


async def test_redis_restarted_with_aof_loses_nothing_acknowledged(
        tmp_path: Path, redis_server: RedisServer) -> None:
    """SIGKILL the single Redis (AOF, appendfsync everysec) under load and start it again:
    every acknowledged write is there, and no resourceVersion names two changes."""
    servers = start_apiservers(tmp_path, 1, redis_url=redis_server.url)
    ledger = Ledger()
    try:
        async with Client(servers.all, timeout=3) as client:
            namespace = await new_namespace(client)
            observer = await Observer.start(servers.all, namespace, ledger)
            writer = Writer(client, namespace, ledger)
            writer.start()
            await eventually(lambda: len(writer.acked_rvs) > 50, what="some writes")
            redis_server.kill()
            killed = time.monotonic()
            await asyncio.sleep(0.5)
            await asyncio.to_thread(redis_server.start)
            await writer.acks_after(killed, count=20)
            await writer.stop()
            await converged([observer], client, namespace, ledger)
            assert not ledger.clashes, ledger.clashes[:5]
            await writer.assert_acknowledged_present(client)
            await observer.close()
    finally:
        servers.stop()


# -- leaders ---------------------------------------------------------------------------

FAST_LEASE = ("--leader-elect-lease-duration", "2", "--leader-elect-renew-deadline", "1.5",
              "--leader-elect-retry-period", "0.2")
LEASE_DURATION = 2.0


def start_component(workdir: Path, module: str, server: str, identity: str,
                    *extra: str) -> ManagedProcess:
    health = f"127.0.0.1:{free_port()}"
    argv = python_module_argv(f"services.{module}", "--server", server, "--health-listen", health,
                              "--metrics-port", "0", "--identity", identity, *FAST_LEASE, *extra)
    process = ManagedProcess(identity, argv, workdir / f"{identity}.log").start()
    wait_healthy(health, 30, process.proc)
    return process


async def lease_holder(client: Client, name: str) -> str:
    try:
        lease = await client.get("leases", name, namespace="kube-system")
    except (NotFoundError, UnavailableError):
        return ""
    return lease["spec"].get("holderIdentity") or ""


async def test_scheduler_and_controller_leaders_killed(tmp_path: Path,
                                                       redis_server: RedisServer) -> None:
    """Two schedulers and two controller managers on two apiservers: SIGKILL both leaders
    while a ReplicaSet scales; the standbys take over within the lease duration (plus a
    retry), no pod is created beyond the replicas and none is bound twice."""
    servers = start_apiservers(tmp_path, 2, redis_url=redis_server.url)
    processes: dict[str, ManagedProcess] = {}
    try:
        for i in range(2):
            processes[f"sched-{i}"] = start_component(tmp_path, "scheduler", servers.all,
                                                      f"sched-{i}")
            processes[f"kcm-{i}"] = start_component(tmp_path, "controller", servers.all,
                                                    f"kcm-{i}", "--controllers", "replicaset")
        async with Client(servers.all, timeout=3) as client:
            for name in ("n1", "n2"):
                await client.create("nodes", {
                    "apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                    "status": {"capacity": {"cpu": "8", "memory": "16Gi", "pods": "110"},
                               "allocatable": {"cpu": "8", "memory": "16Gi", "pods": "110"},
                               "conditions": [{"type": "Ready", "status": "True"}]}})
            namespace = await new_namespace(client)
            created: dict[str, int] = {}
            bindings: dict[str, list[str]] = {}

            async def watch_pods() -> None:
                async for event in client.watch("pods", namespace=namespace):
                    obj = event.object
                    if event.type == "BOOKMARK":
                        continue
                    name = obj["metadata"]["name"]
                    if event.type == "ADDED":
                        created[name] = created.get(name, 0) + 1
                    node = obj["spec"].get("nodeName")
                    seen = bindings.setdefault(name, [])
                    if node and (not seen or seen[-1] != node):
                        seen.append(node)

            watcher = asyncio.create_task(watch_pods())
            scheduler = await eventually(lambda: lease_holder(client, "kube-scheduler"),
                                         what="a scheduler leader")
            manager = await eventually(lambda: lease_holder(client, "kube-controller-manager"),
                                       what="a controller leader")
            rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                  "metadata": {"name": "web", "namespace": namespace},
                  "spec": {"replicas": 6, "selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}},
                                        "spec": {"containers": [{"name": "c",
                                                                 "image": "busybox"}]}}}}
            await client.create("replicasets", rs)
            await eventually(lambda: sum(1 for b in bindings.values() if b) == 6,
                             what="6 pods bound")
            processes[scheduler].kill()
            processes[manager].kill()
            killed = time.monotonic()
            await client.patch("replicasets", "web", {"spec": {"replicas": 12}},
                               namespace=namespace)
            new_scheduler = await eventually(
                lambda: _other_holder(client, "kube-scheduler", scheduler), within=10,
                what="the standby scheduler leading")
            new_manager = await eventually(
                lambda: _other_holder(client, "kube-controller-manager", manager), within=10,
                what="the standby controller manager leading")
            took = time.monotonic() - killed
            await eventually(lambda: sum(1 for b in bindings.values() if b) == 12, within=15,
                             what="12 pods bound")
            await asyncio.sleep(1.0)
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            print(f"leaders {scheduler}->{new_scheduler}, {manager}->{new_manager} "
                  f"in {took:.2f}s (lease {LEASE_DURATION}s)")
            assert took < LEASE_DURATION + 2.0
            assert len(created) == 12 and set(created.values()) == {1}, created
            assert all(len(nodes) == 1 for nodes in bindings.values()), bindings
            pods = await client.list("pods", namespace=namespace)
            assert len(pods.items) == 12
    finally:
        for process in processes.values():
            process.stop(3)
        servers.stop()


async def _other_holder(client: Client, lease: str, old: str) -> str:
    holder = await lease_holder(client, lease)
    return holder if holder and holder != old else ""


# -- the CLI and `kubelite up --ha` ----------------------------------------------------


def kubelite_cli(*args: str, server: str, timeout: float = 30) -> subprocess.CompletedProcess:
    env = {**os.environ, "KUBELITE_SERVER": server}
    return subprocess.run([sys.executable, "-m", "kubelite.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


async def test_cli_takes_several_servers(tmp_path: Path, redis_server: RedisServer) -> None:
    """--server and KUBELITE_SERVER take a comma-separated list; a dead first one is skipped."""
    servers = start_apiservers(tmp_path, 1, redis_url=redis_server.url)
    try:
        dead = f"127.0.0.1:{free_port()}"
        both = f"{dead},{servers.targets[0]}"
        out = await asyncio.to_thread(kubelite_cli, "get", "namespaces", server=both)
        assert out.returncode == 0, out.stderr
        assert "kube-system" in out.stdout
        out = await asyncio.to_thread(kubelite_cli, "--server", both, "create", "namespace",
                                      "from-cli", server="127.0.0.1:1")
        assert out.returncode == 0, out.stderr
        out = await asyncio.to_thread(kubelite_cli, "get", "namespaces", server=dead)
        assert out.returncode == 1 and "cannot connect" in out.stderr
    finally:
        servers.stop()


def consecutive_free_ports() -> int:
    """A free port whose successor is free too (`up --ha` listens on both)."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two consecutive free ports")


async def test_kubelite_up_ha_survives_an_apiserver_kill(tmp_path: Path
                                                                          ) -> None:
    """`kubelite up --ha` runs 2 apiservers, 2 schedulers, 2 controller managers, Redis with
    a replica and 3 Sentinels; a killed apiserver is restarted while the other serves."""
    port = consecutive_free_ports()
    listen, second = f"127.0.0.1:{port}", f"127.0.0.1:{port + 1}"
    proc = await asyncio.to_thread(
        subprocess.Popen,
        [sys.executable, "-m", "kubelite.cli.main", "up", "--ha", "--listen", listen,
         "--data-dir", str(tmp_path / "data"), "--nodes", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        banner = await asyncio.to_thread(proc.stdout.readline)
        assert "kubelite is up" in banner and "high availability" in banner, banner
        lines = []
        while "Press Ctrl-C" not in (line := await asyncio.to_thread(proc.stdout.readline)):
            lines.append(line)
        text = "".join(lines)
        for name in ("redis-0", "redis-1", "sentinel-0", "sentinel-1", "sentinel-2",
                     "apiserver-0", "apiserver-1", "scheduler-0", "scheduler-1",
                     "controller-0", "controller-1"):
            assert f"{name} (pid" in text, text
        pids = dict(re.findall(r"([\w-]+) \(pid (\d+)\)", text))
        async with Client(f"{listen},{second}", timeout=3) as client:
            for lease in ("kube-scheduler", "kube-controller-manager"):
                await eventually(lambda lease=lease: lease_holder(client, lease), within=30,
                                 what=f"a {lease} leader")
            os.kill(int(pids["apiserver-0"]), signal.SIGKILL)
            namespace = await new_namespace(client)  # served by the other one meanwhile
            assert client.current_target == second
            restarted = await asyncio.to_thread(proc.stdout.readline)
            restarted += await asyncio.to_thread(proc.stdout.readline)
            assert "apiserver-0 restarted" in restarted, restarted
            await asyncio.to_thread(wait_healthy, listen, 30)
            async with Client(listen, timeout=3) as first:
                async def served() -> bool:
                    try:
                        return bool(await first.get("namespaces", namespace))
                    except UnavailableError:  # its first call may race its start-up
                        return False

                await eventually(served, within=15, what="the restarted apiserver serving")
    finally:
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 60)
    assert code == 0


async def test_a_connection_from_before_a_failover_never_writes_without_the_jump(
        redis_ha: RedisHA) -> None:
    """A connection can outlive a demotion and a promotion back with no write to break
    it. Its next commit finds that kl:epoch names another primary, reconnects through
    Sentinel, and the epoch script jumps the revision before the write lands."""
    storage = Storage("", sentinels=parse_sentinels(redis_ha.sentinel_addresses),
                      master_name=redis_ha.master_name, min_replicas=1, wait_timeout=1.0)

    async def put(name: str) -> int:
        obj = {"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": name, "namespace": "default",
                            "resourceVersion": RV_PLACEHOLDER}}
        rev, _ = await storage.commit("create", "configmaps", "default", name,
                                      split_serialized(obj), event_type="ADDED")
        return rev

    try:
        first = await put("a")
        assert first < EPOCH_BLOCK
        # What another primary's epoch script would have left in the data.
        await storage.redis.set(storage.epoch_key, "7@somewhere-else:6379")
        second = await put("b")
        assert second == EPOCH_BLOCK + 1
        events = await storage.read_range(0, second)
        assert [e.type for e in events][-2:] == ["FAILOVER", "ADDED"]
        assert events[-2].jumped_from == first
    finally:
        await storage.close()

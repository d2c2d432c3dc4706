"""Real kubelite processes for tests: an apiserver alone, or a whole local cluster.

Both are started the way a user starts them (the apiserver as `python -m
services.apiserver`, the cluster as `kubelite up`), on free loopback ports, as
child processes that die with the test run even when it is killed. Nothing here
imports a service or the CLI: they are only ever run as processes.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubelite.client import Client
from kubelite.localcluster import (
    ManagedProcess,
    RedisServer,
    apiserver_process,
    free_port,
    wait_healthy,
)
from kubelite.testing.waiting import wait_for_list

# The components' environment-variable flags, shortened, so that the binaries a
# user runs finish their back-offs, elections and probe periods in seconds.
FAST_TIMINGS = {
    "KUBELITE_BACKOFF_BASE": "0.5",
    "KUBELITE_BACKOFF_CAP": "4",
    "KUBELITE_NODE_LEASE_RENEW_INTERVAL": "1",
    "KUBELITE_NODE_STATUS_UPDATE_FREQUENCY": "1",
    "KUBELITE_PLEG_RELIST_PERIOD": "0.2",
    "KUBELITE_PROBE_PERIOD_SCALE": "0.2",
    "KUBELITE_LEADER_ELECT_LEASE_DURATION": "3",
    "KUBELITE_LEADER_ELECT_RENEW_DEADLINE": "2",
    "KUBELITE_LEADER_ELECT_RETRY_PERIOD": "0.3",
    "KUBELITE_POD_INITIAL_BACKOFF": "0.2",
    "KUBELITE_POD_MAX_BACKOFF": "1",
    "KUBELITE_ORPHAN_GRACE": "0.5",
}


@dataclass
class ApiServer:
    """A running apiserver process and the Redis behind it."""

    redis: RedisServer
    process: ManagedProcess
    target: str
    workdir: Path
    extra: tuple[str, ...] = ()

    def restart(self, *, kill: bool = True) -> None:
        """Kills (or stops) the apiserver and starts it again on the same port
        (blocking: from a coroutine, run it in a thread)."""
        self.process.kill() if kill else self.process.stop()
        self.process = apiserver_process(
            self.workdir, listen=self.target, redis_url=self.redis.url, extra=self.extra
        ).start()
        wait_healthy(self.target, 30, self.process.proc)

    def stop(self) -> None:
        self.process.stop()

    def client(self, **kwargs: Any) -> Client:
        """A Client for this apiserver (use it as `async with`)."""
        return Client(self.target, **kwargs)


def start_apiserver(workdir: Path, redis: RedisServer, extra: tuple[str, ...] = ()) -> ApiServer:
    """Starts an apiserver on a free port against `redis` and waits until it is healthy;
    `extra` are more command-line flags (`--watch-cache-size`, ...)."""
    target = f"127.0.0.1:{free_port()}"
    proc = apiserver_process(workdir, listen=target, redis_url=redis.url, extra=extra).start()
    try:
        wait_healthy(target, 30, proc.proc)
    except Exception:
        print(proc.tail())
        proc.kill()
        raise
    return ApiServer(redis, proc, target, workdir, extra)


@dataclass
class LocalCluster:
    """A `kubelite up` process: Redis, the apiserver and every component, with `nodes`
    kubelets. Its output is data_dir/up.out; each component logs to data_dir/logs."""

    target: str
    data_dir: Path
    managed: ManagedProcess
    nodes: int = 1

    @property
    def process(self) -> subprocess.Popen:
        assert self.managed.proc is not None
        return self.managed.proc

    def log(self, name: str) -> str:
        """A component's log so far ("apiserver", "controller", "kubelet-0", ...)."""
        path = self.data_dir / "logs" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def client(self, **kwargs: Any) -> Client:
        return Client(self.target, **kwargs)

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM, which `kubelite up` passes on to every component; SIGKILL after grace."""
        self.managed.stop(grace)


def start_cluster(data_dir: Path, *, nodes: int = 2, env: dict[str, str] | None = None,
                  fast: bool = True, timeout: float = 60.0) -> LocalCluster:
    """Runs `kubelite up` in data_dir and waits for its apiserver (not for the nodes:
    see wait_nodes_ready). `fast` applies FAST_TIMINGS; `env` is applied over them."""
    data_dir.mkdir(parents=True, exist_ok=True)
    target = f"127.0.0.1:{free_port()}"
    argv = [sys.executable, "-m", "kubelite.cli.main", "up", "--listen", target,
            "--data-dir", str(data_dir), "--nodes", str(nodes)]
    managed = ManagedProcess("up", argv, data_dir / "up.out",
                             env={**(FAST_TIMINGS if fast else {}), **(env or {})}).start()
    try:
        wait_healthy(target, timeout, managed.proc)
    except Exception:
        managed.stop()
        raise
    return LocalCluster(target, data_dir, managed, nodes)


def unique_name(prefix: str = "t") -> str:
    """A DNS-label name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def create_namespace(client: Client, prefix: str = "t") -> str:
    """Creates a namespace of a unique name and returns the name."""
    name = unique_name(prefix)
    await client.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                       "metadata": {"name": name}})
    return name


def is_ready(obj: dict[str, Any]) -> bool:
    """True when a Pod's (or Node's) Ready condition is True."""
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


async def wait_nodes_ready(client: Client, count: int, timeout: float = 60.0
                           ) -> list[dict[str, Any]]:
    """Waits through a watch until at least `count` Nodes are Ready; returns them."""
    def ready(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ok = [n for n in nodes if is_ready(n)]
        return ok if len(ok) >= count else []

    return await wait_for_list(client, "nodes", ready, timeout=timeout,
                               what=f"{count} Ready nodes")



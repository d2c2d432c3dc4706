"""A whole local cluster for end-to-end tests: `kubelite up` run as a user runs it.

Timings are shortened through the components' environment-variable flags, so
the same binaries a user runs finish their back-offs and elections in seconds.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubelite.client import Client
from kubelite.localcluster import free_port, wait_healthy

REPO = Path(__file__).resolve().parent.parent
# Pods of every local cluster share loopback ranges, so each test run serves on a
# port of its own: a pod another cluster left behind can never answer for ours.
ECHO_PORT = random.randint(20000, 29999)
ECHO = str(REPO / "images" / "demo" / "echo.py")

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
class Cluster:
    target: str
    data_dir: Path
    process: subprocess.Popen

    def log(self, name: str) -> str:
        path = self.data_dir / "logs" / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_cluster(data_dir: Path, *, nodes: int = 2, env: dict[str, str] | None = None) -> Cluster:
    target = f"127.0.0.1:{free_port()}"
    kubelite = Path(sys.executable).parent / "kubelite"
    out = open(data_dir / "up.out", "wb")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen(
        [str(kubelite), "up", "--listen", target, "--data-dir", str(data_dir),
         "--nodes", str(nodes)],
        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env={**os.environ, **FAST_TIMINGS, **(env or {})},
    )
    out.close()
    wait_healthy(target, 60, proc)
    return Cluster(target, data_dir, proc)


async def eventually(check: Callable[[], Any], *, timeout: float = 30.0,
                     interval: float = 0.2, what: str = "condition") -> Any:
    """Polls an (async or sync) check until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        await asyncio.sleep(interval)


async def wait_nodes_ready(client: Client, count: int, timeout: float = 60) -> list[dict]:
    async def ready() -> list[dict]:
        nodes = (await client.list("nodes")).items
        ok = [n for n in nodes if any(c["type"] == "Ready" and c["status"] == "True"
                                      for c in (n.get("status") or {}).get("conditions", []))]
        return ok if len(ok) >= count else []

    return await eventually(ready, timeout=timeout, what=f"{count} Ready nodes")


def echo_container(name: str = "web", *, marker: str = "") -> dict[str, Any]:
    """The demo HTTP server as a process-runtime container, bound to its pod's IP."""
    command = [sys.executable, ECHO]
    if marker:
        command.append(f"--marker={marker}")
    return {
        "name": name, "image": "kubelite/demo:latest", "command": command,
        "env": [
            {"name": "BIND", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "PORT", "value": str(ECHO_PORT)},
        ],
        "ports": [{"containerPort": ECHO_PORT, "name": "http"}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": ECHO_PORT},
                           "periodSeconds": 1},
    }


def is_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def pids_with(marker: str) -> list[int]:
    """Container processes (not shims) whose command line carries the marker."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline and b"services.kubelet" not in cmdline:
            found.append(int(entry.name))
    return found


async def http_get(host: str, port: int, path: str = "/", timeout: float = 2.0) -> str:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.0 200") and not head.startswith(b"HTTP/1.1 200"):
        raise AssertionError(f"unexpected reply: {head[:80]!r}")
    return body.decode().strip()

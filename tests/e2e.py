"""A whole local cluster for end-to-end tests: `kubelite up` run as a user runs it.

The cluster, its fast timings and the waits come from kubelite.testing; this module
adds what only kubelite's own end-to-end tests use (the demo echo server as a pod,
finding a pod's processes, plain HTTP).
"""

from __future__ import annotations

import asyncio
import random
import sys
from pathlib import Path
from typing import Any

from kubelite.testing import (
    FAST_TIMINGS,
    eventually,
    is_ready,
    start_cluster,
    wait_nodes_ready,
)
from kubelite.testing import LocalCluster as Cluster

REPO = Path(__file__).resolve().parent.parent
# Pods of every local cluster share loopback ranges, so each test run serves on a
# port of its own: a pod another cluster left behind can never answer for ours.
ECHO_PORT = random.randint(20000, 29999)
ECHO = str(REPO / "images" / "demo" / "echo.py")

__all__ = ["ECHO", "ECHO_PORT", "FAST_TIMINGS", "REPO", "Cluster", "echo_container",
           "eventually", "http_get", "is_ready", "pids_with", "start_cluster",
           "wait_nodes_ready"]


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

"""Unschedulable pods wait, then land when a big enough node joins: end to end."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from kubelite.client import Client
from kubelite.errors import NotFoundError
from kubelite.localcluster import ManagedProcess, free_port, python_module_argv

from .e2e import (
    FAST_TIMINGS,
    echo_container,
    eventually,
    pids_with,
    start_cluster,
    wait_nodes_ready,
)

pytestmark = pytest.mark.slow


async def test_pending_pod_is_scheduled_when_a_bigger_node_joins(tmp_path: Path) -> None:
    """A pod asking for more cpu than any node has stays Pending as Unschedulable, with
    Kubernetes' message; once a bigger node registers it is scheduled on its own."""
    cluster = start_cluster(tmp_path, nodes=2)
    big: ManagedProcess | None = None
    try:
        async with Client(cluster.target) as api:
            await wait_nodes_ready(api, 2)
            marker = uuid.uuid4().hex
            container = echo_container(marker=marker)
            container["resources"] = {"requests": {"cpu": "64", "memory": "64Mi"}}
            await api.create("pods", {"metadata": {"name": "huge"},
                                      "spec": {"containers": [container]}})

            async def unschedulable() -> dict | None:
                pod = await api.get("pods", "huge")
                for c in (pod.get("status") or {}).get("conditions") or []:
                    if c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable":
                        return c
                return None

            condition = await eventually(unschedulable, timeout=30, what="Unschedulable")
            assert condition["status"] == "False"
            assert condition["message"].startswith("0/2 nodes are available: 2 Insufficient cpu")
            events = (await api.list("events", namespace="default")).items
            assert any(e["reason"] == "FailedScheduling"
                       and e["involvedObject"]["name"] == "huge" for e in events)
            assert not (await api.get("pods", "huge"))["spec"].get("nodeName")

            ip = "127.10.0.99"
            big = ManagedProcess("kubelet-big", python_module_argv(
                "services.kubelet", "--server", cluster.target, "--node-name", "node-big",
                "--listen", f"{ip}:{free_port(ip)}", "--root-dir", str(tmp_path / "big"),
                "--pod-cidr", "127.99.0.0/16", "--cpu", "128", "--memory", "64Gi",
                "--kill-pods-on-exit", "true",
            ), tmp_path / "kubelet-big.log", {**FAST_TIMINGS, "KUBELITE_METRICS_PORT": "0"}).start()

            async def scheduled() -> dict | None:
                pod = await api.get("pods", "huge")
                return pod if pod["spec"].get("nodeName") == "node-big" else None

            await eventually(scheduled, timeout=30, what="scheduled on node-big")
            # A graceful delete: the kubelet stops the process and confirms, so nothing
            # outlives the test.
            await api.delete("pods", "huge", grace_period_seconds=1)

            async def gone() -> bool:
                try:
                    await api.get("pods", "huge")
                except NotFoundError:
                    return True
                return False

            await eventually(gone, timeout=30, what="the pod deleted by its kubelet")
            assert not pids_with(marker)
    finally:
        if big is not None:
            big.stop()
        cluster.stop()
    assert cluster.process.returncode == 0

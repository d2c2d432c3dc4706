"""Small builders shared by the tests."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

MANIFESTS = Path(__file__).parent / "manifests"


def manifest(name: str) -> dict[str, Any]:
    return yaml.safe_load((MANIFESTS / name).read_text())


def configmap(name: str, namespace: str, data: dict[str, str] | None = None,
              labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data or {}}


def pod(name: str, namespace: str, *, labels: dict[str, str] | None = None,
        node: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "main", "image": "busybox:1.36",
                                            "command": ["sleep", "3600"]}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
            "spec": spec}


def node(name: str, *, cpu: str = "4", memory: str = "8Gi", pods: str = "110",
         labels: dict[str, str] | None = None, taints: list[dict[str, str]] | None = None,
         ready: str | None = "True", unschedulable: bool = False) -> dict[str, Any]:
    """A Node object as a kubelet would register it (allocatable = capacity)."""
    resources = {"cpu": cpu, "memory": memory, "pods": pods}
    spec: dict[str, Any] = {}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    conditions = [] if ready is None else [{"type": "Ready", "status": ready,
                                            "reason": "KubeletReady" if ready == "True"
                                            else "KubeletNotReady"}]
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name,
                                                  **(labels or {})}},
            "spec": spec,
            "status": {"capacity": dict(resources), "allocatable": dict(resources),
                       "conditions": conditions}}


# -- the proxy (services/proxy) as a child process ------------------------------------


class ProxyProcess:
    """A `python -m services.proxy` child on free health and metrics ports."""

    def __init__(self, workdir: Path, server: str, *extra: str, name: str = "proxy") -> None:
        from kubelite.localcluster import ManagedProcess, free_port, python_module_argv

        self.health = f"127.0.0.1:{free_port()}"
        self.metrics_port = free_port()
        argv = python_module_argv(
            "services.proxy", "--server", server, "--health-listen", self.health,
            "--metrics-port", str(self.metrics_port), "--log-level", "debug", *extra)
        self.process = ManagedProcess(name, argv, workdir / f"{name}.log")

    def start(self, timeout: float = 30.0) -> ProxyProcess:
        from kubelite.localcluster import wait_healthy

        self.process.start()
        try:
            wait_healthy(self.health, timeout, self.process.proc)
        except Exception:
            print(self.process.tail())
            self.process.kill()
            raise
        return self

    def stop(self) -> None:
        self.process.stop()

    def metrics(self) -> str:
        """The Prometheus text the proxy serves (blocking: call it in a thread)."""
        import urllib.request

        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.read().decode()


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text (0.0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, rest = head.partition("{")
        if metric != name:
            continue
        found = dict(part.split("=", 1) for part in rest.rstrip("}").split(",") if "=" in part)
        if all(found.get(k, "").strip('"') == v for k, v in labels.items()):
            return float(value)
    return 0.0


def missing_prerequisite(reason: str) -> None:
    """Skips a test whose machine lacks something it needs; in CI (CI=true), where
    .ci/run installs everything, fails instead, so a missing install cannot hide."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI must provide this: {reason}")
    pytest.skip(reason)

"""The kubelet's Node: registration, the Ready heartbeat and the node Lease.

- `register()` creates the Node, or updates the one that exists (labels merged,
  registered taints added, podCIDR set), then writes its status: capacity,
  allocatable, addresses, daemonEndpoints (where the apiserver reaches our Logs
  service), nodeInfo and conditions. It retries until the apiserver answers.
- `run()` renews the Lease `kube-node-lease/<node>` every renew interval (the
  cheap heartbeat the node lifecycle controller reads) and rewrites the
  conditions' lastHeartbeatTime every status update period. A Node deleted
  behind our back is registered again. Before each status update it asks the
  container runtime whether it is healthy: if not, Ready is False
  (KubeletNotReady, "container runtime is down: ...") until it is again.
"""

from __future__ import annotations

import asyncio
import logging
import platform
import random
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from kubelite.client import Client
from kubelite.errors import AlreadyExistsError, ApiError, ConflictError, NotFoundError
from kubelite.objects import now_rfc3339
from services.kubelet import metrics
from services.kubelet.config import KubeletConfig

log = logging.getLogger("kubelite.kubelet.node")

Obj = dict[str, Any]
KUBELET_VERSION = "v1.30.0-kubelite.0.1.0"
LEASE_NAMESPACE = "kube-node-lease"
RUNTIME_STATUS_TIMEOUT = 5.0

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
         "s390x": "s390x"}


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def os_image() -> str:
    for line in _read("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.partition("=")[2].strip('"')
    return "Linux"


def micro_time(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def node_info(runtime_version: str) -> Obj:
    machine = platform.machine()
    return {
        "machineID": _read("/etc/machine-id"),
        "systemUUID": _read("/sys/class/dmi/id/product_uuid") or _read("/etc/machine-id"),
        "bootID": _read("/proc/sys/kernel/random/boot_id"),
        "kernelVersion": platform.release(),
        "osImage": os_image(),
        "containerRuntimeVersion": runtime_version,
        "kubeletVersion": KUBELET_VERSION,
        "kubeProxyVersion": "",
        "operatingSystem": "linux",
        "architecture": _ARCH.get(machine, machine),
    }


def node_labels(config: KubeletConfig) -> dict[str, str]:
    machine = platform.machine()
    labels = {
        "kubernetes.io/hostname": config.node_name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": _ARCH.get(machine, machine),
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": _ARCH.get(machine, machine),
    }
    labels.update(config.node_labels)
    return labels


def ready_conditions(existing: list[Obj] | None, now: str, *,
                     runtime_error: str = "") -> list[Obj]:
    """The node conditions the kubelet reports, transition times kept when unchanged.

    Ready is False (KubeletNotReady) while the container runtime reports an error.
    """
    ready = (("Ready", "True", "KubeletReady", "kubelet is posting ready status")
             if not runtime_error else
             ("Ready", "False", "KubeletNotReady", f"container runtime is down: {runtime_error}"))
    wanted = [
        ("MemoryPressure", "False", "KubeletHasSufficientMemory",
         "kubelet has sufficient memory available"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ready,
    ]
    old = {c.get("type"): c for c in existing or []}
    out = []
    for type_, status, reason, message in wanted:
        prev = old.get(type_) or {}
        transition = prev.get("lastTransitionTime") if prev.get("status") == status else None
        out.append({"type": type_, "status": status, "lastHeartbeatTime": now,
                    "lastTransitionTime": transition or now, "reason": reason,
                    "message": message})
    return out


class NodeAgent:
    def __init__(self, client: Client, config: KubeletConfig, *, runtime_version: str,
                 runtime_status: Callable[[], Awaitable[str]] | None = None) -> None:
        self.client = client
        self.config = config
        self.runtime_version = runtime_version
        self.runtime_status = runtime_status
        self.runtime_error = ""  # the runtime's last answer: "" is healthy
        self.node_uid = ""
        self._lease: Obj | None = None

    @property
    def name(self) -> str:
        return self.config.node_name

    def desired_status(self, existing: Obj | None) -> Obj:
        cfg = self.config
        status = dict((existing or {}).get("status") or {})
        status.update({
            "capacity": dict(cfg.capacity),
            "allocatable": dict(cfg.capacity),
            "addresses": [{"type": "InternalIP", "address": cfg.node_ip},
                          {"type": "Hostname", "address": socket.gethostname()}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": cfg.port}},
            "nodeInfo": node_info(self.runtime_version),
            "conditions": ready_conditions(status.get("conditions"), now_rfc3339(),
                                           runtime_error=self.runtime_error),
        })
        status.pop("phase", None)
        return status

    def _new_node(self) -> Obj:
        spec: Obj = {"podCIDR": self.config.pod_cidr, "podCIDRs": [self.config.pod_cidr]}
        if self.config.taints:
            spec["taints"] = [dict(t) for t in self.config.taints]
        node: Obj = {"apiVersion": "v1", "kind": "Node",
                     "metadata": {"name": self.name, "labels": node_labels(self.config)},
                     "spec": spec}
        node["status"] = self.desired_status(None)
        return node

    async def register(self) -> Obj:
        """Creates or updates the Node; retries (with backoff) until it succeeds."""
        delay = 0.2
        while True:
            try:
                node = await self._register_once()
                self.node_uid = node["metadata"]["uid"]
                log.info("node registered", extra={"kv": {"node": self.name,
                                                          "uid": self.node_uid}})
                return node
            except ApiError as err:
                log.warning("node registration failed; retrying",
                            extra={"kv": {"node": self.name, "error": str(err)}})
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, 5.0)

    async def _register_once(self) -> Obj:
        try:
            node = await self.client.create("nodes", self._new_node())
        except AlreadyExistsError:
            node = await self.client.get("nodes", self.name)
            changed = dict(node)
            meta = dict(node["metadata"])
            meta["labels"] = {**(meta.get("labels") or {}), **node_labels(self.config)}
            spec = dict(node.get("spec") or {})
            spec.setdefault("podCIDR", self.config.pod_cidr)
            spec.setdefault("podCIDRs", [spec["podCIDR"]])
            taints = list(spec.get("taints") or [])
            for taint in self.config.taints:
                if not any(t.get("key") == taint["key"] and t.get("effect") == taint["effect"]
                           for t in taints):
                    taints.append(dict(taint))
            if taints:
                spec["taints"] = taints
            changed["metadata"], changed["spec"] = meta, spec
            if changed != node:
                node = await self.client.update("nodes", changed)
        # The status (whether create kept it or not) is always written through its subresource.
        node = dict(node, status=self.desired_status(node))
        return await self.client.update_status("nodes", node)

    async def check_runtime(self) -> None:
        if self.runtime_status is None:
            return
        try:
            error = await asyncio.wait_for(self.runtime_status(), RUNTIME_STATUS_TIMEOUT)
        except TimeoutError:
            error = f"the runtime did not answer its status check within " \
                    f"{RUNTIME_STATUS_TIMEOUT:.0f}s"
        except Exception as err:  # noqa: BLE001 - any failure of the check is an unhealthy runtime
            error = f"{type(err).__name__}: {err}"
        if error != self.runtime_error:
            (log.warning if error else log.info)(
                "container runtime is down; node NotReady" if error
                else "container runtime is healthy again",
                extra={"kv": {"node": self.name, "error": error}})
        self.runtime_error = error

    async def update_status(self) -> None:
        await self.check_runtime()
        try:
            node = await self.client.get("nodes", self.name)
        except NotFoundError:
            log.warning("node object vanished; registering again",
                        extra={"kv": {"node": self.name}})
            await self.register()
            return
        for _ in range(3):
            try:
                await self.client.update_status("nodes", dict(node,
                                                              status=self.desired_status(node)))
                return
            except ConflictError:
                node = await self.client.get("nodes", self.name)

    async def renew_lease(self) -> None:
        now = micro_time()
        lease = self._lease
        try:
            if lease is None:
                try:
                    lease = await self.client.get("leases", self.name, namespace=LEASE_NAMESPACE)
                except NotFoundError:
                    self._lease = await self.client.create("leases", self._new_lease(now))
                    metrics.NODE_LEASE_RENEWALS.labels("created").inc()
                    return
            spec = dict(lease.get("spec") or {})
            spec.update(holderIdentity=self.name, renewTime=now,
                        leaseDurationSeconds=max(1, round(self.config.node_lease_duration)))
            self._lease = await self.client.update("leases", dict(lease, spec=spec),
                                                   namespace=LEASE_NAMESPACE)
            metrics.NODE_LEASE_RENEWALS.labels("renewed").inc()
        except (ConflictError, NotFoundError):
            self._lease = None  # read it again next time
            metrics.NODE_LEASE_RENEWALS.labels("conflict").inc()
            raise

    def _new_lease(self, now: str) -> Obj:
        meta: Obj = {"name": self.name, "namespace": LEASE_NAMESPACE}
        if self.node_uid:
            meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": self.name,
                                        "uid": self.node_uid}]
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta,
                "spec": {"holderIdentity": self.name,
                         "leaseDurationSeconds": max(1, round(self.config.node_lease_duration)),
                         "acquireTime": now, "renewTime": now}}

    async def run(self) -> None:
        await asyncio.gather(self._every(self.config.node_lease_renew_interval,
                                         self.renew_lease, "lease renewal"),
                             self._every(self.config.node_status_update_frequency,
                                         self.update_status, "node status update"))

    async def _every(self, period: float, fn: Any, what: str) -> None:
        while True:
            try:
                await fn()
            except ApiError as err:
                log.warning(f"{what} failed", extra={"kv": {"node": self.name,
                                                             "error": str(err)}})
                await asyncio.sleep(min(period, 1.0))
                continue
            await asyncio.sleep(period)

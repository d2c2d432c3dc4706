"""The node lifecycle controller: a node whose kubelet went quiet is not Ready.

A kubelet proves it is alive by renewing its Lease in `kube-node-lease` (and
by posting node status). The controller remembers, per node, *when it last
saw* either change, on its own monotonic clock, as Kubernetes' nodeHealthData
does: comparing the lease's renewTime with our own clock would make the
verdict depend on the two machines' clocks agreeing. When nothing has changed
for `grace_period` (40 s by default), the node's Ready condition (and any
other condition the kubelet reports) becomes Unknown with reason
NodeStatusUnknown, an event NodeNotReady is recorded, and the Ready condition
of the pods bound to the node turns False so that traffic moves away from
them (Kubernetes' MarkPodsNotReady). The kubelet sets Ready again when it
comes back.

Every node also gets a fresh grace period when this controller starts (or
becomes leader), since it has not seen anything yet.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubelite.client import Client
from kubelite.errors import ConflictError, NotFoundError
from kubelite.events import NORMAL, EventRecorder
from kubelite.objects import now_rfc3339
from kubelite.supervise import spawn

from .base import Controller
from .informers import InformerFactory

Obj = dict[str, Any]

NODE_LEASE_NAMESPACE = "kube-node-lease"
POD_NODE_INDEX = "spec.nodeName"
UNKNOWN_REASON = "NodeStatusUnknown"
UNKNOWN_MESSAGE = "Kubelet stopped posting node status."


def pod_node_name(pod: Obj) -> list[str]:
    """Index function: the node a pod is bound to."""
    node = (pod.get("spec") or {}).get("nodeName")
    return [node] if node else []


@dataclass
class _Health:
    observed: tuple[str, str]  # (lease renewTime, Ready lastHeartbeatTime)
    probe: float  # when we saw `observed` change, on our clock


def _conditions(node: Obj) -> list[Obj]:
    return list((node.get("status") or {}).get("conditions") or ())


def _ready(node: Obj) -> Obj | None:
    return next((c for c in _conditions(node) if c.get("type") == "Ready"), None)


class NodeLifecycleController(Controller[str]):
    name = "nodelifecycle"

    def __init__(self, client: Client, factory: InformerFactory, *,
                 recorder: EventRecorder | None = None, grace_period: float = 40.0,
                 monitor_period: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.node_informer = factory.informer("nodes")
        self.lease_informer = factory.informer("leases")
        self.pod_informer = factory.informer("pods")
        factory.ensure_index("pods", POD_NODE_INDEX, pod_node_name)
        super().__init__(informers=[self.node_informer, self.lease_informer,
                                    self.pod_informer])
        self.client = client
        self.recorder = recorder or EventRecorder(client, component="node-controller")
        self.grace_period = grace_period
        self.monitor_period = monitor_period
        self.clock = clock
        self._health: dict[str, _Health] = {}
        self.node_informer.add_handler(on_add=self.enqueue,
                                       on_update=lambda old, cur: self.enqueue(cur),
                                       on_delete=self.enqueue)
        self.lease_informer.add_handler(on_add=self._lease_changed,
                                        on_update=lambda old, cur: self._lease_changed(cur))

    def _lease_changed(self, lease: Obj) -> None:
        meta = lease.get("metadata") or {}
        if meta.get("namespace") == NODE_LEASE_NAMESPACE:
            self.queue.add(meta.get("name", ""))

    async def run(self, workers: int) -> None:
        monitor = spawn("nodelifecycle-monitor", self._monitor, logger=self.log)
        try:
            await super().run(workers)
        finally:
            monitor.cancel()
            await asyncio.gather(monitor, return_exceptions=True)

    async def _monitor(self) -> None:
        """Looks at every node each monitor period: silence is not an event."""
        await asyncio.gather(*(i.wait_synced() for i in self.informers))
        while True:
            for key in self.node_informer.keys():
                self.queue.add(key)
            await asyncio.sleep(self.monitor_period)

    async def sync(self, name: str) -> None:
        node = self.node_informer.get(name)
        if node is None:
            self._health.pop(name, None)
            return
        lease = self.lease_informer.get(f"{NODE_LEASE_NAMESPACE}/{name}")
        renew = ((lease or {}).get("spec") or {}).get("renewTime") or ""
        ready = _ready(node)
        observed = (renew, (ready or {}).get("lastHeartbeatTime") or "")
        now = self.clock()
        health = self._health.get(name)
        if health is None or health.observed != observed:
            health = self._health[name] = _Health(observed, now)
        silent_for = now - health.probe
        if silent_for <= self.grace_period:
            self.queue.add_after(name, self.grace_period - silent_for + 0.1)
            return
        if ready is None or ready.get("status") != "Unknown":
            await self._mark_unknown(node)
        # Every time, not once: a pod the kubelet wrote meanwhile is caught next round.
        await self._mark_pods_not_ready(name)

    async def _mark_unknown(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        updated = copy.deepcopy(node)
        status = updated.setdefault("status", {})
        stamp = now_rfc3339()
        conditions = [dict(c) for c in status.get("conditions") or ()]
        if not any(c.get("type") == "Ready" for c in conditions):
            conditions.append({"type": "Ready", "lastHeartbeatTime": stamp})
        for cond in conditions:
            if cond.get("status") != "Unknown":
                cond["lastTransitionTime"] = stamp
            cond.update(status="Unknown", reason=UNKNOWN_REASON, message=UNKNOWN_MESSAGE)
        status["conditions"] = conditions
        await self.client.update_status("nodes", updated)
        self.log.warning("node not ready: lease not renewed", extra={"kv": {
            "node": name, "grace_period": self.grace_period}})
        self.recorder.event(node, NORMAL, "NodeNotReady",
                            f"Node {name} status is now: NodeNotReady")

    async def _mark_pods_not_ready(self, node_name: str) -> None:
        for pod in self.pod_informer.by_index(POD_NODE_INDEX, node_name):
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            conditions = [dict(c) for c in (pod.get("status") or {}).get("conditions") or ()]
            changed = False
            for cond in conditions:
                if cond.get("type") == "Ready" and cond.get("status") != "False":
                    cond.update(status="False", lastTransitionTime=now_rfc3339())
                    changed = True
            if not changed:
                continue
            updated = {**pod, "status": {**(pod.get("status") or {}), "conditions": conditions}}
            try:
                await self.client.update_status("pods", updated)
            except (NotFoundError, ConflictError):
                continue  # gone, or the kubelet just wrote: its word is newer
            self.recorder.event(pod, NORMAL, "NodeNotReady", "Node is not ready")


__all__ = ["NodeLifecycleController", "POD_NODE_INDEX", "pod_node_name"]

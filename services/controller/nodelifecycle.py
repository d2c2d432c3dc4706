"""The node lifecycle controller: a node whose kubelet went quiet is not Ready,
and a node that is not Ready is tainted so that its pods move.

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
comes back (or sets it False itself when its container runtime is down).

Taints follow the Ready condition, as in Kubernetes:

- NoSchedule, at once and on every node change: `node.kubernetes.io/not-ready`
  (Ready False), `node.kubernetes.io/unreachable` (Ready Unknown), the
  pressure taints, and `node.kubernetes.io/unschedulable` (spec.unschedulable);
- NoExecute `not-ready` or `unreachable` (never both), through each zone's
  rate-limited queue (services.controller.zones decides the rates), and
  taken off as soon as the node is Ready again. The taint manager
  (services.controller.taintmanager) evicts the pods those taints are not
  tolerated by, or no longer.

Every node also gets a fresh grace period when this controller starts (or
becomes leader), since it has not seen anything yet, and starts with its
NoExecute taints off: they come back through the queues if still deserved.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter

from kubelite.client import Client
from kubelite.errors import ApiError, ConflictError, NotFoundError
from kubelite.events import NORMAL, EventRecorder
from kubelite.objects import now_rfc3339
from kubelite.supervise import spawn
from kubelite.taints import (
    NO_EXECUTE,
    NO_SCHEDULE,
    TAINT_NOT_READY,
    TAINT_UNREACHABLE,
    TAINT_UNSCHEDULABLE,
    has_taint,
)

from .base import Controller
from .informers import InformerFactory
from .zones import (
    TAINTING_PERIOD,
    EvictionRates,
    RateLimitedTimedQueue,
    TokenBucket,
    ZoneState,
    apply_disruption,
    excluded_from_disruption,
    zone_key,
)

Obj = dict[str, Any]

NODE_LEASE_NAMESPACE = "kube-node-lease"
POD_NODE_INDEX = "spec.nodeName"
UNKNOWN_REASON = "NodeStatusUnknown"
UNKNOWN_MESSAGE = "Kubelet stopped posting node status."

EVICTIONS = Counter("node_collector_evictions_total",
                    "Nodes tainted NoExecute (their pods to be evicted), per zone.", ["zone"])


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


#: Kubernetes' nodeConditionToTaintKeyStatusMap: (condition, status) -> NoSchedule taint.
CONDITION_TAINTS = {
    ("Ready", "False"): TAINT_NOT_READY,
    ("Ready", "Unknown"): TAINT_UNREACHABLE,
    ("MemoryPressure", "True"): "node.kubernetes.io/memory-pressure",
    ("DiskPressure", "True"): "node.kubernetes.io/disk-pressure",
    ("NetworkUnavailable", "True"): "node.kubernetes.io/network-unavailable",
    ("PIDPressure", "True"): "node.kubernetes.io/pid-pressure",
}
CONDITION_TAINT_KEYS = frozenset(CONDITION_TAINTS.values()) | {TAINT_UNSCHEDULABLE}


def no_schedule_taints(node: Obj) -> set[tuple[str, str]]:
    """The (key, NoSchedule) taints the node's conditions and spec.unschedulable call for."""
    wanted = {(CONDITION_TAINTS[(c.get("type"), c.get("status"))], NO_SCHEDULE)
              for c in _conditions(node) if (c.get("type"), c.get("status")) in CONDITION_TAINTS}
    if (node.get("spec") or {}).get("unschedulable"):
        wanted.add((TAINT_UNSCHEDULABLE, NO_SCHEDULE))
    return wanted


class NodeLifecycleController(Controller[str]):
    name = "nodelifecycle"

    def __init__(self, client: Client, factory: InformerFactory, *,
                 recorder: EventRecorder | None = None, grace_period: float = 40.0,
                 monitor_period: float = 5.0, rates: EvictionRates | None = None,
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
        self.rates = rates or EvictionRates()
        self.clock = clock
        self._health: dict[str, _Health] = {}
        self._known: dict[str, Obj] = {}
        self.zone_states: dict[str, ZoneState] = {}
        self.tainters: dict[str, RateLimitedTimedQueue] = {}
        # The NoSchedule taints follow each change of a node: the work queue's job.
        self.node_informer.add_handler(on_add=self._node_changed,
                                       on_update=lambda old, cur: self._node_changed(cur),
                                       on_delete=self.enqueue)
        self.lease_informer.add_handler(on_add=self._lease_changed,
                                        on_update=lambda old, cur: self._lease_changed(cur))

    # -- observing ------------------------------------------------------------------

    def _observed(self, name: str) -> tuple[str, str]:
        lease = self.lease_informer.get(f"{NODE_LEASE_NAMESPACE}/{name}")
        renew = ((lease or {}).get("spec") or {}).get("renewTime") or ""
        ready = _ready(self.node_informer.get(name) or {})
        return renew, (ready or {}).get("lastHeartbeatTime") or ""

    def _probe(self, name: str) -> _Health:
        """The node's health record, its probe time moved to now if anything changed."""
        observed = self._observed(name)
        health = self._health.get(name)
        if health is None or health.observed != observed:
            health = self._health[name] = _Health(observed, self.clock())
        return health

    def _node_changed(self, node: Obj) -> None:
        self._probe(node["metadata"]["name"])
        self.enqueue(node)

    def _lease_changed(self, lease: Obj) -> None:
        meta = lease.get("metadata") or {}
        if meta.get("namespace") == NODE_LEASE_NAMESPACE and meta.get("name") in \
                self.node_informer.keys():
            self._probe(meta["name"])

    # -- loops ----------------------------------------------------------------------

    async def run(self, workers: int) -> None:
        loops = [spawn("nodelifecycle-monitor", self._monitor, logger=self.log),
                 spawn("nodelifecycle-tainting", self._tainting, logger=self.log)]
        try:
            await super().run(workers)
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)

    async def _monitor(self) -> None:
        """A health pass over every node each monitor period: silence is not an event."""
        await asyncio.gather(*(i.wait_synced() for i in self.informers))
        while True:
            try:
                await self.monitor_once()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - the next pass tries again
                self.log.warning("node health pass failed", exc_info=not isinstance(
                    err, ApiError), extra={"kv": {"error": str(err) or repr(err)}})
            await asyncio.sleep(self.monitor_period)

    async def _tainting(self) -> None:
        await asyncio.gather(*(i.wait_synced() for i in self.informers))
        while True:
            try:
                await self.tainting_once()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001 - the queues keep their nodes
                self.log.warning("NoExecute tainting pass failed", exc_info=not isinstance(
                    err, ApiError), extra={"kv": {"error": str(err) or repr(err)}})
            await asyncio.sleep(TAINTING_PERIOD)

    def _tainter(self, zone: str) -> RateLimitedTimedQueue:
        queue = self.tainters.get(zone)
        if queue is None:
            queue = self.tainters[zone] = RateLimitedTimedQueue(
                TokenBucket(self.rates.eviction_rate, clock=self.clock), clock=self.clock)
            self.zone_states.setdefault(zone, ZoneState.INITIAL)
        return queue

    async def monitor_once(self) -> None:
        """Kubernetes' monitorNodeHealth: health, taint decisions, then zone disruption."""
        nodes = self.node_informer.list()
        names = {n["metadata"]["name"] for n in nodes}
        for name in [n for n in self._known if n not in names]:
            del self._known[name]
            self._health.pop(name, None)
            for queue in self.tainters.values():
                queue.remove(name)
        zone_ready: dict[str, list[str | None]] = {}
        to_taint: list[Obj] = []
        for node in nodes:
            name = node["metadata"]["name"]
            self._tainter(zone_key(node))
            if name not in self._known:
                self._known[name] = node
                await self._mark_reachable(node)
            try:
                observed, current = await self._update_health(node)
            except NotFoundError:
                continue  # deleted meanwhile: the next pass forgets it
            except ConflictError:
                # The kubelet wrote first: it is alive, and the next pass sees it.
                observed = current = (_ready(node) or {}).get("status")
            if not excluded_from_disruption(node):
                zone_ready.setdefault(zone_key(node), []).append(current)
            try:
                if observed in ("False", "Unknown"):
                    to_taint.extend(await self._taint_based_eviction(node, observed))
                elif observed == "True":
                    await self._mark_reachable(node)
                if current != "True":
                    # Every pass, not once: a pod the kubelet wrote meanwhile is caught next.
                    await self._mark_pods_not_ready(name)
            except ApiError as err:
                self.log.warning("node pass failed; next pass retries", extra={"kv": {
                    "node": name, "error": str(err)}})
        rates, verdict = apply_disruption(self.zone_states, zone_ready, self.rates)
        if verdict == "enter-full":
            self.log.warning("every node is not ready: entering master disruption mode, "
                             "no evictions", extra={"kv": {"nodes": len(nodes)}})
            for node in nodes:
                await self._mark_reachable(node)
        elif verdict == "exit-full":
            self.log.info("some nodes are ready again: exiting master disruption mode")
            now = self.clock()
            for health in self._health.values():
                health.probe = now
        for zone, rate in rates.items():
            self.log.info("zone state", extra={"kv": {
                "zone": zone or "(none)", "state": self.zone_states.get(zone, ""),
                "eviction_rate": rate}})
            self._tainter(zone).swap_limiter(rate)
        # Queued only now, so the rate these nodes meet is the one this pass chose.
        for node in to_taint:
            self._tainter(zone_key(node)).add(node["metadata"]["name"],
                                              node["metadata"].get("uid", ""))

    async def _update_health(self, node: Obj) -> tuple[str | None, str | None]:
        """(Ready status as found, Ready status now): Unknown once silent past the grace."""
        name = node["metadata"]["name"]
        ready = _ready(node)
        observed = (ready or {}).get("status")
        health = self._probe(name)
        if self.clock() - health.probe <= self.grace_period:
            return observed, observed
        if observed != "Unknown":
            await self._mark_unknown(node)
        return observed, "Unknown"

    async def _taint_based_eviction(self, node: Obj, status: str) -> list[Obj]:
        """Kubernetes' processTaintBaseEviction for a node that is not Ready: swap a
        NoExecute taint of the other kind at once, else queue the node for tainting."""
        taints = (node.get("spec") or {}).get("taints") or []
        want, other = ((TAINT_NOT_READY, TAINT_UNREACHABLE) if status == "False"
                       else (TAINT_UNREACHABLE, TAINT_NOT_READY))
        if has_taint(taints, other, NO_EXECUTE):
            await self._swap_taints(node["metadata"]["name"], add=[(want, NO_EXECUTE)],
                                    remove=[(other, NO_EXECUTE)])
            return []
        if has_taint(taints, want, NO_EXECUTE):
            return []
        return [node]

    async def tainting_once(self) -> None:
        for queue in list(self.tainters.values()):
            await queue.try_(self._add_no_execute)

    async def _add_no_execute(self, name: str, uid: str) -> tuple[bool, float]:
        node = self.node_informer.get(name)
        if node is None:
            return True, 0.0
        status = (_ready(node) or {}).get("status")
        if status == "False":
            add, remove = TAINT_NOT_READY, TAINT_UNREACHABLE
        elif status == "Unknown":
            add, remove = TAINT_UNREACHABLE, TAINT_NOT_READY
        else:
            return True, 0.0  # Ready again meanwhile
        written = await self._swap_taints(name, add=[(add, NO_EXECUTE)],
                                          remove=[(remove, NO_EXECUTE)])
        if written:
            self.log.warning("node tainted NoExecute: its pods will be evicted",
                             extra={"kv": {"node": name, "taint": add}})
            EVICTIONS.labels(zone_key(node) or "").inc()
        return written is not None, 0.05

    async def _mark_reachable(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        taints = (node.get("spec") or {}).get("taints") or []
        if any(has_taint(taints, key, NO_EXECUTE) for key in (TAINT_NOT_READY,
                                                                 TAINT_UNREACHABLE)):
            if await self._swap_taints(name, add=[], remove=[(TAINT_NOT_READY, NO_EXECUTE),
                                                             (TAINT_UNREACHABLE, NO_EXECUTE)]):
                self.log.info("NoExecute taints removed", extra={"kv": {"node": name}})
        queue = self.tainters.get(zone_key(node))
        if queue is not None:
            queue.remove(name)

    # -- NoSchedule taints (the work queue) -------------------------------------------

    async def sync(self, name: str) -> None:
        """Kubernetes' doNoScheduleTaintingPass: condition and cordon taints, at once."""
        node = self.node_informer.get(name)
        if node is None:
            return
        wanted = no_schedule_taints(node)
        taints = (node.get("spec") or {}).get("taints") or []
        current = {(t.get("key"), t.get("effect")) for t in taints
                   if t.get("effect") == NO_SCHEDULE and t.get("key") in CONDITION_TAINT_KEYS}
        add = sorted(wanted - current)
        remove = sorted(current - wanted)
        if add or remove:
            if await self._swap_taints(name, add=add, remove=remove) is None:
                raise ConflictError(f"could not update the taints of node {name}")

    async def _swap_taints(self, name: str, *, add: list[tuple[str, str]],
                           remove: list[tuple[str, str]]) -> bool | None:
        """Adds and removes controller taints on the stored node: True when it wrote,
        False when there was nothing to change, None when it could not."""
        for _ in range(5):
            try:
                node = await self.client.get("nodes", name)
            except NotFoundError:
                return None
            spec = dict(node.get("spec") or {})
            taints = [dict(t) for t in spec.get("taints") or []
                      if (t.get("key"), t.get("effect")) not in set(remove)]
            for key, effect in add:
                if not has_taint(taints, key, effect):
                    taint = {"key": key, "effect": effect}
                    if effect == NO_EXECUTE:
                        taint["timeAdded"] = now_rfc3339()
                    taints.append(taint)
            if taints == list(spec.get("taints") or []):
                return False
            if taints:
                spec["taints"] = taints
            else:
                spec.pop("taints", None)
            try:
                await self.client.update("nodes", dict(node, spec=spec))
                return True
            except ConflictError:
                continue
            except NotFoundError:
                return None
        return None

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


__all__ = ["CONDITION_TAINTS", "NodeLifecycleController", "POD_NODE_INDEX", "no_schedule_taints",
           "pod_node_name"]

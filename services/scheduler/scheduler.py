"""The scheduler: informers feed a cache and a queue; one loop binds pods to nodes.

Two informers run on every replica, leader or not, so that a new leader starts
with a warm cache and a full queue:

- **pods** (all namespaces, non-terminal only): an assigned pod goes into the
  cache; an unassigned pod whose spec.schedulerName is ours goes into the
  queue. An assigned pod going away (deleted, or finished: it leaves the
  watch's field selector) frees its node, so unschedulable pods are retried.
- **nodes**: into the cache; a node added, or changed in a way that matters to
  scheduling (labels, taints, unschedulable, allocatable, readiness), retries
  unschedulable pods.

Only the leader runs `run()`: pop a pod, run the framework over the cached
nodes (synchronously, so the cache cannot change under it), assume the pod on
the chosen node, and bind it in a task of its own while the loop goes on to
the next pod. A pod that fits nowhere gets PodScheduled=False/Unschedulable
with Kubernetes' "0/N nodes are available: ..." message and a FailedScheduling
Event, and waits in the queue for the cluster to change.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from typing import Any

from kubelite.client import Client
from kubelite.errors import ApiError, ConflictError, NotFoundError, PreconditionFailedError
from kubelite.events import NORMAL, WARNING, EventRecorder
from kubelite.informer import Informer
from kubelite.objects import now_rfc3339
from kubelite.supervise import spawn

from . import metrics
from .cache import SchedulerCache
from .config import Config
from .framework import FitError, Framework, PodInfo
from .plugins.volumebinding import VolumeBinding
from .queue import QueueClosed, QueuedPodInfo, SchedulingQueue

log = logging.getLogger("kubelite.scheduler")

Obj = dict[str, Any]

#: Finished pods hold no resources: the watch drops them (as kube-scheduler's does).
NON_TERMINAL_PODS = "status.phase!=Succeeded,status.phase!=Failed"

REASON_UNSCHEDULABLE = "Unschedulable"
REASON_SCHEDULER_ERROR = "SchedulerError"

HOUSEKEEPING_PERIOD = 1.0


def _assigned(pod: Obj) -> bool:
    return bool((pod.get("spec") or {}).get("nodeName"))


def _scheduling_view(node: Obj) -> tuple[Any, ...]:
    """The parts of a node that can change a filter's or scorer's verdict."""
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    ready = next((c.get("status") for c in status.get("conditions") or []
                  if c.get("type") == "Ready"), None)
    return ((node.get("metadata") or {}).get("labels"), bool(spec.get("unschedulable")),
            spec.get("taints"), status.get("allocatable") or status.get("capacity"), ready)


def _pod_scheduled_condition(pod: Obj) -> Obj | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "PodScheduled":
            return condition
    return None


class Scheduler:
    def __init__(self, client: Client, config: Config, *, framework: Framework,
                 recorder: EventRecorder) -> None:
        self.client = client
        self.config = config
        self.framework = framework
        self.recorder = recorder
        self.cache = SchedulerCache(assumed_ttl=config.assumed_pod_ttl)
        self.queue = SchedulingQueue(
            initial_backoff=config.pod_initial_backoff, max_backoff=config.pod_max_backoff,
            max_unschedulable_duration=config.pod_max_unschedulable_duration)
        self.pods = Informer(client, "pods", field_selector=NON_TERMINAL_PODS)
        self.nodes = Informer(client, "nodes")
        # Claims, volumes and classes, for the VolumeBinding plugin; a change to any of them
        # may make a waiting pod schedulable.
        self.pvcs = Informer(client, "persistentvolumeclaims")
        self.pvs = Informer(client, "persistentvolumes")
        self.classes = Informer(client, "storageclasses")
        self.volume_binding = next((f for f in framework.filters if isinstance(f, VolumeBinding)),
                                   None)
        if self.volume_binding is not None:
            self.volume_binding.attach(pvc=self.pvcs.get, pv=self.pvs.get, pvs=self.pvs.list,
                                       classes=self.classes.list)
        for informer in (self.pvcs, self.pvs, self.classes):
            informer.add_handler(
                on_add=lambda obj: self.queue.move_all_to_active_or_backoff("VolumeChange"),
                on_update=lambda old, new: self.queue.move_all_to_active_or_backoff(
                    "VolumeChange"))
        self.pods.add_handler(on_add=self._on_pod_add, on_update=self._on_pod_update,
                              on_delete=self._on_pod_delete)
        self.nodes.add_handler(on_add=self._on_node_add, on_update=self._on_node_update,
                               on_delete=self._on_node_delete)
        self._binds: dict[str, asyncio.Task[None]] = {}
        self._writes: set[asyncio.Task[None]] = set()
        self._housekeeping: asyncio.Task[None] | None = None

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        """Starts the informers and waits until both have listed (every replica)."""
        self.pods.start()
        self.nodes.start()
        for informer in (self.pvcs, self.pvs, self.classes):
            informer.start()
        await self.pods.wait_synced()
        await self.nodes.wait_synced()
        for informer in (self.pvcs, self.pvs, self.classes):
            await informer.wait_synced()
        self._housekeeping = spawn("scheduler-housekeeping", self._housekeep, logger=log)
        log.info("scheduler caches synced", extra={"kv": {
            "nodes": self.cache.num_nodes, "pods": self.cache.num_pods,
            "pending": len(self.queue)}})

    async def stop(self) -> None:
        self.queue.close()
        tasks = [t for t in (self._housekeeping, *self._binds.values(), *self._writes) if t]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.pods.stop()
        await self.nodes.stop()
        for informer in (self.pvcs, self.pvs, self.classes):
            await informer.stop()

    async def run(self) -> None:
        """The leader's loop: schedule one pod at a time until cancelled."""
        log.info("scheduling", extra={"kv": {"scheduler": self.config.scheduler_name,
                                             "pending": len(self.queue)}})
        try:
            while True:
                try:
                    qpi = await self.queue.pop()
                except QueueClosed:
                    return
                self.schedule_one(qpi)
                await asyncio.sleep(0)  # let watch events in between two pods
        finally:
            binds = list(self._binds.values())
            for task in binds:
                task.cancel()
            await asyncio.gather(*binds, return_exceptions=True)

    # -- event handlers (only touch the cache and the queue) -------------------

    def _responsible(self, pod: Obj) -> bool:
        return (pod.get("spec") or {}).get("schedulerName", "default-scheduler") \
            == self.config.scheduler_name

    def _on_pod_add(self, pod: Obj) -> None:
        if _assigned(pod):
            self.cache.add_pod(pod)
        elif self._responsible(pod):
            self.queue.add(pod)

    def _on_pod_update(self, old: Obj, new: Obj) -> None:
        if _assigned(new):
            if not _assigned(old):
                self.queue.delete(old)  # bound, by us or by somebody else
            self.cache.update_pod(old, new)
        elif self._responsible(new):
            self.queue.update(old, new)
        else:
            self.queue.delete(new)

    def _on_pod_delete(self, pod: Obj) -> None:
        if _assigned(pod):
            self.cache.remove_pod(pod)
            self.queue.move_all_to_active_or_backoff("AssignedPodDelete")
        else:
            self.queue.delete(pod)

    def _on_node_add(self, node: Obj) -> None:
        self.cache.add_node(node)
        self.queue.move_all_to_active_or_backoff("NodeAdd")

    def _on_node_update(self, old: Obj, new: Obj) -> None:
        self.cache.update_node(new)
        if _scheduling_view(old) != _scheduling_view(new):
            self.queue.move_all_to_active_or_backoff("NodeUpdate")

    def _on_node_delete(self, node: Obj) -> None:
        self.cache.remove_node(node)

    # -- one scheduling cycle ----------------------------------------------------

    def schedule_one(self, qpi: QueuedPodInfo) -> None:
        """Picks a node for one popped pod and starts binding it (never awaits)."""
        current = self.pods.get(qpi.pod.key)
        if (current is None or PodInfo(current).uid != qpi.uid or _assigned(current)
                or (current.get("metadata") or {}).get("deletionTimestamp")
                or self.cache.is_assumed(qpi.uid)):
            self.queue.done(qpi.uid)  # gone, bound, or being deleted: nothing to do
            return
        pod = qpi.pod = PodInfo(current)
        started = time.monotonic()
        try:
            result = self.framework.schedule(pod, self.cache.node_infos())
        except FitError as err:
            self._failed(qpi, str(err), started, reason=REASON_UNSCHEDULABLE)
            return
        except Exception as err:  # a plugin error or a bug: retry with backoff
            log.exception("scheduling attempt failed", extra={"kv": {"pod": pod.key}})
            self._failed(qpi, f"scheduler error: {err}", started, reason=REASON_SCHEDULER_ERROR)
            return
        assumed = self.cache.assume_pod(pod, result.node)
        log.debug("pod assumed", extra={"kv": {
            "pod": pod.key, "node": result.node, "feasible": result.feasible,
            "evaluated": result.evaluated, "score": result.scores.get(result.node, "")}})
        task = asyncio.create_task(self._bind(qpi, assumed, result.node, started),
                                   name=f"bind-{pod.key}")
        self._binds[qpi.uid] = task
        task.add_done_callback(lambda t, uid=qpi.uid: self._binds.pop(uid, None))

    async def _bind(self, qpi: QueuedPodInfo, pod: PodInfo, node: str, started: float) -> None:
        try:
            if self.volume_binding is not None:
                await self.volume_binding.pre_bind(self.client, pod, node)
            await self.client.bind(pod.name, node, namespace=pod.namespace, uid=pod.uid)
        except TimeoutError as err:
            self.cache.forget_pod(pod.uid)
            self._failed(qpi, str(err), started, reason=REASON_SCHEDULER_ERROR)
            return
        except asyncio.CancelledError:
            self.cache.forget_pod(pod.uid)
            self.queue.requeue(qpi)
            raise
        except (NotFoundError, PreconditionFailedError):
            # Deleted, or deleted and recreated under the same name: not ours to bind.
            self.cache.forget_pod(pod.uid)
            self.queue.done(pod.uid)
            return
        except ApiError as err:
            self.cache.forget_pod(pod.uid)
            current = self.pods.get(pod.key)
            if isinstance(err, ConflictError) and current is not None and (
                    _assigned(current) or (current.get("metadata") or {}).get(
                        "deletionTimestamp")):
                self.queue.done(pod.uid)  # bound elsewhere or being deleted meanwhile
                return
            # A permanent error (the binding is invalid, the namespace terminating)
            # fails again on retry: the pod waits, unschedulable, for a change.
            self._failed(qpi, f"Binding rejected: {err}", started,
                         reason=REASON_SCHEDULER_ERROR, retry=err.retryable)
            return
        self.cache.finish_binding(pod.uid)
        self.queue.done(pod.uid)
        elapsed = time.monotonic() - started
        metrics.SCHEDULE_ATTEMPTS.labels(metrics.SCHEDULED).inc()
        metrics.ATTEMPT_DURATION.labels(metrics.SCHEDULED).observe(elapsed)
        metrics.SLI_DURATION.labels(str(qpi.attempts)).observe(
            time.monotonic() - qpi.first_queued)
        self.recorder.event(pod.pod, NORMAL, "Scheduled",
                            f"Successfully assigned {pod.namespace}/{pod.name} to {node}")
        log.info("pod bound", extra={"kv": {"pod": pod.key, "node": node,
                                            "attempts": qpi.attempts,
                                            "ms": round(elapsed * 1000, 1)}})

    def _failed(self, qpi: QueuedPodInfo, message: str, started: float, *, reason: str,
                retry: bool = True) -> None:
        error = reason != REASON_UNSCHEDULABLE
        result = metrics.ERROR if error else metrics.UNSCHEDULABLE
        metrics.SCHEDULE_ATTEMPTS.labels(result).inc()
        metrics.ATTEMPT_DURATION.labels(result).observe(time.monotonic() - started)
        place = self.queue.add_unschedulable(qpi, error=error and retry)
        log.info("pod not scheduled", extra={"kv": {
            "pod": qpi.pod.key, "reason": reason, "message": message,
            "attempts": qpi.attempts, "queue": place or "dropped"}})
        if place is None:
            return
        self.recorder.event(qpi.pod.pod, WARNING, "FailedScheduling", message)
        task = asyncio.create_task(self._write_condition(qpi.pod, reason, message))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write_condition(self, pod: PodInfo, reason: str, message: str) -> None:
        """Sets PodScheduled=False with reason and message, unless it already says so."""
        current: Obj | None = self.pods.get(pod.key) or pod.pod
        for _ in range(3):
            if current is None or PodInfo(current).uid != pod.uid or _assigned(current):
                return
            status = copy.deepcopy(current.get("status") or {})
            old = _pod_scheduled_condition(current)
            if (old is not None and old.get("status") == "False"
                    and old.get("reason") == reason and old.get("message") == message):
                return
            changed = old is None or old.get("status") != "False"
            condition = {"type": "PodScheduled", "status": "False", "lastProbeTime": None,
                         "lastTransitionTime": now_rfc3339() if changed
                         else old.get("lastTransitionTime"),
                         "reason": reason, "message": message}
            status["conditions"] = [c for c in status.get("conditions") or []
                                    if c.get("type") != "PodScheduled"] + [condition]
            try:
                await self.client.update_status("pods", {**current, "status": status},
                                                namespace=pod.namespace)
                return
            except ConflictError:
                try:
                    current = await self.client.get("pods", pod.name, namespace=pod.namespace)
                except NotFoundError:
                    return
            except NotFoundError:
                return
            except ApiError as err:
                log.warning("cannot update pod condition", extra={"kv": {
                    "pod": pod.key, "error": str(err)}})
                return

    # -- housekeeping ------------------------------------------------------------

    async def _housekeep(self) -> None:
        while True:
            await asyncio.sleep(HOUSEKEEPING_PERIOD)
            try:
                if self.cache.cleanup_expired():
                    self.queue.move_all_to_active_or_backoff("AssumedPodExpired")
                self.queue.flush_unschedulable_leftover()
                metrics.CACHE_SIZE.labels("nodes").set(self.cache.num_nodes)
                metrics.CACHE_SIZE.labels("pods").set(self.cache.num_pods)
                metrics.CACHE_SIZE.labels("assumed_pods").set(self.cache.num_assumed)
            except Exception:
                log.exception("scheduler housekeeping failed")


__all__ = ["NON_TERMINAL_PODS", "Scheduler"]

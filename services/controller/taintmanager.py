"""The taint manager: a pod on a NoExecute-tainted node leaves when its toleration ends.

Kubernetes' taint eviction controller. For each pod bound to a node, the
node's NoExecute taints and the pod's tolerations decide (kubelite.taints):

- a taint no toleration matches: the pod is deleted at once;
- every taint tolerated, some for a limited time: the pod is deleted when the
  shortest matching tolerationSeconds has passed since this controller first
  saw it so (the apiserver gives every pod 300 s for the not-ready and
  unreachable taints, the DefaultTolerationSeconds admission);
- tolerated forever, or the taints gone before the time is up: the eviction
  is cancelled.

The time is kept on this controller's monotonic clock, and the pod's key goes
back in the work queue with a delay until it is due, so the queue is the only
timer. An eviction marks the pod with a DisruptionTarget condition and then
deletes it gracefully; the kubelet, if it is still there (or when it comes
back), stops the containers, and the pod's ReplicaSet, counting a terminating
pod as gone, has already made a replacement, which the scheduler places on a
node without the taint.

Rate limiting is not this controller's business: the node lifecycle
controller adds the NoExecute taints through its per-zone queues.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kubelite.client import Client
from kubelite.errors import ConflictError, NotFoundError, PreconditionFailedError
from kubelite.events import NORMAL, EventRecorder
from kubelite.informer import object_key
from kubelite.objects import now_rfc3339
from kubelite.taints import no_execute, toleration_deadline

from .base import Controller
from .informers import InformerFactory
from .nodelifecycle import POD_NODE_INDEX, pod_node_name

Obj = dict[str, Any]
Key = tuple[str, str]  # ("node", name) or ("pod", "namespace/name")

DISRUPTION_CONDITION = {"type": "DisruptionTarget", "status": "True",
                        "reason": "DeletionByTaintManager",
                        "message": "Taint manager: deleting due to NoExecute taint"}


def _taints_of(node: Obj | None) -> list[Obj]:
    return no_execute(((node or {}).get("spec") or {}).get("taints") or [])


class TaintEvictionController(Controller[Key]):
    name = "tainteviction"

    def __init__(self, client: Client, factory: InformerFactory, *,
                 recorder: EventRecorder | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.node_informer = factory.informer("nodes")
        self.pod_informer = factory.informer("pods")
        factory.ensure_index("pods", POD_NODE_INDEX, pod_node_name)
        super().__init__(informers=[self.node_informer, self.pod_informer])
        self.client = client
        self.recorder = recorder or EventRecorder(client, component="taint-eviction-controller")
        self.clock = clock
        self._since: dict[str, float] = {}  # pod key -> when its eviction was scheduled
        self.node_informer.add_handler(
            on_add=lambda node: self._node_changed(None, node),
            on_update=self._node_changed,
            on_delete=lambda node: self._node_changed(node, None))
        self.pod_informer.add_handler(
            on_add=self._pod_changed, on_update=lambda old, cur: self._pod_changed(cur),
            on_delete=self._pod_changed)

    def _node_changed(self, old: Obj | None, cur: Obj | None) -> None:
        if _taints_of(old) != _taints_of(cur):
            node = cur or old or {}
            self.queue.add(("node", node["metadata"]["name"]))

    def _pod_changed(self, pod: Obj) -> None:
        if (pod.get("spec") or {}).get("nodeName") or object_key(pod) in self._since:
            self.queue.add(("pod", object_key(pod)))

    async def sync(self, key: Key) -> None:
        kind, name = key
        if kind == "node":
            for pod in self.pod_informer.by_index(POD_NODE_INDEX, name):
                self.queue.add(("pod", object_key(pod)))
            return
        await self._sync_pod(name)

    async def _sync_pod(self, key: str) -> None:
        pod = self.pod_informer.get(key)
        if pod is None or (pod.get("metadata") or {}).get("deletionTimestamp"):
            self._since.pop(key, None)  # gone, or going: nothing left to do
            return
        node_name = (pod.get("spec") or {}).get("nodeName")
        taints = _taints_of(self.node_informer.get(node_name)) if node_name else []
        if not taints:
            self._cancel(pod, key)
            return
        seconds = toleration_deadline(taints, (pod.get("spec") or {}).get("tolerations") or [])
        if seconds is None:
            self._cancel(pod, key)  # tolerated forever
            return
        now = self.clock()
        since = self._since.setdefault(key, now)
        due = since + seconds
        if now < due:
            self.queue.add_after(("pod", key), due - now)
            return
        await self._evict(pod, key, node_name or "")

    def _cancel(self, pod: Obj, key: str) -> None:
        if self._since.pop(key, None) is not None:
            self.recorder.event(pod, NORMAL, "TaintManagerEviction",
                                f"Cancelling deletion of Pod {key}")

    async def _evict(self, pod: Obj, key: str, node: str) -> None:
        meta = pod["metadata"]
        self.recorder.event(pod, NORMAL, "TaintManagerEviction",
                            f"Marking for deletion Pod {key}")
        status = dict(pod.get("status") or {})
        conditions = [c for c in status.get("conditions") or []
                      if c.get("type") != DISRUPTION_CONDITION["type"]]
        conditions.append(dict(DISRUPTION_CONDITION, lastTransitionTime=now_rfc3339()))
        try:
            await self.client.update_status("pods", dict(pod, status=dict(
                status, conditions=conditions)))
        except NotFoundError:
            self._since.pop(key, None)
            return
        except ConflictError:
            pass  # the condition is a courtesy; the deletion is what matters
        try:
            await self.client.delete("pods", meta["name"], namespace=meta.get("namespace"),
                                     uid=meta.get("uid") or "")
        except (NotFoundError, PreconditionFailedError):
            pass  # gone already, or the name is another pod's now
        self._since.pop(key, None)
        self.log.info("pod evicted from a NoExecute-tainted node", extra={"kv": {
            "pod": key, "node": node}})


__all__ = ["DISRUPTION_CONDITION", "TaintEvictionController"]

"""The scheduler's cache: every node, and what the pods on it have claimed.

The one idea, from Kubernetes' `pkg/scheduler/internal/cache`: *a decision
counts at once*. When the scheduler picks a node it `assume`s the pod there
before the bind call even starts, so the next pod (scheduled while that bind is
in flight) already sees the node's resources, ports and spread counts taken.
The watch later confirms the pod (`add_pod` of the bound pod replaces the
assumed copy). If the bind fails the pod is `forget`-ten; if the bind
succeeded but the watch never shows the pod within `assumed_ttl` after
`finish_binding`, the assumption expires (`cleanup_expired`), so a lost event
cannot leak capacity forever.

Pods are keyed by uid (a pod deleted and recreated under the same name is a
different pod). Only non-terminal pods belong here: the pod informer watches
`status.phase!=Succeeded,status.phase!=Failed`, so a pod that finishes is
delivered as a delete. Everything runs on the event loop; nothing here awaits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .framework import NodeInfo, PodInfo

log = logging.getLogger("kubelite.scheduler.cache")

Obj = dict[str, Any]


@dataclass
class _PodState:
    pod: PodInfo
    node: str
    assumed: bool = False
    binding_finished: bool = False
    deadline: float | None = None


def _node_name(node: Obj) -> str:
    return (node.get("metadata") or {}).get("name") or ""


class SchedulerCache:
    def __init__(self, *, assumed_ttl: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.assumed_ttl = assumed_ttl
        self._clock = clock
        self._nodes: dict[str, NodeInfo] = {}
        self._pods: dict[str, _PodState] = {}

    # -- nodes ----------------------------------------------------------------

    def add_node(self, node: Obj) -> None:
        name = _node_name(node)
        info = self._nodes.get(name)
        if info is None:
            self._nodes[name] = NodeInfo(node)
        else:
            info.set_node(node)

    update_node = add_node

    def remove_node(self, node: Obj) -> None:
        """Forgets the node; its pods stay accounted until they are deleted too."""
        name = _node_name(node)
        info = self._nodes.get(name)
        if info is None:
            return
        if info.pods:
            info.node = None
        else:
            del self._nodes[name]

    def node_infos(self) -> list[NodeInfo]:
        """The nodes plugins may consider (those whose Node object exists)."""
        return [info for info in self._nodes.values() if info.node is not None]

    def node_info(self, name: str) -> NodeInfo | None:
        return self._nodes.get(name)

    # -- pods -----------------------------------------------------------------

    def _attach(self, pod: PodInfo, node: str) -> None:
        info = self._nodes.get(node)
        if info is None:
            info = self._nodes[node] = NodeInfo()
            info.name = node
        info.add_pod(pod)

    def _detach(self, uid: str, node: str) -> None:
        info = self._nodes.get(node)
        if info is None:
            return
        info.remove_pod(uid)
        if info.node is None and not info.pods:
            del self._nodes[node]

    def assume_pod(self, pod: PodInfo, node: str) -> PodInfo:
        """Accounts pod on node now; returns the assumed copy (with spec.nodeName set)."""
        if pod.uid in self._pods:
            raise ValueError(f"pod {pod.key} ({pod.uid}) is already in the scheduler cache")
        assumed = PodInfo({**pod.pod, "spec": {**pod.spec, "nodeName": node}})
        self._attach(assumed, node)
        self._pods[pod.uid] = _PodState(assumed, node, assumed=True)
        return assumed

    def finish_binding(self, uid: str) -> None:
        """The bind call returned: the assumption now expires unless the watch confirms it."""
        state = self._pods.get(uid)
        if state is not None and state.assumed:
            state.binding_finished = True
            state.deadline = self._clock() + self.assumed_ttl

    def forget_pod(self, uid: str) -> None:
        """Undoes assume_pod (the bind failed); a confirmed pod is left alone."""
        state = self._pods.get(uid)
        if state is None or not state.assumed:
            return
        del self._pods[uid]
        self._detach(uid, state.node)

    def is_assumed(self, uid: str) -> bool:
        state = self._pods.get(uid)
        return state is not None and state.assumed

    def add_pod(self, pod: Obj) -> None:
        """An assigned pod seen by the watch: confirms an assumed pod, or adds it."""
        info = PodInfo(pod)
        node = info.node_name
        if not node:
            return
        state = self._pods.get(info.uid)
        if state is not None:
            if state.node != node:
                log.warning("pod bound to a node other than assumed", extra={"kv": {
                    "pod": info.key, "assumed": state.node, "actual": node}})
            self._detach(info.uid, state.node)
        self._attach(info, node)
        self._pods[info.uid] = _PodState(info, node)

    def update_pod(self, old: Obj, new: Obj) -> None:
        self.add_pod(new)

    def remove_pod(self, pod: Obj) -> None:
        uid = PodInfo(pod).uid
        state = self._pods.pop(uid, None)
        if state is not None:
            self._detach(uid, state.node)

    def cleanup_expired(self) -> list[PodInfo]:
        """Drops assumed pods whose bind finished more than assumed_ttl ago unconfirmed."""
        now = self._clock()
        expired = [uid for uid, state in self._pods.items()
                   if state.assumed and state.binding_finished
                   and state.deadline is not None and state.deadline <= now]
        pods = []
        for uid in expired:
            state = self._pods.pop(uid)
            self._detach(uid, state.node)
            pods.append(state.pod)
            log.warning("assumed pod expired", extra={"kv": {"pod": state.pod.key,
                                                              "node": state.node}})
        return pods

    # -- introspection --------------------------------------------------------

    @property
    def num_nodes(self) -> int:
        return sum(1 for info in self._nodes.values() if info.node is not None)

    @property
    def num_pods(self) -> int:
        return len(self._pods)

    @property
    def num_assumed(self) -> int:
        return sum(1 for state in self._pods.values() if state.assumed)


__all__ = ["SchedulerCache"]

"""The DaemonSet controller: one daemon pod on every node that should run one.

A sync (Kubernetes' `syncDaemonSet`) reads the DaemonSet, every node, its
pods and its ControllerRevisions from the shared caches:

1. A DaemonSet being deleted is left to the garbage collector (its pods and
   revisions may be going or being orphaned: no status can be trusted).
2. History (`constructHistory`): the revision whose data is the current
   template is found or created (history.py names it `<name>-<hash>`); when
   an old revision holds the current template (a rollback), it is renumbered
   to be the newest. Its hash is the `controller-revision-hash` label of the
   pods this template makes; the annotation
   `deprecated.daemonset.template.generation` (the apiserver bumps it with each
   template change) is their `pod-template-generation` label.
3. Once the expectations of earlier writes are met, `manage`: for each node,
   `node_should_run` says whether a daemon pod should be created there
   (the template's nodeSelector and required node affinity admit the node,
   and its NoSchedule and NoExecute taints are tolerated) and whether an
   existing one may stay (only untolerated NoExecute taints evict). Missing
   pods are created, surplus ones deleted; failed pods are deleted to be
   replaced, with a per-node backoff (1 s doubling to 15 min, the controller
   manager's --daemonset-backoff-base/-max) so a pod a kubelet keeps rejecting
   does not hot-loop; pods of nodes that no longer exist are deleted at once
   (with no grace: no kubelet is left to finish them, which in Kubernetes is
   the pod GC's part).
4. RollingUpdate (`rolling_update_plan`): without surge, old pods are deleted
   while fewer than maxUnavailable nodes lack an available pod; with
   maxSurge, a new pod starts beside the old one on at most maxSurge nodes,
   and the old one goes once the new one is available (ready for
   minReadySeconds). OnDelete replaces a pod only when someone deletes it.
5. Old revisions beyond revisionHistoryLimit that no pod runs are deleted.
6. The status: desired/current/misscheduled/ready/updated/available/
   unavailable counts, observedGeneration and collisionCount.

Pods are created unbound, with a required node affinity term
`matchFields: metadata.name In [NODE]` in place of the template's required
terms (which the controller has already checked), and the scheduler binds
them, as Kubernetes does since 1.12. They carry the tolerations Kubernetes
adds to daemon pods (`daemon_tolerations`), so that losing a node, disk or
memory pressure, or cordoning leaves them in place.
"""

from __future__ import annotations

import asyncio
import copy
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kubelite.client import Client
from kubelite.errors import (
    ApiError,
    ConflictError,
    NotFoundError,
    PreconditionFailedError,
    is_namespace_terminating,
)
from kubelite.events import NORMAL, WARNING, EventRecorder
from kubelite.informer import object_key, split_key
from kubelite.nodeaffinity import NODE_NAME_FIELD, required_affinity_matches
from kubelite.selectors import LabelSelector
from kubelite.taints import NO_EXECUTE, NO_SCHEDULE, tolerates

from . import history
from .base import Controller
from .controllerref import ControllerRefManager, controller_ref, selector_of
from .expectations import Expectations
from .informers import NAMESPACE_INDEX, InformerFactory
from .pods import is_available, is_ready, timestamp
from .replicaset import BURST_REPLICAS, SLOW_START_INITIAL_BATCH, pod_from_template

Obj = dict[str, Any]

TEMPLATE_GENERATION_ANNOTATION = "deprecated.daemonset.template.generation"
TEMPLATE_GENERATION_LABEL = "pod-template-generation"
REVISION_HASH_LABEL = history.CONTROLLER_REVISION_HASH_LABEL
DEFAULT_BACKOFF_BASE = 1.0
DEFAULT_BACKOFF_MAX = 900.0
FAILED_DAEMON_POD_REASON = "FailedDaemonPod"

TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"
TAINT_DISK_PRESSURE = "node.kubernetes.io/disk-pressure"
TAINT_MEMORY_PRESSURE = "node.kubernetes.io/memory-pressure"
TAINT_PID_PRESSURE = "node.kubernetes.io/pid-pressure"
TAINT_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
TAINT_NETWORK_UNAVAILABLE = "node.kubernetes.io/network-unavailable"


# -- pure logic: daemon pods and nodes ------------------------------------------------------


def _spec(obj: Obj) -> Obj:
    return obj.get("spec") or {}


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _template(ds: Obj) -> Obj:
    return _spec(ds).get("template") or {}


def daemon_tolerations(tolerations: Iterable[Mapping[str, Any]], *,
                       host_network: bool = False) -> list[Obj]:
    """The tolerations with those Kubernetes adds to every daemon pod
    (AddOrUpdateDaemonPodTolerations): lost nodes never evict it (NoExecute, no
    tolerationSeconds), and pressure or a cordon never keep it off (NoSchedule)."""
    out = [dict(t) for t in tolerations]
    wanted = [(TAINT_NOT_READY, NO_EXECUTE), (TAINT_UNREACHABLE, NO_EXECUTE),
              (TAINT_DISK_PRESSURE, NO_SCHEDULE), (TAINT_MEMORY_PRESSURE, NO_SCHEDULE),
              (TAINT_PID_PRESSURE, NO_SCHEDULE), (TAINT_UNSCHEDULABLE, NO_SCHEDULE)]
    if host_network:
        wanted.append((TAINT_NETWORK_UNAVAILABLE, NO_SCHEDULE))
    for key, effect in wanted:
        toleration = {"key": key, "operator": "Exists", "effect": effect}
        # AddOrUpdateTolerationInPodSpec: one with the same key and effect is replaced.
        out = [t for t in out if not (t.get("key") == key and t.get("effect") == effect)]
        out.append(toleration)
    return out


def _untolerated(taints: Iterable[Mapping[str, Any]], tolerations: Sequence[Mapping[str, Any]],
                 effects: tuple[str, ...]) -> bool:
    return any(t.get("effect") in effects and not any(tolerates(tol, t) for tol in tolerations)
               for t in taints)


def node_should_run(node: Obj, ds: Obj) -> tuple[bool, bool]:
    """(should run, should continue running) a daemon pod of ds on node
    (Kubernetes' NodeShouldRunDaemonPod).

    A pod should run where the template's nodeName (if any), nodeSelector and
    required node affinity admit the node and every NoSchedule and NoExecute
    taint is tolerated; one already there may stay while only NoSchedule taints
    are untolerated.
    """
    spec = _spec(_template(ds))
    name = _meta(node).get("name") or ""
    if spec.get("nodeName") and spec["nodeName"] != name:
        return False, False
    if not required_affinity_matches(spec, node):
        return False, False
    tolerations = daemon_tolerations(spec.get("tolerations") or (),
                                     host_network=bool(spec.get("hostNetwork")))
    taints = _spec(node).get("taints") or ()
    if _untolerated(taints, tolerations, (NO_SCHEDULE, NO_EXECUTE)):
        return False, not _untolerated(taints, tolerations, (NO_EXECUTE,))
    return True, True


def node_affinity_for(affinity: Obj | None, node_name: str) -> Obj:
    """The affinity with its required node terms replaced by `metadata.name In [node]`
    (ReplaceDaemonSetPodNodeNameNodeAffinity); preferred terms and pod (anti-)affinity stay."""
    out = copy.deepcopy(affinity) if isinstance(affinity, dict) else {}
    node_affinity = out.setdefault("nodeAffinity", {})
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [
        {"matchFields": [{"key": NODE_NAME_FIELD, "operator": "In", "values": [node_name]}]}]}
    return out


def target_node_name(pod: Obj) -> str | None:
    """The node a daemon pod is for: its nodeName once bound, else its one matchFields term
    (Kubernetes' GetTargetNodeName); None for a pod that names no single node."""
    spec = _spec(pod)
    if spec.get("nodeName"):
        return str(spec["nodeName"])
    required = (((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = required.get("nodeSelectorTerms") or []
    if len(terms) != 1:
        return None
    fields = (terms[0] or {}).get("matchFields") or []
    if len(fields) != 1:
        return None
    req = fields[0] or {}
    values = req.get("values") or []
    if req.get("key") != NODE_NAME_FIELD or req.get("operator") != "In" or len(values) != 1:
        return None
    return str(values[0])


def template_generation(ds: Obj) -> int | None:
    value = (_meta(ds).get("annotations") or {}).get(TEMPLATE_GENERATION_ANNOTATION)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def daemon_pod(ds: Obj, node_name: str, hash_: str, generation: int | None) -> Obj:
    """The pod ds runs on node_name (CreatePodTemplate, then the node affinity)."""
    template = copy.deepcopy(_template(ds))
    pod = pod_from_template(ds, template)
    labels = pod["metadata"]["labels"]
    if generation is not None:
        labels[TEMPLATE_GENERATION_LABEL] = str(generation)
    if hash_:
        labels[REVISION_HASH_LABEL] = hash_
    spec = pod["spec"]
    spec["tolerations"] = daemon_tolerations(spec.get("tolerations") or (),
                                             host_network=bool(spec.get("hostNetwork")))
    spec["affinity"] = node_affinity_for(spec.get("affinity"), node_name)
    return pod


def is_updated(pod: Obj, hash_: str, generation: int | None) -> bool:
    """The pod runs the current template (Kubernetes' IsPodUpdated): its hash label, or
    its template generation label, is the DaemonSet's."""
    labels = _meta(pod).get("labels") or {}
    if generation is not None and labels.get(TEMPLATE_GENERATION_LABEL) == str(generation):
        return True
    return bool(hash_) and labels.get(REVISION_HASH_LABEL) == hash_


def _creation_key(pod: Obj) -> tuple[int, float, str]:
    """podByCreationTimestampAndPhase: bound pods first, then the oldest, then by name."""
    created = timestamp(_meta(pod).get("creationTimestamp"))
    return (0 if _spec(pod).get("nodeName") else 1, created if created is not None else 0.0,
            _meta(pod).get("name") or "")


def oldest_first(pods: Iterable[Obj]) -> list[Obj]:
    return sorted(pods, key=_creation_key)


def _phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def _deleting(obj: Obj) -> bool:
    return bool(_meta(obj).get("deletionTimestamp"))


def scaled_value(value: Any, total: int) -> int:
    """An IntOrString count or percentage of total, a percentage rounded up
    (GetScaledValueFromIntOrPercent with roundUp)."""
    if isinstance(value, bool) or value is None:
        return 0
    if isinstance(value, int):
        return max(0, value)
    text = str(value).strip()
    if text.endswith("%") and text[:-1].isdigit():
        return math.ceil(int(text[:-1]) * total / 100)
    if text.isdigit():
        return int(text)
    return 0


def surge_and_unavailable(ds: Obj, desired: int) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) in pods for `desired` scheduled daemon pods; a DaemonSet
    allowing neither gets one unavailable, as Kubernetes' updatedDesiredNodeCounts does."""
    rolling = (_spec(ds).get("updateStrategy") or {}).get("rollingUpdate") or {}
    surge = scaled_value(rolling.get("maxSurge"), desired)
    unavailable = scaled_value(rolling.get("maxUnavailable"), desired)
    if desired > 0 and surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def allows_surge(ds: Obj) -> bool:
    strategy = _spec(ds).get("updateStrategy") or {}
    if (strategy.get("type") or "RollingUpdate") != "RollingUpdate":
        return False
    return scaled_value((strategy.get("rollingUpdate") or {}).get("maxSurge"), 1) > 0


def find_updated_pods_on_node(pods: Iterable[Obj], hash_: str, generation: int | None
                              ) -> tuple[Obj | None, Obj | None, bool]:
    """(new pod, old pod, ok) among a node's pods not being deleted; not ok when there
    are two new or two old ones (the manage loop cleans those up first)."""
    new = old = None
    for pod in pods:
        if _deleting(pod):
            continue
        if is_updated(pod, hash_, generation):
            if new is not None:
                return None, None, False
            new = pod
        else:
            if old is not None:
                return None, None, False
            old = pod
    return new, old, True


# -- pure logic: what a sync does on each node ----------------------------------------------


@dataclass
class NodePlan:
    """What manage decided for one node."""

    create: bool = False
    delete: list[Obj] = field(default_factory=list)
    failed: list[Obj] = field(default_factory=list)  # failed pods among `delete`
    backoff: float | None = None  # seconds until a failed pod here may be deleted


def pods_should_be_on_node(node: Obj, pods: Sequence[Obj], ds: Obj, hash_: str,
                           generation: int | None, now: float,
                           in_backoff: Callable[[str], float | None]) -> NodePlan:
    """Kubernetes' podsShouldBeOnNode: whether to create a pod on node and which of its
    daemon pods to delete. `in_backoff(node_name)` gives the seconds left before a
    failed pod on that node may be deleted again, or None."""
    should_run, should_continue = node_should_run(node, ds)
    plan = NodePlan()
    if should_run and not pods:
        plan.create = True
        return plan
    if should_continue:
        running: list[Obj] = []
        for pod in pods:
            if _deleting(pod):
                continue
            phase = _phase(pod)
            if phase == "Failed":
                wait = in_backoff(_meta(node).get("name") or "")
                if wait is not None:
                    plan.backoff = wait if plan.backoff is None else min(plan.backoff, wait)
                    continue
                plan.delete.append(pod)
                plan.failed.append(pod)
            elif phase == "Succeeded":
                plan.delete.append(pod)
            else:
                running.append(pod)
        running = oldest_first(running)
        if not allows_surge(ds):
            plan.delete.extend(running[1:])  # one pod per node: the oldest stays
            return plan
        if len(running) <= 1:
            if not running and should_run:
                plan.create = True  # surging needs at least one pod not being deleted
            return plan
        # With surge, an old and a new pod may share a node while the new one comes up.
        oldest_new = oldest_old = None
        for pod in running:
            if is_updated(pod, hash_, generation):
                if oldest_new is None:
                    oldest_new = pod
                    continue
            elif oldest_old is None:
                oldest_old = pod
                continue
            plan.delete.append(pod)
        if oldest_new is not None and oldest_old is not None:
            min_ready = int(_spec(ds).get("minReadySeconds") or 0)
            if not is_ready(oldest_old) or is_available(oldest_new, min_ready, now):
                plan.delete.append(oldest_old)
        return plan
    if pods:
        plan.delete.extend(p for p in pods if not _deleting(p))
    return plan


def rolling_update_plan(ds: Obj, nodes: Mapping[str, Obj], node_to_pods: Mapping[str, list[Obj]],
                        hash_: str, generation: int | None, now: float
                        ) -> tuple[list[Obj], list[str]]:
    """(old pods to delete, nodes to create a new pod on) for one RollingUpdate step
    (Kubernetes' rollingUpdate), from the nodes and the daemon pods per node."""
    pods_by_node: dict[str, list[Obj]] = {k: list(v) for k, v in node_to_pods.items()}
    desired = 0
    for name, node in nodes.items():
        if node_should_run(node, ds)[0]:
            desired += 1
            pods_by_node.setdefault(name, [])
    max_surge, max_unavailable = surge_and_unavailable(ds, desired)
    min_ready = int(_spec(ds).get("minReadySeconds") or 0)

    def available(pod: Obj) -> bool:
        return is_available(pod, min_ready, now)

    if max_surge == 0:
        unavailable = 0
        replacements: list[Obj] = []
        candidates: list[Obj] = []
        for name in sorted(pods_by_node):
            new, old, ok = find_updated_pods_on_node(pods_by_node[name], hash_, generation)
            if not ok:
                unavailable += 1  # the manage loop cleans this node up first
                continue
            if (old is None) == (new is None):
                unavailable += 1  # nothing yet, or both: manage creates or deletes
            elif new is not None:
                if not available(new):
                    unavailable += 1
            elif old is not None:
                if not available(old):
                    replacements.append(old)  # not serving anyway: replace it now
                    unavailable += 1
                elif unavailable < max_unavailable:
                    candidates.append(old)
        room = max(0, min(max_unavailable - unavailable, len(candidates)))
        return replacements + candidates[:room], []

    to_delete: list[Obj] = []
    should_not_run: list[Obj] = []
    candidate_nodes: list[str] = []
    allowed_nodes: list[str] = []
    surging = 0
    available_count = 0
    for name in sorted(pods_by_node):
        new, old, ok = find_updated_pods_on_node(pods_by_node[name], hash_, generation)
        if not ok:
            surging += 1
            continue
        if old is not None:
            available_count += available(old)
        elif new is not None:
            available_count += available(new)
        if old is None:
            continue  # the manage loop takes care of this node
        node = nodes.get(name)
        should_run = node is not None and node_should_run(node, ds)[0]
        if new is None:
            if not available(old):
                if not should_run:
                    to_delete.append(old)
                    continue
                allowed_nodes.append(name)
            else:
                if not should_run:
                    should_not_run.append(old)
                    continue
                if surging >= max_surge:
                    continue
                candidate_nodes.append(name)
        else:
            if not available(new):
                surging += 1  # waiting for the new pod to become available
                continue
            to_delete.append(old)
    # Pods of nodes that should no longer run one go only while enough others serve.
    deletable = min(available_count - desired, len(should_not_run))
    if deletable > 0:
        to_delete.extend(p for p in should_not_run[:deletable] if not _deleting(p))
    room = max(0, min(max_surge - surging, len(candidate_nodes)))
    return to_delete, allowed_nodes + candidate_nodes[:room]


def calculate_status(ds: Obj, nodes: Iterable[Obj], node_to_pods: Mapping[str, list[Obj]],
                     hash_: str, generation: int | None, now: float) -> Obj:
    """The counts of a DaemonSet's status (Kubernetes' updateDaemonSetStatus)."""
    desired = current = misscheduled = ready = updated = available = 0
    min_ready = int(_spec(ds).get("minReadySeconds") or 0)
    for node in nodes:
        should_run, _ = node_should_run(node, ds)
        pods = node_to_pods.get(_meta(node).get("name") or "") or []
        if not should_run:
            misscheduled += 1 if pods else 0
            continue
        desired += 1
        if not pods:
            continue
        current += 1
        pod = oldest_first(pods)[0]
        if is_ready(pod):
            ready += 1
            if is_available(pod, min_ready, now):
                available += 1
        if is_updated(pod, hash_, generation):
            updated += 1
    return {"desiredNumberScheduled": desired, "currentNumberScheduled": current,
            "numberMisscheduled": misscheduled, "numberReady": ready,
            "updatedNumberScheduled": updated, "numberAvailable": available,
            "numberUnavailable": desired - available}


class FailedPodBackoff:
    """Per-key exponential backoff (client-go's flowcontrol.Backoff, as the DaemonSet
    controller's failedPodsBackoff uses it): the first failure waits `base`, each one
    after doubles it up to `cap`, and a key quiet for twice the cap starts over."""

    def __init__(self, base: float = DEFAULT_BACKOFF_BASE, cap: float = DEFAULT_BACKOFF_MAX,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.base = base
        self.cap = cap
        self.clock = clock
        self._entries: dict[str, tuple[float, float]] = {}  # key -> (delay, last update)

    def remaining(self, key: str) -> float | None:
        """Seconds left in key's backoff since its last update, or None if not backing off."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        delay, last = entry
        left = last + delay - self.clock()
        return left if left > 0 else None

    def next(self, key: str) -> float:
        now = self.clock()
        entry = self._entries.get(key)
        if entry is None or now - entry[1] > 2 * self.cap:
            delay = self.base
        else:
            delay = min(entry[0] * 2, self.cap)
        self._entries[key] = (delay, now)
        return delay

    def gc(self) -> None:
        now = self.clock()
        for key in [k for k, (_, last) in self._entries.items() if now - last > 2 * self.cap]:
            del self._entries[key]


# -- the controller -----------------------------------------------------------------------


def _node_view(node: Obj) -> tuple:
    """What of a node decides where daemon pods run: labels, spec, condition states."""
    conditions = sorted((c.get("type") or "", c.get("status") or "")
                        for c in (node.get("status") or {}).get("conditions") or ())
    return (_meta(node).get("labels") or {}, _spec(node), conditions)


class DaemonSetController(Controller[str]):
    name = "daemonset"
    resource = "daemonsets"
    kind = "DaemonSet"
    component = "daemonset-controller"

    def __init__(self, client: Client, factory: InformerFactory, *,
                 recorder: EventRecorder | None = None, burst_replicas: int = BURST_REPLICAS,
                 expectations: Expectations | None = None,
                 backoff_base: float = DEFAULT_BACKOFF_BASE,
                 backoff_max: float = DEFAULT_BACKOFF_MAX,
                 clock: Callable[[], float] = time.time) -> None:
        self.ds_informer = factory.informer("daemonsets")
        self.pod_informer = factory.informer("pods")
        self.node_informer = factory.informer("nodes")
        self.history_informer = factory.informer("controllerrevisions")
        super().__init__(informers=[self.ds_informer, self.pod_informer, self.node_informer,
                                    self.history_informer])
        self.client = client
        self.recorder = recorder or EventRecorder(client, component=self.component)
        self.burst_replicas = burst_replicas
        self.expectations = expectations or Expectations()
        self.backoff = FailedPodBackoff(backoff_base, backoff_max)
        self.clock = clock
        self.ds_informer.add_handler(on_add=self.enqueue, on_update=self._update_ds,
                                     on_delete=self._delete_ds)
        self.pod_informer.add_handler(on_add=self._add_pod, on_update=self._update_pod,
                                      on_delete=self._delete_pod)
        self.node_informer.add_handler(on_add=self._node_changed, on_update=self._update_node,
                                       on_delete=self._node_changed)
        self.history_informer.add_handler(on_add=self._history_changed,
                                          on_update=lambda old, cur: self._history_changed(cur),
                                          on_delete=self._history_changed)

    # -- handlers: they only file keys (and count expectations down) -----------------

    def _update_ds(self, old: Obj, cur: Obj) -> None:
        if _meta(old).get("uid") != _meta(cur).get("uid"):
            self._delete_ds(old)
        self.enqueue(cur)

    def _delete_ds(self, ds: Obj) -> None:
        key = object_key(ds)
        self.expectations.delete(key)
        self.queue.add(key)

    def _resolve(self, namespace: str, ref: Obj | None) -> Obj | None:
        if ref is None or ref.get("kind") != self.kind:
            return None
        ds = self.ds_informer.get(f"{namespace}/{ref.get('name')}")
        if ds is None or _meta(ds).get("uid") != ref.get("uid"):
            return None
        return ds

    def _selecting(self, obj: Obj) -> list[Obj]:
        meta = _meta(obj)
        if not meta.get("labels"):
            return []
        found = []
        for ds in self.ds_informer.by_index(NAMESPACE_INDEX, meta.get("namespace") or ""):
            try:
                selector = selector_of(ds)
            except ApiError:
                continue
            if not selector.selects_everything and selector.matches_object(obj):
                found.append(ds)
        return found

    def _add_pod(self, pod: Obj) -> None:
        if _deleting(pod):
            self._delete_pod(pod)
            return
        ref = controller_ref(pod)
        ds = self._resolve(_meta(pod).get("namespace") or "", ref)
        if ds is not None:
            key = object_key(ds)
            self.expectations.creation_observed(key)
            self.queue.add(key)
        elif ref is None:
            for ds in self._selecting(pod):
                self.enqueue(ds)

    def _update_pod(self, old: Obj, cur: Obj) -> None:
        if _meta(old).get("resourceVersion") == _meta(cur).get("resourceVersion"):
            return
        if _deleting(cur):
            self._delete_pod(cur)
            return
        namespace = _meta(cur).get("namespace") or ""
        old_ref, cur_ref = controller_ref(old), controller_ref(cur)
        if (old_ref or {}).get("uid") != (cur_ref or {}).get("uid") and old_ref is not None:
            ds = self._resolve(namespace, old_ref)
            if ds is not None:
                self.enqueue(ds)
        if cur_ref is not None:
            ds = self._resolve(namespace, cur_ref)
            if ds is not None:
                self.enqueue(ds)
                min_ready = int(_spec(ds).get("minReadySeconds") or 0)
                if min_ready > 0 and not is_ready(old) and is_ready(cur):
                    self.enqueue_after(ds, min_ready + 1.0)
            return
        if _meta(old).get("labels") != _meta(cur).get("labels") or old_ref is not None:
            for ds in self._selecting(cur):
                self.enqueue(ds)

    def _delete_pod(self, pod: Obj) -> None:
        ds = self._resolve(_meta(pod).get("namespace") or "", controller_ref(pod))
        if ds is None:
            return
        key = object_key(ds)
        self.expectations.deletion_observed(key, object_key(pod))
        self.queue.add(key)

    def _node_changed(self, node: Obj) -> None:
        for ds in self.ds_informer.list():
            self.enqueue(ds)

    def _update_node(self, old: Obj, cur: Obj) -> None:
        if _node_view(old) != _node_view(cur):
            self._node_changed(cur)

    def _history_changed(self, revision: Obj) -> None:
        ref = controller_ref(revision)
        ds = self._resolve(_meta(revision).get("namespace") or "", ref)
        if ds is not None:
            self.enqueue(ds)
        elif ref is None:
            for ds in self._selecting(revision):
                self.enqueue(ds)

    # -- sync ------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        ds = self.ds_informer.get(key)
        if ds is None:
            self.expectations.delete(key)
            return
        if _deleting(ds):
            return  # the garbage collector deletes or orphans its pods and revisions
        try:
            selector = selector_of(ds)
        except ApiError as err:
            self.log.warning("invalid selector", extra={"kv": {"key": key, "error": str(err)}})
            return
        if selector.selects_everything:
            self.recorder.event(ds, WARNING, "SelectingAll",
                                "This daemon set is selecting all pods. A non-empty selector "
                                "is required.")
            return
        namespace, _ = split_key(key)
        nodes = {(_meta(n).get("name") or ""): n for n in self.node_informer.list()}
        status = copy.deepcopy(ds.get("status") or {})
        current, old_revisions, collisions = await self._construct_history(ds, selector)
        if collisions != int(status.get("collisionCount") or 0):
            status["collisionCount"] = collisions
        hash_ = (_meta(current).get("labels") or {}).get(REVISION_HASH_LABEL, "")
        generation = template_generation(ds)
        pods = await self._claim_pods(ds, selector, namespace)
        satisfied = self.expectations.satisfied(key)
        requeue: float | None = None
        manage_error: Exception | None = None
        if satisfied:
            try:
                requeue = await self._manage(key, ds, nodes, pods, hash_, generation)
                strategy = (_spec(ds).get("updateStrategy") or {}).get("type") or "RollingUpdate"
                if strategy == "RollingUpdate" and self.expectations.satisfied(key):
                    # Only when manage wrote nothing: the claimed pods are still current.
                    delete, create = rolling_update_plan(ds, nodes, self._node_to_pods(pods),
                                                         hash_, generation, self.clock())
                    await self._sync_nodes(key, ds, delete, create, hash_, generation)
                await self._cleanup_history(ds, old_revisions, pods)
            except ApiError as err:
                manage_error = err
        await self._write_status(key, ds, nodes, hash_, generation, status,
                                 observed=satisfied and manage_error is None)
        if manage_error is not None:
            raise manage_error
        if requeue is not None:
            self.queue.add_after(key, max(0.05, requeue))

    async def _claim_pods(self, ds: Obj, selector: LabelSelector, namespace: str) -> list[Obj]:
        refs = ControllerRefManager(self.client, owner=ds, owner_resource=self.resource,
                                    selector=selector, resource="pods")
        return await refs.claim(self.pod_informer.by_index(NAMESPACE_INDEX, namespace))

    def _claimed_now(self, ds: Obj) -> list[Obj]:
        """The cached pods ds controls now (some of manage's writes may show already)."""
        uid = _meta(ds).get("uid")
        return [p for p in self.pod_informer.by_index(NAMESPACE_INDEX,
                                                      _meta(ds).get("namespace") or "")
                if (controller_ref(p) or {}).get("uid") == uid]

    @staticmethod
    def _node_to_pods(pods: Iterable[Obj], include_finished_deleting: bool = False
                      ) -> dict[str, list[Obj]]:
        """Daemon pods by the node they are for (getNodesToDaemonPods); terminated pods that
        are being deleted are done with, unless asked for."""
        out: dict[str, list[Obj]] = {}
        for pod in pods:
            if (not include_finished_deleting and _deleting(pod)
                    and _phase(pod) in ("Succeeded", "Failed")):
                continue
            node = target_node_name(pod)
            if node is not None:
                out.setdefault(node, []).append(pod)
        return out

    async def _manage(self, key: str, ds: Obj, nodes: Mapping[str, Obj], pods: list[Obj],
                      hash_: str, generation: int | None) -> float | None:
        """Creates and deletes daemon pods node by node; returns a requeue delay or None."""
        node_to_pods = self._node_to_pods(pods)
        uid = _meta(ds).get("uid") or ""
        now = self.clock()
        create: list[str] = []
        delete: list[Obj] = []
        requeue: float | None = None
        for name, node in nodes.items():
            plan = pods_should_be_on_node(
                node, node_to_pods.get(name, []), ds, hash_, generation, now,
                lambda node_name: self.backoff.remaining(f"{uid}/{node_name}"))
            if plan.create:
                create.append(name)
            for pod in plan.failed:
                self.backoff.next(f"{uid}/{name}")
                meta = _meta(pod)
                self.recorder.event(ds, WARNING, FAILED_DAEMON_POD_REASON,
                                    f"Found failed daemon pod {meta.get('namespace')}/"
                                    f"{meta.get('name')} on node {name}, will try to kill it")
            delete.extend(plan.delete)
            if plan.backoff is not None:
                requeue = plan.backoff if requeue is None else min(requeue, plan.backoff)
        # Pods for nodes that are gone: nothing will ever run or finish them.
        gone = [p for name, ps in self._node_to_pods(pods, True).items() if name not in nodes
                for p in ps]
        await self._sync_nodes(key, ds, delete, create, hash_, generation, force=gone)
        self.backoff.gc()
        return requeue

    async def _sync_nodes(self, key: str, ds: Obj, delete: list[Obj], create: list[str],
                          hash_: str, generation: int | None, force: Sequence[Obj] = ()
                          ) -> None:
        """Creates a pod on each node of `create` and deletes `delete` (syncNodes); the pods
        of `force` are deleted with no grace period."""
        seen: set[str] = set()
        deletions: list[tuple[Obj, int | None]] = []
        for pod, grace in [*((p, 0) for p in force), *((p, None) for p in delete)]:
            uid = _meta(pod).get("uid") or object_key(pod)
            if uid in seen or (grace is None and _deleting(pod)):
                continue
            seen.add(uid)
            deletions.append((pod, grace))
        create = create[:self.burst_replicas]
        deletions = deletions[:self.burst_replicas]
        if not create and not deletions:
            return
        self.expectations.expect(key, len(create), [object_key(p) for p, _ in deletions])
        self.log.info("syncing nodes", extra={"kv": {"key": key, "create": len(create),
                                                      "delete": len(deletions)}})
        first_error: Exception | None = None
        # Creations in slow-start batches (1, 2, 4, ...), as Kubernetes' syncNodes.
        pending = list(create)
        batch = min(len(pending), SLOW_START_INITIAL_BATCH)
        while pending and batch > 0:
            now, pending = pending[:batch], pending[batch:]
            results = await asyncio.gather(
                *(self._create_pod(ds, node, hash_, generation) for node in now),
                return_exceptions=True)
            errors = [r for r in results if isinstance(r, BaseException)]
            for err in errors:
                if not isinstance(err, Exception):
                    raise err
                self.expectations.creation_observed(key)
                if not isinstance(err, _Skipped):
                    first_error = first_error or err
            if errors:
                for _ in pending:  # never created, never observed
                    self.expectations.creation_observed(key)
                break
            batch = min(2 * batch, len(pending))
        results = await asyncio.gather(*(self._delete_daemon_pod(key, ds, pod, grace)
                                         for pod, grace in deletions), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                first_error = first_error or result
        if first_error is not None:
            raise first_error

    async def _create_pod(self, ds: Obj, node: str, hash_: str, generation: int | None) -> None:
        try:
            pod = await self.client.create("pods", daemon_pod(ds, node, hash_, generation))
        except PreconditionFailedError as err:
            if is_namespace_terminating(err):
                raise _Skipped() from None
            self.recorder.event(ds, WARNING, "FailedCreate", f"Error creating: {err}")
            raise
        except ApiError as err:
            self.recorder.event(ds, WARNING, "FailedCreate", f"Error creating: {err}")
            raise
        self.recorder.event(ds, NORMAL, "SuccessfulCreate",
                            f"Created pod: {pod['metadata']['name']}")

    async def _delete_daemon_pod(self, key: str, ds: Obj, pod: Obj, grace: int | None
                                 ) -> None:
        meta = _meta(pod)
        try:
            await self.client.delete("pods", meta["name"], namespace=meta.get("namespace"),
                                     uid=meta.get("uid", ""), grace_period_seconds=grace)
        except (NotFoundError, PreconditionFailedError):
            self.expectations.deletion_observed(key, object_key(pod))
            return
        except ApiError as err:
            self.expectations.deletion_observed(key, object_key(pod))
            self.recorder.event(ds, WARNING, "FailedDelete", f"Error deleting: {err}")
            raise
        self.recorder.event(ds, NORMAL, "SuccessfulDelete", f"Deleted pod: {meta['name']}")

    # -- history -------------------------------------------------------------------------

    async def _construct_history(self, ds: Obj, selector: LabelSelector
                                 ) -> tuple[Obj, list[Obj], int]:
        """(the current revision, the old ones, the collision count) (constructHistory)."""
        meta = _meta(ds)
        namespace = meta.get("namespace") or ""
        refs = ControllerRefManager(self.client, owner=ds, owner_resource=self.resource,
                                    selector=selector, resource="controllerrevisions")
        revisions = await refs.claim(self.history_informer.by_index(NAMESPACE_INDEX, namespace))
        data = history.revision_data(_template(ds))
        current = [r for r in revisions if (r.get("data") or {}) == data]
        old = [r for r in revisions if (r.get("data") or {}) != data]
        number = history.next_revision(old)
        collisions = int((ds.get("status") or {}).get("collisionCount") or 0)
        if not current:
            labels = dict((_template(ds).get("metadata") or {}).get("labels") or {})
            revision = history.new_revision(ds, data, number, labels,
                                            collisions if collisions else None)
            if meta.get("annotations"):
                revision["metadata"]["annotations"] = dict(meta["annotations"])
            stored, collisions = await history.create_revision(self.client, revision,
                                                               collisions)
            return stored, old, collisions
        keep = history.sort_revisions(current)[-1]
        for dup in current:
            if dup is not keep:
                await self._dedup(ds, dup, keep)
        if int(keep.get("revision") or 0) < number:
            keep = await history.update_revision_number(self.client, keep, number)
        return keep, old, collisions

    async def _dedup(self, ds: Obj, dup: Obj, keep: Obj) -> None:
        """Moves the pods of a duplicate current revision to the one kept, then deletes it."""
        dup_hash = (_meta(dup).get("labels") or {}).get(REVISION_HASH_LABEL)
        keep_hash = (_meta(keep).get("labels") or {}).get(REVISION_HASH_LABEL)
        for pod in self._claimed_now(ds):
            if dup_hash and (_meta(pod).get("labels") or {}).get(REVISION_HASH_LABEL) == dup_hash:
                try:
                    await self.client.patch("pods", _meta(pod)["name"], {"metadata": {
                        "labels": {REVISION_HASH_LABEL: keep_hash}}},
                        namespace=_meta(pod).get("namespace"))
                except NotFoundError:
                    pass
        try:
            await self.client.delete("controllerrevisions", _meta(dup)["name"],
                                     namespace=_meta(dup).get("namespace"),
                                     uid=_meta(dup).get("uid", ""))
        except (NotFoundError, PreconditionFailedError):
            pass

    async def _cleanup_history(self, ds: Obj, old: list[Obj], pods: list[Obj]) -> None:
        """Deletes the oldest old revisions beyond revisionHistoryLimit, never one a pod
        (even a finished one) still runs (cleanupHistory)."""
        limit = int(_spec(ds).get("revisionHistoryLimit")
                    if _spec(ds).get("revisionHistoryLimit") is not None else 10)
        to_kill = len(old) - limit
        if to_kill <= 0:
            return
        live = {h for p in pods
                if (h := (_meta(p).get("labels") or {}).get(REVISION_HASH_LABEL))}
        for revision in history.sort_revisions(old):
            if to_kill <= 0:
                break
            if (_meta(revision).get("labels") or {}).get(REVISION_HASH_LABEL) in live:
                continue
            try:
                await self.client.delete("controllerrevisions", _meta(revision)["name"],
                                         namespace=_meta(revision).get("namespace"),
                                         uid=_meta(revision).get("uid", ""))
            except (NotFoundError, PreconditionFailedError):
                pass
            to_kill -= 1

    # -- status --------------------------------------------------------------------------

    async def _write_status(self, key: str, ds: Obj, nodes: Mapping[str, Obj], hash_: str,
                            generation: int | None, status: Obj, *, observed: bool) -> None:
        now = self.clock()
        node_to_pods = self._node_to_pods(self._claimed_now(ds))
        counts = calculate_status(ds, nodes.values(), node_to_pods, hash_, generation, now)
        status.update(counts)
        if observed:
            status["observedGeneration"] = int(_meta(ds).get("generation") or 0)
        await self._update_status(ds, status)
        min_ready = int(_spec(ds).get("minReadySeconds") or 0)
        if min_ready > 0 and counts["numberReady"] != counts["numberAvailable"]:
            self.queue.add_after(key, float(min_ready))

    async def _update_status(self, ds: Obj, status: Obj) -> None:
        if (ds.get("status") or {}) == status:
            return
        current = ds
        for attempt in range(2):
            try:
                await self.client.update_status(self.resource, {**current, "status": status})
                return
            except ConflictError:
                if attempt:
                    raise
                meta = _meta(ds)
                current = await self.client.get(self.resource, meta["name"],
                                                namespace=meta.get("namespace"))
                if _meta(current).get("uid") != meta.get("uid"):
                    raise NotFoundError("DaemonSet was replaced") from None


class _Skipped(Exception):
    """A create that is not an error and will never be observed (a terminating namespace)."""


__all__ = [
    "DaemonSetController", "FailedPodBackoff", "NodePlan", "calculate_status",
    "daemon_pod", "daemon_tolerations", "find_updated_pods_on_node", "is_updated",
    "node_affinity_for", "node_should_run", "pods_should_be_on_node", "rolling_update_plan",
    "scaled_value", "surge_and_unavailable", "target_node_name", "template_generation",
]

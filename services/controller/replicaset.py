"""The ReplicaSet controller: keep `spec.replicas` pods matching the selector.

A sync (Kubernetes' `syncReplicaSet`) reads the ReplicaSet and the pods of its
namespace from the caches, claims the active pods its selector matches (adopt
orphans, release pods whose labels stopped matching), and, when its
expectations say the cache has caught up with its own earlier writes, creates
or deletes the difference:

- creations go in slow-start batches (1, 2, 4, ...), so a template the API
  rejects costs one failed call, not a hundred; at most `burst_replicas` per
  sync;
- deletions take the cheapest pods first (pods.pods_to_delete).

Then it writes the status it observed. Pods being deleted and terminated pods
(Succeeded, Failed) are not counted: a replacement is created at once.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Awaitable, Callable, Iterator
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
from kubelite.objects import now_rfc3339
from kubelite.selectors import LabelSelector, selector_from_label_selector_spec

from .base import Controller
from .controllerref import (
    ControllerRefManager,
    controller_ref,
    controller_ref_for,
    selector_of,
)
from .expectations import Expectations
from .informers import NAMESPACE_INDEX, InformerFactory
from .pods import is_active, is_available, is_ready, pods_to_delete

Obj = dict[str, Any]

BURST_REPLICAS = 500
SLOW_START_INITIAL_BATCH = 1


# -- pure logic ---------------------------------------------------------------


def slow_start_batch_sizes(count: int, initial: int = SLOW_START_INITIAL_BATCH) -> Iterator[int]:
    """The batch sizes of Kubernetes' slowStartBatch: initial, doubling, capped by what is left."""
    remaining = count
    batch = min(remaining, initial)
    while batch > 0:
        yield batch
        remaining -= batch
        batch = min(2 * batch, remaining)


async def slow_start_batch(count: int, initial: int,
                           fn: Callable[[], Awaitable[Any]]) -> tuple[int, Exception | None]:
    """Calls fn count times in growing parallel batches, stopping after a batch with a failure.

    Returns (successes, the first error or None); calls never started are
    neither successes nor errors.
    """
    successes = 0
    for size in slow_start_batch_sizes(count, initial):
        results = await asyncio.gather(*(fn() for _ in range(size)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        for err in errors:
            if not isinstance(err, Exception):
                raise err  # cancellation and the like
        successes += size - len(errors)
        if errors:
            return successes, errors[0]  # type: ignore[return-value]
    return successes, None


def pod_from_template(owner: Obj, template: Obj) -> Obj:
    """The pod a workload creates (Kubernetes' GetPodFromTemplate)."""
    meta = owner.get("metadata") or {}
    tmeta = template.get("metadata") or {}
    pod_meta: Obj = {
        "generateName": f"{meta.get('name', '')}-",
        "namespace": meta.get("namespace") or "default",
        "labels": dict(tmeta.get("labels") or {}),
        "ownerReferences": [controller_ref_for(owner)],
    }
    if tmeta.get("annotations"):
        pod_meta["annotations"] = dict(tmeta["annotations"])
    if tmeta.get("finalizers"):
        pod_meta["finalizers"] = list(tmeta["finalizers"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta,
            "spec": copy.deepcopy(template.get("spec") or {})}


def calculate_status(rs: Obj, pods: list[Obj], manage_error: Exception | None,
                     diff: int = 0, now: float | None = None) -> Obj:
    """The status a ReplicaSet's claimed active pods add up to (Kubernetes' calculateStatus)."""
    spec = rs.get("spec") or {}
    template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    now = time.time() if now is None else now
    fully_labeled = ready = available = 0
    for pod in pods:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        if all(labels.get(k) == v for k, v in template_labels.items()):
            fully_labeled += 1
        if is_ready(pod):
            ready += 1
            if is_available(pod, min_ready, now):
                available += 1
    status = copy.deepcopy(rs.get("status") or {})
    status.update({
        "replicas": len(pods),
        "fullyLabeledReplicas": fully_labeled,
        "readyReplicas": ready,
        "availableReplicas": available,
        "observedGeneration": int((rs.get("metadata") or {}).get("generation") or 0),
    })
    conditions = [c for c in status.get("conditions") or () if c.get("type") != "ReplicaFailure"]
    failure = next((c for c in status.get("conditions") or ()
                    if c.get("type") == "ReplicaFailure"), None)
    if manage_error is not None:
        if failure is None:
            failure = {"type": "ReplicaFailure", "status": "True",
                       "reason": "FailedCreate" if diff < 0 else "FailedDelete",
                       "message": str(manage_error)[:1024],
                       "lastTransitionTime": now_rfc3339()}
        conditions.append(failure)
    if conditions:
        status["conditions"] = conditions
    else:
        status.pop("conditions", None)
    return status


# -- the controller -----------------------------------------------------------


class ReplicaSetController(Controller[str]):
    name = "replicaset"
    #: What this controller keeps replicas of; the ReplicationController controller
    #: is this one over another resource with an equality-based selector.
    resource = "replicasets"
    kind = "ReplicaSet"
    component = "replicaset-controller"

    def selector_for(self, rs: Obj) -> LabelSelector:
        """The parsed selector of an owner (a LabelSelector in spec.selector)."""
        return selector_of(rs)

    def __init__(self, client: Client, factory: InformerFactory, *,
                 recorder: EventRecorder | None = None, burst_replicas: int = BURST_REPLICAS,
                 expectations: Expectations | None = None) -> None:
        self.rs_informer = factory.informer(self.resource)
        self.pod_informer = factory.informer("pods")
        super().__init__(informers=[self.rs_informer, self.pod_informer])
        self.client = client
        self.recorder = recorder or EventRecorder(client, component=self.component)
        self.burst_replicas = burst_replicas
        self.expectations = expectations or Expectations()
        self.rs_informer.add_handler(on_add=self._add_rs, on_update=self._update_rs,
                                     on_delete=self._delete_rs)
        self.pod_informer.add_handler(on_add=self._add_pod, on_update=self._update_pod,
                                      on_delete=self._delete_pod)

    # -- handlers: they only file keys (and count expectations down) ---------

    def _add_rs(self, rs: Obj) -> None:
        self.enqueue(rs)

    def _update_rs(self, old: Obj, cur: Obj) -> None:
        if old["metadata"].get("uid") != cur["metadata"].get("uid"):
            self._delete_rs(old)  # deleted and recreated under the same name
        self.enqueue(cur)

    def _delete_rs(self, rs: Obj) -> None:
        key = object_key(rs)
        self.expectations.delete(key)
        self.queue.add(key)

    def _resolve(self, namespace: str, ref: Obj | None) -> Obj | None:
        """The cached ReplicaSet a controller reference names, if it is one of ours."""
        if ref is None or ref.get("kind") != self.kind:
            return None
        rs = self.rs_informer.get(f"{namespace}/{ref.get('name')}")
        if rs is None or rs["metadata"].get("uid") != ref.get("uid"):
            return None
        return rs

    def _replica_sets_selecting(self, pod: Obj) -> list[Obj]:
        meta = pod.get("metadata") or {}
        if not meta.get("labels"):
            return []
        found = []
        for rs in self.rs_informer.by_index(NAMESPACE_INDEX, meta.get("namespace") or ""):
            try:
                selector = self.selector_for(rs)
            except ApiError:
                continue
            if not selector.selects_everything and selector.matches_object(pod):
                found.append(rs)
        return found

    def _add_pod(self, pod: Obj) -> None:
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            self._delete_pod(pod)  # seen for the first time already on its way out
            return
        rs = self._resolve(meta.get("namespace") or "", controller_ref(pod))
        if rs is not None:
            key = object_key(rs)
            self.expectations.creation_observed(key)
            self.queue.add(key)
            return
        if controller_ref(pod) is None:
            for rs in self._replica_sets_selecting(pod):
                self.enqueue(rs)

    def _update_pod(self, old: Obj, cur: Obj) -> None:
        old_meta, cur_meta = old["metadata"], cur["metadata"]
        if old_meta.get("resourceVersion") == cur_meta.get("resourceVersion"):
            return  # a periodic resync: nothing changed
        namespace = cur_meta.get("namespace") or ""
        labels_changed = old_meta.get("labels") != cur_meta.get("labels")
        if cur_meta.get("deletionTimestamp"):
            # Being deleted counts as deleted: expectations move on now, not
            # after a grace period.
            self._delete_pod(cur)
            if labels_changed:
                self._delete_pod(old)
            return
        old_ref, cur_ref = controller_ref(old), controller_ref(cur)
        ref_changed = (old_ref or {}).get("uid") != (cur_ref or {}).get("uid")
        if ref_changed and old_ref is not None:
            rs = self._resolve(namespace, old_ref)
            if rs is not None:
                self.enqueue(rs)
        if cur_ref is not None:
            rs = self._resolve(namespace, cur_ref)
            if rs is not None:
                self.enqueue(rs)
                min_ready = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
                if min_ready > 0 and not is_ready(old) and is_ready(cur):
                    self.enqueue_after(rs, min_ready + 1.0)
            return
        if labels_changed or ref_changed:
            for rs in self._replica_sets_selecting(cur):
                self.enqueue(rs)

    def _delete_pod(self, pod: Obj) -> None:
        meta = pod["metadata"]
        rs = self._resolve(meta.get("namespace") or "", controller_ref(pod))
        if rs is None:
            return
        key = object_key(rs)
        self.expectations.deletion_observed(key, object_key(pod))
        self.queue.add(key)

    # -- sync -----------------------------------------------------------------

    async def sync(self, key: str) -> None:
        rs = self.rs_informer.get(key)
        if rs is None:
            self.expectations.delete(key)
            return
        namespace, _ = split_key(key)
        needs_sync = self.expectations.satisfied(key)
        try:
            selector = self.selector_for(rs)
        except ApiError as err:
            # Not retried: only a new spec can fix it (Kubernetes does the same).
            self.log.warning("invalid selector", extra={"kv": {"key": key, "error": str(err)}})
            return
        active = [p for p in self.pod_informer.by_index(NAMESPACE_INDEX, namespace)
                  if is_active(p)]
        refs = ControllerRefManager(self.client, owner=rs, owner_resource=self.resource,
                                    selector=selector, resource="pods")
        pods = await refs.claim(active)
        want = int((rs.get("spec") or {}).get("replicas", 1) or 0)
        manage_error: Exception | None = None
        if needs_sync and not rs["metadata"].get("deletionTimestamp"):
            try:
                await self.manage_replicas(key, rs, pods, want)
            except ApiError as err:
                manage_error = err
        status = calculate_status(rs, pods, manage_error, len(pods) - want)
        updated = await self.update_status(rs, status)
        if manage_error is not None:
            raise manage_error
        min_ready = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
        new_status = updated.get("status") or {}
        if (min_ready > 0 and new_status.get("readyReplicas") == want
                and new_status.get("availableReplicas") != want):
            self.queue.add_after(key, float(min_ready))

    async def manage_replicas(self, key: str, rs: Obj, pods: list[Obj], want: int) -> None:
        """Creates or deletes pods until `want` are active (Kubernetes' manageReplicas)."""
        diff = len(pods) - want
        if diff < 0:
            count = min(-diff, self.burst_replicas)
            # Set before the first create: its watch event may beat its response.
            self.expectations.expect_creations(key, count)
            self.log.info("creating pods", extra={"kv": {"key": key, "count": count,
                                                          "want": want, "have": len(pods)}})
            successes, error = await slow_start_batch(
                count, SLOW_START_INITIAL_BATCH, lambda: self._create_pod(rs))
            for _ in range(count - successes):
                # Never created, so never observed: stop waiting for them.
                self.expectations.creation_observed(key)
            if error is not None and not isinstance(error, _Skipped):
                raise error
        elif diff > 0:
            count = min(diff, self.burst_replicas)
            victims = pods_to_delete(pods, self._related_pods(rs, pods), count)
            self.expectations.expect_deletions(key, [object_key(p) for p in victims])
            self.log.info("deleting pods", extra={"kv": {"key": key, "count": count,
                                                          "want": want, "have": len(pods)}})
            results = await asyncio.gather(*(self._delete_pod_of(key, rs, p) for p in victims),
                                           return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result

    async def _create_pod(self, rs: Obj) -> None:
        template = (rs.get("spec") or {}).get("template") or {}
        try:
            pod = await self.client.create("pods", pod_from_template(rs, template))
        except PreconditionFailedError as err:
            if is_namespace_terminating(err):
                # The namespace is going away, and this ReplicaSet with it.
                raise _Skipped() from None
            self.recorder.event(rs, WARNING, "FailedCreate", f"Error creating: {err}")
            raise
        except ApiError as err:
            self.recorder.event(rs, WARNING, "FailedCreate", f"Error creating: {err}")
            raise
        self.recorder.event(rs, NORMAL, "SuccessfulCreate",
                            f"Created pod: {pod['metadata']['name']}")

    async def _delete_pod_of(self, key: str, rs: Obj, pod: Obj) -> None:
        meta = pod["metadata"]
        try:
            await self.client.delete("pods", meta["name"], namespace=meta.get("namespace"),
                                     uid=meta.get("uid", ""))
        except (NotFoundError, PreconditionFailedError):
            self.expectations.deletion_observed(key, object_key(pod))  # already gone
            return
        except ApiError as err:
            self.expectations.deletion_observed(key, object_key(pod))
            self.recorder.event(rs, WARNING, "FailedDelete", f"Error deleting: {err}")
            raise
        self.recorder.event(rs, NORMAL, "SuccessfulDelete", f"Deleted pod: {meta['name']}")

    def _related_pods(self, rs: Obj, own: list[Obj]) -> list[Obj]:
        """Pods of every ReplicaSet under the same controller (a Deployment's), for ranking."""
        ref = controller_ref(rs)
        if ref is None:
            return own
        namespace = rs["metadata"].get("namespace") or ""
        siblings = {s["metadata"].get("uid")
                    for s in self.rs_informer.by_index(NAMESPACE_INDEX, namespace)
                    if (controller_ref(s) or {}).get("uid") == ref.get("uid")}
        return [p for p in self.pod_informer.by_index(NAMESPACE_INDEX, namespace)
                if (controller_ref(p) or {}).get("uid") in siblings]

    async def update_status(self, rs: Obj, status: Obj) -> Obj:
        """Writes status unless it is already there; one re-read on conflict."""
        if (rs.get("status") or {}) == status:
            return rs
        current = rs
        for attempt in range(2):
            try:
                return await self.client.update_status(self.resource, {**current, "status": status})
            except ConflictError:
                if attempt:
                    raise
                meta = rs["metadata"]
                current = await self.client.get(self.resource, meta["name"],
                                                namespace=meta.get("namespace"))
                if current["metadata"].get("uid") != meta.get("uid"):
                    raise NotFoundError(f"{self.kind} was replaced") from None
        return rs


class ReplicationControllerController(ReplicaSetController):
    """v1 ReplicationControllers: the same loop, with spec.selector a plain label map."""

    name = "replicationcontroller"
    resource = "replicationcontrollers"
    kind = "ReplicationController"
    component = "replication-controller"

    def selector_for(self, rs: Obj) -> LabelSelector:
        selector = (rs.get("spec") or {}).get("selector") or {}
        return selector_from_label_selector_spec({"matchLabels": selector})


class _Skipped(Exception):
    """A create that is not an error and will never be observed (a terminating namespace)."""


__all__ = [
    "BURST_REPLICAS",
    "ReplicaSetController",
    "ReplicationControllerController",
    "calculate_status",
    "pod_from_template",
    "slow_start_batch",
    "slow_start_batch_sizes",
]

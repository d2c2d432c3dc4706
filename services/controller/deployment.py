"""The Deployment controller: roll a pod template out through ReplicaSets.

Each distinct template gets its own ReplicaSet, `<deployment>-<hash>`, whose
selector, template labels and pods carry `pod-template-hash=<hash>`. The
ReplicaSet whose template equals the Deployment's (but for that label) is the
*new* one; all others are *old*. A sync (Kubernetes' `syncDeployment`):

1. claims the namespace's ReplicaSets by selector and controller reference;
2. if the Deployment is being deleted, only reports status;
3. if paused, or if only `spec.replicas` changed, scales the ReplicaSets in
   proportion and stops (no rollout);
4. otherwise rolls out: RollingUpdate grows the new ReplicaSet within
   maxSurge and shrinks old ones within maxUnavailable; Recreate shrinks old
   ones to zero, waits for their pods to be gone, then grows the new one;
5. deletes old, empty ReplicaSets beyond revisionHistoryLimit once the
   rollout is complete, and writes status with the Progressing and Available
   conditions, coming back when the progress deadline would pass.

A template that equals an old ReplicaSet's (a rollback, as `rollout undo`
does it by copying that template back) makes the old ReplicaSet new again: it
is adopted with the next revision number instead of being duplicated.

The arithmetic is in rollout.py; this module reads caches and writes. Every
write carries the resourceVersion it was computed from, so a stale cache
costs a conflict and a retry, never a wrong scale.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

from kubelite.client import Client
from kubelite.errors import AlreadyExistsError, ApiError, NotFoundError
from kubelite.events import NORMAL, WARNING, EventRecorder
from kubelite.informer import object_key

from . import rollout as ro
from .base import Controller
from .controllerref import (
    ControllerRefManager,
    controller_ref,
    controller_ref_for,
    is_controlled_by,
    selector_of,
)
from .informers import NAMESPACE_INDEX, InformerFactory
from .templatehash import POD_TEMPLATE_HASH_LABEL, compute_hash, equal_ignore_hash

Obj = dict[str, Any]


class HashCollisionError(Exception):
    """A ReplicaSet with the new one's name exists with another template; collisionCount grew."""


class DeploymentController(Controller[str]):
    name = "deployment"

    def __init__(self, client: Client, factory: InformerFactory, *,
                 recorder: EventRecorder | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.d_informer = factory.informer("deployments")
        self.rs_informer = factory.informer("replicasets")
        self.pod_informer = factory.informer("pods")
        super().__init__(informers=[self.d_informer, self.rs_informer, self.pod_informer])
        self.client = client
        self.recorder = recorder or EventRecorder(client, component="deployment-controller")
        self.clock = clock
        self.d_informer.add_handler(on_add=self.enqueue,
                                    on_update=lambda old, cur: self.enqueue(cur),
                                    on_delete=self.enqueue)
        self.rs_informer.add_handler(on_add=self._add_rs, on_update=self._update_rs,
                                     on_delete=self._delete_rs)
        self.pod_informer.add_handler(on_delete=self._delete_pod)

    # -- handlers -----------------------------------------------------------------

    def _resolve(self, namespace: str, ref: Obj | None) -> Obj | None:
        if ref is None or ref.get("kind") != "Deployment":
            return None
        d = self.d_informer.get(f"{namespace}/{ref.get('name')}")
        if d is None or d["metadata"].get("uid") != ref.get("uid"):
            return None
        return d

    def _deployments_selecting(self, rs: Obj) -> list[Obj]:
        meta = rs.get("metadata") or {}
        if not meta.get("labels"):
            return []
        found = []
        for d in self.d_informer.by_index(NAMESPACE_INDEX, meta.get("namespace") or ""):
            try:
                selector = selector_of(d)
            except ApiError:
                continue
            if not selector.selects_everything and selector.matches_object(rs):
                found.append(d)
        return found

    def _add_rs(self, rs: Obj) -> None:
        if rs["metadata"].get("deletionTimestamp"):
            self._delete_rs(rs)
            return
        ref = controller_ref(rs)
        if ref is not None:
            d = self._resolve(rs["metadata"].get("namespace") or "", ref)
            if d is not None:
                self.enqueue(d)
            return
        for d in self._deployments_selecting(rs):
            self.enqueue(d)

    def _update_rs(self, old: Obj, cur: Obj) -> None:
        if old["metadata"].get("resourceVersion") == cur["metadata"].get("resourceVersion"):
            return
        namespace = cur["metadata"].get("namespace") or ""
        old_ref, cur_ref = controller_ref(old), controller_ref(cur)
        ref_changed = (old_ref or {}).get("uid") != (cur_ref or {}).get("uid")
        if ref_changed and old_ref is not None:
            d = self._resolve(namespace, old_ref)
            if d is not None:
                self.enqueue(d)
        if cur_ref is not None:
            d = self._resolve(namespace, cur_ref)
            if d is not None:
                self.enqueue(d)
            return
        if ref_changed or old["metadata"].get("labels") != cur["metadata"].get("labels"):
            for d in self._deployments_selecting(cur):
                self.enqueue(d)

    def _delete_rs(self, rs: Obj) -> None:
        d = self._resolve(rs["metadata"].get("namespace") or "", controller_ref(rs))
        if d is not None:
            self.enqueue(d)

    def _delete_pod(self, pod: Obj) -> None:
        # Recreate waits for the old pods to be gone: a pod's deletion may be the go-ahead.
        namespace = pod["metadata"].get("namespace") or ""
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self.rs_informer.get(f"{namespace}/{ref.get('name')}")
        if rs is None or rs["metadata"].get("uid") != ref.get("uid"):
            return
        d = self._resolve(namespace, controller_ref(rs))
        if d is not None and ro.strategy_type(d) == ro.RECREATE:
            self.enqueue(d)

    # -- sync -----------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        cached = self.d_informer.get(key)
        if cached is None:
            return
        d = copy.deepcopy(cached)
        d.setdefault("status", {})
        try:
            selector = selector_of(d)
        except ApiError as err:
            self.log.warning("invalid selector", extra={"kv": {"key": key, "error": str(err)}})
            return
        if selector.selects_everything:
            self.recorder.event(d, WARNING, "SelectingAll",
                                "This deployment is selecting all pods. A non-empty selector "
                                "is required.")
            if ro.status_int(d, "observedGeneration") < ro.generation(d):
                d["status"]["observedGeneration"] = ro.generation(d)
                await self._write_status(d)
            return
        rss = await self._claim_replica_sets(d, selector)
        if d["metadata"].get("deletionTimestamp"):
            await self._sync_status_only(d, rss)
            return
        await self._check_paused_conditions(d)
        if (d.get("spec") or {}).get("paused"):
            await self._sync_scale(d, rss)
            return
        new_rs, old_rss = await self._new_and_old(d, rss, create=False)
        if ro.is_scaling_event(d, [*old_rss, new_rs]):
            await self._sync_scale(d, rss)
            return
        if ro.strategy_type(d) == ro.RECREATE:
            await self._rollout_recreate(d, rss)
        else:
            await self._rollout_rolling(d, rss)

    async def _claim_replica_sets(self, d: Obj, selector: Any) -> list[Obj]:
        namespace = d["metadata"].get("namespace") or ""
        refs = ControllerRefManager(self.client, owner=d, owner_resource="deployments",
                                    selector=selector, resource="replicasets")
        claimed = await refs.claim(self.rs_informer.by_index(NAMESPACE_INDEX, namespace))
        # Private copies: the sync updates them in place as it writes.
        return [copy.deepcopy(rs) for rs in claimed]

    # -- the new ReplicaSet and revisions ---------------------------------------------

    async def _new_and_old(self, d: Obj, rss: list[Obj], *,
                           create: bool) -> tuple[Obj | None, list[Obj]]:
        """(new ReplicaSet or None, all old ones), revisions synced"""
        existing = ro.find_new_replica_set(d, rss)
        _, all_old = ro.find_old_replica_sets(rss, existing)
        new_rs = await self._new_replica_set(d, rss, all_old, existing, create=create)
        if new_rs is not None and existing is None:
            rss.append(new_rs)
        return new_rs, all_old

    async def _new_replica_set(self, d: Obj, rss: list[Obj], old_rss: list[Obj],
                               existing: Obj | None, *, create: bool) -> Obj | None:
        new_revision = ro.max_revision(old_rss) + 1
        spec = d.get("spec") or {}
        min_ready = int(spec.get("minReadySeconds") or 0)
        if existing is not None:
            rs_copy = copy.deepcopy(existing)
            changed = ro.set_new_replica_set_annotations(d, rs_copy, new_revision, exists=True)
            if changed or int((rs_copy.get("spec") or {}).get("minReadySeconds") or 0) != min_ready:
                rs_copy["spec"]["minReadySeconds"] = min_ready
                _replace(existing, await self._update_spec(rs_copy))
                return existing
            await self._set_deployment_revision(d, ro.annotations(existing).get(
                ro.REVISION_ANNOTATION, ""))
            no_progress_yet = ro.get_condition(d["status"], ro.PROGRESSING) is None
            if ro.has_progress_deadline(d) and no_progress_yet:
                ro.set_condition(d["status"], ro.new_condition(
                    ro.PROGRESSING, "True", ro.FOUND_NEW_RS_REASON,
                    f'Found new replica set "{existing["metadata"]["name"]}"', self.clock()))
                await self._write_status(d)
            return existing
        if not create:
            return None

        meta = d["metadata"]
        collision_count = (d.get("status") or {}).get("collisionCount")
        template = copy.deepcopy(spec.get("template") or {})
        pod_hash = compute_hash(template, collision_count)
        template.setdefault("metadata", {}).setdefault("labels", {})[
            POD_TEMPLATE_HASH_LABEL] = pod_hash
        selector = copy.deepcopy(spec.get("selector") or {})
        selector.setdefault("matchLabels", {})[POD_TEMPLATE_HASH_LABEL] = pod_hash
        new_rs: Obj = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": f"{meta['name']}-{pod_hash}",
                "namespace": meta.get("namespace") or "default",
                "labels": dict(template["metadata"]["labels"]),
                "ownerReferences": [controller_ref_for(d)],
            },
            "spec": {"replicas": 0, "minReadySeconds": min_ready, "selector": selector,
                     "template": template},
        }
        replicas = ro.new_rs_new_replicas(d, [*old_rss, new_rs], new_rs)
        new_rs["spec"]["replicas"] = replicas
        ro.set_new_replica_set_annotations(d, new_rs, new_revision, exists=False)
        already_exists = False
        try:
            created = await self.client.create("replicasets", new_rs)
        except AlreadyExistsError:
            # Our own earlier create that the cache has not shown yet, or a collision.
            found = await self.client.get("replicasets", new_rs["metadata"]["name"],
                                          namespace=new_rs["metadata"]["namespace"])
            if is_controlled_by(found, d) and equal_ignore_hash(
                    (found.get("spec") or {}).get("template"), spec.get("template")):
                created, already_exists = found, True
            else:
                d["status"]["collisionCount"] = int(collision_count or 0) + 1
                await self._write_status(d)
                raise HashCollisionError(
                    f'replica set "{new_rs["metadata"]["name"]}" exists with another template; '
                    f"collisionCount is now {d['status']['collisionCount']}") from None
        except ApiError as err:
            msg = f'Failed to create new replica set "{new_rs["metadata"]["name"]}": {err}'
            if ro.has_progress_deadline(d):
                ro.set_condition(d["status"], ro.new_condition(
                    ro.PROGRESSING, "False", ro.FAILED_RS_CREATE_REASON, msg, self.clock()))
                await self._write_status(d)
            self.recorder.event(d, WARNING, ro.FAILED_RS_CREATE_REASON, msg)
            raise
        created = copy.deepcopy(created)
        if not already_exists and replicas > 0:
            self.recorder.event(d, NORMAL, "ScalingReplicaSet",
                                f"Scaled up replica set {created['metadata']['name']} "
                                f"to {replicas}")
        await self._set_deployment_revision(d, str(new_revision))
        if not already_exists and ro.has_progress_deadline(d):
            ro.set_condition(d["status"], ro.new_condition(
                ro.PROGRESSING, "True", ro.NEW_RS_REASON,
                f'Created new replica set "{created["metadata"]["name"]}"', self.clock()))
            await self._write_status(d)
        return created

    async def _set_deployment_revision(self, d: Obj, revision: str) -> None:
        """Copies the new ReplicaSet's revision onto the Deployment's annotation."""
        if not revision or ro.annotations(d).get(ro.REVISION_ANNOTATION) == revision:
            return
        meta = d["metadata"]
        patched = await self.client.patch(
            "deployments", meta["name"],
            {"metadata": {"annotations": {ro.REVISION_ANNOTATION: revision},
                          "resourceVersion": meta["resourceVersion"]}},
            namespace=meta.get("namespace"))
        meta.setdefault("annotations", {})[ro.REVISION_ANNOTATION] = revision
        meta["resourceVersion"] = patched["metadata"]["resourceVersion"]

    # -- scaling -------------------------------------------------------------------------

    async def _scale(self, d: Obj, rs: Obj, size: int, operation: str = "") -> bool:
        """Sets rs's size and replica annotations (in place); True if the size changed."""
        want = ro.spec_replicas(d)
        max_replicas = want + ro.max_surge(d)
        size_changed = ro.spec_replicas(rs) != size
        if not size_changed and not ro.replicas_annotations_need_update(rs, want, max_replicas):
            return False
        before = ro.spec_replicas(rs)
        rs_copy = copy.deepcopy(rs)
        rs_copy["spec"]["replicas"] = size
        ro.set_replicas_annotations(rs_copy, want, max_replicas)
        _replace(rs, await self._update_spec(rs_copy))
        if size_changed:
            operation = operation or ("up" if size > before else "down")
            self.recorder.event(d, NORMAL, "ScalingReplicaSet",
                                f"Scaled {operation} replica set {rs['metadata']['name']} "
                                f"to {size}")
        return size_changed

    async def _update_spec(self, rs: Obj) -> Obj:
        """Updates a ReplicaSet's metadata and spec; the status subresource is not ours to send.

        (The apiserver keeps the stored status anyway, but validates what it is
        sent: a new ReplicaSet's initial `status: {}` lacks the schema's required
        status.replicas until the ReplicaSet controller first reports.)
        """
        return await self.client.update("replicasets", {k: v for k, v in rs.items()
                                                        if k != "status"})

    async def _scale_and_record(self, d: Obj, rs: Obj, size: int) -> bool:
        if ro.spec_replicas(rs) == size:
            return False
        return await self._scale(d, rs, size, "up" if size > ro.spec_replicas(rs) else "down")

    async def _scale_proportionally(self, d: Obj, new_rs: Obj | None,
                                    old_rss: list[Obj]) -> None:
        """Kubernetes' `scale`: a spec.replicas change reaches every active ReplicaSet."""
        target = ro.find_active_or_latest(new_rs, old_rss)
        if target is not None:
            await self._scale_and_record(d, target, ro.spec_replicas(d))
            return
        if ro.is_saturated(d, new_rs):
            for rs in ro.active(old_rss):
                await self._scale_and_record(d, rs, 0)
            return
        if ro.is_rolling_update(d):
            for rs, size in ro.proportional_sizes(d, ro.active([*old_rss, new_rs])):
                await self._scale(d, rs, size)

    async def _sync_scale(self, d: Obj, rss: list[Obj]) -> None:
        """Scaling only, no rollout: for paused Deployments and spec.replicas changes."""
        new_rs, old_rss = await self._new_and_old(d, rss, create=False)
        await self._scale_proportionally(d, new_rs, old_rss)
        if (d.get("spec") or {}).get("paused"):
            await self._cleanup(d, old_rss)
        await self._sync_status(d, [*old_rss, new_rs], new_rs)

    # -- RollingUpdate --------------------------------------------------------------------

    async def _rollout_rolling(self, d: Obj, rss: list[Obj]) -> None:
        new_rs, old_rss = await self._new_and_old(d, rss, create=True)
        assert new_rs is not None
        all_rss = [*old_rss, new_rs]
        if await self._reconcile_new(d, all_rss, new_rs):
            await self._sync_rollout_status(d, all_rss, new_rs)
            return
        if await self._reconcile_old(d, all_rss, ro.active(old_rss), new_rs):
            await self._sync_rollout_status(d, all_rss, new_rs)
            return
        if ro.deployment_complete(d, d["status"]):
            await self._cleanup(d, old_rss)
        await self._sync_rollout_status(d, all_rss, new_rs)

    async def _reconcile_new(self, d: Obj, all_rss: list[Obj], new_rs: Obj) -> bool:
        want = ro.spec_replicas(d)
        if ro.spec_replicas(new_rs) == want:
            return False
        if ro.spec_replicas(new_rs) > want:
            return await self._scale_and_record(d, new_rs, want)
        return await self._scale_and_record(d, new_rs, ro.new_rs_new_replicas(d, all_rss, new_rs))

    async def _reconcile_old(self, d: Obj, all_rss: list[Obj], old_rss: list[Obj],
                             new_rs: Obj) -> bool:
        """Shrinks old ReplicaSets as far as availability allows (reconcileOldReplicaSets)."""
        if ro.replica_count(old_rss) == 0:
            return False
        budget = ro.max_scaled_down(d, all_rss, new_rs)
        if budget <= 0:
            return False
        total = 0
        for rs, size in ro.cleanup_unhealthy_plan(old_rss, budget):
            total += ro.spec_replicas(rs) - size
            await self._scale_and_record(d, rs, size)
        for rs, size in ro.scale_down_old_plan(d, [*old_rss, new_rs], old_rss):
            total += ro.spec_replicas(rs) - size
            await self._scale_and_record(d, rs, size)
        return total > 0

    # -- Recreate ---------------------------------------------------------------------------

    async def _rollout_recreate(self, d: Obj, rss: list[Obj]) -> None:
        new_rs, old_rss = await self._new_and_old(d, rss, create=False)
        scaled = False
        for rs in ro.active(old_rss):
            scaled = await self._scale_and_record(d, rs, 0) or scaled
        if scaled:
            await self._sync_rollout_status(d, [*old_rss, new_rs], new_rs)
            return
        if self._old_pods_running(d, new_rs, old_rss):
            await self._sync_rollout_status(d, [*old_rss, new_rs], new_rs)
            return
        if new_rs is None:
            new_rs, old_rss = await self._new_and_old(d, rss, create=True)
            assert new_rs is not None
        await self._scale_and_record(d, new_rs, ro.spec_replicas(d))
        if ro.deployment_complete(d, d["status"]):
            await self._cleanup(d, old_rss)
        await self._sync_rollout_status(d, [*old_rss, new_rs], new_rs)

    def _old_pods_running(self, d: Obj, new_rs: Obj | None, old_rss: list[Obj]) -> bool:
        """Any old pod not yet terminated, even one being deleted (oldPodsRunning)."""
        if ro.actual_replica_count(old_rss) > 0:
            return True
        old_uids = {rs["metadata"].get("uid") for rs in old_rss}
        old_uids.discard((new_rs or {}).get("metadata", {}).get("uid"))
        namespace = d["metadata"].get("namespace") or ""
        for pod in self.pod_informer.by_index(NAMESPACE_INDEX, namespace):
            if (controller_ref(pod) or {}).get("uid") not in old_uids:
                continue
            if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                return True
        return False

    # -- history and status ---------------------------------------------------------------

    async def _cleanup(self, d: Obj, old_rss: list[Obj]) -> None:
        """Deletes old, empty ReplicaSets beyond revisionHistoryLimit (cleanupDeployment)."""
        for rs in ro.replica_sets_to_prune(d, old_rss):
            meta = rs["metadata"]
            self.log.info("deleting old replica set", extra={"kv": {
                "deployment": object_key(d), "replicaset": meta["name"],
                "revision": ro.revision(rs)}})
            try:
                await self.client.delete("replicasets", meta["name"],
                                         namespace=meta.get("namespace"), uid=meta.get("uid", ""))
            except NotFoundError:
                pass

    async def _check_paused_conditions(self, d: Obj) -> None:
        if not ro.has_progress_deadline(d):
            return
        cond = ro.get_condition(d["status"], ro.PROGRESSING)
        if cond is not None and cond.get("reason") == ro.TIMED_OUT_REASON:
            return  # a reported lack of progress is not overwritten by "paused"
        paused = bool((d.get("spec") or {}).get("paused"))
        paused_known = cond is not None and cond.get("reason") == ro.PAUSED_REASON
        if paused and not paused_known:
            ro.set_condition(d["status"], ro.new_condition(
                ro.PROGRESSING, "Unknown", ro.PAUSED_REASON, "Deployment is paused",
                self.clock()))
        elif not paused and paused_known:
            ro.set_condition(d["status"], ro.new_condition(
                ro.PROGRESSING, "Unknown", ro.RESUMED_REASON, "Deployment is resumed",
                self.clock()))
        else:
            return
        await self._write_status(d)

    async def _sync_status_only(self, d: Obj, rss: list[Obj]) -> None:
        new_rs, old_rss = await self._new_and_old(d, rss, create=False)
        await self._sync_status(d, [*old_rss, new_rs], new_rs)

    async def _sync_status(self, d: Obj, all_rss: list[Obj | None], new_rs: Obj | None) -> None:
        status = ro.calculate_status(all_rss, new_rs, d, self.clock())
        if status != d["status"]:
            d["status"] = status
            await self._write_status(d)

    async def _sync_rollout_status(self, d: Obj, all_rss: list[Obj | None],
                                   new_rs: Obj | None) -> None:
        now = self.clock()
        status = ro.rollout_status(d, all_rss, new_rs, now)
        if status == d["status"]:
            after = ro.requeue_after_for_deadline(d, status, now)
            if after is not None:
                self.queue.add_after(object_key(d), after)
            return
        d["status"] = status
        await self._write_status(d)

    async def _write_status(self, d: Obj) -> None:
        written = await self.client.update_status("deployments", d)
        d["metadata"]["resourceVersion"] = written["metadata"]["resourceVersion"]


def _replace(target: Obj, fresh: Obj) -> None:
    """Makes the sync's private copy `target` the object the API returned."""
    target.clear()
    target.update(copy.deepcopy(fresh))


__all__ = ["DeploymentController", "HashCollisionError"]

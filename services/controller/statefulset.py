"""The StatefulSet controller: pods with a stable name, network identity and storage.

A sync (Kubernetes' `defaultStatefulSetControl.UpdateStatefulSet`) reads the
set, its pods, revisions and claims from the caches and:

1. finds the *update revision* (the ControllerRevision of today's template,
   created or renumbered to the newest) and the *current revision* (the one
   `status.currentRevision` names, else the update revision);
2. sorts its pods by ordinal: `<set>-<i>` for i in `[start, start+replicas)`
   are the replicas, the others are *condemned*;
3. goes through the replicas in order: a failed or succeeded pod is deleted
   (to come back), a missing one is created with its claims
   (`<claim>-<set>-<i>`, one per volumeClaimTemplate, kept across pods) at the
   current revision below the partition and the update revision from it on.
   Under `podManagementPolicy: OrderedReady` it stops at the first pod that is
   not yet Running and Ready (available, with minReadySeconds) or is being
   deleted; `Parallel` creates and deletes without waiting;
4. deletes the condemned pods, highest ordinal first (OrderedReady: one at a
   time, and only once the others are healthy);
5. RollingUpdate: once every replica is healthy, deletes the highest-ordinal
   pod at or above the partition that is not at the update revision (one at a
   time, each back and Ready before the next); OnDelete leaves that to the user;
6. writes the status, makes the update revision current when every replica
   runs it, and truncates the history to revisionHistoryLimit.

Each pod gets `hostname` = its name and `subdomain` = `serviceName`, so that
the governing headless Service's Endpoints name it (`web-0.nginx.ns.svc`) in
the cluster DNS. `persistentVolumeClaimRetentionPolicy` is kept through the
claims' ownerReferences: `whenDeleted: Delete` points them at the set,
`whenScaled: Delete` points a condemned pod's claims at that pod, and the
garbage collector does the rest, as in Kubernetes.
"""

from __future__ import annotations

import copy
import re
import time
from dataclasses import dataclass
from typing import Any

from kubelite.client import Client
from kubelite.errors import AlreadyExistsError, ApiError, ConflictError, NotFoundError
from kubelite.events import NORMAL, WARNING, EventRecorder
from kubelite.informer import object_key, split_key

from .base import Controller
from .controllerref import (
    ControllerRefManager,
    controller_ref,
    controller_ref_for,
    owner_references,
    selector_of,
)
from .history import (
    CONTROLLER_REVISION_HASH_LABEL,
    create_revision,
    new_revision,
    next_revision,
    owned_revisions,
    revision_data,
    sort_revisions,
    template_of,
    truncate_history,
    update_revision_number,
)
from .informers import NAMESPACE_INDEX, InformerFactory
from .pods import is_available, is_ready

Obj = dict[str, Any]

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
_ORDINAL = re.compile(r"^(.*)-([0-9]+)$")


# -- pure logic ---------------------------------------------------------------


def parent_and_ordinal(pod: Obj) -> tuple[str, int] | None:
    """("web", 2) for a pod named web-2; None for a name without an ordinal."""
    match = _ORDINAL.match((pod.get("metadata") or {}).get("name") or "")
    return (match.group(1), int(match.group(2))) if match else None


def ordinal_of(pod: Obj) -> int:
    found = parent_and_ordinal(pod)
    return found[1] if found else -1


def start_ordinal(sts: Obj) -> int:
    return int(((sts.get("spec") or {}).get("ordinals") or {}).get("start") or 0)


def replica_count(sts: Obj) -> int:
    replicas = (sts.get("spec") or {}).get("replicas")
    return int(replicas) if isinstance(replicas, int) else 1


def partition_of(sts: Obj) -> int:
    strategy = (sts.get("spec") or {}).get("updateStrategy") or {}
    return int((strategy.get("rollingUpdate") or {}).get("partition") or 0)


def strategy_type(sts: Obj) -> str:
    return ((sts.get("spec") or {}).get("updateStrategy") or {}).get("type") or "RollingUpdate"


def is_parallel(sts: Obj) -> bool:
    return (sts.get("spec") or {}).get("podManagementPolicy") == "Parallel"


def claim_name(template: Obj, sts: Obj, ordinal: int) -> str:
    """`<claim template>-<set>-<ordinal>`, Kubernetes' getPersistentVolumeClaimName."""
    return (f"{(template.get('metadata') or {}).get('name', '')}-"
            f"{sts['metadata']['name']}-{ordinal}")


def claim_templates(sts: Obj) -> list[Obj]:
    return [c for c in (sts.get("spec") or {}).get("volumeClaimTemplates") or ()
            if isinstance(c, dict)]


def pod_revision(pod: Obj) -> str:
    return ((pod.get("metadata") or {}).get("labels") or {}).get(
        CONTROLLER_REVISION_HASH_LABEL, "")


def is_terminating(pod: Obj) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def is_finished(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def is_healthy(pod: Obj, min_ready_seconds: int, now: float) -> bool:
    """Running, Ready (for minReadySeconds) and not on its way out."""
    return ((pod.get("status") or {}).get("phase") == "Running" and not is_terminating(pod)
            and is_available(pod, min_ready_seconds, now))


def statefulset_pod(sts: Obj, template: Obj, ordinal: int, revision: str) -> Obj:
    """The pod of one ordinal (Kubernetes' newVersionedStatefulSetPod): its name, identity
    labels, hostname/subdomain, its claims as volumes, and the revision it runs."""
    meta = sts["metadata"]
    name = f"{meta['name']}-{ordinal}"
    tmeta = template.get("metadata") or {}
    labels = {**(tmeta.get("labels") or {}), POD_NAME_LABEL: name,
              POD_INDEX_LABEL: str(ordinal), CONTROLLER_REVISION_HASH_LABEL: revision}
    pod_meta: Obj = {"name": name, "namespace": meta.get("namespace") or "default",
                     "labels": labels, "ownerReferences": [controller_ref_for(sts)]}
    if tmeta.get("annotations"):
        pod_meta["annotations"] = dict(tmeta["annotations"])
    if tmeta.get("finalizers"):
        pod_meta["finalizers"] = list(tmeta["finalizers"])
    spec = copy.deepcopy(template.get("spec") or {})
    spec["hostname"] = name
    service = (sts.get("spec") or {}).get("serviceName")
    if service:
        spec["subdomain"] = service
    claims = {(c.get("metadata") or {}).get("name"): claim_name(c, sts, ordinal)
              for c in claim_templates(sts)}
    volumes = [v for v in spec.get("volumes") or () if v.get("name") not in claims]
    volumes += [{"name": volume, "persistentVolumeClaim": {"claimName": claim}}
                for volume, claim in claims.items()]
    if volumes:
        spec["volumes"] = volumes
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}


def statefulset_claim(sts: Obj, template: Obj, ordinal: int) -> Obj:
    """The PersistentVolumeClaim of one claim template and ordinal: the template, named for
    the ordinal, labelled with the set's selector."""
    meta = template.get("metadata") or {}
    selector = ((sts.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    claim_meta: Obj = {"name": claim_name(template, sts, ordinal),
                       "namespace": sts["metadata"].get("namespace") or "default",
                       "labels": {**(meta.get("labels") or {}), **selector}}
    if meta.get("annotations"):
        claim_meta["annotations"] = dict(meta["annotations"])
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": claim_meta,
            "spec": copy.deepcopy(template.get("spec") or {})}


def _plain_ref(owner: Obj, kind: str, api_version: str) -> Obj:
    meta = owner["metadata"]
    return {"apiVersion": api_version, "kind": kind, "name": meta["name"], "uid": meta["uid"]}


def claim_owner_refs(sts: Obj, pod: Obj | None, claim: Obj, condemned: bool) -> list[Obj]:
    """The ownerReferences a claim should have under the set's retention policy (Kubernetes'
    updateClaimOwnerRefForSetAndPod): its pod's alone when the pod is condemned and
    whenScaled is Delete, else the set's when whenDeleted is Delete; references to others
    are kept."""
    policy = (sts.get("spec") or {}).get("persistentVolumeClaimRetentionPolicy") or {}
    set_uid = sts["metadata"]["uid"]
    pod_uid = (pod or {}).get("metadata", {}).get("uid")
    refs = [r for r in owner_references(claim)
            if r.get("uid") != set_uid and not (r.get("kind") == "Pod" and r.get("name") == (
                (pod or {}).get("metadata", {}).get("name")))]
    scaled_away = condemned and bool(pod_uid) and policy.get("whenScaled") == "Delete"
    if scaled_away:
        refs.append(_plain_ref(pod, "Pod", "v1"))  # type: ignore[arg-type]
    elif policy.get("whenDeleted") == "Delete":
        refs.append(_plain_ref(sts, "StatefulSet", "apps/v1"))
    return refs


def revision_for_ordinal(sts: Obj, ordinal: int, current: str, update: str,
                         current_replicas: int) -> str:
    """Which revision a new pod of this ordinal runs: the current one below the partition
    (RollingUpdate) or below status.currentReplicas (RollingUpdate without a rollingUpdate
    block), the update revision otherwise (and always under OnDelete)."""
    if strategy_type(sts) != "RollingUpdate":
        return update
    rolling = ((sts.get("spec") or {}).get("updateStrategy") or {}).get("rollingUpdate")
    bound = (partition_of(sts) if rolling is not None else current_replicas)
    return current if ordinal < start_ordinal(sts) + bound else update


@dataclass
class _Counts:
    replicas: int = 0
    ready: int = 0
    available: int = 0
    current: int = 0
    updated: int = 0


def compute_status(sts: Obj, pods: list[Obj], current: str, update: str,
                   collision_count: int, now: float) -> Obj:
    """Kubernetes' computeReplicaStatus, plus the rollover of currentRevision once the
    update is complete."""
    min_ready = int((sts.get("spec") or {}).get("minReadySeconds") or 0)
    s = _Counts()
    for pod in pods:
        if (pod.get("status") or {}).get("phase"):
            s.replicas += 1
        if (pod.get("status") or {}).get("phase") == "Running" and is_ready(pod):
            s.ready += 1
            if is_available(pod, min_ready, now):
                s.available += 1
        if not is_terminating(pod):
            if pod_revision(pod) == current:
                s.current += 1
            if pod_revision(pod) == update:
                s.updated += 1
    status = copy.deepcopy(sts.get("status") or {})
    status.update({
        "observedGeneration": int((sts.get("metadata") or {}).get("generation") or 0),
        "replicas": s.replicas, "readyReplicas": s.ready, "availableReplicas": s.available,
        "currentReplicas": s.current, "updatedReplicas": s.updated,
        "currentRevision": current, "updateRevision": update,
        "collisionCount": collision_count,
    })
    # completeRollingUpdate: every replica runs the update revision and is ready.
    if (strategy_type(sts) == "RollingUpdate" and s.updated == s.replicas
            and s.ready == s.replicas and s.replicas == replica_count(sts)):
        status["currentRevision"] = update
        status["currentReplicas"] = s.updated
    return status


# -- the controller -----------------------------------------------------------


class StatefulSetController(Controller[str]):
    name = "statefulset"
    resource = "statefulsets"
    kind = "StatefulSet"
    component = "statefulset-controller"

    def __init__(self, client: Client, factory: InformerFactory, *,
                 recorder: EventRecorder | None = None) -> None:
        self.sets = factory.informer("statefulsets")
        self.pods = factory.informer("pods")
        self.revisions = factory.informer("controllerrevisions")
        self.claims = factory.informer("persistentvolumeclaims")
        super().__init__(informers=[self.sets, self.pods, self.revisions, self.claims])
        self.client = client
        self.recorder = recorder or EventRecorder(client, component=self.component)
        self.clock = time.time
        self.sets.add_handler(on_add=self.enqueue, on_update=lambda old, cur: self.enqueue(cur),
                              on_delete=self.enqueue)
        self.pods.add_handler(on_add=self._pod_changed,
                              on_update=self._pod_updated, on_delete=self._pod_changed)
        self.revisions.add_handler(on_add=self._owned_changed,
                                   on_update=lambda old, cur: self._owned_changed(cur),
                                   on_delete=self._owned_changed)

    # -- handlers --------------------------------------------------------------

    def _owner_key(self, obj: Obj) -> str | None:
        ref = controller_ref(obj)
        if ref is None or ref.get("kind") != self.kind:
            return None
        namespace = (obj.get("metadata") or {}).get("namespace") or ""
        key = f"{namespace}/{ref.get('name')}"
        owner = self.sets.get(key)
        if owner is None or owner["metadata"].get("uid") != ref.get("uid"):
            return None
        return key

    def _owned_changed(self, obj: Obj) -> None:
        key = self._owner_key(obj)
        if key is not None:
            self.queue.add(key)

    def _pod_changed(self, pod: Obj) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self.queue.add(key)
            return
        if controller_ref(pod) is None:
            self._enqueue_selecting(pod)

    def _pod_updated(self, old: Obj, cur: Obj) -> None:
        if old["metadata"].get("resourceVersion") == cur["metadata"].get("resourceVersion"):
            return
        old_key, cur_key = self._owner_key(old), self._owner_key(cur)
        for key in {old_key, cur_key} - {None}:
            self.queue.add(key)  # type: ignore[arg-type]
        if cur_key is not None:
            owner = self.sets.get(cur_key) or {}
            min_ready = int((owner.get("spec") or {}).get("minReadySeconds") or 0)
            if min_ready > 0 and not is_ready(old) and is_ready(cur):
                self.queue.add_after(cur_key, min_ready + 0.5)
        elif controller_ref(cur) is None:
            self._enqueue_selecting(cur)

    def _enqueue_selecting(self, pod: Obj) -> None:
        meta = pod.get("metadata") or {}
        found = parent_and_ordinal(pod)
        if not meta.get("labels") or found is None:
            return
        for sts in self.sets.by_index(NAMESPACE_INDEX, meta.get("namespace") or ""):
            if sts["metadata"]["name"] != found[0]:
                continue
            try:
                if selector_of(sts).matches_object(pod):
                    self.enqueue(sts)
            except ApiError:
                continue

    # -- sync ------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        sts = self.sets.get(key)
        if sts is None:
            return
        namespace, name = split_key(key)
        try:
            selector = selector_of(sts)
        except ApiError as err:
            self.log.warning("invalid selector", extra={"kv": {"key": key, "error": str(err)}})
            return
        candidates = [p for p in self.pods.by_index(NAMESPACE_INDEX, namespace)
                      if (parent_and_ordinal(p) or ("",))[0] == name]
        refs = ControllerRefManager(self.client, owner=sts, owner_resource=self.resource,
                                    selector=selector, resource="pods")
        pods = await refs.claim(candidates)
        revisions = sort_revisions(owned_revisions(
            self.revisions.by_index(NAMESPACE_INDEX, namespace), sts))
        status = sts.get("status") or {}
        collisions = int(status.get("collisionCount") or 0)
        current, update, collisions = await self._revisions(sts, revisions, collisions)
        now = self.clock()
        error: Exception | None = None
        requeue: float | None = None
        if not sts["metadata"].get("deletionTimestamp"):
            try:
                requeue = await self._update_pods(sts, pods, current, update, now)
            except ApiError as err:
                error = err
        pods = [p for p in self.pods.by_index(NAMESPACE_INDEX, namespace)
                if (controller_ref(p) or {}).get("uid") == sts["metadata"]["uid"]]
        new_status = compute_status(sts, pods, current["metadata"]["name"],
                                    update["metadata"]["name"], collisions, now)
        await self._write_status(sts, new_status)
        live = {current["metadata"]["name"], update["metadata"]["name"]}
        live |= {pod_revision(p) for p in pods}
        limit = int((sts.get("spec") or {}).get("revisionHistoryLimit") or 0)
        await truncate_history(self.client, sort_revisions(owned_revisions(
            self.revisions.by_index(NAMESPACE_INDEX, namespace), sts)), live, limit)
        if error is not None:
            raise error
        if requeue is not None:
            self.queue.add_after(key, requeue)

    async def _revisions(self, sts: Obj, revisions: list[Obj],
                         collisions: int) -> tuple[Obj, Obj, int]:
        """(current revision, update revision, collision count), creating or renumbering
        the update revision (Kubernetes' getStatefulSetRevisions)."""
        template = (sts.get("spec") or {}).get("template") or {}
        data = revision_data(template)
        number = next_revision(revisions)
        labels = dict((template.get("metadata") or {}).get("labels") or {})
        candidate = new_revision(sts, data, number, labels, collisions or None)
        equal = [r for r in revisions if (r.get("data") or {}) == data]
        if equal and equal[-1] is revisions[-1]:
            update = equal[-1]
        elif equal:
            update = await update_revision_number(self.client, equal[-1], number)
        else:
            update, collisions = await create_revision(self.client, candidate, collisions)
        wanted = (sts.get("status") or {}).get("currentRevision")
        current = next((r for r in revisions if r["metadata"]["name"] == wanted), update)
        return current, update, collisions

    async def _update_pods(self, sts: Obj, pods: list[Obj], current: Obj, update: Obj,
                           now: float) -> float | None:
        """Steps 3 to 5 of the module docstring; returns a requeue delay or None."""
        key = object_key(sts)
        start, count = start_ordinal(sts), replica_count(sts)
        parallel = is_parallel(sts)
        min_ready = int((sts.get("spec") or {}).get("minReadySeconds") or 0)
        current_name, update_name = current["metadata"]["name"], update["metadata"]["name"]
        current_replicas = int((sts.get("status") or {}).get("currentReplicas") or 0)
        by_ordinal: dict[int, Obj] = {}
        condemned: list[Obj] = []
        for pod in pods:
            ordinal = ordinal_of(pod)
            if start <= ordinal < start + count and ordinal not in by_ordinal:
                by_ordinal[ordinal] = pod
            else:
                condemned.append(pod)
        condemned.sort(key=ordinal_of)
        requeue: float | None = None

        for pod in list(condemned):
            await self._reconcile_claims(sts, pod, ordinal_of(pod), condemned=True)

        for ordinal in range(start, start + count):
            pod = by_ordinal.get(ordinal)
            if pod is not None and is_finished(pod) and not is_terminating(pod):
                self.log.info("recreating a finished pod", extra={"kv": {
                    "key": key, "pod": pod["metadata"]["name"]}})
                await self._delete(sts, pod)
                if not parallel:
                    return None
                continue
            if pod is None:
                revision = revision_for_ordinal(sts, ordinal, current_name, update_name,
                                                current_replicas)
                source = current if revision == current_name else update
                await self._create(sts, ordinal, template_of(source), revision)
                if not parallel:
                    return None
                continue
            await self._reconcile_claims(sts, pod, ordinal, condemned=False)
            if parallel:
                continue
            if is_terminating(pod):
                return None  # OrderedReady: wait for it to go (and come back)
            if not is_healthy(pod, min_ready, now):
                if is_ready(pod) and min_ready:
                    requeue = float(min_ready)
                return requeue

        # Scale down, highest ordinal first.
        unhealthy = [p for p in [*by_ordinal.values(), *condemned]
                     if not is_healthy(p, min_ready, now)]
        for pod in reversed(condemned):
            if is_terminating(pod):
                if not parallel:
                    return None
                continue
            if (not parallel and not is_healthy(pod, min_ready, now) and unhealthy
                    and unhealthy[0] is not pod):
                return None
            await self._delete(sts, pod)
            if not parallel:
                return None

        if strategy_type(sts) != "RollingUpdate":
            return requeue
        # Rolling update: the highest ordinal not at the update revision goes first.
        partition = start + partition_of(sts)
        for ordinal in range(start + count - 1, partition - 1, -1):
            pod = by_ordinal.get(ordinal)
            if pod is None:
                return requeue
            if pod_revision(pod) != update_name:
                if not is_terminating(pod):
                    self.log.info("updating a pod", extra={"kv": {
                        "key": key, "pod": pod["metadata"]["name"], "revision": update_name}})
                    await self._delete(sts, pod)
                return None
            if not is_healthy(pod, min_ready, now):
                return requeue
        return requeue

    async def _create(self, sts: Obj, ordinal: int, template: Obj, revision: str) -> None:
        name = f"{sts['metadata']['name']}-{ordinal}"
        pod = statefulset_pod(sts, template, ordinal, revision)
        await self._reconcile_claims(sts, pod, ordinal, condemned=False, create=True)
        try:
            await self.client.create("pods", pod)
        except AlreadyExistsError:
            return  # the cache is behind our own create
        except ApiError as err:
            self.recorder.event(sts, WARNING, "FailedCreate",
                                f"create Pod {name} in StatefulSet {sts['metadata']['name']} "
                                f"failed error: {err}")
            raise
        self.recorder.event(sts, NORMAL, "SuccessfulCreate",
                            f"create Pod {name} in StatefulSet {sts['metadata']['name']} "
                            "successful")

    async def _reconcile_claims(self, sts: Obj, pod: Obj, ordinal: int, *, condemned: bool,
                                create: bool = False) -> None:
        """Creates the pod's missing claims (create) and keeps their ownerReferences as the
        retention policy says."""
        namespace = sts["metadata"].get("namespace") or "default"
        for template in claim_templates(sts):
            name = claim_name(template, sts, ordinal)
            claim = self.claims.get(f"{namespace}/{name}")
            if claim is None:
                if not create:
                    continue
                claim = statefulset_claim(sts, template, ordinal)
                claim["metadata"]["ownerReferences"] = claim_owner_refs(
                    sts, None, claim, False) or None
                if claim["metadata"]["ownerReferences"] is None:
                    del claim["metadata"]["ownerReferences"]
                try:
                    await self.client.create("persistentvolumeclaims", claim)
                except AlreadyExistsError:
                    continue
                except ApiError as err:
                    self.recorder.event(sts, WARNING, "FailedCreate",
                                        f"create Claim {name} for Pod "
                                        f"{pod['metadata']['name']} in StatefulSet "
                                        f"{sts['metadata']['name']} failed error: {err}")
                    raise
                self.recorder.event(sts, NORMAL, "SuccessfulCreate",
                                    f"create Claim {name} Pod {pod['metadata']['name']} in "
                                    f"StatefulSet {sts['metadata']['name']} success")
                continue
            if claim["metadata"].get("deletionTimestamp") and create:
                raise ConflictError(f"pvc {name} is being deleted")
            if not pod.get("metadata", {}).get("uid") and condemned:
                continue
            await self._set_claim_owners(sts, pod, claim, condemned)

    async def _set_claim_owners(self, sts: Obj, pod: Obj, claim: Obj, condemned: bool) -> None:
        """The claim's ownerReferences as the retention policy wants them, before its pod
        may go (a condemned pod's claim must name the pod first, or it would outlive it)."""
        owner = pod if pod["metadata"].get("uid") else None
        meta = claim["metadata"]
        for attempt in range(3):
            wanted = claim_owner_refs(sts, owner, claim, condemned)
            if wanted == owner_references(claim):
                return
            try:
                await self.client.patch("persistentvolumeclaims", meta["name"], {"metadata": {
                    "ownerReferences": wanted or None,
                    "resourceVersion": claim["metadata"]["resourceVersion"]}},
                    namespace=meta.get("namespace"))
                return
            except NotFoundError:
                return
            except ConflictError:
                if attempt == 2:
                    raise
                claim = await self.client.get("persistentvolumeclaims", meta["name"],
                                              namespace=meta.get("namespace"))

    async def _delete(self, sts: Obj, pod: Obj) -> None:
        meta = pod["metadata"]
        try:
            await self.client.delete("pods", meta["name"], namespace=meta.get("namespace"),
                                     uid=meta.get("uid", ""))
        except NotFoundError:
            return
        except ApiError as err:
            self.recorder.event(sts, WARNING, "FailedDelete",
                                f"delete Pod {meta['name']} in StatefulSet "
                                f"{sts['metadata']['name']} failed error: {err}")
            raise
        self.recorder.event(sts, NORMAL, "SuccessfulDelete",
                            f"delete Pod {meta['name']} in StatefulSet "
                            f"{sts['metadata']['name']} successful")

    async def _write_status(self, sts: Obj, status: Obj) -> None:
        if (sts.get("status") or {}) == status:
            return
        current = sts
        for attempt in range(2):
            try:
                await self.client.update_status(self.resource, {**current, "status": status})
                return
            except ConflictError:
                if attempt:
                    raise
                meta = sts["metadata"]
                current = await self.client.get(self.resource, meta["name"],
                                                namespace=meta.get("namespace"))
                if current["metadata"].get("uid") != meta.get("uid"):
                    return


__all__ = [
    "POD_INDEX_LABEL", "POD_NAME_LABEL", "StatefulSetController", "claim_name",
    "claim_owner_refs", "compute_status", "parent_and_ordinal", "revision_for_ordinal",
    "statefulset_claim", "statefulset_pod",
]

"""The disruption controller: each PodDisruptionBudget's status, from the pods it selects.

Kubernetes' pkg/controller/disruption. For a budget it counts:

- expectedPods: how many pods there should be. With an integer minAvailable
  that is the number of selected pods; with maxUnavailable or a percentage it
  is the scale of the pods' controllers (getExpectedScale): a pod owned by a
  ReplicaSet counts its ReplicaSet's spec.replicas, or its Deployment's when
  the ReplicaSet belongs to one, each controller once. Pods with no controller
  cannot be scaled for and are reported in an UnmanagedPods event.
- desiredHealthy: minAvailable (a percentage of expectedPods, rounded up), or
  expectedPods minus maxUnavailable (rounded up).
- currentHealthy: the selected pods that are Ready, not being deleted, and not
  in disruptedPods (evictions the apiserver approved whose deletion has not
  shown up yet).
- disruptionsAllowed = max(currentHealthy - desiredHealthy, 0), and the
  DisruptionAllowed condition (SufficientPods / InsufficientPods).

A disruptedPods entry whose pod is not deleted within the deletion timeout
(2 minutes in Kubernetes, `--disruption-deletion-timeout` here) is dropped,
and the budget is synced again when the earliest entry would expire. A sync
that cannot compute the status (a controller not found) fails safe: no
disruption is allowed (SyncFailed) until it can.
"""

from __future__ import annotations

import math
import time
from typing import Any

from kubelite.client import Client
from kubelite.errors import InvalidError, NotFoundError
from kubelite.events import NORMAL, WARNING, EventRecorder
from kubelite.informer import object_key, split_key
from kubelite.objects import now_rfc3339

from .base import Controller
from .controllerref import controller_ref, selector_of
from .informers import NAMESPACE_INDEX, InformerFactory
from .pods import is_ready, timestamp

Obj = dict[str, Any]

DELETION_TIMEOUT = 120.0  # Kubernetes' DeletionTimeout
DISRUPTION_ALLOWED = "DisruptionAllowed"


class ScaleError(Exception):
    """The expected number of pods cannot be computed (a controller is missing)."""


def scaled_value(value: int | str, total: int, *, round_up: bool) -> int:
    """Kubernetes' intstr.GetScaledValueFromIntOrPercent."""
    if isinstance(value, int):
        return value
    if not value.endswith("%"):
        raise InvalidError(f"invalid value for IntOrString: invalid value {value!r}")
    fraction = int(value[:-1]) * total / 100
    return math.ceil(fraction) if round_up else math.floor(fraction)


def selected_pods(pdb: Obj, pods: list[Obj]) -> list[Obj]:
    """The pods the budget's selector picks (null: none; {}: all of the namespace)."""
    try:
        selector = selector_of(pdb)
    except InvalidError:
        return []
    return [p for p in pods if selector.matches_object(p)]


def disruption_allowed_condition(status: Obj, *, allowed: bool, reason: str | None = None,
                                 message: str = "", now: str) -> Obj:
    """The DisruptionAllowed condition; its transition time moves only when it flips."""
    wanted = "True" if allowed else "False"
    old = next((c for c in status.get("conditions") or ()
                if c.get("type") == DISRUPTION_ALLOWED), None)
    since = old.get("lastTransitionTime") if old and old.get("status") == wanted else None
    return {"type": DISRUPTION_ALLOWED, "status": wanted,
            "observedGeneration": status.get("observedGeneration", 0),
            "lastTransitionTime": since or now,
            "reason": reason or ("SufficientPods" if allowed else "InsufficientPods"),
            "message": message}


class DisruptionController(Controller[str]):
    name = "disruption"

    def __init__(self, client: Client, factory: InformerFactory, *,
                 deletion_timeout: float = DELETION_TIMEOUT,
                 recorder: EventRecorder | None = None) -> None:
        self.pdb_informer = factory.informer("poddisruptionbudgets")
        self.pod_informer = factory.informer("pods")
        self.rs_informer = factory.informer("replicasets")
        self.deployment_informer = factory.informer("deployments")
        super().__init__(informers=[self.pdb_informer, self.pod_informer, self.rs_informer,
                                    self.deployment_informer])
        self.client = client
        self.deletion_timeout = deletion_timeout
        self.recorder = recorder or EventRecorder(client, component="disruption-controller")
        self.pdb_informer.add_handler(on_add=self.enqueue,
                                      on_update=lambda old, cur: self.enqueue(cur),
                                      on_delete=self.enqueue)
        self.pod_informer.add_handler(on_add=self._pod_changed, on_update=self._pod_updated,
                                      on_delete=self._pod_changed)
        # A scale change moves expectedPods before any pod changes.
        for informer in (self.rs_informer, self.deployment_informer):
            informer.add_handler(on_update=self._scale_changed)

    # -- event handlers ----------------------------------------------------------

    def _budgets_selecting(self, pod: Obj) -> list[Obj]:
        namespace = (pod.get("metadata") or {}).get("namespace") or ""
        return [pdb for pdb in self.pdb_informer.by_index(NAMESPACE_INDEX, namespace)
                if selected_pods(pdb, [pod])]

    def _pod_changed(self, pod: Obj) -> None:
        for pdb in self._budgets_selecting(pod):
            self.enqueue(pdb)

    def _pod_updated(self, old: Obj, cur: Obj) -> None:
        keys = {object_key(p) for p in self._budgets_selecting(cur)}
        if (old.get("metadata") or {}).get("labels") != (cur.get("metadata") or {}).get("labels"):
            keys |= {object_key(p) for p in self._budgets_selecting(old)}
        for key in keys:
            self.queue.add(key)

    def _scale_changed(self, old: Obj, cur: Obj) -> None:
        if (old.get("spec") or {}).get("replicas") == (cur.get("spec") or {}).get("replicas"):
            return
        namespace = cur["metadata"].get("namespace") or ""
        for pdb in self.pdb_informer.by_index(NAMESPACE_INDEX, namespace):
            self.enqueue(pdb)

    # -- the status --------------------------------------------------------------

    def _controller_scale(self, pod: Obj) -> tuple[str, int]:
        """(uid, spec.replicas) of the pod's scalable controller (Kubernetes' finders)."""
        ref = controller_ref(pod) or {}
        namespace = pod["metadata"].get("namespace") or ""
        if ref.get("kind") == "ReplicaSet":
            rs = self.rs_informer.get(f"{namespace}/{ref.get('name')}")
            if rs is not None and rs["metadata"].get("uid") == ref.get("uid"):
                owner = controller_ref(rs) or {}
                if owner.get("kind") == "Deployment":
                    deployment = self.deployment_informer.get(f"{namespace}/{owner.get('name')}")
                    if (deployment is not None
                            and deployment["metadata"].get("uid") == owner.get("uid")):
                        return owner["uid"], int(deployment["spec"].get("replicas", 1))
                else:
                    return ref["uid"], int(rs["spec"].get("replicas", 1))
        if ref.get("kind") == "Deployment":
            deployment = self.deployment_informer.get(f"{namespace}/{ref.get('name')}")
            if deployment is not None and deployment["metadata"].get("uid") == ref.get("uid"):
                return ref["uid"], int(deployment["spec"].get("replicas", 1))
        raise ScaleError(f'found no controllers for pod "{pod["metadata"].get("name")}"')

    def expected_scale(self, pods: list[Obj]) -> tuple[int, list[str]]:
        """(sum of the controllers' scales, names of pods without a controller)."""
        scales: dict[str, int] = {}
        unmanaged: list[str] = []
        for pod in pods:
            ref = controller_ref(pod)
            if ref is None:
                unmanaged.append(pod["metadata"].get("name", ""))
                continue
            if ref.get("uid") in scales:
                continue
            uid, scale = self._controller_scale(pod)
            scales[uid] = scale
        return sum(scales.values()), unmanaged

    def expected_and_desired(self, pdb: Obj, pods: list[Obj]) -> tuple[int, int, list[str]]:
        """(expectedPods, desiredHealthy, unmanaged pods): Kubernetes' getExpectedPodCount."""
        spec = pdb.get("spec") or {}
        if spec.get("maxUnavailable") is not None:
            expected, unmanaged = self.expected_scale(pods)
            unavailable = scaled_value(spec["maxUnavailable"], expected, round_up=True)
            return expected, max(expected - unavailable, 0), unmanaged
        min_available = spec.get("minAvailable")
        if isinstance(min_available, int):
            return len(pods), min_available, []
        if isinstance(min_available, str):
            expected, unmanaged = self.expected_scale(pods)
            return expected, scaled_value(min_available, expected, round_up=True), unmanaged
        return 0, 0, []

    def disrupted_pods(self, pdb: Obj, pods: list[Obj], now: float
                       ) -> tuple[dict[str, str], float | None]:
        """The disruptedPods entries still pending, and when the earliest one expires."""
        recorded = (pdb.get("status") or {}).get("disruptedPods") or {}
        kept: dict[str, str] = {}
        recheck: float | None = None
        for pod in pods:
            meta = pod["metadata"]
            if meta.get("deletionTimestamp") or meta.get("name") not in recorded:
                continue  # deleted as planned, or never evicted
            when = timestamp(recorded[meta["name"]]) or 0.0
            expires = when + self.deletion_timeout
            if expires < now:
                self.recorder.event(pod, WARNING, "NotDeleted",
                                    f"Pod was expected by PDB {object_key(pdb)} to be deleted "
                                    "but it wasn't")
                continue
            kept[meta["name"]] = recorded[meta["name"]]
            recheck = expires if recheck is None else min(recheck, expires)
        return kept, recheck

    def current_healthy(self, pods: list[Obj], disrupted: dict[str, str]) -> int:
        return sum(1 for p in pods
                   if not p["metadata"].get("deletionTimestamp")
                   and p["metadata"].get("name") not in disrupted and is_ready(p))

    async def sync(self, key: str) -> None:
        namespace, _ = split_key(key)
        pdb = self.pdb_informer.get(key)
        if pdb is None:
            return
        pods = selected_pods(pdb, self.pod_informer.by_index(NAMESPACE_INDEX, namespace))
        if not pods:
            self.recorder.event(pdb, NORMAL, "NoPods", "No matching pods found")
        try:
            expected, desired, unmanaged = self.expected_and_desired(pdb, pods)
        except (ScaleError, InvalidError) as err:
            self.recorder.event(pdb, WARNING, "CalculateExpectedPodCountFailed",
                                f"Failed to calculate the number of expected pods: {err}")
            await self._fail_safe(pdb, str(err))
            raise
        if unmanaged:
            self.recorder.event(pdb, WARNING, "UnmanagedPods",
                                "Pods selected by this PodDisruptionBudget were found to be "
                                "unmanaged. As a result, the status of the PDB cannot be "
                                "calculated correctly, which may result in undefined behavior. "
                                'To account for these pods please set ".spec.minAvailable" '
                                "field of the PDB to an integer value.")
        now = time.time()
        disrupted, recheck = self.disrupted_pods(pdb, pods, now)
        healthy = self.current_healthy(pods, disrupted)
        await self._update_status(pdb, healthy=healthy, desired=desired, expected=expected,
                                  disrupted=disrupted)
        if recheck is not None:
            self.queue.add_after(key, max(recheck - now, 0.0) + 0.05)

    async def _update_status(self, pdb: Obj, *, healthy: int, desired: int, expected: int,
                             disrupted: dict[str, str]) -> None:
        allowed = healthy - desired
        if expected <= 0 or allowed <= 0:
            allowed = 0
        old = pdb.get("status") or {}
        status: Obj = {"observedGeneration": pdb["metadata"].get("generation", 1),
                       "disruptionsAllowed": allowed, "currentHealthy": healthy,
                       "desiredHealthy": desired, "expectedPods": expected}
        if disrupted:
            status["disruptedPods"] = disrupted
        status["conditions"] = [
            *(c for c in old.get("conditions") or () if c.get("type") != DISRUPTION_ALLOWED),
            disruption_allowed_condition({**old, **status}, allowed=allowed > 0,
                                         now=now_rfc3339())]
        if status == old:
            return
        try:
            await self.client.update_status("poddisruptionbudgets", {**pdb, "status": status})
        except NotFoundError:
            pass

    async def _fail_safe(self, pdb: Obj, message: str) -> None:
        """No disruption allowed while the status cannot be computed (SyncFailed)."""
        old = pdb.get("status") or {}
        status = {**old, "disruptionsAllowed": 0}
        status["conditions"] = [
            *(c for c in old.get("conditions") or () if c.get("type") != DISRUPTION_ALLOWED),
            disruption_allowed_condition(old, allowed=False, reason="SyncFailed",
                                         message=message, now=now_rfc3339())]
        if status != old:
            try:
                await self.client.update_status("poddisruptionbudgets", {**pdb, "status": status})
            except NotFoundError:
                pass


__all__ = ["DELETION_TIMEOUT", "DisruptionController", "ScaleError", "scaled_value",
           "selected_pods"]

"""pods/eviction: a deletion that asks the pod's PodDisruptionBudget first.

Kubernetes' EvictionREST (pkg/registry/core/pod/storage/eviction.go), on the
registry's own verbs:

- a pod that is finished, Pending or already being deleted has disrupted
  nothing by the time it is evicted: it is deleted without consulting a budget;
- otherwise the budgets of the pod's namespace whose selector matches it are
  found; more than one is refused (Kubernetes answers 500; here
  FAILED_PRECONDITION, since INTERNAL means a kubelite bug), none means a plain
  delete;
- a pod that is not Ready, under a budget that is met anyway, is deleted
  without taking from the budget, on the resourceVersion it was judged by, so
  that a pod turning Ready meanwhile is not deleted on stale grounds;
- otherwise the budget's status is checked and decremented
  (disruptionsAllowed - 1, disruptedPods[pod] = now) on its resourceVersion,
  retried on conflict, and only then is the pod deleted gracefully. A budget
  with nothing to give answers TooManyRequests with a DisruptionBudget cause:
  the caller retries later, as `kubelite drain` does.

The disruptedPods entry tells the disruption controller not to count the pod
as healthy while its deletion is in flight; the controller drops the entry
once the pod is gone or after its timeout.

One difference from Kubernetes: its eviction handler skips a budget whose
selector is empty, although policy/v1 defines an empty selector as selecting
every pod of the namespace, and the disruption controller counts them so.
Here the eviction honours such a budget, so that no drain can break a budget
the controller reports.
"""

from __future__ import annotations

import json
from typing import Any

from kubelite.errors import (
    Cause,
    ConflictError,
    InvalidError,
    PreconditionFailedError,
    TooManyRequestsError,
)
from kubelite.objects import now_rfc3339
from kubelite.resources import lookup
from kubelite.selectors import selector_from_label_selector_spec

from .registry import Registry, Result

Obj = dict[str, Any]

#: Kubernetes' MaxDisruptedPodSize: evictions approved but not yet seen by the controller.
MAX_DISRUPTED_PODS = 2000
DISRUPTION_BUDGET_CAUSE = "DisruptionBudget"
VIOLATION_MESSAGE = "Cannot evict pod as it would violate the pod's disruption budget."
_RETRIES = 20

PODS = lookup("pods")
PDBS = lookup("poddisruptionbudgets")


def is_ready(pod: Obj) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or ():
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def can_ignore_budget(pod: Obj) -> bool:
    """Finished, Pending or being deleted: evicting it disrupts nothing more."""
    phase = (pod.get("status") or {}).get("phase")
    return (phase in ("Succeeded", "Failed", "Pending")
            or bool((pod.get("metadata") or {}).get("deletionTimestamp")))


def enforces_resource_version(pod: Obj) -> bool:
    """A live pod is deleted on the version it was judged by (it may turn Ready)."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")


def budget_selects(pdb: Obj, pod: Obj) -> bool:
    spec = pdb.get("spec") or {}
    try:
        selector = selector_from_label_selector_spec(spec.get("selector"))
    except InvalidError:
        return False  # an invalid selector matches nothing, as in Kubernetes
    return selector.matches((pod.get("metadata") or {}).get("labels") or {})


def set_disruption_allowed_condition(status: Obj, now: str) -> None:
    """Kubernetes' UpdateDisruptionAllowedCondition (component-helpers)."""
    allowed = int(status.get("disruptionsAllowed") or 0) > 0
    wanted = {"type": "DisruptionAllowed", "status": "True" if allowed else "False",
              "reason": "SufficientPods" if allowed else "InsufficientPods", "message": ""}
    conditions = [c for c in status.get("conditions") or () if c.get("type") != wanted["type"]]
    old = next((c for c in status.get("conditions") or ()
                if c.get("type") == wanted["type"]), None)
    if old is not None and old.get("status") == wanted["status"]:
        wanted["lastTransitionTime"] = old.get("lastTransitionTime") or now
    else:
        wanted["lastTransitionTime"] = now
    wanted["observedGeneration"] = status.get("observedGeneration", 0)
    status["conditions"] = [*conditions, wanted]


def too_many_requests(message: str, *, retry_after: int = 0) -> TooManyRequestsError:
    return TooManyRequestsError(VIOLATION_MESSAGE, retry_after=retry_after,
                                causes=[Cause(DISRUPTION_BUDGET_CAUSE, message)])


class Evictor:
    """Evicts pods through one registry: the budget's write, then the pod's deletion."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def evict(self, namespace: str, name: str, *, uid: str = "",
                    resource_version: str = "", grace: int | None = None,
                    dry_run: bool = False) -> Result:
        if not name:
            raise InvalidError("metadata.name: Required value: the pod to evict",
                               field="metadata.name")
        if grace is not None and grace < 0:
            raise InvalidError("deleteOptions.gracePeriodSeconds: Invalid value: must be 0 or "
                               "greater")
        ns = namespace or "default"
        for _ in range(_RETRIES):
            pod = await self._pod(ns, name, uid=uid, resource_version=resource_version)
            if not can_ignore_budget(pod):
                break
            pinned = resource_version
            if not pinned and enforces_resource_version(pod):
                # Pending now, but it may be Running and Ready by the time it goes.
                pinned = pod["metadata"]["resourceVersion"]
            try:
                return await self._delete(pod, uid=uid, resource_version=pinned, grace=grace,
                                          dry_run=dry_run)
            except PreconditionFailedError:
                if resource_version:
                    raise  # the caller's own precondition: no retry, as in Kubernetes
        else:
            raise ConflictError(f'too many conflicts evicting pods "{name}"')
        budgets = [pdb for pdb in await self._budgets(ns) if budget_selects(pdb, pod)]
        if len(budgets) > 1:
            names = ", ".join(sorted(b["metadata"]["name"] for b in budgets))
            raise PreconditionFailedError(
                "This pod has more than one PodDisruptionBudget, which the eviction "
                f"subresource does not support ({names}).")
        if not budgets:
            return await self._delete(pod, uid=uid, resource_version=resource_version,
                                      grace=grace, dry_run=dry_run)
        pdb = budgets[0]
        status = pdb.get("status") or {}
        spec = pdb.get("spec") or {}
        if not is_ready(pod) and (
                spec.get("unhealthyPodEvictionPolicy") == "AlwaysAllow"
                or (int(status.get("currentHealthy") or 0)
                    >= int(status.get("desiredHealthy") or 0) > 0)):
            # Not counted as healthy: deleting it costs the budget nothing, as long as
            # it is still the pod that was judged (not Ready) when it goes.
            try:
                return await self._delete(
                    pod, uid=uid, resource_version=resource_version
                    or pod["metadata"]["resourceVersion"], grace=grace, dry_run=dry_run)
            except PreconditionFailedError:
                if resource_version:
                    raise
                raise too_many_requests(f"The disruption budget {pdb['metadata']['name']} "
                                        "is still being processed by the server.",
                                        retry_after=10) from None
        await self._take_from_budget(pdb, name, dry_run=dry_run)
        return await self._delete(pod, uid=uid, resource_version=resource_version, grace=grace,
                                  dry_run=dry_run)

    async def _pod(self, ns: str, name: str, *, uid: str, resource_version: str) -> Obj:
        pod = json.loads(await self.registry.get(PODS, ns, name))
        if uid and uid != pod["metadata"].get("uid"):
            raise PreconditionFailedError(
                f"Precondition failed: UID in precondition: {uid}, UID in object meta: "
                f"{pod['metadata'].get('uid')}")
        if resource_version and resource_version != pod["metadata"].get("resourceVersion"):
            raise PreconditionFailedError(
                f"Precondition failed: ResourceVersion in precondition: {resource_version}, "
                f"ResourceVersion in object meta: {pod['metadata'].get('resourceVersion')}")
        return pod

    async def _budgets(self, ns: str) -> list[Obj]:
        page = await self.registry.list(PDBS, ns)
        return [json.loads(raw) for raw in page.items]

    async def _delete(self, pod: Obj, *, uid: str, resource_version: str, grace: int | None,
                      dry_run: bool) -> Result:
        meta = pod["metadata"]
        if dry_run:
            return Result(json.dumps(pod, separators=(",", ":")).encode())
        return await self.registry.delete(PODS, meta["namespace"], meta["name"], uid=uid,
                                          resource_version=resource_version, grace=grace)

    async def _take_from_budget(self, pdb: Obj, pod_name: str, *, dry_run: bool) -> None:
        """Kubernetes' checkAndDecrement, retried on conflict against a fresh read."""
        ns, name = pdb["metadata"]["namespace"], pdb["metadata"]["name"]
        for attempt in range(_RETRIES):
            if attempt:
                pdb = json.loads(await self.registry.get(PDBS, ns, name))
            status = dict(pdb.get("status") or {})
            if int(status.get("observedGeneration") or 0) < int(
                    pdb["metadata"].get("generation") or 0):
                raise too_many_requests(f"The disruption budget {name} is still being "
                                        "processed by the server.", retry_after=10)
            allowed = int(status.get("disruptionsAllowed") or 0)
            if allowed < 0:
                raise PreconditionFailedError(
                    f'poddisruptionbudgets.policy "{name}" is forbidden: pdb disruptions '
                    "allowed is negative")
            disrupted = dict(status.get("disruptedPods") or {})
            if len(disrupted) > MAX_DISRUPTED_PODS:
                raise PreconditionFailedError(
                    f'poddisruptionbudgets.policy "{name}" is forbidden: DisruptedPods map too '
                    "big - too many evictions not confirmed by PDB controller")
            if allowed == 0:
                raise too_many_requests(
                    f"The disruption budget {name} needs {status.get('desiredHealthy', 0)} "
                    f"healthy pods and has {status.get('currentHealthy', 0)} currently")
            if dry_run:
                return
            now = now_rfc3339()
            status["disruptionsAllowed"] = allowed - 1
            if allowed - 1 == 0:
                set_disruption_allowed_condition(status, now)
            disrupted[pod_name] = now
            status["disruptedPods"] = disrupted
            body = json.dumps({**pdb, "status": status}).encode()
            try:
                await self.registry.update(PDBS, ns, body, status=True)
                return
            except ConflictError:
                continue
        raise ConflictError(f'couldn\'t update PodDisruptionBudget "{name}" due to conflicts')


__all__ = ["DISRUPTION_BUDGET_CAUSE", "Evictor", "MAX_DISRUPTED_PODS", "VIOLATION_MESSAGE",
           "budget_selects", "can_ignore_budget", "set_disruption_allowed_condition"]

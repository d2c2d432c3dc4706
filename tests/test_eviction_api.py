"""pods/eviction against a real apiserver: budgets block, unblocked pods go, bad input
gets clean codes. No controller runs here: each test writes the budget's status
itself, as the disruption controller would."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from kubelite.client import Client
from kubelite.errors import (
    InvalidError,
    NotFoundError,
    PreconditionFailedError,
    TooManyRequestsError,
)
from kubelite.objects import now_rfc3339
from services.apiserver.eviction import DISRUPTION_BUDGET_CAUSE, VIOLATION_MESSAGE

Obj = dict[str, Any]


def pod(name: str, namespace: str, labels: dict[str, str] | None = None) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": labels or {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


def pdb(name: str, namespace: str, **spec: Any) -> Obj:
    spec.setdefault("selector", {"matchLabels": {"app": "web"}})
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


async def running(client: Client, name: str, namespace: str, *, ready: bool = True) -> Obj:
    current = await client.get("pods", name, namespace=namespace)
    flag = "True" if ready else "False"
    status = {"phase": "Running", "podIP": "127.88.0.1", "conditions": [
        {"type": "Ready", "status": flag, "lastTransitionTime": now_rfc3339()}]}
    return await client.update_status("pods", {**current, "status": status})


async def budget(client: Client, namespace: str, name: str = "web", *, allowed: int,
                 healthy: int = 3, desired: int = 2, **spec: Any) -> Obj:
    """A budget whose status says what a disruption controller would have computed."""
    created = await client.create("pdb", pdb(name, namespace, **spec))
    status = {"observedGeneration": created["metadata"]["generation"],
              "disruptionsAllowed": allowed, "currentHealthy": healthy,
              "desiredHealthy": desired, "expectedPods": healthy}
    return await client.update_status("pdb", {**created, "status": status})


async def gone_or_terminating(client: Client, name: str, namespace: str) -> bool:
    try:
        current = await client.get("pods", name, namespace=namespace)
    except NotFoundError:
        return True
    return bool(current["metadata"].get("deletionTimestamp"))


async def test_budget_with_no_disruption_left_answers_too_many_requests(
        client: Client, namespace: str) -> None:
    """A Ready pod under a budget that allows nothing stays, with a 429 naming the budget."""
    await client.create("pods", pod("a", namespace))
    await running(client, "a", namespace)
    await budget(client, namespace, allowed=0, healthy=2, desired=2, minAvailable=2)
    with pytest.raises(TooManyRequestsError) as caught:
        await client.evict("a", namespace=namespace)
    err = caught.value
    assert err.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert err.reason == "TooManyRequests"
    assert err.message == VIOLATION_MESSAGE
    assert [c.type for c in err.causes] == [DISRUPTION_BUDGET_CAUSE]
    assert "web" in err.causes[0].message and "needs 2 healthy pods" in err.causes[0].message
    assert not await gone_or_terminating(client, "a", namespace)


async def test_an_allowed_eviction_takes_from_the_budget_then_deletes(
        client: Client, namespace: str) -> None:
    """One disruption allowed: the first eviction goes and records the pod; the next is 429."""
    for name in ("a", "b"):
        await client.create("pods", pod(name, namespace))
        await running(client, name, namespace)
    await budget(client, namespace, allowed=1, maxUnavailable=1)
    await client.evict("a", namespace=namespace)
    assert await gone_or_terminating(client, "a", namespace)
    status = (await client.get("pdb", "web", namespace=namespace))["status"]
    assert status["disruptionsAllowed"] == 0
    assert set(status["disruptedPods"]) == {"a"}
    condition = next(c for c in status["conditions"] if c["type"] == "DisruptionAllowed")
    assert (condition["status"], condition["reason"]) == ("False", "InsufficientPods")
    with pytest.raises(TooManyRequestsError):
        await client.evict("b", namespace=namespace)
    assert not await gone_or_terminating(client, "b", namespace)


async def test_a_pod_without_a_budget_is_evicted(client: Client, namespace: str) -> None:
    await client.create("pods", pod("lonely", namespace, {"app": "other"}))
    await running(client, "lonely", namespace)
    await budget(client, namespace, allowed=0)  # selects app=web, not this pod
    await client.evict("lonely", namespace=namespace, grace_period_seconds=0)
    assert await gone_or_terminating(client, "lonely", namespace)


async def test_pods_that_are_not_healthy_go_without_taking_from_the_budget(
        client: Client, namespace: str) -> None:
    """Pending pods, and unready ones while the budget is met, are evictable at 0 allowed."""
    await client.create("pods", pod("pending", namespace))
    await client.create("pods", pod("unready", namespace))
    await running(client, "unready", namespace, ready=False)
    await budget(client, namespace, allowed=0, healthy=2, desired=2, minAvailable=2)
    await client.evict("pending", namespace=namespace)
    await client.evict("unready", namespace=namespace)
    assert await gone_or_terminating(client, "pending", namespace)
    assert await gone_or_terminating(client, "unready", namespace)
    status = (await client.get("pdb", "web", namespace=namespace))["status"]
    assert status["disruptionsAllowed"] == 0 and not status.get("disruptedPods")


async def test_an_unready_pod_under_a_broken_budget_is_refused(
        client: Client, namespace: str) -> None:
    """Unready, and the budget not met: evicting it would still count against the budget."""
    await client.create("pods", pod("unready", namespace))
    await running(client, "unready", namespace, ready=False)
    await budget(client, namespace, allowed=0, healthy=1, desired=2, minAvailable=2)
    with pytest.raises(TooManyRequestsError):
        await client.evict("unready", namespace=namespace)


async def test_a_budget_the_controller_has_not_seen_yet_refuses(
        client: Client, namespace: str) -> None:
    """observedGeneration behind the spec: the status may be stale, so 429."""
    await client.create("pods", pod("a", namespace))
    await running(client, "a", namespace)
    await client.create("pdb", pdb("web", namespace, minAvailable=1))  # status never computed
    with pytest.raises(TooManyRequestsError) as caught:
        await client.evict("a", namespace=namespace)
    assert "still being processed" in caught.value.causes[0].message


async def test_dry_run_changes_nothing(client: Client, namespace: str) -> None:
    await client.create("pods", pod("a", namespace))
    await running(client, "a", namespace)
    before = await budget(client, namespace, allowed=1, minAvailable=1)
    await client.evict("a", namespace=namespace, dry_run=True)
    after = await client.get("pdb", "web", namespace=namespace)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert not await gone_or_terminating(client, "a", namespace)


async def test_two_budgets_over_one_pod_are_refused(client: Client, namespace: str) -> None:
    await client.create("pods", pod("a", namespace))
    await running(client, "a", namespace)
    await budget(client, namespace, "one", allowed=1, minAvailable=1)
    await budget(client, namespace, "two", allowed=1, minAvailable=1)
    with pytest.raises(PreconditionFailedError) as caught:
        await client.evict("a", namespace=namespace)
    assert caught.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert "more than one PodDisruptionBudget" in caught.value.message
    assert not await gone_or_terminating(client, "a", namespace)


async def test_bad_requests_get_clean_codes(client: Client, namespace: str) -> None:
    """A missing pod, no name, a negative grace period, a stale precondition: no INTERNAL."""
    with pytest.raises(NotFoundError):
        await client.evict("missing", namespace=namespace)
    with pytest.raises(InvalidError):
        await client.evict("", namespace=namespace)
    created = await client.create("pods", pod("a", namespace))
    with pytest.raises(InvalidError):
        await client.evict("a", namespace=namespace, grace_period_seconds=-1)
    with pytest.raises(PreconditionFailedError):
        await client.evict("a", namespace=namespace, uid="not-the-uid")
    with pytest.raises(PreconditionFailedError):
        await client.evict("a", namespace=namespace, resource_version="1")
    await client.evict("a", namespace=namespace, uid=created["metadata"]["uid"])
    assert await gone_or_terminating(client, "a", namespace)


@pytest.mark.parametrize("spec, text", [
    ({"minAvailable": 1, "maxUnavailable": 1}, "cannot be both set"),
    ({"minAvailable": "150%"}, "must not be greater than 100%"),
    ({"maxUnavailable": -1}, "must be greater than or equal to 0"),
    ({"minAvailable": "half"}, "a valid percent string"),
    ({"minAvailable": 1, "selector": {"matchExpressions": [{"key": "a", "operator": "Is"}]}},
     "spec.selector"),
])
async def test_invalid_budgets_are_rejected(client: Client, namespace: str, spec: Obj,
                                            text: str) -> None:
    with pytest.raises(InvalidError) as caught:
        await client.create("poddisruptionbudgets", pdb("bad", namespace, **spec))
    assert text in str(caught.value)


async def test_a_budget_starts_with_an_empty_status_and_keeps_it_on_update(
        client: Client, namespace: str) -> None:
    """The status belongs to the status subresource: create and update cannot set it."""
    body = pdb("web", namespace, minAvailable="50%")
    created = await client.create("pdb", {**body, "status": {"disruptionsAllowed": 5}})
    assert created["status"]["disruptionsAllowed"] == 0
    updated = await client.update("pdb", {**created, "spec": {**created["spec"],
                                                              "minAvailable": 2},
                                          "status": {"disruptionsAllowed": 9}})
    assert updated["status"]["disruptionsAllowed"] == 0
    assert updated["spec"]["minAvailable"] == 2
    assert updated["metadata"]["generation"] == created["metadata"]["generation"] + 1

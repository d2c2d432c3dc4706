"""The disruption controller as a real controller manager: each budget's status follows
its pods and their controllers' scale.

Pure logic first (scaled values), then a controller manager running the
replicaset, deployment and disruption controllers against a real apiserver,
with a FakeKubelet making pods Running and Ready through the API.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from kubelite.client import Client
from kubelite.errors import ConflictError
from kubelite.objects import now_rfc3339
from services.controller.disruption import scaled_value
from tests.test_controller import (
    ControllerManager,
    FakeKubelet,
    bare_pod,
    deployment,
    eventually,
    mark_ready,
    wait_leader,
)

Obj = dict[str, Any]
DELETION_TIMEOUT = 2.0


def test_scaled_values_round_as_kubernetes_does() -> None:
    assert scaled_value(2, 10, round_up=True) == 2
    assert scaled_value("50%", 3, round_up=True) == 2
    assert scaled_value("50%", 3, round_up=False) == 1
    assert scaled_value("100%", 4, round_up=True) == 4
    assert scaled_value("0%", 4, round_up=True) == 0


@pytest.fixture(scope="module")
def disruption_manager(shared_apiserver, tmp_path_factory) -> Iterator[ControllerManager]:
    lease = f"kcm-{uuid.uuid4().hex[:8]}"
    manager = ControllerManager(
        shared_apiserver.target, tmp_path_factory.mktemp("disruption"), lease=lease,
        identity="kcm-disruption",
        extra=("--controllers", "replicaset,deployment,disruption",
               "--disruption-deletion-timeout", f"{DELETION_TIMEOUT}s")).start()
    try:
        wait_leader(manager, lease)
    except Exception:
        manager.kill()
        raise
    yield manager
    manager.stop()


@pytest.fixture
async def ns(disruption_manager: ControllerManager, namespace: str) -> str:
    return namespace


def pdb(name: str, namespace: str, selector: Obj | None, **spec: Any) -> Obj:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": selector, **spec}}


def condition(status: Obj) -> tuple[str, str]:
    found = next(c for c in status.get("conditions") or () if c["type"] == "DisruptionAllowed")
    return found["status"], found["reason"]


async def status_becomes(client: Client, namespace: str, name: str, want: Obj,
                         within: float = 20.0) -> Obj:
    """Waits until the budget's status has every field of want (and returns it)."""
    async def check() -> Obj | None:
        status = (await client.get("pdb", name, namespace=namespace)).get("status") or {}
        return status if all(status.get(k) == v for k, v in want.items()) else None

    return await eventually(check, timeout=within)


async def test_min_available_budget_over_a_deployment(client: Client, ns: str) -> None:
    """3 Ready replicas, minAvailable 2: one disruption allowed, SufficientPods."""
    async with FakeKubelet(client, ns):
        await client.create("deployments", deployment("web", ns, 3))
        created = await client.create("pdb", pdb("web", ns, {"matchLabels": {"app": "web"}},
                                                 minAvailable=2))
        status = await status_becomes(client, ns, "web", {
            "expectedPods": 3, "currentHealthy": 3, "desiredHealthy": 2,
            "disruptionsAllowed": 1,
            "observedGeneration": created["metadata"]["generation"]})
        assert condition(status) == ("True", "SufficientPods")

        # A spec change is observed: the budget now allows nothing.
        current = await client.get("pdb", "web", namespace=ns)
        current["spec"]["minAvailable"] = 3
        updated = await client.update("pdb", current)
        status = await status_becomes(client, ns, "web", {
            "desiredHealthy": 3, "disruptionsAllowed": 0,
            "observedGeneration": updated["metadata"]["generation"]})
        assert condition(status) == ("False", "InsufficientPods")


async def test_percentages_count_the_controllers_scale(client: Client, ns: str) -> None:
    """maxUnavailable 25% of a Deployment's replicas; scaling it up moves expectedPods
    before the new pods are Ready."""
    async with FakeKubelet(client, ns):
        await client.create("deployments", deployment("api", ns, 4))
        await client.create("pdb", pdb("api", ns, {"matchLabels": {"app": "api"}},
                                       maxUnavailable="25%"))
        await status_becomes(client, ns, "api", {
            "expectedPods": 4, "currentHealthy": 4, "desiredHealthy": 3,
            "disruptionsAllowed": 1})
    # No kubelet now: the new replicas stay Pending, yet they are expected.
    await client.patch("deployments", "api", {"spec": {"replicas": 8}}, namespace=ns)
    status = await status_becomes(client, ns, "api", {"expectedPods": 8, "desiredHealthy": 6})
    assert status["currentHealthy"] == 4 and status["disruptionsAllowed"] == 0


async def test_an_integer_min_available_counts_bare_pods(client: Client, ns: str) -> None:
    """Pods without a controller: expectedPods is the number selected."""
    for name in ("a", "b"):
        created = await client.create("pods", bare_pod(name, ns, {"tier": "db"}))
        await mark_ready(client, created)
    await client.create("pdb", pdb("db", ns, {"matchLabels": {"tier": "db"}}, minAvailable=1))
    await status_becomes(client, ns, "db", {"expectedPods": 2, "currentHealthy": 2,
                                            "disruptionsAllowed": 1})


async def test_a_null_selector_selects_nothing_and_an_empty_one_everything(
        client: Client, ns: str) -> None:
    for name in ("a", "b"):
        created = await client.create("pods", bare_pod(name, ns, {"x": name}))
        await mark_ready(client, created)
    await client.create("pdb", pdb("none", ns, None, minAvailable=1))
    await client.create("pdb", pdb("all", ns, {}, minAvailable=1))
    await status_becomes(client, ns, "all", {"expectedPods": 2, "currentHealthy": 2,
                                             "disruptionsAllowed": 1})
    status = await status_becomes(client, ns, "none", {"expectedPods": 0, "currentHealthy": 0,
                                                       "observedGeneration": 1})
    assert status["disruptionsAllowed"] == 0


async def test_percentage_over_unmanaged_pods_allows_nothing(client: Client, ns: str) -> None:
    """Bare pods have no scale to take a percentage of: warned about, and nothing allowed."""
    created = await client.create("pods", bare_pod("solo", ns, {"tier": "cache"}))
    await mark_ready(client, created)
    await client.create("pdb", pdb("cache", ns, {"matchLabels": {"tier": "cache"}},
                                   maxUnavailable="50%"))
    await status_becomes(client, ns, "cache", {"expectedPods": 0, "currentHealthy": 1,
                                               "disruptionsAllowed": 0})

    async def warned() -> bool:
        events = (await client.list("events", namespace=ns)).items
        return any(e.get("reason") == "UnmanagedPods" for e in events)

    await eventually(warned)


async def test_a_disrupted_pod_that_is_not_deleted_counts_again_after_the_timeout(
        client: Client, ns: str) -> None:
    """An eviction recorded in disruptedPods whose deletion never comes expires."""
    for name in ("a", "b", "c"):
        created = await client.create("pods", bare_pod(name, ns, {"app": "q"}))
        await mark_ready(client, created)
    await client.create("pdb", pdb("q", ns, {"matchLabels": {"app": "q"}}, minAvailable=1))
    await status_becomes(client, ns, "q", {"currentHealthy": 3, "disruptionsAllowed": 2})
    # What the eviction handler writes before it deletes a pod; here no deletion follows.
    while True:
        current = await client.get("pdb", "q", namespace=ns)
        status = {**current["status"], "disruptedPods": {"a": now_rfc3339()},
                  "disruptionsAllowed": 1}
        try:
            await client.update_status("pdb", {**current, "status": status})
            break
        except ConflictError:
            continue
    held = await status_becomes(client, ns, "q", {"currentHealthy": 2, "disruptionsAllowed": 1},
                                within=DELETION_TIMEOUT)
    assert set(held.get("disruptedPods") or {}) == {"a"}
    released = await status_becomes(client, ns, "q", {"currentHealthy": 3,
                                                      "disruptionsAllowed": 2})
    assert not released.get("disruptedPods")

"""The HPA controller against a real apiserver, with usage scripted.

The controller runs in this process on its own informers. Pods are created
through the API and marked Running and Ready as a kubelet would; the metrics
API's answer comes from a script (a Client whose `metrics` returns what the
test says), so every number the controller sees is known.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kubelite.client import Client
from kubelite.objects import now_rfc3339
from services.controller.hpa import HorizontalPodAutoscalerController, Readiness
from services.controller.informers import InformerFactory

from .e2e import eventually

Obj = dict[str, Any]


class ScriptedMetrics(Client):
    """A real client, except that `metrics("pods")` answers from `usage` (pod -> millicores)."""

    def __init__(self, target: str) -> None:
        super().__init__(target)
        self.usage: dict[str, int] = {}
        self.calls: list[str] = []  # the namespaces asked about

    async def metrics(self, resource: str, *, namespace: str | None = None, name: str = "",
                      label_selector: str = "") -> list[Obj]:
        self.calls.append(namespace or "")
        return [{"metadata": {"name": pod, "namespace": namespace},
                 "timestamp": now_rfc3339(), "window": "0.5s",
                 "containers": [{"name": "c", "usage": {"cpu": f"{m}m", "memory": "10Mi"}}]}
                for pod, m in self.usage.items()]


@contextlib.asynccontextmanager
async def running(client: Client,
                  **kwargs: Any) -> AsyncIterator[HorizontalPodAutoscalerController]:
    factory = InformerFactory(client)
    controller = HorizontalPodAutoscalerController(
        client, factory, readiness=Readiness(cpu_initialization_period=0), **kwargs)
    factory.start()
    task = asyncio.create_task(controller.run(2))
    try:
        yield controller
    finally:
        controller.shut_down()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await factory.stop()
        await controller.recorder.stop()


def deployment(name: str, replicas: int) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": {
                         "containers": [{"name": "c", "image": "x", "command": ["true"]}]}}}}


def hpa(name: str, *, lo: int = 1, hi: int = 5, target: int = 50, **spec: Any) -> Obj:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": name},
                     "minReplicas": lo, "maxReplicas": hi,
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                         "type": "Utilization", "averageUtilization": target}}}], **spec}}


async def ready_pod(client: Client, ns: str, app: str, name: str, cpu: str = "100m") -> Obj:
    created = await client.create("pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"containers": [{"name": "c", "image": "x", "command": ["true"],
                                 "resources": {"requests": {"cpu": cpu}}}]}}, namespace=ns)
    stamp = "2020-01-01T00:00:00Z"
    created["status"] = {"phase": "Running", "startTime": stamp, "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": stamp}]}
    return await client.update_status("pods", created)


@pytest.fixture
async def scripted(shared_apiserver) -> AsyncIterator[ScriptedMetrics]:
    async with ScriptedMetrics(shared_apiserver.target) as c:
        yield c


async def replicas(client: Client, ns: str, name: str) -> int:
    return (await client.get("deployments", name, namespace=ns))["spec"]["replicas"]


async def events(client: Client, ns: str, reason: str) -> list[Obj]:
    items = (await client.list("events", namespace=ns)).items
    return [e for e in items if e["reason"] == reason]


def condition(obj: Obj, type_: str) -> Obj:
    return next(c for c in obj["status"].get("conditions") or [] if c["type"] == type_)


async def test_scales_up_by_the_ratio_within_the_rate_limit(scripted: ScriptedMetrics,
                                                            namespace: str) -> None:
    """2 pods at 150% of a 100m request, target 50%: ceil(2 x 3) = 6, but one step grows
    to at most max(2 x 2, 4) = 4 (ScaleUpLimit); the next sync reaches maxReplicas 5
    (TooManyReplicas)."""
    await scripted.create("deployments", deployment("web", 2), namespace=namespace)
    for name in ("web-a", "web-b"):
        await ready_pod(scripted, namespace, "web", name)
    scripted.usage = {"web-a": 150, "web-b": 150}
    await scripted.create("horizontalpodautoscalers", hpa("web"), namespace=namespace)
    async with running(scripted, sync_period=60, downscale_stabilization=0):
        await eventually(lambda: _is(replicas(scripted, namespace, "web"), 4),
                         what="4 replicas")
        got = await eventually(lambda: _status_ready(scripted, namespace, "web"),
                               what="HPA status")
    status = got["status"]
    assert status["currentReplicas"] == 2 and status["desiredReplicas"] == 4
    assert status["currentMetrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "current": {"averageUtilization": 150, "averageValue": "150m"}}}]
    assert status["lastScaleTime"]
    assert condition(got, "AbleToScale")["reason"] == "SucceededRescale"
    assert condition(got, "ScalingActive")["reason"] == "ValidMetricFound"
    limited = condition(got, "ScalingLimited")
    assert (limited["status"], limited["reason"]) == ("True", "ScaleUpLimit")
    rescaled = await eventually(lambda: events(scripted, namespace, "SuccessfulRescale"),
                                what="a SuccessfulRescale event")
    assert rescaled[0]["message"] == ("New size: 4; reason: cpu resource utilization "
                                      "(percentage of request) above target")
    async with running(scripted, sync_period=60, downscale_stabilization=0):
        await eventually(lambda: _is(replicas(scripted, namespace, "web"), 5),
                         what="5 replicas")
        got = await eventually(lambda: _desired(scripted, namespace, "web", 5),
                               what="desiredReplicas 5")
    limited = condition(got, "ScalingLimited")
    assert (limited["status"], limited["reason"]) == ("True", "TooManyReplicas")


async def test_scale_down_waits_for_the_stabilization_window(scripted: ScriptedMetrics,
                                                             namespace: str) -> None:
    """Usage drops to 10%: the recommendation of 1 waits out a 2 s window (synced every
    0.3 s), and never goes below minReplicas 2."""
    await scripted.create("deployments", deployment("api", 4), namespace=namespace)
    for i in range(4):
        await ready_pod(scripted, namespace, "api", f"api-{i}")
    scripted.usage = {f"api-{i}": 50 for i in range(4)}
    await scripted.create("horizontalpodautoscalers", hpa("api", lo=2), namespace=namespace)
    loop = asyncio.get_running_loop()
    async with running(scripted, sync_period=0.3, downscale_stabilization=2.0) as controller:
        await eventually(lambda: controller.history.get(f"{namespace}/api"), what="a sync")
        started = loop.time()
        scripted.usage = {f"api-{i}": 10 for i in range(4)}
        await eventually(lambda: _is(replicas(scripted, namespace, "api"), 2), timeout=15,
                         interval=0.05, what="2 replicas")
        waited = loop.time() - started
        got = await eventually(lambda: _desired(scripted, namespace, "api", 2),
                               what="desiredReplicas 2")
    assert 1.5 <= waited <= 6, waited
    assert condition(got, "ScalingLimited")["reason"] == "TooFewReplicas"
    rescaled = await events(scripted, namespace, "SuccessfulRescale")
    assert rescaled[-1]["message"] == "New size: 2; reason: All metrics below target"


async def test_without_metrics_scaling_is_inactive(scripted: ScriptedMetrics,
                                                   namespace: str) -> None:
    """No usage for any pod: ScalingActive False FailedGetResourceMetric, TARGETS unknown,
    and the replicas stay as they are."""
    await scripted.create("deployments", deployment("idle", 3), namespace=namespace)
    await ready_pod(scripted, namespace, "idle", "idle-a")
    scripted.usage = {}
    await scripted.create("horizontalpodautoscalers", hpa("idle"), namespace=namespace)
    async with running(scripted, sync_period=60, downscale_stabilization=0):
        got = await eventually(lambda: _has_condition(scripted, namespace, "idle",
                                                      "ScalingActive"), what="ScalingActive")
    active = condition(got, "ScalingActive")
    assert (active["status"], active["reason"]) == ("False", "FailedGetResourceMetric")
    assert "no metrics returned from resource metrics API" in active["message"]
    assert got["status"]["currentMetrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "current": {}}}]
    assert await replicas(scripted, namespace, "idle") == 3
    assert await events(scripted, namespace, "FailedGetResourceMetric")


async def test_a_target_at_zero_replicas_disables_scaling(scripted: ScriptedMetrics,
                                                          namespace: str) -> None:
    await scripted.create("deployments", deployment("off", 0), namespace=namespace)
    await scripted.create("horizontalpodautoscalers", hpa("off"), namespace=namespace)
    async with running(scripted, sync_period=60, downscale_stabilization=0):
        got = await eventually(lambda: _has_condition(scripted, namespace, "off",
                                                      "ScalingActive"), what="ScalingActive")
    assert condition(got, "ScalingActive")["reason"] == "ScalingDisabled"
    assert await replicas(scripted, namespace, "off") == 0
    assert namespace not in scripted.calls


async def test_replicas_outside_the_bounds_are_brought_inside(scripted: ScriptedMetrics,
                                                              namespace: str) -> None:
    await scripted.create("deployments", deployment("wide", 9), namespace=namespace)
    await scripted.create("horizontalpodautoscalers", hpa("wide", lo=2, hi=4),
                          namespace=namespace)
    async with running(scripted, sync_period=60, downscale_stabilization=0):
        await eventually(lambda: _is(replicas(scripted, namespace, "wide"), 4), what="4")
    rescaled = await eventually(lambda: events(scripted, namespace, "SuccessfulRescale"),
                                what="a SuccessfulRescale event")
    assert rescaled[0]["message"] == ("New size: 4; reason: Current number of replicas above "
                                      "Spec.MaxReplicas")


async def test_an_unsupported_target_cannot_be_scaled(scripted: ScriptedMetrics,
                                                      namespace: str) -> None:
    spec = hpa("svc")
    spec["spec"]["scaleTargetRef"] = {"apiVersion": "v1", "kind": "Service", "name": "svc"}
    await scripted.create("horizontalpodautoscalers", spec, namespace=namespace)
    async with running(scripted, sync_period=60, downscale_stabilization=0):
        got = await eventually(lambda: _has_condition(scripted, namespace, "svc",
                                                      "AbleToScale"), what="AbleToScale")
    able = condition(got, "AbleToScale")
    assert (able["status"], able["reason"]) == ("False", "FailedGetScale")


async def _is(value: Any, expected: Any) -> bool:
    return (await value) == expected


async def _status_ready(client: Client, ns: str, name: str) -> Obj | None:
    got = await client.get("horizontalpodautoscalers", name, namespace=ns)
    return got if (got.get("status") or {}).get("currentMetrics") else None


async def _desired(client: Client, ns: str, name: str, n: int) -> Obj | None:
    got = await client.get("horizontalpodautoscalers", name, namespace=ns)
    return got if (got.get("status") or {}).get("desiredReplicas") == n else None


async def _has_condition(client: Client, ns: str, name: str, type_: str) -> Obj | None:
    got = await client.get("horizontalpodautoscalers", name, namespace=ns)
    types = {c["type"] for c in (got.get("status") or {}).get("conditions") or []}
    return got if type_ in types else None

"""Cluster-wide loops in the controller manager: namespace deletion and Event expiry.

The apiserver only marks a deleted namespace Terminating; a real controller
manager process empties it and lets it go. Events expire in the controller
manager too, after its --event-ttl.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from kubelite.client import Client
from kubelite.errors import NotFoundError, PreconditionFailedError, is_namespace_terminating
from kubelite.objects import now_rfc3339
from kubelite.resources import RESOURCES
from kubelite.testing import eventually

from .helpers import configmap, pod
from .test_controller import ControllerManager, deployment, wait_leader


def start_manager(target: str, workdir, *extra: str, env: dict[str, str] | None = None,
                  identity: str = "kcm-ns") -> ControllerManager:
    lease = f"kcm-{uuid.uuid4().hex[:8]}"
    manager = ControllerManager(target, workdir, lease=lease, identity=identity, extra=extra)
    manager.process.env = dict(env or {})
    manager.start()
    try:
        wait_leader(manager, lease)
    except Exception:
        manager.kill()
        raise
    return manager


@pytest.fixture(scope="module")
def manager(shared_apiserver, tmp_path_factory) -> Iterator[ControllerManager]:
    started = start_manager(shared_apiserver.target, tmp_path_factory.mktemp("kcm-ns"),
                            "--controllers", "*,-nodelifecycle")
    yield started
    started.stop()


async def gone(client: Client, resource: str, name: str, namespace: str | None = None) -> bool:
    try:
        await client.get(resource, name, namespace=namespace)
    except NotFoundError:
        return True
    return False


async def contents(client: Client, namespace: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for info in RESOURCES:
        if info.namespaced:
            names = [o["metadata"]["name"]
                     for o in (await client.list(info.plural, namespace=namespace)).items]
            if names:
                out[info.plural] = names
    return out


def condition(ns: dict, type_: str) -> dict:
    return next((c for c in (ns.get("status") or {}).get("conditions") or ()
                 if c["type"] == type_), {})


async def test_namespace_controller_empties_and_removes_a_terminating_namespace(
        manager: ControllerManager, client: Client, namespace: str) -> None:
    """Pods, ConfigMaps, a Deployment (with its ReplicaSet and pods) go; a finalizer holds."""
    await client.create("pods", pod("loose", namespace))  # bound to no node
    for i in range(3):
        await client.create("configmaps", configmap(f"c{i}", namespace))
    held = configmap("held", namespace)
    held["metadata"]["finalizers"] = ["example.com/hold"]
    await client.create("configmaps", held)
    await client.create("deployments", deployment("web", namespace, 2))
    await eventually(lambda: _count(client, "pods", namespace, 3), what="deployment pods")

    marked = await client.delete("namespaces", namespace)
    assert marked["status"]["phase"] == "Terminating"
    with pytest.raises(PreconditionFailedError) as err:
        await client.create("configmaps", configmap("late", namespace))
    assert err.value.reason == "Forbidden" and is_namespace_terminating(err.value)

    async def only_held_left() -> bool:
        return await contents(client, namespace) == {"configmaps": ["held"]}

    await eventually(only_held_left, what="everything but the held ConfigMap deleted")
    ns = await eventually(lambda: _with_condition(client, namespace,
                                                  "NamespaceFinalizersRemaining"),
                          what="NamespaceFinalizersRemaining condition")
    assert "example.com/hold" in condition(ns, "NamespaceFinalizersRemaining")["message"]
    assert ns["spec"]["finalizers"] == ["kubernetes"]  # held until the content is gone

    cm = await client.get("configmaps", "held", namespace=namespace)
    cm["metadata"]["finalizers"] = []
    await client.update("configmaps", cm)
    await eventually(lambda: gone(client, "namespaces", namespace), what="namespace gone")
    assert await contents(client, namespace) == {}
    # The name can be used again, with no trace of the terminating mark.
    await client.create("namespaces", {"metadata": {"name": namespace}})
    await client.create("configmaps", configmap("again", namespace))


async def _count(client: Client, resource: str, namespace: str, want: int) -> bool:
    return len((await client.list(resource, namespace=namespace)).items) >= want


async def _with_condition(client: Client, namespace: str, type_: str) -> dict | None:
    ns = await client.get("namespaces", namespace)
    return ns if condition(ns, type_).get("status") == "True" else None


async def test_deleting_namespace_releases_its_ips(manager: ControllerManager, client: Client,
                                                   namespace: str) -> None:
    """Services removed with their namespace give their ClusterIPs and NodePorts back."""
    svc = await client.create("services", {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "gone", "namespace": namespace},
        "spec": {"type": "NodePort", "selector": {"app": "gone"},
                 "ports": [{"port": 80, "targetPort": 8080}]}})
    ip, port = svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["nodePort"]
    await client.delete("namespaces", namespace)
    await eventually(lambda: gone(client, "namespaces", namespace), what="namespace gone")
    name = f"reuse-{port}"
    reuse = await client.create("services", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "NodePort", "selector": {"app": "x"}, "clusterIP": ip,
                 "ports": [{"port": 80, "targetPort": 8080, "nodePort": port}]}})
    assert reuse["spec"]["clusterIP"] == ip
    await client.delete("services", name, namespace="default")


def event(name: str, namespace: str, stamp: str) -> dict:
    return {"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": {"kind": "Pod", "name": "p", "namespace": namespace},
            "reason": "Test", "message": "m", "type": "Normal", "count": 1,
            "firstTimestamp": stamp, "lastTimestamp": stamp}


async def test_cluster_loops_wait_for_a_controller_manager(apiserver, tmp_path) -> None:
    """With no controller manager, a deleted namespace stays Terminating and old Events
    stay; once one leads, the namespace goes and Events older than --event-ttl expire."""
    async with Client(apiserver.target) as c:
        await c.create("namespaces", {"metadata": {"name": "doomed"}})
        await c.create("configmaps", configmap("c", "doomed"))
        await c.delete("namespaces", "doomed")
        await c.create("events", event("old", "default", "2020-01-01T00:00:00Z"))
        await c.create("events", event("fresh", "default", "2099-01-01T00:00:00Z"))
        await asyncio.sleep(1.0)
        assert (await c.get("namespaces", "doomed"))["status"]["phase"] == "Terminating"
        assert {e["metadata"]["name"] for e in (await c.list("events")).items} >= {"old",
                                                                                  "fresh"}
        manager = start_manager(apiserver.target, tmp_path, "--controllers",
                                "namespace,eventexpiry", "--event-ttl", "2s")
        try:
            await eventually(lambda: gone(c, "namespaces", "doomed"), what="namespace gone")
            await eventually(lambda: gone(c, "events", "old", "default"), what="old expired")
            # An Event that just happened lives for the TTL, then goes too.
            await c.create("events", event("recent", "default", now_rfc3339()))
            await asyncio.sleep(0.5)
            assert not await gone(c, "events", "recent", "default")
            await eventually(lambda: gone(c, "events", "recent", "default"), timeout=10,
                             what="recent expired after its TTL")
            assert not await gone(c, "events", "fresh", "default")
        finally:
            manager.stop()

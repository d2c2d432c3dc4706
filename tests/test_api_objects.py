"""Component tests of the API's object semantics against a real apiserver and Redis."""

from __future__ import annotations

import asyncio
import copy
import json

import grpc
import pytest

from kubelite.api.v1 import api_pb2, api_pb2_grpc
from kubelite.client import Client
from kubelite.errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidError,
    NotFoundError,
    PreconditionFailedError,
    is_namespace_terminating,
)

from .helpers import configmap, manifest, pod


async def test_initial_namespaces_exist(client: Client) -> None:
    """default and kube-system exist from the start."""
    names = {ns["metadata"]["name"] for ns in (await client.list("namespaces")).items}
    assert {"default", "kube-system"} <= names


async def test_real_manifests_are_accepted_unchanged(client: Client, namespace: str) -> None:
    """The nginx Deployment, Service and Pod from the Kubernetes docs are accepted as written."""
    for name, resource in [("nginx-deployment.yaml", "deployments"),
                           ("nginx-service.yaml", "services"), ("nginx-pod.yaml", "pods")]:
        obj = manifest(name)
        created = await client.create(resource, obj, namespace=namespace)
        assert created["metadata"]["name"] == obj["metadata"]["name"]
        assert created["metadata"]["namespace"] == namespace
        assert created["metadata"]["uid"] and created["metadata"]["resourceVersion"]
        stored = await client.get(resource, obj["metadata"]["name"], namespace=namespace)
        assert stored == created


@pytest.mark.parametrize(
    ("mutate", "resource", "needle"),
    [
        (lambda d: d["spec"].__setitem__("replicas", "three"), "deployments", "spec.replicas"),
        (lambda d: d["spec"]["template"]["spec"].__setitem__(
            "contianers", d["spec"]["template"]["spec"].pop("containers")),
         "deployments", "contianers"),
        (lambda d: d["metadata"].__setitem__("name", "Nginx-Deployment"), "deployments",
         "metadata.name"),
    ],
    ids=["replicas-three", "misspelt-containers", "uppercase-name"],
)
async def test_invalid_manifests_are_rejected_and_not_stored(
    client: Client, namespace: str, mutate, resource: str, needle: str
) -> None:
    """Schema and name violations get INVALID_ARGUMENT naming the field; nothing is stored."""
    obj = manifest("nginx-deployment.yaml")
    mutate(obj)
    with pytest.raises(InvalidError) as err:
        await client.create(resource, obj, namespace=namespace)
    assert needle in str(err.value)
    assert (await client.list(resource, namespace=namespace)).items == []


async def test_two_mib_configmap_is_rejected(client: Client, namespace: str) -> None:
    """An object over 1.5 MiB is INVALID_ARGUMENT and is not stored."""
    big = configmap("big", namespace, {"blob": "x" * (2 * 1024 * 1024)})
    with pytest.raises(InvalidError) as err:
        await client.create("configmaps", big)
    assert "too large" in str(err.value)
    with pytest.raises(NotFoundError):
        await client.get("configmaps", "big", namespace=namespace)


async def test_malformed_requests_are_invalid_not_internal(shared_apiserver) -> None:
    """Garbage JSON, unknown resources and wrong kinds are INVALID_ARGUMENT, never INTERNAL."""
    async with grpc.aio.insecure_channel(shared_apiserver.target) as channel:
        stub = api_pb2_grpc.ApiStub(channel)
        bad = [
            api_pb2.CreateRequest(resource="pods", object=b"{not json"),
            api_pb2.CreateRequest(resource="pods", object=b"[1, 2]"),
            api_pb2.CreateRequest(resource="gizmos", object=b"{}"),
            api_pb2.CreateRequest(resource="pods", object=json.dumps(
                {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a"}}
            ).encode()),
            api_pb2.CreateRequest(resource="pods", object=json.dumps(
                {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"},
                 "spec": {"containers": []}}).encode()),
            api_pb2.CreateRequest(resource="configmaps", object=json.dumps(
                {"metadata": {"name": "x", "labels": {"bad key!": "v"}}}).encode()),
        ]
        for request in bad:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.Create(request)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.List(api_pb2.ListRequest(resource="pods", label_selector="a in (b"))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.List(api_pb2.ListRequest(resource="pods", field_selector="spec.foo=x"))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.List(api_pb2.ListRequest(resource="pods", limit=2,
                                                continue_token="garbage"))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_create_twice_is_already_exists(client: Client, namespace: str) -> None:
    """A second create of the same name is ALREADY_EXISTS."""
    await client.create("configmaps", configmap("a", namespace))
    with pytest.raises(AlreadyExistsError):
        await client.create("configmaps", configmap("a", namespace))


async def test_create_in_missing_namespace_is_not_found(client: Client) -> None:
    """Creating in a namespace that does not exist is NOT_FOUND."""
    with pytest.raises(NotFoundError) as err:
        await client.create("configmaps", configmap("a", "no-such-namespace"))
    assert "no-such-namespace" in str(err.value)


async def test_server_side_defaults(client: Client, namespace: str) -> None:
    """Kubernetes' defaults are applied: strategy 25%/25%, history 10, restartPolicy, ..."""
    deploy = await client.create("deployments", manifest("nginx-deployment.yaml"),
                                 namespace=namespace)
    spec = deploy["spec"]
    assert spec["strategy"] == {"type": "RollingUpdate",
                                "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    pod_spec = spec["template"]["spec"]
    assert pod_spec["restartPolicy"] == "Always"
    assert pod_spec["terminationGracePeriodSeconds"] == 30
    assert pod_spec["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    svc = await client.create("services", manifest("nginx-service.yaml"), namespace=namespace)
    assert svc["spec"]["type"] == "ClusterIP"
    assert svc["spec"]["sessionAffinity"] == "None"
    p = await client.create("pods", pod("p", namespace))
    assert p["status"]["phase"] == "Pending"
    assert p["spec"]["schedulerName"] == "default-scheduler"
    assert p["metadata"]["creationTimestamp"].endswith("Z")


async def test_generation_moves_only_with_spec(client: Client, namespace: str) -> None:
    """metadata.generation is bumped by spec changes, not by label or status changes."""
    d = await client.create("deployments", manifest("nginx-deployment.yaml"), namespace=namespace)
    assert d["metadata"]["generation"] == 1
    d = await client.patch("deployments", d["metadata"]["name"],
                           {"metadata": {"labels": {"tier": "web"}}}, namespace=namespace)
    assert d["metadata"]["generation"] == 1
    d["status"] = {"replicas": 3}
    d = await client.update_status("deployments", d)
    assert d["metadata"]["generation"] == 1
    d = await client.patch("deployments", d["metadata"]["name"], {"spec": {"replicas": 5}},
                           namespace=namespace)
    assert d["metadata"]["generation"] == 2


async def test_update_ignores_status_and_update_status_ignores_spec(
    client: Client, namespace: str
) -> None:
    """Status changes only through UpdateStatus; UpdateStatus never changes spec or labels."""
    d = await client.create("deployments", manifest("nginx-deployment.yaml"), namespace=namespace)
    changed = copy.deepcopy(d)
    changed["status"] = {"replicas": 99}
    changed["spec"]["replicas"] = 4
    after = await client.update("deployments", changed)
    assert after["spec"]["replicas"] == 4
    assert after["status"].get("replicas") is None
    changed = copy.deepcopy(after)
    changed["status"] = {"replicas": 7}
    changed["spec"]["replicas"] = 1
    changed["metadata"]["labels"] = {"sneaky": "yes"}
    after = await client.update_status("deployments", changed)
    assert after["status"]["replicas"] == 7
    assert after["spec"]["replicas"] == 4
    assert "sneaky" not in after["metadata"].get("labels", {})


async def test_noop_update_does_not_write(client: Client, namespace: str) -> None:
    """An update that changes nothing keeps the resourceVersion (no event, no write)."""
    cm = await client.create("configmaps", configmap("same", namespace, {"a": "1"}))
    again = await client.update("configmaps", cm)
    assert again["metadata"]["resourceVersion"] == cm["metadata"]["resourceVersion"]


async def test_stale_update_conflicts_and_only_one_wins(client: Client, namespace: str) -> None:
    """Two updates carrying the same resourceVersion: exactly one succeeds, one is ABORTED."""
    cm = await client.create("configmaps", configmap("c", namespace, {"v": "0"}))
    first, second = copy.deepcopy(cm), copy.deepcopy(cm)
    first["data"]["v"] = "first"
    second["data"]["v"] = "second"
    results = await asyncio.gather(client.update("configmaps", first),
                                   client.update("configmaps", second), return_exceptions=True)
    wins = [r for r in results if isinstance(r, dict)]
    losses = [r for r in results if isinstance(r, ConflictError)]
    assert len(wins) == 1 and len(losses) == 1, results
    stored = await client.get("configmaps", "c", namespace=namespace)
    assert stored["data"]["v"] == wins[0]["data"]["v"]


async def test_fifty_concurrent_increments_end_at_plus_fifty(
    client: Client, namespace: str
) -> None:
    """50 concurrent get-and-update increments, retrying on conflict, end at exactly +50."""
    await client.create("configmaps", configmap("counter", namespace, {"n": "0"}))
    conflicts = 0

    async def increment() -> None:
        nonlocal conflicts
        while True:
            cm = await client.get("configmaps", "counter", namespace=namespace)
            cm["data"]["n"] = str(int(cm["data"]["n"]) + 1)
            try:
                await client.update("configmaps", cm)
                return
            except ConflictError:
                conflicts += 1

    await asyncio.gather(*(increment() for _ in range(50)))
    final = await client.get("configmaps", "counter", namespace=namespace)
    assert final["data"]["n"] == "50"
    assert conflicts > 0  # the race was real


async def test_merge_patch(client: Client, namespace: str) -> None:
    """Patch applies a JSON merge patch: null deletes, maps merge, lists replace."""
    await client.create("configmaps", configmap("p", namespace, {"a": "1", "b": "2"},
                                                labels={"x": "1"}))
    out = await client.patch("configmaps", "p", {"data": {"a": None, "c": "3"},
                                                 "metadata": {"labels": {"y": "2"}}},
                             namespace=namespace)
    assert out["data"] == {"b": "2", "c": "3"}
    assert out["metadata"]["labels"] == {"x": "1", "y": "2"}
    with pytest.raises(ConflictError):
        await client.patch("configmaps", "p", {"metadata": {"resourceVersion": "1"}},
                           namespace=namespace)
    with pytest.raises(InvalidError):
        await client.patch("configmaps", "p", {"data": {"a": 5}}, namespace=namespace)


async def test_delete_preconditions(client: Client, namespace: str) -> None:
    """A uid or resourceVersion precondition that does not hold is FAILED_PRECONDITION."""
    cm = await client.create("configmaps", configmap("d", namespace))
    with pytest.raises(PreconditionFailedError):
        await client.delete("configmaps", "d", namespace=namespace, uid="not-the-uid")
    with pytest.raises(PreconditionFailedError):
        await client.delete("configmaps", "d", namespace=namespace, resource_version="1")
    await client.delete("configmaps", "d", namespace=namespace, uid=cm["metadata"]["uid"])
    with pytest.raises(NotFoundError):
        await client.get("configmaps", "d", namespace=namespace)
    with pytest.raises(NotFoundError):
        await client.delete("configmaps", "d", namespace=namespace)


async def test_finalizers_hold_deletion_until_removed(client: Client, namespace: str) -> None:
    """Deleting an object with finalizers marks it; removing the last finalizer deletes it."""
    cm = configmap("f", namespace)
    cm["metadata"]["finalizers"] = ["example.com/hold"]
    await client.create("configmaps", cm)
    marked = await client.delete("configmaps", "f", namespace=namespace)
    assert marked["metadata"]["deletionTimestamp"]
    still = await client.get("configmaps", "f", namespace=namespace)
    assert still["metadata"]["finalizers"] == ["example.com/hold"]
    await client.patch("configmaps", "f", {"metadata": {"finalizers": None}}, namespace=namespace)
    with pytest.raises(NotFoundError):
        await client.get("configmaps", "f", namespace=namespace)


async def test_bound_pod_deletes_gracefully(client: Client, namespace: str) -> None:
    """A pod on a node gets deletionTimestamp + grace; the kubelet's grace-0 delete removes it."""
    await client.create("pods", pod("g", namespace, node="node-a"))
    terminating = await client.delete("pods", "g", namespace=namespace)
    assert terminating["metadata"]["deletionGracePeriodSeconds"] == 30
    assert terminating["metadata"]["deletionTimestamp"]
    assert (await client.get("pods", "g", namespace=namespace))["metadata"]["deletionTimestamp"]
    await client.delete("pods", "g", namespace=namespace, grace_period_seconds=0)
    with pytest.raises(NotFoundError):
        await client.get("pods", "g", namespace=namespace)


async def test_unscheduled_pod_deletes_at_once(client: Client, namespace: str) -> None:
    """A pod no kubelet runs has nothing to wait for and is deleted immediately."""
    await client.create("pods", pod("u", namespace))
    await client.delete("pods", "u", namespace=namespace)
    with pytest.raises(NotFoundError):
        await client.get("pods", "u", namespace=namespace)


async def test_bind_sets_node_once(client: Client, namespace: str) -> None:
    """Bind sets spec.nodeName and PodScheduled; a second bind conflicts."""
    await client.create("pods", pod("b", namespace))
    bound = await client.bind("b", "node-1", namespace=namespace)
    assert bound["spec"]["nodeName"] == "node-1"
    assert any(c["type"] == "PodScheduled" and c["status"] == "True"
               for c in bound["status"]["conditions"])
    with pytest.raises(ConflictError):
        await client.bind("b", "node-2", namespace=namespace)


async def test_deleting_namespace_marks_it_terminating(client: Client, namespace: str) -> None:
    """A deleted namespace turns Terminating, keeps its finalizer and refuses new content.

    Emptying and removing it is the controller manager's namespace controller's
    work: see tests/test_namespace_controller.py.
    """
    created = await client.get("namespaces", namespace)
    assert created["spec"]["finalizers"] == ["kubernetes"]
    await client.create("configmaps", configmap("c0", namespace))
    marked = await client.delete("namespaces", namespace)
    assert marked["status"]["phase"] == "Terminating"
    assert marked["metadata"]["deletionTimestamp"]
    assert marked["spec"]["finalizers"] == ["kubernetes"]
    with pytest.raises(PreconditionFailedError) as err:
        await client.create("configmaps", configmap("late", namespace))
    assert err.value.reason == "Forbidden"
    assert is_namespace_terminating(err.value)
    again = await client.delete("namespaces", namespace)  # deleting again changes nothing
    assert again["metadata"]["deletionTimestamp"] == marked["metadata"]["deletionTimestamp"]
    # No controller manager runs here, so nothing empties it: the apiserver itself
    # no longer deletes content.
    await asyncio.sleep(0.5)
    assert (await client.get("namespaces", namespace))["status"]["phase"] == "Terminating"
    assert [c["metadata"]["name"] for c in
            (await client.list("configmaps", namespace=namespace)).items] == ["c0"]


async def test_namespace_without_finalizers_is_deleted_at_once(client: Client,
                                                               namespace: str) -> None:
    """As in Kubernetes: with spec.finalizers emptied, nothing holds a deleted namespace."""
    ns = await client.get("namespaces", namespace)
    ns["spec"]["finalizers"] = []
    await client.update("namespaces", ns)
    await client.delete("namespaces", namespace)
    with pytest.raises(NotFoundError):
        await client.get("namespaces", namespace)
    # The name is free again, and content may be created in the new namespace.
    await client.create("namespaces", {"metadata": {"name": namespace}})
    await client.create("configmaps", configmap("fresh", namespace))


async def test_protected_namespace_cannot_be_deleted(client: Client) -> None:
    """default and kube-system may not be deleted."""
    with pytest.raises(PreconditionFailedError):
        await client.delete("namespaces", "default")


async def test_label_and_field_selectors_on_list(client: Client, namespace: str) -> None:
    """List filters by every label operator and by the supported fields."""
    await client.create("pods", pod("a", namespace, labels={"app": "web", "tier": "fe"},
                                    node="n1"))
    await client.create("pods", pod("b", namespace, labels={"app": "web"}, node="n2"))
    await client.create("pods", pod("c", namespace, labels={"app": "db"}))

    async def names(**kw) -> list[str]:
        items = (await client.list("pods", namespace=namespace, **kw)).items
        return sorted(p["metadata"]["name"] for p in items)

    assert await names(label_selector="app=web") == ["a", "b"]
    assert await names(label_selector="app==web,tier=fe") == ["a"]
    assert await names(label_selector="app!=web") == ["c"]
    assert await names(label_selector="app in (db, cache)") == ["c"]
    assert await names(label_selector="app notin (db)") == ["a", "b"]
    assert await names(label_selector="tier") == ["a"]
    assert await names(label_selector="!tier") == ["b", "c"]
    assert await names(field_selector="spec.nodeName=n2") == ["b"]
    assert await names(field_selector="spec.nodeName=") == ["c"]
    assert await names(field_selector="metadata.name!=a,status.phase=Pending") == ["b", "c"]
    assert await names(field_selector=f"metadata.namespace={namespace}") == ["a", "b", "c"]


async def test_list_pages_with_limit_and_continue(client: Client, namespace: str) -> None:
    """limit/continue pages through every object once, in name order."""
    for i in range(25):
        await client.create("configmaps", configmap(f"cm-{i:02d}", namespace,
                                                    labels={"even": str(i % 2 == 0).lower()}))
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await client.list("configmaps", namespace=namespace, limit=10,
                                 continue_token=token)
        pages += 1
        assert len(page.items) <= 10
        seen += [c["metadata"]["name"] for c in page.items]
        token = page.continue_token
        if not token:
            break
    assert pages == 3
    assert seen == [f"cm-{i:02d}" for i in range(25)]
    evens = await client.list("configmaps", namespace=namespace, label_selector="even=true",
                              limit=5)
    assert [c["metadata"]["name"] for c in evens.items] == [f"cm-{i:02d}" for i in range(0, 10, 2)]
    assert evens.continue_token


async def test_cluster_scoped_objects_ignore_namespace(client: Client) -> None:
    """Nodes are cluster-scoped: no namespace is stored, any requested one is ignored."""
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-zz", "namespace": "x"},
            "status": {"capacity": {"cpu": "2"}}}
    created = await client.create("nodes", node)
    assert "namespace" not in created["metadata"]
    assert created["status"]["capacity"] == {"cpu": "2"}  # kubelets register with status
    got = await client.get("no", "node-zz", namespace="whatever")
    assert got["metadata"]["uid"] == created["metadata"]["uid"]
    await client.delete("nodes", "node-zz")


async def test_unimplemented_fields_warn(client: Client, namespace: str) -> None:
    """A field the schema allows but kubelite ignores is accepted with a warning."""
    warnings: list[str] = []
    async with Client(client.target, on_warning=warnings.append) as c:
        p = pod("vol", namespace)
        p["spec"]["volumes"] = [{"name": "data", "emptyDir": {}},
                                {"name": "share", "nfs": {"server": "nfs", "path": "/x"}}]
        await c.create("pods", p)
    # emptyDir is implemented; an nfs volume is not.
    assert [w for w in warnings if "spec.volumes" in w] == [
        "spec.volumes[1].nfs: volume type not implemented by kubelite; a kubelet refuses the pod"]


async def test_short_names_resolve(client: Client, namespace: str) -> None:
    """Kubernetes' short names and kinds name the same resources."""
    await client.create("cm", configmap("s", namespace))
    for name in ("configmaps", "configmap", "ConfigMap", "cm"):
        assert (await client.get(name, "s", namespace=namespace))["metadata"]["name"] == "s"
    for name in ("po", "deploy", "rs", "svc", "ep", "no", "ns", "ev", "hpa", "lease", "pdb"):
        await client.list(name)


async def test_health_and_reflection(shared_apiserver) -> None:
    """The apiserver serves gRPC health (SERVING) and reflection listing the API service."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    async with grpc.aio.insecure_channel(shared_apiserver.target) as channel:
        resp = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)

        async def requests():
            yield reflection_pb2.ServerReflectionRequest(list_services="")

        async for answer in stub.ServerReflectionInfo(requests()):
            names = {s.name for s in answer.list_services_response.service}
            assert "kubelite.api.v1.Api" in names
            break


async def test_new_replicaset_can_be_scaled_before_any_status(client: Client,
                                                              namespace: str) -> None:
    """A ReplicaSet is patchable and updatable right after create: its initial status is
    schema-valid, and Update ignores whatever status it is sent."""
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "r1"},
          "spec": {"replicas": 0, "selector": {"matchLabels": {"a": "b"}},
                   "template": {"metadata": {"labels": {"a": "b"}},
                                "spec": {"containers": [{"name": "c", "image": "x"}]}}}}
    created = await client.create("replicasets", rs, namespace=namespace)
    assert created["status"] == {"replicas": 0}
    patched = await client.patch("replicasets", "r1", {"spec": {"replicas": 2}},
                                 namespace=namespace)
    assert patched["spec"]["replicas"] == 2
    patched["status"] = {}
    patched["spec"]["replicas"] = 3
    assert (await client.update("replicasets", patched))["spec"]["replicas"] == 3

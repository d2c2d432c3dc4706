"""The REST face over HTTP against a real apiserver: codes, Status errors, patches,
subresources, watch semantics, Tables and discovery, and that a write through one
face is seen through the other."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from kubelite.client import Client
from kubelite.localcluster import free_port

from .helpers import pod

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


class Rest:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session, self.base = session, base

    async def call(self, method: str, path: str, body: Any = None, *,
                   content_type: str = "application/json",
                   headers: dict[str, str] | None = None) -> tuple[int, Any]:
        data = None if body is None else (body if isinstance(body, bytes)
                                          else json.dumps(body).encode())
        async with self.session.request(
                method, self.base + path, data=data,
                headers={"Content-Type": content_type, **(headers or {})}) as resp:
            text = await resp.read()
            try:
                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, text.decode()


@pytest.fixture
async def server(apiserver_factory) -> AsyncIterator[tuple[Rest, Client, Any]]:
    port = free_port()
    api = apiserver_factory("--rest-listen", f"127.0.0.1:{port}", "--history", "40",
                            "--watch-cache-size", "40")
    async with aiohttp.ClientSession() as session, Client(api.target) as client:
        yield Rest(session, f"http://127.0.0.1:{port}"), client, api


@pytest.fixture
def ns() -> str:
    return f"r-{uuid.uuid4().hex[:8]}"


async def make_ns(rest: Rest, name: str) -> None:
    code, _ = await rest.call("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    assert code == 201


async def test_discovery_lists_what_is_served_with_verbs_short_names_and_categories(
        server) -> None:
    rest, _, _ = server
    code, version = await rest.call("GET", "/version")
    assert code == 200 and version["major"] == "1" and version["gitVersion"].startswith("v1.")
    _, core = await rest.call("GET", "/api/v1")
    by_name = {r["name"]: r for r in core["resources"]}
    assert by_name["pods"]["shortNames"] == ["po"] and by_name["pods"]["categories"] == ["all"]
    assert "watch" in by_name["pods"]["verbs"] and by_name["pods"]["namespaced"] is True
    assert {"pods/status", "pods/log", "pods/binding", "pods/eviction"} <= by_name.keys()
    assert "categories" not in by_name["configmaps"]
    assert by_name["secrets"]["namespaced"] is True and not by_name["secrets"].get("shortNames")
    # Kinds kubelite does not serve are absent (kubectl: "doesn't have a resource type").
    assert "serviceaccounts" not in by_name and "componentstatuses" not in by_name
    _, groups = await rest.call("GET", "/apis")
    names = [g["name"] for g in groups["groups"]]
    assert {"apps", "autoscaling", "coordination.k8s.io", "metrics.k8s.io"} <= set(names)
    _, apps = await rest.call("GET", "/apis/apps/v1")
    scale = next(r for r in apps["resources"] if r["name"] == "deployments/scale")
    assert (scale["group"], scale["version"], scale["kind"]) == ("autoscaling", "v1", "Scale")
    apps_by_name = {r["name"]: r for r in apps["resources"]}
    assert apps_by_name["daemonsets"]["shortNames"] == ["ds"]
    assert apps_by_name["daemonsets"]["categories"] == ["all"]
    assert "daemonsets/status" in apps_by_name and "daemonsets/scale" not in apps_by_name
    _, batch = await rest.call("GET", "/apis/batch/v1")
    assert {r["name"] for r in batch["resources"]} >= {"jobs", "cronjobs"}
    code, missing = await rest.call("GET", "/apis/networking.k8s.io/v1")
    assert code == 404 and missing["kind"] == "Status" and missing["reason"] == "NotFound"


async def test_openapi_carries_kinds_and_patch_strategies(server) -> None:
    rest, _, _ = server
    _, v2 = await rest.call("GET", "/openapi/v2")
    dep = v2["definitions"]["io.k8s.api.apps.v1.Deployment"]
    assert dep["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "kind": "Deployment", "version": "v1"}]
    containers = v2["definitions"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    assert containers["items"]["$ref"] == "#/definitions/io.k8s.api.core.v1.Container"
    assert v2["definitions"]["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] == {
        "type": "string", "format": "int-or-string"}
    assert "io.k8s.api.batch.v1.Job" in v2["definitions"]
    assert "io.k8s.api.networking.v1.Ingress" not in v2["definitions"]
    _, index = await rest.call("GET", "/openapi/v3")
    url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
    _, v3 = await rest.call("GET", url)
    strategy = v3["components"]["schemas"]["io.k8s.api.apps.v1.DeploymentSpec"][
        "properties"]["strategy"]
    assert strategy["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentStrategy"}]
    assert strategy["x-kubernetes-patch-strategy"] == "retainKeys"


async def test_crud_with_codes_and_one_registry_behind_both_faces(server, ns: str) -> None:
    rest, client, _ = server
    await make_ns(rest, ns)
    code, created = await rest.call("POST", f"/api/v1/namespaces/{ns}/pods", pod("a", ns))
    assert code == 201 and created["metadata"]["uid"]
    assert created["spec"]["restartPolicy"] == "Always"  # the registry's defaults
    via_grpc = await client.get("pods", "a", namespace=ns)
    assert via_grpc["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    code, again = await rest.call("POST", f"/api/v1/namespaces/{ns}/pods", pod("a", ns))
    assert code == 409 and again["reason"] == "AlreadyExists"
    code, bad = await rest.call("POST", f"/api/v1/namespaces/{ns}/pods",
                                {"metadata": {"name": "b"}, "spec": {"contianers": []}})
    assert code == 422 and bad["reason"] == "Invalid" and "contianers" in bad["message"]
    code, junk = await rest.call("POST", f"/api/v1/namespaces/{ns}/pods", b"{not json")
    assert code in (400, 422) and junk["kind"] == "Status"
    code, sel = await rest.call("GET", f"/api/v1/namespaces/{ns}/pods?labelSelector=a%20in")
    assert code == 400 and sel["reason"] == "BadRequest"

    stale = dict(created, metadata=dict(created["metadata"], resourceVersion="1"))
    code, conflict = await rest.call("PUT", f"/api/v1/namespaces/{ns}/pods/a", stale)
    assert code == 409 and conflict["reason"] == "Conflict"
    labelled = dict(created, metadata=dict(created["metadata"], labels={"x": "1"}))
    code, updated = await rest.call("PUT", f"/api/v1/namespaces/{ns}/pods/a", labelled)
    assert code == 200 and updated["metadata"]["labels"] == {"x": "1"}

    for name in ("b", "c"):
        await client.create("pods", pod(name, ns, labels={"x": "2"}), namespace=ns)
    _, page = await rest.call("GET", f"/api/v1/namespaces/{ns}/pods?limit=2")
    assert len(page["items"]) == 2 and page["metadata"]["continue"]
    _, rest_page = await rest.call(
        "GET", f"/api/v1/namespaces/{ns}/pods?limit=2&continue={page['metadata']['continue']}")
    assert [p["metadata"]["name"] for p in page["items"] + rest_page["items"]] == ["a", "b", "c"]
    _, selected = await rest.call("GET", f"/api/v1/namespaces/{ns}/pods?labelSelector=x%3D2"
                                  "&fieldSelector=metadata.name%21%3Db")
    assert [p["metadata"]["name"] for p in selected["items"]] == ["c"]

    code, dry = await rest.call("DELETE", f"/api/v1/namespaces/{ns}/pods/c?dryRun=All")
    assert code == 200 and (await client.get("pods", "c", namespace=ns))
    code, pre = await rest.call("DELETE", f"/api/v1/namespaces/{ns}/pods/c",
                                {"kind": "DeleteOptions", "apiVersion": "v1",
                                 "preconditions": {"uid": "nope"}})
    assert code == 409 and pre["kind"] == "Status"
    code, gone = await rest.call("DELETE", f"/api/v1/namespaces/{ns}/pods/c",
                                 {"gracePeriodSeconds": 0})
    assert code == 200
    code, missing = await rest.call("GET", f"/api/v1/namespaces/{ns}/pods/c")
    assert code == 404 and missing["message"] == 'pods "c" not found'
    code, dry_created = await rest.call(
        "POST", f"/api/v1/namespaces/{ns}/configmaps?dryRun=All&fieldManager=me",
        {"metadata": {"name": "dry"}, "data": {"k": "v"}})
    assert code == 201 and dry_created["data"] == {"k": "v"}
    code, _ = await rest.call("GET", f"/api/v1/namespaces/{ns}/configmaps/dry")
    assert code == 404


async def test_three_patch_types_and_the_status_and_scale_subresources(server,
                                                                       ns: str) -> None:
    rest, client, _ = server
    await make_ns(rest, ns)
    path = f"/apis/apps/v1/namespaces/{ns}/deployments"
    container = {"name": "a", "image": "img", "ports": [{"containerPort": 80}]}
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
              "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "d"}},
                       "template": {"metadata": {"labels": {"app": "d"}},
                                    "spec": {"containers": [container]}}}}
    assert (await rest.call("POST", path, deploy))[0] == 201
    smp = {"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "img2"}]}}}}
    code, out = await rest.call("PATCH", f"{path}/d", smp,
                                content_type="application/strategic-merge-patch+json")
    assert code == 200
    assert [c["name"] for c in out["spec"]["template"]["spec"]["containers"]] == ["a", "b"]
    code, out = await rest.call("PATCH", f"{path}/d", smp,
                                content_type="application/merge-patch+json")
    assert [c["name"] for c in out["spec"]["template"]["spec"]["containers"]] == ["b"]
    ops = [{"op": "replace", "path": "/spec/replicas", "value": 3},
           {"op": "add", "path": "/metadata/labels", "value": {"p": "q"}}]
    code, out = await rest.call("PATCH", f"{path}/d", ops,
                                content_type="application/json-patch+json")
    assert code == 200 and out["spec"]["replicas"] == 3 and out["metadata"]["labels"] == {
        "p": "q"}
    code, bad = await rest.call("PATCH", f"{path}/d", [{"op": "remove", "path": "/nope"}],
                                content_type="application/json-patch+json")
    assert code == 422 and bad["kind"] == "Status"
    code, unsupported = await rest.call("PATCH", f"{path}/d", {},
                                        content_type="application/apply-patch+yaml")
    assert code == 415 and unsupported["reason"] == "UnsupportedMediaType"

    code, scale = await rest.call("GET", f"{path}/d/scale")
    assert code == 200 and scale["kind"] == "Scale" and scale["spec"]["replicas"] == 3
    assert scale["status"]["selector"] == "app=d"
    code, scale = await rest.call("PATCH", f"{path}/d/scale", {"spec": {"replicas": 5}},
                                  content_type="application/merge-patch+json")
    assert code == 200 and scale["spec"]["replicas"] == 5
    assert (await client.get("deployments", "d", namespace=ns))["spec"]["replicas"] == 5

    code, status = await rest.call("PATCH", f"{path}/d/status",
                                   {"status": {"observedGeneration": 9, "replicas": 2}},
                                   content_type="application/merge-patch+json")
    assert code == 200 and status["status"]["replicas"] == 2
    code, ignored = await rest.call("PATCH", f"{path}/d", {"status": {"replicas": 7}},
                                    content_type="application/merge-patch+json")
    assert ignored["status"]["replicas"] == 2  # the main resource does not write status


async def test_binding_and_eviction(server, ns: str) -> None:
    rest, client, _ = server
    await make_ns(rest, ns)
    await client.create("pods", pod("p", ns), namespace=ns)
    code, status = await rest.call("POST", f"/api/v1/namespaces/{ns}/pods/p/binding",
                                   {"apiVersion": "v1", "kind": "Binding",
                                    "metadata": {"name": "p"},
                                    "target": {"kind": "Node", "name": "n1"}})
    assert code == 201 and status["status"] == "Success"
    assert (await client.get("pods", "p", namespace=ns))["spec"]["nodeName"] == "n1"
    code, again = await rest.call("POST", f"/api/v1/namespaces/{ns}/pods/p/binding",
                                  {"target": {"name": "n2"}})
    assert code == 409
    code, _ = await rest.call("POST", f"/api/v1/namespaces/{ns}/pods/p/eviction",
                              {"apiVersion": "policy/v1", "kind": "Eviction",
                               "metadata": {"name": "p"},
                               "deleteOptions": {"gracePeriodSeconds": 0}})
    assert code == 201
    code, _ = await rest.call("GET", f"/api/v1/namespaces/{ns}/pods/p")
    assert code == 404


async def test_tables_have_the_cli_columns_and_wide_ones_at_priority_one(server,
                                                                          ns: str) -> None:
    rest, client, _ = server
    await make_ns(rest, ns)
    await client.create("pods", pod("t", ns), namespace=ns)
    code, table = await rest.call("GET", f"/api/v1/namespaces/{ns}/pods",
                                  headers={"Accept": TABLE})
    assert code == 200 and table["kind"] == "Table"
    columns = [(c["name"], c["priority"]) for c in table["columnDefinitions"]]
    assert columns == [("NAME", 0), ("READY", 0), ("STATUS", 0), ("RESTARTS", 0), ("AGE", 0),
                       ("IP", 1), ("NODE", 1)]
    row = table["rows"][0]
    assert row["cells"][:3] == ["t", "0/1", "Pending"]
    assert row["object"]["kind"] == "PartialObjectMetadata"
    assert row["object"]["metadata"]["name"] == "t"
    await client.create("daemonsets", {
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {
            "metadata": {"labels": {"app": "agent"}},
            "spec": {"nodeSelector": {"role": "edge"},
                     "containers": [{"name": "main", "image": "agent:1"}]}}}}, namespace=ns)
    code, table = await rest.call("GET", f"/apis/apps/v1/namespaces/{ns}/daemonsets",
                                  headers={"Accept": TABLE})
    assert code == 200
    assert [(c["name"], c["priority"]) for c in table["columnDefinitions"]] == [
        ("NAME", 0), ("DESIRED", 0), ("CURRENT", 0), ("READY", 0), ("UP-TO-DATE", 0),
        ("AVAILABLE", 0), ("NODE SELECTOR", 0), ("AGE", 0), ("CONTAINERS", 1), ("IMAGES", 1),
        ("SELECTOR", 1)]
    cells = table["rows"][0]["cells"]
    assert cells[:7] == ["agent", "0", "0", "0", "0", "0", "role=edge"]


async def read_events(resp: aiohttp.ClientResponse, count: int) -> list[dict]:
    events = []
    while len(events) < count:
        line = await asyncio.wait_for(resp.content.readline(), 10)
        if not line:
            break
        events.append(json.loads(line))
    return events


async def test_watch_streams_events_bookmarks_and_answers_a_trimmed_history_with_410(
        server, ns: str) -> None:
    rest, client, _ = server
    await make_ns(rest, ns)
    first = await client.create("configmaps", {"metadata": {"name": "c0"}}, namespace=ns)
    rv = first["metadata"]["resourceVersion"]
    url = f"{rest.base}/api/v1/namespaces/{ns}/configmaps?watch=1&resourceVersion={rv}"
    async with rest.session.get(url) as resp:
        assert resp.status == 200 and resp.headers["Transfer-Encoding"] == "chunked"
        await client.create("configmaps", {"metadata": {"name": "c1"}}, namespace=ns)
        await client.delete("configmaps", "c0", namespace=ns)
        events = await read_events(resp, 2)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "c1"), ("DELETED", "c0")]

    async with rest.session.get(f"{rest.base}/api/v1/namespaces/{ns}/configmaps?watch=1"
                                "&timeoutSeconds=1") as resp:
        events = await read_events(resp, 10)  # the current state, then the stream ends
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "c1")]

    url = (f"{rest.base}/api/v1/namespaces/{ns}/configmaps?watch=1&sendInitialEvents=true"
           "&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=2")
    async with rest.session.get(url) as resp:
        events = await read_events(resp, 2)
    assert events[0]["type"] == "ADDED"
    assert events[1]["type"] == "BOOKMARK"
    assert events[1]["object"]["metadata"]["annotations"] == {
        "k8s.io/initial-events-end": "true"}

    for i in range(60):  # history is 40 events: rv is trimmed now
        await client.patch("configmaps", "c1", {"data": {"i": str(i)}}, namespace=ns)
    async with rest.session.get(f"{rest.base}/api/v1/namespaces/{ns}/configmaps?watch=1"
                                f"&resourceVersion={rv}") as resp:
        assert resp.status == 200
        events = await read_events(resp, 1)
    assert events[0]["type"] == "ERROR"
    status = events[0]["object"]
    assert status["kind"] == "Status" and status["code"] == 410
    assert status["reason"] == "Expired"

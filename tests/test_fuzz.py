"""Property-based fuzzing of every verb against a real apiserver on a real redis-server.

Valid manifests of every kind are mutated (type swaps, deletions, insertions,
unicode, boundary numbers, broken encodings) and random request envelopes are
built for every verb. Whatever is sent: no INTERNAL or UNKNOWN, every error
comes from the apiserver with its status and a short message, whatever a write
returns passes validation as stored, the store keeps only valid objects, an
unrelated object written first is untouched, and the apiserver keeps serving.

CI runs FUZZ_EXAMPLES (1,000) examples with a fixed seed; KUBELITE_FUZZ_EXAMPLES=N
runs N (and KUBELITE_FUZZ_RANDOM=1 a fresh seed each run).
"""

from __future__ import annotations

import base64
import copy
import json
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubelite.api.v1 import api_pb2
from kubelite.errors import from_rpc_error
from kubelite.resources import RESOURCES, lookup
from services.apiserver.strategies import validate_stored
from services.apiserver.validation import resolve_schema_version
from tests.test_hostile_input import Server, running_apiserver

VERSION = resolve_schema_version("latest")
NS, UNTOUCHED = "fuzz", "untouched"
TOTAL = int(os.environ.get("KUBELITE_FUZZ_EXAMPLES", "1000"))
# Each test's share of the examples; they add up to TOTAL.
SHARES = {"create": 0.3, "update": 0.2, "patch": 0.2, "requests": 0.3}

SETTINGS = dict(
    derandomize=not os.environ.get("KUBELITE_FUZZ_RANDOM"),
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


# (verb, code) of every answer, so that the last test can show the fuzzing got past
# the first check often enough to mean something.
OUTCOMES: Counter[tuple[str, str]] = Counter()


def examples(test: str) -> int:
    return max(1, round(TOTAL * SHARES[test]))


# -- valid manifests of every kind -------------------------------------------

def _pod_spec() -> dict[str, Any]:
    return {
        "containers": [{
            "name": "c", "image": "nginx:1.25",
            "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}],
            "env": [{"name": "MODE", "value": "fuzz"}],
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                          "limits": {"cpu": "1", "memory": "128Mi"}},
            "livenessProbe": {"httpGet": {"path": "/", "port": 80}, "periodSeconds": 10,
                              "initialDelaySeconds": 1},
            "readinessProbe": {"tcpSocket": {"port": "http"}, "failureThreshold": 3},
        }],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": 30,
        "activeDeadlineSeconds": 3600,
        "nodeSelector": {"disk": "ssd"},
        "tolerations": [{"key": "k", "operator": "Equal", "value": "v",
                         "effect": "NoSchedule"}],
    }


def _template() -> dict[str, Any]:
    return {"metadata": {"labels": {"app": "web"}}, "spec": _pod_spec()}


def _meta(name: str) -> dict[str, Any]:
    return {"name": name, "labels": {"app": "web", "tier": "front"},
            "annotations": {"note": "fuzzed"}}


def manifest(kind: str, name: str) -> dict[str, Any]:
    info = next(i for i in RESOURCES if i.kind == kind)
    obj: dict[str, Any] = {"apiVersion": info.api_version, "kind": kind, "metadata": _meta(name)}
    selector = {"matchLabels": {"app": "web"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["front"]}]}
    if kind == "Pod":
        obj["spec"] = _pod_spec()
    elif kind == "ReplicaSet":
        obj["spec"] = {"replicas": 2, "minReadySeconds": 0, "selector": selector,
                       "template": {"metadata": {"labels": {"app": "web", "tier": "front"}},
                                    "spec": _pod_spec()}}
    elif kind == "Deployment":
        obj["spec"] = {"replicas": 3, "revisionHistoryLimit": 5, "progressDeadlineSeconds": 600,
                       "selector": {"matchLabels": {"app": "web"}}, "template": _template(),
                       "strategy": {"type": "RollingUpdate",
                                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}}}
    elif kind == "Service":
        obj["spec"] = {"selector": {"app": "web"}, "type": "ClusterIP",
                       "ports": [{"name": "http", "port": 80, "targetPort": "http"},
                                 {"name": "metrics", "port": 9090, "targetPort": 9090}]}
    elif kind == "Endpoints":
        obj["subsets"] = [{"addresses": [{"ip": "10.0.0.5", "nodeName": "n1"}],
                           "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}]
    elif kind == "Event":
        obj["involvedObject"] = {"kind": "Pod", "name": "p", "namespace": NS}
        obj.update(reason="Started", message="started", type="Normal", count=1,
                   firstTimestamp="2024-01-01T00:00:00Z", lastTimestamp="2024-01-01T00:00:05Z")
    elif kind == "ConfigMap":
        obj["data"] = {"key": "value", "other.conf": "a=b"}
        obj["binaryData"] = {"blob": base64.b64encode(b"\x00\x01").decode()}
    elif kind == "Lease":
        obj["spec"] = {"holderIdentity": "me", "leaseDurationSeconds": 15, "leaseTransitions": 0,
                       "renewTime": "2024-01-01T00:00:00.000000Z"}
    elif kind == "HorizontalPodAutoscaler":
        obj["spec"] = {"minReplicas": 1, "maxReplicas": 5,
                       "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                          "name": "web"},
                       "metrics": [{"type": "Resource", "resource": {
                           "name": "cpu", "target": {"type": "Utilization",
                                                     "averageUtilization": 70}}}]}
    elif kind == "Node":
        # No addresses: a node nobody serves must not make Metrics dial out and wait.
        obj["spec"] = {"podCIDR": "10.1.0.0/24",
                       "taints": [{"key": "dedicated", "value": "fuzz", "effect": "NoSchedule"}]}
        obj["status"] = {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                         "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}
    elif kind == "Namespace":
        obj["metadata"] = {"name": name}
    elif kind == "StatefulSet":
        template = _template()
        template["spec"].pop("activeDeadlineSeconds", None)  # forbidden in a StatefulSet
        obj["spec"] = {"replicas": 3, "serviceName": "web", "podManagementPolicy": "Parallel",
                       "selector": {"matchLabels": {"app": "web"}}, "template": template,
                       "updateStrategy": {"type": "RollingUpdate",
                                          "rollingUpdate": {"partition": 1}},
                       "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                           "accessModes": ["ReadWriteOnce"],
                           "resources": {"requests": {"storage": "1Gi"}}}}]}
    elif kind == "ReplicationController":
        obj["spec"] = {"replicas": 2, "selector": {"app": "web"}, "template": _template()}
    elif kind in ("Job", "CronJob"):
        template = _template()
        template["spec"]["restartPolicy"] = "OnFailure"
        job = {"completions": 2, "parallelism": 1, "backoffLimit": 2, "template": template}
        obj["spec"] = job if kind == "Job" else {
            "schedule": "*/5 * * * *", "timeZone": "Europe/Paris",
            "concurrencyPolicy": "Forbid", "jobTemplate": {"spec": job}}
    elif kind == "PodDisruptionBudget":
        obj["spec"] = {"minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}},
                       "unhealthyPodEvictionPolicy": "IfHealthyBudget"}
    elif kind == "Secret":
        obj["type"] = "Opaque"
        obj["data"] = {"user": base64.b64encode(b"admin").decode()}
        obj["stringData"] = {"password": "pw"}
    elif kind == "PersistentVolume":
        obj["spec"] = {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                       "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "manual",
                       "hostPath": {"path": "/tmp/fuzz-pv", "type": "DirectoryOrCreate"}}
    elif kind == "PersistentVolumeClaim":
        obj["spec"] = {"accessModes": ["ReadWriteOnce"], "storageClassName": "manual",
                       "resources": {"requests": {"storage": "500Mi"}}}
    elif kind == "StorageClass":
        obj.update(provisioner="kubelite.io/local-path", reclaimPolicy="Delete",
                   volumeBindingMode="WaitForFirstConsumer")
    elif kind == "DaemonSet":
        template = _template()
        del template["spec"]["activeDeadlineSeconds"]  # forbidden in a DaemonSet's template
        obj["spec"] = {"selector": selector, "minReadySeconds": 2, "revisionHistoryLimit": 5,
                       "template": {**template, "metadata": {
                           "labels": {"app": "web", "tier": "front"}}},
                       "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {
                           "maxUnavailable": "10%", "maxSurge": 0}}}
    elif kind == "ControllerRevision":
        obj["metadata"]["labels"] = {"app": "web", "controller-revision-hash": "5d9c7b"}
        obj.update(revision=3, data={"spec": {"template": _template()}})
    return obj


KINDS = [info.kind for info in RESOURCES]
PLURAL = {info.kind: info.plural for info in RESOURCES}


def _seed_name(kind: str) -> str:
    return f"seed-{kind.lower()}"


# -- hostile values ------------------------------------------------------------

BOUNDARY_INTS = [0, -1, 1, 65535, 65536, 2**31 - 1, 2**31, -(2**31) - 1, 2**63 - 1, 2**63,
                 -(2**63), -(2**63) - 1, 2**64, 10**30]
SPECIAL_STRINGS = [
    "", " ", "lots", "1Gi", "-1", "1e3", "0.5", "50%", "lots%", "101%", "None", "TCP", "Always",
    "\ud800", "\udfff", "\x00", "\x00rv\x00", "\n", "a\n", "a/b", "%", ".", "..", "Not_A_Name",
    "UPPER", "a" * 64, "a" * 254, "x" * 5000, "999.1.1.1", "10.0.0.01", "10.0.0.1", "::1",
    "10.0.0.0/33", "2024-01-01T00:00:00Z", "2024-13-45T99:00:00Z", "yesterday", "é", "日本",
    "\u202e", "😀", "😀" * 300, "日" * 300, "{}", "[]", "null", "NaN",
]
scalars = (st.none() | st.booleans() | st.sampled_from(BOUNDARY_INTS)
           | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True, allow_infinity=True)
           | st.sampled_from(SPECIAL_STRINGS) | st.text(max_size=12))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=8) | st.sampled_from(SPECIAL_STRINGS), inner, max_size=3),
    max_leaves=6)


def _paths(node: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every path into a JSON value, the root included."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _paths(value, (*prefix, i))


def _get(node: Any, path: tuple) -> Any:
    for part in path:
        node = node[part]
    return node


@st.composite
def mutations(draw: st.DrawFn, obj: dict[str, Any], max_count: int = 3) -> dict[str, Any]:
    """obj with up to max_count mutations at random places (a few with none, so that
    valid writes happen too and later requests meet real objects)."""
    obj = copy.deepcopy(obj)
    for _ in range(draw(st.sampled_from([0, *[1] * 4, *range(2, max_count + 1)]))):
        paths = [p for p in _paths(obj) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent, key = _get(obj, path[:-1]), path[-1]
        current = parent[key]
        op = draw(st.sampled_from(["delete", "swap", "insert", "unicode", "boundary", "wrap"]))
        if op == "delete":
            del parent[key]
        elif op == "swap":
            parent[key] = draw(json_values)
        elif op == "insert":
            target = current if isinstance(current, dict | list) else parent
            value = draw(json_values)
            if isinstance(target, dict):
                target[draw(st.text(max_size=10) | st.sampled_from(SPECIAL_STRINGS))] = value
            else:
                target.insert(draw(st.integers(0, len(target))), value)
        elif op == "unicode":
            parent[key] = draw(st.text(min_size=1, max_size=40) | st.sampled_from(SPECIAL_STRINGS))
        elif op == "boundary":
            parent[key] = draw(st.sampled_from(BOUNDARY_INTS)
                               | st.sampled_from([0.5, -0.0, 2.0, 1e308, 1e19]))
        else:  # the value, one level deeper or shallower than the schema wants
            parent[key] = draw(st.sampled_from([[current], {"x": current}, None]))
    return obj


def _deep(depth: int) -> bytes:
    return b'{"metadata":{"name":"deep","labels":' + b"[" * depth + b"]" * depth + b"}}"


@st.composite
def encoded(draw: st.DrawFn, obj: Any) -> bytes:
    """obj as request bytes: usually JSON, sometimes JSON only Python writes, or none."""
    how = draw(st.sampled_from(["json"] * 15 + ["unicode", "truncated", "garbage", "deep",
                                                "wrapped"]))
    if how == "json":
        return json.dumps(obj, allow_nan=True).encode()
    if how == "unicode":  # raw UTF-8, lone surrogates as they are
        return json.dumps(obj, ensure_ascii=False, allow_nan=True).encode("utf-8",
                                                                           "surrogatepass")
    if how == "truncated":
        text = json.dumps(obj, allow_nan=True).encode()
        return text[: draw(st.integers(0, max(len(text) - 1, 0)))]
    if how == "garbage":
        return draw(st.binary(max_size=64))
    if how == "deep":
        return _deep(draw(st.sampled_from([99, 101, 5000, 200_000])))
    return json.dumps(draw(st.sampled_from([[obj], obj.get("metadata"), "x", 5, None]))
                      if isinstance(obj, dict) else obj).encode()


# -- request fields -------------------------------------------------------------

def mostly(usual: st.SearchStrategy, hostile: st.SearchStrategy) -> st.SearchStrategy:
    """usual four times in five: hostile fields one at a time, so requests get deep."""
    return st.sampled_from([True] * 4 + [False]).flatmap(lambda u: usual if u else hostile)


resources = (st.sampled_from([i.plural for i in RESOURCES]) | st.sampled_from(
    ["Pod", "deploy", "svc", "deployments.apps", "pods ", "", "secrets", "a" * 300])
    | st.text(max_size=10))
request_names = (st.sampled_from([_seed_name(k) for k in KINDS] + ["victim", "nope"])
                 | st.sampled_from(SPECIAL_STRINGS[:40]).filter(lambda s: "\ud800" not in s
                                                                and "\udfff" not in s)
                 | st.text(max_size=20))
namespaces = st.sampled_from([NS, NS, "", "default", "nope", "UPPER", "a" * 70]) | st.text(
    max_size=10)
int64s = st.sampled_from([b for b in BOUNDARY_INTS if -(2**63) <= b < 2**63]) | st.integers(
    -(2**63), 2**63 - 1)
selectors = st.sampled_from([
    "", "app=web", "app in (web,db)", "!app", "app notin ()", "a in (", "=", "a==b,c!=d",
    "metadata.name=x", "spec.nodeName=", "status.phase!=Running", "a" * 300, "tier,app",
    "x=\x00", "app=web,", "a b", "metadata.namespace==fuzz"]) | st.text(max_size=15)
tokens = st.sampled_from(["", "!!!", "e30=", "bnVsbA=="]) | st.text(max_size=12) | json_values.map(
    lambda v: base64.urlsafe_b64encode(json.dumps(v, allow_nan=True).encode()).decode())
revisions = (st.sampled_from(["", "0", "1", "2", "-1", "+3", " 3", "1_0", "٣", "1e3", "0x10",
                              str(2**63), str(2**64)]) | st.text(max_size=6)
             | st.integers(-(2**70), -1).map(str) | st.integers(2**63, 2**70).map(str))


# -- the apiserver -----------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_apiserver(tmp_path_factory.mktemp("fuzz")) as srv:
        stub = srv.stub
        for name in (NS, UNTOUCHED):
            stub.Create(api_pb2.CreateRequest(resource="namespaces", object=json.dumps(
                {"metadata": {"name": name}}).encode()))
        # The unrelated object, written first: no request below may change it.
        stub.Create(api_pb2.CreateRequest(resource="configmaps", namespace=UNTOUCHED,
                                          object=json.dumps(manifest("ConfigMap", "keep"))
                                          .encode()))
        for kind in KINDS:
            stub.Create(api_pb2.CreateRequest(
                resource=PLURAL[kind], namespace=NS,
                object=json.dumps(manifest(kind, _seed_name(kind))).encode()))
        srv.untouched = _get_raw(stub, "configmaps", UNTOUCHED, "keep")  # type: ignore[attr-defined]
        yield srv


def _get_raw(stub: Any, resource: str, namespace: str, name: str) -> bytes:
    return stub.Get(api_pb2.GetRequest(resource=resource, namespace=namespace, name=name)).object


def _check_stored(raw: bytes, resource: str) -> None:
    """What a write returns is the object as stored: it must pass validation."""
    obj = json.loads(raw)
    info = lookup(obj.get("kind") or resource)
    validate_stored(info, obj, VERSION)


def _expect_clean(verb: str, call: Any, resource: str = "", *, writes: bool = False,
                  client_deadline_ok: bool = False) -> None:
    """Runs one request: any answer but INTERNAL/UNKNOWN, errors with their Status."""
    try:
        response = call()
    except grpc.RpcError as rpc:
        err = from_rpc_error(rpc)
        OUTCOMES[verb, err.code.name] += 1
        assert err.code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), str(err)
        if client_deadline_ok and err.code == grpc.StatusCode.DEADLINE_EXCEEDED \
                and not err.from_server:
            return
        assert err.from_server, f"no status from the apiserver: {err.code.name}: {err}"
        assert len(str(err)) <= 1100
        return
    OUTCOMES[verb, "OK"] += 1
    if writes and getattr(response, "object", b""):
        _check_stored(response.object, resource)


def _skip_protected(namespace: str, resource: str, name: str) -> bool:
    """Requests that would delete the fuzz namespaces themselves (and so everything)."""
    try:
        info = lookup(resource)
    except Exception:
        return False
    return (info.kind == "Namespace" and name in (NS, UNTOUCHED)) or (
        info.namespaced and namespace == UNTOUCHED)


# -- the properties ------------------------------------------------------------

@settings(max_examples=examples("create"), **SETTINGS)
@given(data=st.data())
def test_fuzz_create(server: Server, data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(KINDS), label="kind")
    name = data.draw(mostly(st.integers(0, 10**6).map(lambda i: f"f-{i}"), st.text(max_size=8)))
    obj = data.draw(mutations(manifest(kind, name)), label="object")
    body = data.draw(encoded(obj))
    resource = data.draw(mostly(st.just(PLURAL[kind]), resources), label="resource")
    namespace = data.draw(mostly(st.just(NS), namespaces), label="namespace")
    if namespace == UNTOUCHED:
        return
    _expect_clean("Create", lambda: server.stub.Create(api_pb2.CreateRequest(
        resource=resource, namespace=namespace, object=body)), resource, writes=True)


@settings(max_examples=examples("update"), **SETTINGS)
@given(data=st.data())
def test_fuzz_update(server: Server, data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(KINDS), label="kind")
    # Drawn from the manifest, not the live object: hypothesis needs the draws to be
    # the same each time it replays an example.
    obj = data.draw(mutations(manifest(kind, _seed_name(kind)), max_count=2), label="object")
    if data.draw(st.booleans(), label="pin") and isinstance(obj.get("metadata"), dict):
        try:  # a write that must not conflict: pinned to the current revision
            current = json.loads(_get_raw(server.stub, PLURAL[kind], NS, _seed_name(kind)))
            obj["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        except grpc.RpcError:
            pass  # deleted by an earlier example
    body = data.draw(encoded(obj))
    status = data.draw(st.booleans(), label="status")
    verb = server.stub.UpdateStatus if status else server.stub.Update
    request = api_pb2.UpdateRequest(resource=PLURAL[kind], namespace=NS, object=body)
    _expect_clean("UpdateStatus" if status else "Update", lambda: verb(request), PLURAL[kind],
                  writes=True)


@settings(max_examples=examples("patch"), **SETTINGS)
@given(data=st.data())
def test_fuzz_patch(server: Server, data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(KINDS), label="kind")
    base = manifest(kind, _seed_name(kind))
    # A merge patch is a partial object: a mutated manifest, thinned to a few keys.
    full = data.draw(mutations(base, max_count=2))
    keys = data.draw(st.lists(st.sampled_from(sorted(full) or ["metadata"]), max_size=3,
                              unique=True))
    patch = {k: full[k] for k in keys if k in full}
    if data.draw(st.booleans()):
        patch[data.draw(st.sampled_from(["metadata", "spec", "status", "data", "kind"]))] = \
            data.draw(json_values)
    body = data.draw(encoded(patch))
    name = data.draw(mostly(st.just(_seed_name(kind)), request_names), label="name")
    _expect_clean("Patch", lambda: server.stub.Patch(api_pb2.PatchRequest(
        resource=PLURAL[kind], namespace=NS, name=name, patch=body)), PLURAL[kind], writes=True)


@st.composite
def envelopes(draw: st.DrawFn) -> tuple[str, Any, str, dict[str, Any]]:
    """(verb, request, resource, options) for the verbs that carry no object."""
    verb = draw(st.sampled_from(["Get", "List", "Delete", "Watch", "Bind", "Logs", "Metrics",
                                 "Evict"]))
    kind = draw(st.sampled_from(KINDS))
    resource = draw(mostly(st.just(PLURAL[kind]), resources))
    namespace = draw(mostly(st.just(NS), namespaces))
    name = draw(mostly(st.just(_seed_name(kind)), request_names))
    if verb == "Get":
        return verb, api_pb2.GetRequest(resource=resource, namespace=namespace, name=name), \
            resource, {}
    if verb == "List":
        return verb, api_pb2.ListRequest(
            resource=resource, namespace=namespace,
            label_selector=draw(mostly(st.just(""), selectors)),
            field_selector=draw(mostly(st.just(""), selectors)),
            limit=draw(mostly(st.integers(0, 5), int64s)),
            continue_token=draw(mostly(st.just(""), tokens))), resource, {}
    if verb == "Delete":
        fields: dict[str, Any] = dict(
            resource=resource, namespace=namespace, name=name,
            propagation_policy=draw(st.sampled_from(["", "Background", "Foreground",
                                                     "Orphan", "orphan", "a" * 300])),
            preconditions=api_pb2.Preconditions(uid=draw(st.sampled_from(["", "x"])),
                                                resource_version=draw(revisions)))
        if draw(st.booleans()):
            fields["grace_period_seconds"] = draw(int64s)
        return verb, api_pb2.DeleteRequest(**fields), resource, {"writes": True}
    if verb == "Watch":
        return verb, api_pb2.WatchRequest(
            resource=resource, namespace=namespace,
            label_selector=draw(mostly(st.just(""), selectors)),
            field_selector=draw(mostly(st.just(""), selectors)),
            resource_version=draw(mostly(st.sampled_from(["", "1"]), revisions)),
            allow_bookmarks=draw(st.booleans())), resource, {}
    if verb == "Bind":
        return verb, api_pb2.BindRequest(
            namespace=namespace, name=draw(st.just(_seed_name("Pod")) | request_names),
            node_name=draw(request_names | st.just("n1")),
            uid=draw(st.sampled_from(["", "x"]))), "pods", {"writes": True}
    if verb == "Evict":
        fields = dict(namespace=namespace, name=draw(st.just(_seed_name("Pod")) | request_names),
                      dry_run=draw(st.booleans()),
                      preconditions=api_pb2.Preconditions(uid=draw(st.sampled_from(["", "x"]))))
        if draw(st.booleans()):
            fields["grace_period_seconds"] = draw(int64s)
        return verb, api_pb2.EvictRequest(**fields), "pods", {"writes": True}
    if verb == "Logs":
        fields = dict(namespace=namespace, name=draw(st.just(_seed_name("Pod")) | request_names),
                      container=draw(request_names | st.just("c")),
                      previous=draw(st.booleans()), timestamps=draw(st.booleans()))
        if draw(st.booleans()):
            fields["tail_lines"] = draw(int64s)
        return verb, api_pb2.LogsRequest(**fields), "pods", {}
    which = draw(st.sampled_from(["pods", "pods", "nodes", "po", "configmaps"]) | resources)
    # All nodes' metrics dial every kubelet; by name, only that node's.
    metrics_name = draw(request_names | st.just(_seed_name("Pod")))
    return verb, api_pb2.MetricsRequest(resource=which, namespace=namespace, name=metrics_name,
                                        label_selector=draw(selectors)), which, {}


@settings(max_examples=examples("requests"), **SETTINGS)
@given(envelope=envelopes())
def test_fuzz_requests(server: Server, envelope: tuple[str, Any, str, dict]) -> None:
    verb, request, resource, options = envelope
    if _skip_protected(getattr(request, "namespace", ""), resource,
                       getattr(request, "name", "")):
        return
    method = getattr(server.stub, verb)
    if verb in ("Watch", "Logs"):
        # A stream: its first message, or its error; a watch with nothing to send yet
        # ends at the client's short deadline (not an apiserver answer).
        def call() -> Any:
            for _ in method(request, timeout=0.3):
                break
        _expect_clean(verb, call, resource, client_deadline_ok=True)
    else:
        _expect_clean(verb, lambda: method(request, timeout=10), resource, **options)


def test_after_fuzzing_everything_is_valid_and_served(server: Server) -> None:
    """Runs last in this module: the store holds only valid objects, the unrelated
    object is as it was written, and the apiserver still answers."""
    health = health_pb2_grpc.HealthStub(grpc.insecure_channel(server.target))
    assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == \
        health_pb2.HealthCheckResponse.SERVING
    assert _get_raw(server.stub, "configmaps", UNTOUCHED, "keep") == server.untouched  # type: ignore[attr-defined]
    count = 0
    for info in RESOURCES:
        for raw in server.stub.List(api_pb2.ListRequest(resource=info.plural), timeout=10).items:
            validate_stored(info, json.loads(raw), VERSION)
            count += 1
    assert count > len(RESOURCES)  # the seeds at least, and what the fuzzing created
    print("fuzz outcomes:", dict(sorted(OUTCOMES.items())))
    if sum(OUTCOMES.values()) >= 500:  # the whole module ran: the fuzzing got deep
        for verb in ("Create", "Update", "Patch"):
            assert OUTCOMES[verb, "OK"] >= 5, OUTCOMES

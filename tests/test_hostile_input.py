"""Hostile input, one row per class and verb: each gets its exact code, reason and
field, never INTERNAL or UNKNOWN, and nothing is stored.

Rows marked `stored` were stored by the apiserver before these checks existed, or
answered INTERNAL, or waited forever (the issue's acceptance: each such class is
refused now). Every other row but four fails on the code before this change too,
on its reason (BadRequest/Invalid), its missing causes or an echoed value; the
four controls (get-name-unicode, metrics-wrong-resource, logs-unknown-pod,
logs-no-kubelet) pin answers that were already right. The calls go straight to
the gRPC stubs, as a careless or hostile caller's would.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from kubelite.api.v1 import api_pb2, api_pb2_grpc
from kubelite.errors import ApiError, from_rpc_error
from kubelite.localcluster import RedisServer, apiserver_process, free_port, wait_healthy
from kubelite.resources import RESOURCES
from services.apiserver.strategies import validate_stored
from services.apiserver.validation import resolve_schema_version

NS = "hostile"
BIG = "a" * 200_000  # a 200 KB value
ECHO = "a" * 100  # what an error that echoes BIG back would contain
VERSION = resolve_schema_version("latest")


@dataclass
class Server:
    target: str
    stub: api_pb2_grpc.ApiStub


@contextlib.contextmanager
def running_apiserver(workdir: Path) -> Iterator[Server]:
    """An apiserver on a redis-server of its own, with a sync stub (simplest in a test)."""
    redis = RedisServer(workdir / "redis").start()
    target = f"127.0.0.1:{free_port()}"
    proc = apiserver_process(workdir, listen=target, redis_url=redis.url).start()
    try:
        wait_healthy(target, 30, proc.proc)
        with grpc.insecure_channel(target) as channel:
            yield Server(target, api_pb2_grpc.ApiStub(channel))
    finally:
        proc.stop()
        redis.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One apiserver for the module, with the fixed objects the rows aim at."""
    with running_apiserver(tmp_path_factory.mktemp("hostile")) as srv:
        _seed(srv.stub)
        yield srv


def _body(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode()


_names = itertools.count()


def _fresh(prefix: str) -> str:
    """A name no other row uses, so that each row shows its own class stored or refused."""
    return f"{prefix}{next(_names)}"


def pod(name: str = "", **spec: Any) -> dict[str, Any]:
    name = name or _fresh("p")
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
            "spec": {"containers": [{"name": "c", "image": "nginx:1"}], **spec}}


def container(**fields: Any) -> dict[str, Any]:
    return pod(containers=[{"name": "c", "image": "nginx:1", **fields}])


def deployment(name: str = "", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name or _fresh("d"), "namespace": NS},
            "spec": {"selector": {"matchLabels": {"app": "d"}},
                     "template": {"metadata": {"labels": {"app": "d"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}},
                     **spec}}


def service(name: str = "", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name or _fresh("s"), "namespace": NS},
            "spec": {"ports": [{"port": 80}], **spec}}


def _seed(stub: api_pb2_grpc.ApiStub) -> None:
    stub.Create(api_pb2.CreateRequest(resource="namespaces", object=_body(
        {"metadata": {"name": NS}})))
    for obj in (pod("victim"), pod("bound"), deployment("d"), service("s"),
                {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": "cm", "namespace": NS}, "data": {"k": "v"}}):
        resource = {"Pod": "pods", "Deployment": "deployments", "Service": "services",
                    "ConfigMap": "configmaps"}[obj["kind"]]
        stub.Create(api_pb2.CreateRequest(resource=resource, namespace=NS, object=_body(obj)))
    # A node whose kubelet nobody serves, and a pod bound to it (for Delete with a
    # grace period and for Logs).
    stub.Create(api_pb2.CreateRequest(resource="nodes", object=_body({
        "metadata": {"name": "n1"},
        "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                   "daemonEndpoints": {"kubeletEndpoint": {"Port": free_port()}}}})))
    stub.Bind(api_pb2.BindRequest(namespace=NS, name="bound", node_name="n1"))


def _current(stub: api_pb2_grpc.ApiStub, resource: str, name: str) -> dict[str, Any]:
    raw = stub.Get(api_pb2.GetRequest(resource=resource, namespace=NS, name=name)).object
    return json.loads(raw)


def _revision(stub: api_pb2_grpc.ApiStub) -> str:
    """The store's global revision: unchanged if and only if nothing was written."""
    return stub.List(api_pb2.ListRequest(resource="namespaces", limit=1)).resource_version


@dataclass
class Row:
    id: str
    call: Callable[[api_pb2_grpc.ApiStub], Any]
    code: grpc.StatusCode
    reason: str = ""
    field: str | None = None  # a cause must name this field (exactly)
    stored: bool = False  # stored, INTERNAL or a silent wait before this change


def create(resource: str, obj: dict[str, Any] | bytes) -> Callable:
    body = obj if isinstance(obj, bytes) else _body(obj)
    return lambda s: s.Create(api_pb2.CreateRequest(resource=resource, namespace=NS,
                                                    object=body))


def update(resource: str, name: str, change: Callable[[dict], Any], *,
           status: bool = False) -> Callable:
    def call(s: api_pb2_grpc.ApiStub) -> Any:
        obj = _current(s, resource, name)
        change(obj)
        request = api_pb2.UpdateRequest(resource=resource, namespace=NS, object=_body(obj))
        return (s.UpdateStatus if status else s.Update)(request)
    return call


def update_raw(body: bytes, *, status: bool = False) -> Callable:
    def call(s: api_pb2_grpc.ApiStub) -> Any:
        request = api_pb2.UpdateRequest(resource="pods", namespace=NS, object=body)
        return (s.UpdateStatus if status else s.Update)(request)
    return call


def patch(resource: str, name: str, body: dict[str, Any] | bytes) -> Callable:
    raw = body if isinstance(body, bytes) else _body(body)
    return lambda s: s.Patch(api_pb2.PatchRequest(resource=resource, namespace=NS, name=name,
                                                  patch=raw))


def set_in(path: str, value: Any) -> Callable[[dict], None]:
    def change(obj: dict) -> None:
        *head, last = path.split(".")
        node = obj
        for part in head:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return change


def watch(rv: str) -> Callable:
    def call(s: api_pb2_grpc.ApiStub) -> Any:
        stream = s.Watch(api_pb2.WatchRequest(resource="pods", namespace=NS,
                                              resource_version=rv), timeout=8)
        return next(iter(stream))
    return call


def watch_ahead(s: api_pb2_grpc.ApiStub) -> Any:
    return watch(str(int(_revision(s)) + 1000))(s)


def logs(**fields: Any) -> Callable:
    return lambda s: list(s.Logs(api_pb2.LogsRequest(namespace=NS, **fields), timeout=10))


def token(data: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()


INVALID = grpc.StatusCode.INVALID_ARGUMENT
DEEP = b'{"metadata":{"name":"p","annotations":' + b'[' * 100_000 + b']' * 100_000 + b"}}"

ROWS = [
    # -- bytes that are not JSON, JSON that is not an object -------------------
    Row("create-not-json", create("pods", b"{not json"), INVALID, "BadRequest"),
    Row("create-not-utf8", create("pods", b'{"a":"\xff"}'), INVALID, "BadRequest"),
    Row("create-utf16", create("pods", json.dumps(pod("u16")).encode("utf-16")), INVALID,
        "BadRequest", stored=True),
    Row("create-array", create("pods", b"[]"), INVALID, "BadRequest"),
    Row("update-not-json", update_raw(b"\x00\x01"), INVALID, "BadRequest"),
    Row("update-status-string", update_raw(b'"status"', status=True), INVALID, "BadRequest"),
    Row("patch-not-json", patch("pods", "victim", b"{'single': 'quotes'}"), INVALID,
        "BadRequest"),
    Row("patch-null", patch("pods", "victim", b"null"), INVALID, "BadRequest"),
    # -- JSON Python parses but no other reader does ----------------------------
    Row("create-nan", create("pods", _body(container(
        resources={"limits": {"cpu": float("nan")}}))), INVALID, "BadRequest", stored=True),
    Row("create-infinity", create("pods", _body(container(
        resources={"limits": {"memory": float("inf")}}))), INVALID, "BadRequest", stored=True),
    Row("create-1e400", create("pods", _body(container(resources={"limits": {"cpu": 1}}))
                              .replace(b'"cpu": 1', b'"cpu": 1e400')),
        INVALID, "BadRequest", stored=True),
    Row("create-lone-surrogate", create("configmaps", {
        "metadata": {"name": "sur"}, "data": {"k": "\ud800"}}), INVALID, "BadRequest",
        field="data.k", stored=True),
    Row("patch-lone-surrogate", patch("pods", "victim", {
        "metadata": {"annotations": {"a": "\udfff"}}}), INVALID, "BadRequest",
        field="metadata.annotations.a", stored=True),
    Row("create-deep-nesting", create("pods", DEEP), INVALID, "BadRequest", stored=True),
    Row("patch-deep-nesting", patch("pods", "victim", DEEP), INVALID, "BadRequest",
        stored=True),
    Row("create-int-beyond-int64", create("pods", pod(activeDeadlineSeconds=2**70)), INVALID,
        "BadRequest", field="spec.activeDeadlineSeconds", stored=True),
    Row("update-int-beyond-uint64", update("pods", "victim", set_in(
        "spec.activeDeadlineSeconds", 2**64 + 5)), INVALID, "BadRequest",
        field="spec.activeDeadlineSeconds", stored=True),
    # -- wrong types, the merge patch included ---------------------------------
    Row("patch-metadata-list", patch("pods", "victim", {"metadata": []}), INVALID, "Invalid",
        field="metadata"),
    Row("patch-metadata-string", patch("pods", "victim", {"metadata": "x"}), INVALID,
        "Invalid", field="metadata", stored=True),
    Row("patch-labels-list", patch("pods", "victim", {"metadata": {"labels": ["a"]}}),
        INVALID, "Invalid", field="metadata.labels"),
    Row("patch-containers-string", patch("deployments", "d", {
        "spec": {"template": {"spec": {"containers": "nginx"}}}}), INVALID, "Invalid",
        field="spec.template.spec.containers"),
    Row("update-status-number", update("pods", "victim", set_in("status", 5), status=True),
        INVALID, "Invalid", field="status"),
    Row("create-replicas-float", create("deployments", deployment(replicas=2.0)), INVALID,
        "Invalid", field="spec.replicas", stored=True),
    # -- out-of-range integers: request fields ---------------------------------
    Row("list-limit-huge", lambda s: s.List(api_pb2.ListRequest(
        resource="pods", namespace=NS, limit=2**62)), grpc.StatusCode.OK, stored=True),
    Row("list-limit-negative", lambda s: s.List(api_pb2.ListRequest(
        resource="pods", namespace=NS, limit=-1)), INVALID, "BadRequest", field="limit"),
    Row("delete-grace-huge", lambda s: s.Delete(api_pb2.DeleteRequest(
        resource="pods", namespace=NS, name="bound", grace_period_seconds=2**62)),
        INVALID, "BadRequest", field="gracePeriodSeconds", stored=True),
    Row("delete-grace-negative", lambda s: s.Delete(api_pb2.DeleteRequest(
        resource="pods", namespace=NS, name="victim", grace_period_seconds=-1)),
        INVALID, "BadRequest", field="gracePeriodSeconds"),
    Row("logs-tail-negative", logs(name="bound", tail_lines=-1), INVALID, "BadRequest",
        field="tailLines"),
    # -- out-of-range integers: objects ----------------------------------------
    Row("create-grace-negative", create("pods", pod(terminationGracePeriodSeconds=-1)),
        INVALID, "Invalid", field="spec.terminationGracePeriodSeconds", stored=True),
    Row("create-probe-period-zero", create("pods", container(
        livenessProbe={"exec": {"command": ["true"]}, "periodSeconds": 0})), INVALID,
        "Invalid", field="spec.containers[0].livenessProbe.periodSeconds", stored=True),
    Row("create-probe-port-huge", create("pods", container(
        readinessProbe={"tcpSocket": {"port": 70000}})), INVALID, "Invalid",
        field="spec.containers[0].readinessProbe.tcpSocket.port", stored=True),
    Row("create-host-port-huge", create("pods", container(
        ports=[{"containerPort": 80, "hostPort": 65536}])), INVALID, "Invalid",
        field="spec.containers[0].ports[0].hostPort"),
    Row("create-replicas-beyond-int32", create("deployments", deployment(replicas=2**40)),
        INVALID, "Invalid", field="spec.replicas", stored=True),
    Row("patch-replicas-negative", patch("deployments", "d", {"spec": {"replicas": -1}}),
        INVALID, "Invalid", field="spec.replicas"),
    Row("create-max-surge-garbage", create("deployments", deployment(strategy={
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": "lots%"}})), INVALID,
        "Invalid", field="spec.strategy.rollingUpdate.maxSurge", stored=True),
    Row("create-endpoints-port-huge", create("endpoints", {
        "metadata": {"name": "e"}, "subsets": [{"addresses": [{"ip": "10.0.0.1"}],
                                                "ports": [{"port": 70000}]}]}),
        INVALID, "Invalid", field="subsets[0].ports[0].port", stored=True),
    Row("create-hpa-utilization-zero", create("hpa", {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "h"},
        "spec": {"maxReplicas": 3, "scaleTargetRef": {"kind": "Deployment", "name": "d"},
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                     "type": "Utilization", "averageUtilization": 0}}}]}}), INVALID,
        "Invalid", field="spec.metrics[0].resource.target.averageUtilization", stored=True),
    Row("create-lease-duration-negative", create("leases", {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": "l"},
        "spec": {"leaseDurationSeconds": -5}}), INVALID, "Invalid",
        field="spec.leaseDurationSeconds", stored=True),
    # -- strings Kubernetes validates by format ---------------------------------
    Row("create-cpu-lots", create("pods", container(resources={"limits": {"cpu": "lots"}})),
        INVALID, "Invalid", field="spec.containers[0].resources.limits.cpu", stored=True),
    Row("create-memory-newline", create("pods", container(
        resources={"requests": {"memory": "1Gi\n"}})), INVALID, "Invalid",
        field="spec.containers[0].resources.requests.memory", stored=True),
    Row("create-request-over-limit", create("pods", container(
        resources={"requests": {"cpu": "2"}, "limits": {"cpu": "1"}})), INVALID, "Invalid",
        field="spec.containers[0].resources.requests", stored=True),
    Row("create-node-capacity-lots", create("nodes", {
        "metadata": {"name": "n-lots"}, "status": {"capacity": {"cpu": "lots"}}}), INVALID,
        "Invalid", field="status.capacity.cpu", stored=True),
    Row("create-event-timestamp", create("events", {
        "metadata": {"name": "ev"}, "involvedObject": {"kind": "Pod", "name": "p"},
        "lastTimestamp": "yesterday"}), INVALID, "Invalid", field="lastTimestamp",
        stored=True),
    Row("update-status-start-time", update("pods", "victim", set_in(
        "status.startTime", "2024-13-45T99:00:00Z"), status=True), INVALID, "Invalid",
        field="status.startTime", stored=True),
    Row("create-service-selector-label", create("services", service(
        selector={"app": "not a label!"})), INVALID, "Invalid",
        field='spec.selector["app"]', stored=True),
    Row("create-label-value-newline", create("pods", {
        **pod("lbl"), "metadata": {"name": "lbl", "labels": {"a": "b\n"}}}), INVALID,
        "Invalid", field='metadata.labels["a"]', stored=True),
    Row("create-generate-name", create("pods", {
        **pod("gn"), "metadata": {"name": "gn", "generateName": "Not_A_Name"}}), INVALID,
        "Invalid", field="metadata.generateName", stored=True),
    Row("create-node-name", create("pods", pod("nn", nodeName="Not A Node")), INVALID,
        "Invalid", field="spec.nodeName", stored=True),
    Row("bind-node-name", lambda s: s.Bind(api_pb2.BindRequest(
        namespace=NS, name="victim", node_name="Not A Node")), INVALID, "Invalid",
        field="target.name", stored=True),
    Row("update-status-pod-ip", update("pods", "victim", set_in(
        "status.podIP", "999.1.1.1"), status=True), INVALID, "Invalid", field="status.podIP",
        stored=True),
    Row("update-status-pod-ips", update("pods", "victim", set_in(
        "status.podIPs", [{"ip": "10.0.0.01"}]), status=True), INVALID, "Invalid",
        field="status.podIPs[0].ip", stored=True),
    Row("create-service-external-ip", create("services", service(
        externalIPs=["not-an-ip"])), INVALID, "Invalid", field="spec.externalIPs[0]",
        stored=True),
    Row("create-endpoints-ip", create("endpoints", {
        "metadata": {"name": "e2"}, "subsets": [{"addresses": [{"ip": "garbage"}]}]}),
        INVALID, "Invalid", field="subsets[0].addresses[0].ip", stored=True),
    Row("create-configmap-binary-not-base64", create("configmaps", {
        "metadata": {"name": "bin"}, "binaryData": {"k": "not base64!"}}), INVALID,
        "Invalid", field="binaryData.k", stored=True),
    # -- over-long names and values: short answers, no echo --------------------
    Row("create-name-200kb", create("pods", pod(BIG)), INVALID, "Invalid",
        field="metadata.name"),
    Row("create-label-200kb", create("pods", {**pod("l2"), "metadata": {
        "name": "l2", "labels": {"a": BIG}}}), INVALID, "Invalid", field='metadata.labels["a"]'),
    Row("create-unknown-field-200kb", create("pods", {**pod("u2"), BIG: 1}), INVALID,
        "Invalid"),
    Row("create-kind-200kb", create("pods", {**pod("k2"), "kind": BIG}), INVALID, "Invalid",
        field="kind"),
    Row("create-unicode-errors", create("pods", {**pod("uni"), "metadata": {
        "name": "uni", "labels": {f"{'😀' * 30}{i}": "日" * 5000 for i in range(12)}}}),
        INVALID, "Invalid", field="metadata.labels"),
    Row("get-name-unicode", lambda s: s.Get(api_pb2.GetRequest(
        resource="pods", namespace=NS, name="😀" * 253)), grpc.StatusCode.NOT_FOUND,
        "NotFound"),
    Row("get-name-200kb", lambda s: s.Get(api_pb2.GetRequest(
        resource="pods", namespace=NS, name=BIG)), INVALID, "BadRequest",
        field="metadata.name"),
    Row("get-resource-200kb", lambda s: s.Get(api_pb2.GetRequest(
        resource=BIG, namespace=NS, name="x")), INVALID, "BadRequest"),
    Row("delete-propagation-200kb", lambda s: s.Delete(api_pb2.DeleteRequest(
        resource="pods", namespace=NS, name="victim", propagation_policy=BIG)),
        INVALID, "BadRequest", field="propagationPolicy"),
    Row("patch-name-200kb", patch("pods", BIG, {"metadata": {}}), INVALID, "BadRequest",
        field="metadata.name"),
    Row("delete-uid-200kb", lambda s: s.Delete(api_pb2.DeleteRequest(
        resource="pods", namespace=NS, name="victim",
        preconditions=api_pb2.Preconditions(uid=BIG))), INVALID, "BadRequest",
        field="preconditions.uid"),
    Row("bind-uid-200kb", lambda s: s.Bind(api_pb2.BindRequest(
        namespace=NS, name="victim", node_name="n1", uid=BIG)), INVALID, "BadRequest",
        field="uid"),
    Row("bind-pod-200kb", lambda s: s.Bind(api_pb2.BindRequest(
        namespace=NS, name=BIG, node_name="n1")), INVALID, "BadRequest",
        field="metadata.name"),
    Row("logs-container-200kb", logs(name="bound", container=BIG), INVALID, "BadRequest",
        field="container"),
    Row("metrics-name-200kb", lambda s: s.Metrics(api_pb2.MetricsRequest(
        resource="pods", namespace=NS, name=BIG)), INVALID, "BadRequest",
        field="metadata.name"),
    Row("list-selector-200kb", lambda s: s.List(api_pb2.ListRequest(
        resource="pods", namespace=NS, label_selector="a in (" + BIG)), INVALID, "BadRequest",
        field="labelSelector"),
    # -- malformed request fields ----------------------------------------------
    Row("list-bad-field-selector", lambda s: s.List(api_pb2.ListRequest(
        resource="pods", field_selector="spec.nodeName")), INVALID, "BadRequest",
        field="fieldSelector"),
    Row("list-continue-garbage", lambda s: s.List(api_pb2.ListRequest(
        resource="pods", limit=1, continue_token="!!!")), INVALID, "BadRequest",
        field="continue"),
    Row("list-continue-infinity", lambda s: s.List(api_pb2.ListRequest(
        resource="pods", limit=1, continue_token=base64.urlsafe_b64encode(
            b'{"rv": Infinity, "key": "x"}').decode())), INVALID, "BadRequest",
        field="continue", stored=True),
    Row("list-continue-wrong-types", lambda s: s.List(api_pb2.ListRequest(
        resource="pods", limit=1, continue_token=token({"rv": [], "key": {}}))), INVALID,
        "BadRequest", field="continue"),
    Row("metrics-wrong-resource", lambda s: s.Metrics(api_pb2.MetricsRequest(
        resource="configmaps")), INVALID, "BadRequest"),
    Row("metrics-bad-selector", lambda s: s.Metrics(api_pb2.MetricsRequest(
        resource="nodes", label_selector="a in (")), INVALID, "BadRequest",
        field="labelSelector"),
    Row("watch-rv-garbage", watch("12abc"), INVALID, "BadRequest", field="resourceVersion"),
    Row("watch-rv-negative", watch("-5"), INVALID, "BadRequest", field="resourceVersion",
        stored=True),
    Row("watch-rv-beyond-int64", watch(str(2**64)), INVALID, "BadRequest",
        field="resourceVersion", stored=True),
    # -- a Watch from a revision the store has not reached ---------------------
    Row("watch-rv-ahead", watch_ahead, grpc.StatusCode.DEADLINE_EXCEEDED, "Timeout",
        stored=True),
    # -- Logs: every failure is a clean code -----------------------------------
    Row("logs-unknown-pod", logs(name="nobody"), grpc.StatusCode.NOT_FOUND, "NotFound"),
    Row("logs-unknown-container", logs(name="bound", container="nope"), INVALID, "BadRequest",
        field="container"),
    Row("logs-bad-container-name", logs(name="bound", container="Not A Name!"), INVALID,
        "BadRequest", field="container"),
    Row("logs-unbound-pod", logs(name="victim"), INVALID, "BadRequest"),
    Row("logs-no-kubelet", logs(name="bound", container="c", tail_lines=10**15),
        grpc.StatusCode.UNAVAILABLE, "ServiceUnavailable"),
]


def _call(server: Server, row: Row) -> ApiError | None:
    try:
        row.call(server.stub)
    except grpc.RpcError as err:
        return from_rpc_error(err)
    return None


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_hostile_input(server: Server, row: Row) -> None:
    victim = _current(server.stub, "pods", "victim")
    before = _revision(server.stub)
    err = _call(server, row)
    code = grpc.StatusCode.OK if err is None else err.code
    assert code == row.code, f"{row.id}: {code.name}: {err}"
    assert code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
    if err is not None:
        assert err.from_server, f"{row.id}: the apiserver sent no status: {err}"
        assert err.reason == row.reason, f"{row.id}: reason {err.reason}: {err}"
        assert len(str(err)) <= 1100
        assert ECHO not in str(err) and all(ECHO not in c.message for c in err.causes)
        if row.field is not None:
            fields = [c.field for c in err.causes]
            assert row.field in fields, f"{row.id}: causes {err.causes}"
    # Nothing was stored, and the object every row could have hit is as it was.
    assert _revision(server.stub) == before, f"{row.id}: something was written"
    assert _current(server.stub, "pods", "victim") == victim


def test_watch_ahead_names_the_cause(server: Server) -> None:
    """Kubernetes' answer to a watch from the future: Timeout, ResourceVersionTooLarge."""
    err = _call(server, Row("ahead", watch_ahead, grpc.StatusCode.DEADLINE_EXCEEDED))
    assert err is not None and err.reason == "Timeout"
    assert [c.type for c in err.causes] == ["ResourceVersionTooLarge"]
    assert err.retry_after == 1
    assert "Too large resource version" in err.message


def test_every_stored_object_still_validates(server: Server) -> None:
    """After every row ran: what the store holds passes validation when read back."""
    for row in ROWS:
        _call(server, row)
    for info in RESOURCES:
        for raw in server.stub.List(api_pb2.ListRequest(resource=info.plural)).items:
            validate_stored(info, json.loads(raw), VERSION)


def test_every_verb_has_a_row() -> None:
    verbs = {"create", "get", "list", "update", "update-status", "patch", "delete", "watch",
             "bind", "logs", "metrics"}
    covered = {v for v in verbs if any(r.id.startswith(v + "-") for r in ROWS)}
    assert covered == verbs, verbs - covered

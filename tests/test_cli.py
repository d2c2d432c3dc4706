"""The kubelite CLI: pure logic as unit tests, then the real binary against a real
cluster started by `kubelite up` (redis-server and apiserver as child processes)."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubelite import errors
from kubelite.cli import apply, columns, describe, main, manifests, printers, up
from kubelite.cli.reporting import CliError, api_error_line, is_connect_failure
from kubelite.cli.session import Session
from kubelite.localcluster import free_port
from kubelite.resources import lookup

NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


def ago(seconds: float) -> str:
    return (NOW - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- ages and tables -----------------------------------------------------------


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0s"), (-1, "0s"), (-5, "<invalid>"), (59, "59s"), (119, "119s"), (120, "2m"),
    (125, "2m5s"), (599, "9m59s"), (600, "10m"), (179 * 60, "179m"), (3 * 3600, "3h"),
    (7 * 3600 + 30 * 60, "7h30m"), (9 * 3600 + 59 * 60, "9h"), (47 * 3600, "47h"),
    (49 * 3600, "2d1h"), (3 * 86400, "3d"), (10 * 86400, "10d"), (800 * 86400, "2y70d"),
    (9 * 365 * 86400, "9y"),
])
def test_human_duration_matches_kubectl(seconds: float, text: str) -> None:
    """Durations print exactly as kubectl's HumanDuration prints them."""
    assert printers.human_duration(seconds) == text


def test_age_of_missing_or_bad_timestamp_is_unknown() -> None:
    """An object without a usable creationTimestamp shows <unknown>, not a crash."""
    assert printers.age(None, NOW) == "<unknown>"
    assert printers.age("yesterday", NOW) == "<unknown>"
    assert printers.age("2026-11-26T11:59:55.123456Z", NOW) == "4s"


def test_table_pads_columns_by_three_spaces_without_trailing_blanks() -> None:
    """Columns are as wide as their widest cell plus three spaces; the last is unpadded."""
    text = printers.render_table(["NAME", "AGE"], [["nginx", "5s"], ["a", "10m"]])
    assert text.splitlines() == ["NAME    AGE", "nginx   5s", "a       10m"]


def test_watch_rows_keep_the_first_tables_columns() -> None:
    """Rows printed later by -w line up under the header printed first."""
    layout = printers.TableLayout(["NAME", "STATUS"], [["web-1", "Running"]])
    assert layout.line(["w", "Pending"]) == "w       Pending"
    assert layout.line(["a-much-longer-name", "X"]) == "a-much-longer-name   X"


def pod(name: str = "nginx", **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default", "creationTimestamp": ago(5),
                         "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c"}], "nodeName": "node-0"},
            "status": status}


@pytest.mark.parametrize(("obj", "expected"), [
    (pod(phase="Running"), "Running"),
    (pod(), "Pending"),
    (pod(phase="Running", containerStatuses=[
        {"name": "c", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]), "CrashLoopBackOff"),
    (pod(phase="Failed", containerStatuses=[
        {"name": "c", "state": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]),
     "OOMKilled"),
    (pod(phase="Failed", containerStatuses=[
        {"name": "c", "state": {"terminated": {"exitCode": 3}}}]), "ExitCode:3"),
    (pod(phase="Failed", reason="Evicted"), "Evicted"),
])
def test_pod_status_column_follows_kubectl(obj: dict[str, Any], expected: str) -> None:
    """STATUS is a container's waiting/terminated reason, else the pod's reason or phase."""
    assert columns.pod_status(obj) == expected


def test_pod_being_deleted_shows_terminating() -> None:
    """A deletionTimestamp wins over every other status."""
    obj = pod(phase="Running")
    obj["metadata"]["deletionTimestamp"] = ago(0)
    assert columns.pod_status(obj) == "Terminating"


def test_pod_rows_count_ready_containers_and_restarts() -> None:
    """READY counts ready containers over all; wide adds IP and NODE."""
    obj = pod(phase="Running", podIP="127.0.1.2", containerStatuses=[
        {"name": "c", "ready": True, "restartCount": 0, "state": {"running": {}}}])
    headers, row = columns.table(lookup("pods"), columns.TableOptions(wide=True), NOW)
    assert headers == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    assert row(obj) == ["nginx", "1/1", "Running", "0", "5s", "127.0.1.2", "node-0"]


def test_all_namespaces_puts_namespace_first_and_labels_last() -> None:
    """-A adds NAMESPACE as the first column, --show-labels adds LABELS as the last."""
    options = columns.TableOptions(all_namespaces=True, show_labels=True)
    headers, row = columns.table(lookup("pods"), options, NOW)
    assert headers[0] == "NAMESPACE" and headers[-1] == "LABELS"
    cells = row(pod(phase="Running"))
    assert cells[0] == "default" and cells[-1] == "app=web"


def test_several_kinds_qualify_names_with_their_kind() -> None:
    """In `get po,deploy`, names read pod/x and deployment.apps/y."""
    _, row = columns.table(lookup("deploy"), columns.TableOptions(show_kind=True), NOW)
    deploy = {"metadata": {"name": "web", "creationTimestamp": ago(60)},
              "spec": {"replicas": 3},
              "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}
    assert row(deploy) == ["deployment.apps/web", "2/3", "3", "2", "60s"]


def test_service_row_shows_type_ip_and_ports() -> None:
    """PORT(S) lists port:nodePort/protocol; a ClusterIP service has no external IP."""
    svc = {"metadata": {"name": "web", "creationTimestamp": ago(1)},
           "spec": {"type": "NodePort", "clusterIP": "10.96.0.10",
                    "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"},
                              {"port": 53, "protocol": "UDP"}]}}
    headers, row = columns.table(lookup("svc"), columns.TableOptions(), NOW)
    assert headers == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert row(svc) == ["web", "NodePort", "10.96.0.10", "<none>", "80:30080/TCP,53/UDP", "1s"]


def test_endpoints_list_three_addresses_then_a_count() -> None:
    """Like kubectl, only the first three ready addresses are spelled out."""
    obj = {"subsets": [{"addresses": [{"ip": f"127.0.0.{i}"} for i in range(1, 6)],
                        "ports": [{"port": 8080}]}]}
    assert columns.format_endpoints(obj) == (
        "127.0.0.1:8080,127.0.0.2:8080,127.0.0.3:8080 + 2 more...")
    assert columns.format_endpoints({}) == "<none>"


def test_node_row_shows_readiness_roles_and_cordon() -> None:
    """A cordoned Ready node reads Ready,SchedulingDisabled; roles come from labels."""
    node = {"metadata": {"name": "node-0", "creationTimestamp": ago(200),
                         "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"unschedulable": True},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "nodeInfo": {"kubeletVersion": "v0.1.0"}}}
    _, row = columns.table(lookup("nodes"), columns.TableOptions(), NOW)
    assert row(node) == ["node-0", "Ready,SchedulingDisabled", "control-plane", "3m20s",
                         "v0.1.0"]


def test_events_sort_oldest_first_and_name_their_object() -> None:
    """Events are listed by when they last happened; OBJECT is kind/name."""
    def event(name: str, when: float) -> dict[str, Any]:
        return {"metadata": {"name": name}, "lastTimestamp": ago(when), "type": "Normal",
                "reason": "Started", "involvedObject": {"kind": "Pod", "name": "web"},
                "message": "ok"}
    ordered = columns.sort_for_display(lookup("events"), [event("new", 1), event("old", 90)])
    assert [e["metadata"]["name"] for e in ordered] == ["old", "new"]
    headers, row = columns.table(lookup("events"), columns.TableOptions(), NOW)
    assert headers == ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]
    assert row(ordered[0]) == ["90s", "Normal", "Started", "pod/web", "ok"]


def test_hpa_row_shows_current_over_target() -> None:
    """TARGETS reads `cpu: 40%/80%`, `<unknown>` before the first measurement."""
    hpa = {"metadata": {"name": "web", "creationTimestamp": ago(30)},
           "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5,
                    "metrics": [{"type": "Resource", "resource": {
                        "name": "cpu", "target": {"type": "Utilization",
                                                  "averageUtilization": 80}}}]},
           "status": {"currentReplicas": 2}}
    _, row = columns.table(lookup("hpa"), columns.TableOptions(), NOW)
    assert row(hpa) == ["web", "Deployment/web", "cpu: <unknown>/80%", "1", "5", "2", "30s"]
    hpa["status"]["currentMetrics"] = [{"type": "Resource", "resource": {
        "name": "cpu", "current": {"averageUtilization": 40}}}]
    assert row(hpa)[2] == "cpu: 40%/80%"


def test_unknown_kind_gets_name_and_age() -> None:
    """A kind without its own columns still prints NAME and AGE."""
    headers, row = columns.table(lookup("leases"), columns.TableOptions(), NOW)
    assert headers == ["NAME", "HOLDER", "AGE"]
    generic = columns.GENERIC
    assert [c.header for c in generic] == ["NAME", "AGE"]


def test_output_name_uses_the_qualified_kind() -> None:
    """-o name and apply print `deployment.apps/web`, `pod/x`."""
    assert printers.object_name({"metadata": {"name": "web"}}, lookup("deploy")) == (
        "deployment.apps/web")
    assert printers.object_name({"metadata": {"name": "x"}}, lookup("po")) == "pod/x"


# --- manifests ---------------------------------------------------------------

DEPLOYMENT_DOC = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
"""


def test_multi_document_yaml_yields_each_object_in_order(tmp_path: Path) -> None:
    """Documents separated by --- become manifests in file order; empty ones are skipped."""
    path = tmp_path / "app.yaml"
    path.write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: demo}\n---\n---\n"
                    + DEPLOYMENT_DOC)
    loaded = manifests.load([str(path)])
    assert [(m.info.kind, m.name) for m in loaded] == [("Namespace", "demo"),
                                                       ("Deployment", "web")]
    assert loaded[0].source == str(path)


def test_json_list_items_become_manifests(tmp_path: Path) -> None:
    """A JSON `List` is flattened into its items."""
    path = tmp_path / "list.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "b"}}]}))
    assert [m.info.kind for m in manifests.load([str(path)])] == ["ConfigMap", "Service"]


def test_directory_takes_only_manifest_files_in_name_order(tmp_path: Path) -> None:
    """A directory contributes its *.yaml, *.yml and *.json files, sorted, nothing else."""
    (tmp_path / "b.yml").write_text(DEPLOYMENT_DOC.replace("web", "b"))
    (tmp_path / "a.json").write_text(json.dumps(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}))
    (tmp_path / "c.yaml").write_text(DEPLOYMENT_DOC.replace("web", "c"))
    (tmp_path / "notes.txt").write_text("kind: nonsense")
    assert [m.name for m in manifests.load([str(tmp_path)])] == ["a", "b", "c"]


def test_stdin_is_read_for_dash() -> None:
    """`-f -` reads the manifests from standard input."""
    loaded = manifests.load(["-"], stdin=io.StringIO(DEPLOYMENT_DOC))
    assert loaded[0].name == "web"


def test_yaml_error_names_the_file_on_one_line(tmp_path: Path) -> None:
    """A parse error is one line that starts with the file name."""
    path = tmp_path / "bad.yaml"
    path.write_text("kind: [unclosed\nmetadata:\n  name: x\n")
    with pytest.raises(CliError) as caught:
        manifests.load([str(path)])
    message = str(caught.value)
    assert message.startswith(f"{path}: yaml parse error") and "\n" not in message


@pytest.mark.parametrize(("text", "fragment"), [
    ("kind: Pod\nmetadata: {name: x}\n", "missing apiVersion or kind"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {}\n", "missing metadata.name"),
    ("apiVersion: v1\nkind: Widget\nmetadata: {name: x}\n", 'no matches for kind "Widget"'),
    ("- just\n- a list\n", "expected an object"),
])
def test_malformed_manifests_are_reported(tmp_path: Path, text: str, fragment: str) -> None:
    """Objects that cannot be applied are rejected with the reason and the file."""
    path = tmp_path / "m.yaml"
    path.write_text(text)
    with pytest.raises(CliError, match=fragment):
        manifests.load([str(path)])


def test_missing_path_is_reported(tmp_path: Path) -> None:
    """A path that does not exist is an error, not an empty apply."""
    with pytest.raises(CliError, match="does not exist"):
        manifests.load([str(tmp_path / "nope.yaml")])


# --- apply's comparison and merge ----------------------------------------------

LIVE_SERVICE = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "web", "namespace": "default", "uid": "u-1", "resourceVersion": "7",
                 "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"app": "web"}},
    "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.5", "sessionAffinity": "None",
             "ports": [{"port": 80, "targetPort": 9376, "protocol": "TCP"}],
             "selector": {"app": "web"}},
    "status": {"loadBalancer": {}},
}
MANIFEST_SERVICE = {
    "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "labels": {"app": "web"}},
    "spec": {"ports": [{"port": 80, "targetPort": 9376}], "selector": {"app": "web"}},
}


def test_manifest_equal_to_live_fields_is_unchanged() -> None:
    """Fields the server filled in (defaults, clusterIP, uid) are not differences."""
    assert apply.is_subset(apply.desired_fields(MANIFEST_SERVICE), LIVE_SERVICE)


def with_change(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """MANIFEST_SERVICE with one field set (None included, unlike a merge)."""
    manifest = json.loads(json.dumps(MANIFEST_SERVICE))
    target = manifest
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return manifest


@pytest.mark.parametrize(("path", "value"), [
    (("spec", "ports"), [{"port": 81, "targetPort": 9376}]),
    (("spec", "ports"), [{"port": 80, "targetPort": 9376}, {"port": 443}]),
    (("metadata", "labels"), {"app": "web", "tier": "front"}),
    (("spec", "sessionAffinity"), None),
])
def test_any_differing_field_is_a_change(path: tuple[str, ...], value: Any) -> None:
    """A changed value, a longer list, an extra label or a null over a value all differ."""
    manifest = apply.desired_fields(with_change(path, value))
    assert not apply.is_subset(manifest, LIVE_SERVICE)


def test_booleans_are_not_numbers() -> None:
    """true in a manifest is not equal to 1 on the server (Python says it is)."""
    assert not apply.is_subset({"a": True}, {"a": 1})
    assert apply.is_subset({"a": 1}, {"a": 1.0})


def test_update_keeps_live_identity_and_server_fields() -> None:
    """The update carries the live resourceVersion and uid and keeps the clusterIP."""
    manifest = apply.merge_onto(MANIFEST_SERVICE, {
        "metadata": {"resourceVersion": "1", "uid": "forged"},
        "spec": {"ports": [{"port": 8080, "targetPort": 9376}]}})
    body = apply.updated_object(LIVE_SERVICE, manifest)
    assert body["metadata"]["resourceVersion"] == "7" and body["metadata"]["uid"] == "u-1"
    assert body["spec"]["clusterIP"] == "10.96.0.5"
    assert body["spec"]["ports"] == [{"port": 8080, "targetPort": 9376}]
    assert LIVE_SERVICE["spec"]["ports"][0]["port"] == 80  # the live object is not mutated


def test_null_in_a_manifest_removes_the_field() -> None:
    """Merge-patch semantics: null deletes."""
    body = apply.updated_object(LIVE_SERVICE, {"metadata": {"name": "web", "labels": None}})
    assert "labels" not in body["metadata"]


def make_session(namespace: str | None) -> Session:
    return Session(client=None, server="x", timeout=1.0, namespace=namespace)  # type: ignore[arg-type]


def test_namespace_flag_fills_in_but_may_not_contradict() -> None:
    """-n applies to objects without a namespace and conflicts with a different one."""
    loaded = manifests.load_text(DEPLOYMENT_DOC, "d.yaml")[0]
    assert apply.target_namespace(loaded, make_session("dev")) == "dev"
    assert apply.target_namespace(loaded, make_session(None)) == "default"
    pinned = manifests.load_text(DEPLOYMENT_DOC.replace("name: web", "name: web\n  namespace: a"),
                                 "d.yaml")[0]
    assert apply.target_namespace(pinned, make_session(None)) == "a"
    with pytest.raises(CliError, match="does not match the namespace"):
        apply.target_namespace(pinned, make_session("b"))


# --- describe ------------------------------------------------------------------


def test_describe_aligns_values_and_lists_labels_one_per_line() -> None:
    """Top-level values start in one column; extra labels continue under the first."""
    obj = {"metadata": {"name": "web", "namespace": "default", "uid": "u",
                        "labels": {"app": "web", "tier": "front"},
                        "creationTimestamp": "2026-11-26T11:00:00Z"},
           "data": {"k": "v"}}
    text = describe.describe(obj, lookup("cm"), [], now=NOW)
    lines = text.splitlines()
    assert lines[0] == "Name:               web"
    assert lines[2] == "Labels:             app=web"
    assert lines[3] == "                    tier=front"
    assert lines[-1] == "Events:             <none>"


def test_describe_lists_only_events_about_the_object() -> None:
    """Events are matched on involvedObject uid; others are left out."""
    obj = pod(phase="Running")
    obj["metadata"]["uid"] = "pod-uid"
    mine = {"type": "Warning", "reason": "BackOff", "message": "restarting",
            "involvedObject": {"kind": "Pod", "name": "nginx", "uid": "pod-uid"},
            "lastTimestamp": ago(10), "firstTimestamp": ago(70), "count": 3,
            "source": {"component": "kubelet", "host": "node-0"}}
    other = dict(mine, reason="Other", involvedObject={"kind": "Pod", "name": "nginx",
                                                       "uid": "older-pod"})
    text = describe.describe(obj, lookup("pods"), [mine, other], now=NOW)
    events = text[text.index("Events:"):].splitlines()
    assert events[1].split() == ["Type", "Reason", "Age", "From", "Message"]
    assert "BackOff" in events[3] and "10s (x3 over 70s)" in events[3]
    assert "kubelet, node-0" in events[3]
    assert "Other" not in text
    assert "Node:               node-0" in text and "Status:             Running" in text


def test_describe_deployment_summarises_replicas_and_strategy() -> None:
    """A Deployment shows its selector, replica counts and rollout strategy."""
    deploy = {"metadata": {"name": "web", "namespace": "default"},
              "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                       "strategy": {"type": "RollingUpdate", "rollingUpdate": {
                           "maxUnavailable": "25%", "maxSurge": "25%"}},
                       "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                           "containers": [{"name": "nginx", "image": "nginx:1.14.2"}]}}},
              "status": {"replicas": 3, "updatedReplicas": 3, "availableReplicas": 2,
                         "unavailableReplicas": 1}}
    text = describe.describe(deploy, lookup("deploy"), [], now=NOW)
    assert "Selector:" in text and "app=web" in text
    assert "3 desired | 3 updated | 3 total | 2 available | 1 unavailable" in text
    assert "StrategyType:           RollingUpdate" in text
    image = next(line for line in text.splitlines() if line.strip().startswith("Image:"))
    assert image.split() == ["Image:", "nginx:1.14.2"]


def test_describe_node_shows_conditions_and_resources() -> None:
    """A Node shows its conditions table, capacity and allocatable."""
    node = {"metadata": {"name": "node-0"},
            "status": {"conditions": [{"type": "Ready", "status": "True",
                                       "reason": "KubeletReady", "message": "ready"}],
                       "capacity": {"cpu": "4", "memory": "8Gi"},
                       "allocatable": {"cpu": "3500m", "memory": "7Gi"}}}
    lines = describe.describe(node, lookup("nodes"), [], now=NOW).splitlines()
    assert "Namespace:" not in "\n".join(lines)
    ready = next(line for line in lines if line.strip().startswith("Ready"))
    assert "True" in ready and "KubeletReady" in ready
    at = lines.index("Allocatable:")
    assert lines[at + 1].split() == ["cpu:", "3500m"]


# --- errors and flags ---------------------------------------------------------


def test_server_errors_read_like_kubectls() -> None:
    """`Error from server (NotFound): ...` with the server's message."""
    line = api_error_line(errors.NotFoundError('pods "x" not found'), server="s", timeout=1)
    assert line == 'Error from server (NotFound): pods "x" not found'
    line = api_error_line(errors.InvalidError("bad\nvalue", field="spec.replicas"),
                          server="s", timeout=1)
    assert line == "Error from server (Invalid): spec.replicas: bad value"


def test_unreachable_server_is_a_connect_error() -> None:
    """grpc's connect failure becomes `cannot connect to the apiserver at ADDR: reason`."""
    err = errors.UnavailableError(
        "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: "
        "Failed to connect to remote host: Connection refused")
    assert is_connect_failure(err)
    assert api_error_line(err, server="127.0.0.1:1", timeout=1) == (
        "error: cannot connect to the apiserver at 127.0.0.1:1: Connection refused")
    from_server = errors.UnavailableError("redis is unreachable")
    from_server.from_server = True  # as from_rpc_error marks an error with a Status
    assert not is_connect_failure(from_server)


def test_bad_command_lines_fail_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """argparse's complaints are one line and exit 1, like every other failure."""
    assert main.main(["get", "pods", "-o", "table"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: argument -o/--output")


def test_unknown_kind_fails_before_contacting_a_server(
        capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown kind is reported by name, even with no server running."""
    assert main.main(["--server", f"127.0.0.1:{free_port()}", "get", "widgets"]) == 1
    assert capsys.readouterr().err == (
        'error: the server doesn\'t have a resource type "widgets"\n')


@pytest.mark.parametrize(("text", "seconds"), [("30", 30), ("30s", 30), ("500ms", 0.5),
                                               ("2m", 120), ("1h", 3600)])
def test_durations_accept_kubectl_units(text: str, seconds: float) -> None:
    """--request-timeout and --timeout take plain seconds or ms/s/m/h."""
    assert main.duration(text) == seconds


def test_flags_may_follow_positionals() -> None:
    """`get po -n demo web` and `-n demo get po web` both parse."""
    parser = main.build_parser()
    late = parser.parse_args(["get", "po", "-n", "demo", "web"])
    early = parser.parse_args(["-n", "demo", "get", "po", "web"])
    assert late.targets == early.targets == ["po", "web"]
    assert late.namespace == early.namespace == "demo"
    wait = parser.parse_args(["delete", "po", "x", "--wait=false", "--cascade=orphan"])
    assert wait.wait is False and wait.cascade == "orphan"


def test_up_refuses_a_busy_port() -> None:
    """A port someone listens on is reported in one line, before anything starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        address = f"127.0.0.1:{sock.getsockname()[1]}"
        with pytest.raises(CliError, match="already in use"):
            up.check_port_free(address)


def test_up_gives_each_kubelet_its_own_node_name(tmp_path) -> None:
    """--nodes N starts N kubelets, node-0 .. node-N-1, each with its own IP and pod range."""
    kubelet = next(c for c in up.COMPONENTS if c.module == "kubelet")
    options = up.UpOptions(nodes=3)
    assert kubelet.replicas(options) == 3
    args = [kubelet.args(options, i, tmp_path) for i in range(3)]
    assert [a[a.index("--node-name") + 1] for a in args] == ["node-0", "node-1", "node-2"]
    assert len({a[a.index("--pod-cidr") + 1] for a in args}) == 3
    assert len({a[a.index("--listen") + 1].rsplit(":", 1)[0] for a in args}) == 3
    assert kubelet.instance_name(2, 3) == "kubelet-2"


# --- end to end: the real binary against `kubelite up` -----------------------------


def kubelite_binary() -> str:
    found = shutil.which("kubelite") or str(Path(sys.executable).parent / "kubelite")
    if not Path(found).exists():
        pytest.fail("the kubelite command is missing: run `pip install -e .`")
    return found


def child_pids(pid: int) -> set[int]:
    pids: set[int] = set()
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        pids.update(int(p) for p in children.read_text().split())
    return pids


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@dataclass
class UpProcess:
    proc: subprocess.Popen
    server: str
    banner: str

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


def start_up(data_dir: Path) -> UpProcess:
    """Runs `kubelite up` on a free port and waits for its banner."""
    server = f"127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [kubelite_binary(), "up", "--listen", server, "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=data_dir.parent)
    assert proc.stdout is not None
    banner = proc.stdout.readline()
    if "kubelite is up" not in banner:
        proc.kill()
        pytest.fail(f"kubelite up did not come up: {banner}{proc.stdout.read()}")
    return UpProcess(proc, server, banner)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpProcess]:
    """One `kubelite up` for the end-to-end tests; each test works in its own namespace."""
    running_up = start_up(tmp_path_factory.mktemp("cluster") / "data")
    yield running_up
    running_up.stop()


def kubelite(*args: str, server: str | None, stdin: str | None = None,
             timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("KUBELITE_SERVER", None)
    if server:
        env["KUBELITE_SERVER"] = server
    return subprocess.run([kubelite_binary(), *args], input=stdin, capture_output=True,
                          text=True, env=env, timeout=timeout)


def nginx_manifests(namespace: str, replicas: int = 3) -> str:
    """A Namespace, a ConfigMap, and the nginx Deployment and Service from the k8s docs."""
    return f"""\
apiVersion: v1
kind: Namespace
metadata:
  name: {namespace}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: game-config
  namespace: {namespace}
data:
  player_initial_lives: "3"
  ui_properties_file_name: user-interface.properties
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: nginx-deployment
  namespace: {namespace}
  labels:
    app: nginx
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: nginx
  template:
    metadata:
      labels:
        app: nginx
    spec:
      containers:
      - name: nginx
        image: nginx:1.14.2
        ports:
        - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: my-service
  namespace: {namespace}
spec:
  selector:
    app.kubernetes.io/name: MyApp
  ports:
    - protocol: TCP
      port: 80
      targetPort: 9376
"""


def assert_one_line_failure(result: subprocess.CompletedProcess[str], start: str) -> None:
    assert result.returncode == 1, result
    assert result.stderr.startswith(start), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr


def new_namespace() -> str:
    return f"e2e-{uuid.uuid4().hex[:8]}"


@pytest.mark.slow
def test_apply_get_describe_delete_through_the_binary(cluster: UpProcess,
                                                      tmp_path: Path) -> None:
    """The acceptance path: apply a multi-document file, get it as JSON/YAML/tables,
    describe it, and delete it, all through the real binary against `kubelite up`."""
    ns = new_namespace()
    app = tmp_path / "app.yaml"
    app.write_text(nginx_manifests(ns))
    server = cluster.server

    first = kubelite("apply", "-f", str(app), server=server)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        f"namespace/{ns} created", "configmap/game-config created",
        "deployment.apps/nginx-deployment created", "service/my-service created"]

    again = kubelite("apply", "-f", str(app), server=server)
    assert again.stdout.splitlines() == [
        f"namespace/{ns} unchanged", "configmap/game-config unchanged",
        "deployment.apps/nginx-deployment unchanged", "service/my-service unchanged"]

    app.write_text(nginx_manifests(ns, replicas=2))
    changed = kubelite("apply", "-f", str(app), server=server)
    assert changed.stdout.splitlines() == [
        f"namespace/{ns} unchanged", "configmap/game-config unchanged",
        "deployment.apps/nginx-deployment configured", "service/my-service unchanged"]

    as_json = kubelite("get", "deploy", "nginx-deployment", "-n", ns, "-o", "json",
                       server=server)
    deploy = json.loads(as_json.stdout)
    assert deploy["kind"] == "Deployment" and deploy["spec"]["replicas"] == 2
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.14.2"

    listed = json.loads(kubelite("get", "deploy", "-n", ns, "-o", "json", server=server).stdout)
    assert listed["kind"] == "List"
    assert [i["metadata"]["name"] for i in listed["items"]] == ["nginx-deployment"]
    assert listed["items"][0]["apiVersion"] == "apps/v1"

    svc = yaml.safe_load(kubelite("get", "svc", "my-service", "-n", ns, "-o", "yaml",
                                  server=server).stdout)
    assert svc["spec"]["ports"][0]["targetPort"] == 9376
    assert svc["metadata"]["namespace"] == ns

    tables = kubelite("get", "deploy,svc,cm", "-n", ns, server=server)
    blocks = tables.stdout.split("\n\n")
    assert len(blocks) == 3, tables.stdout
    assert blocks[0].splitlines()[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE",
                                                 "AGE"]
    assert blocks[0].splitlines()[1].split()[:2] == ["deployment.apps/nginx-deployment", "0/2"]
    assert blocks[1].splitlines()[1].startswith("service/my-service ")
    assert blocks[2].splitlines()[1].split()[:2] == ["configmap/game-config", "2"]

    # The controller manager records ScalingReplicaSet events; describe lists them.
    deadline = time.monotonic() + 20
    while True:
        described = kubelite("describe", "deployment", "nginx-deployment", "-n", ns,
                             server=server)
        assert described.returncode == 0, described.stderr
        text = described.stdout
        if "ScalingReplicaSet" in text or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert text.startswith("Name:") and "nginx-deployment" in text.splitlines()[0]
    assert f"Namespace:              {ns}" in text
    assert "2 desired" in text and "StrategyType:           RollingUpdate" in text
    events = text[text.index("Events:"):]
    assert "ScalingReplicaSet" in events and "deployment-controller" in events

    deleted = kubelite("delete", "-f", str(app), "--timeout", "20s", server=server)
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.splitlines() == [
        'configmap "game-config" deleted', 'deployment.apps "nginx-deployment" deleted',
        'service "my-service" deleted', f'namespace "{ns}" deleted']
    gone = kubelite("get", "ns", ns, server=server)
    assert_one_line_failure(gone, f'Error from server (NotFound): namespaces "{ns}" not found')


@pytest.mark.slow
def test_pods_and_services_share_one_get(cluster: UpProcess, tmp_path: Path) -> None:
    """`get po,svc` prints a pod table and a service table, names qualified by kind."""
    ns = new_namespace()
    kubelite("create", "namespace", ns, server=cluster.server)
    # A nodeSelector no node matches keeps the pod Pending whatever the cluster runs.
    pod_yaml = ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: nginx\nspec:\n  containers:\n"
                "  - name: nginx\n    image: nginx:1.14.2\n  nodeSelector:\n    disk: none\n")
    applied = kubelite("apply", "-n", ns, "-f", "-", stdin=pod_yaml, server=cluster.server)
    assert applied.stdout == "pod/nginx created\n", applied.stderr
    svc_yaml = nginx_manifests(ns).split("---\n")[-1]
    kubelite("apply", "-f", "-", stdin=svc_yaml, server=cluster.server)
    out = kubelite("get", "po,svc", "-n", ns, server=cluster.server).stdout
    pods, services = out.split("\n\n")
    assert pods.splitlines()[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert pods.splitlines()[1].split()[:3] == ["pod/nginx", "0/1", "Pending"]
    assert services.splitlines()[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP",
                                                "PORT(S)", "AGE"]
    assert services.splitlines()[1].split()[:2] == ["service/my-service", "ClusterIP"]
    assert "80/TCP" in services.splitlines()[1]
    kubelite("delete", "ns", ns, "--wait=false", server=cluster.server)


@pytest.mark.slow
def test_describe_lists_events_about_the_object(cluster: UpProcess) -> None:
    """An Event whose involvedObject is the object appears under Events:."""
    ns = new_namespace()
    kubelite("create", "namespace", ns, server=cluster.server)
    cm = f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  namespace: {ns}\n"
    event = f"""\
apiVersion: v1
kind: Event
metadata:
  name: cfg.1
  namespace: {ns}
involvedObject:
  kind: ConfigMap
  name: cfg
  namespace: {ns}
reason: Reloaded
message: configuration reloaded by the test
type: Normal
source:
  component: e2e
"""
    out = kubelite("apply", "-f", "-", stdin=cm + "---\n" + event, server=cluster.server)
    assert out.returncode == 0, out.stderr
    text = kubelite("describe", "cm", "cfg", "-n", ns, server=cluster.server).stdout
    events = text[text.index("Events:"):]
    assert "Reloaded" in events and "configuration reloaded by the test" in events
    listed = kubelite("get", "events", "-n", ns, server=cluster.server).stdout.splitlines()
    assert listed[0].split()[:3] == ["LAST", "SEEN", "TYPE"]
    assert "configmap/cfg" in listed[1]
    kubelite("delete", "ns", ns, "--wait=false", server=cluster.server)


@pytest.mark.slow
def test_missing_object_fails_with_one_line(cluster: UpProcess) -> None:
    """get/describe/delete of a missing object exit 1 with kubectl's NotFound line."""
    for verb in ("get", "describe", "delete"):
        result = kubelite(verb, "pod", "no-such-pod", server=cluster.server)
        assert_one_line_failure(result, 'Error from server (NotFound): pods "no-such-pod" '
                                        "not found")


@pytest.mark.slow
def test_unknown_kind_fails_with_one_line(cluster: UpProcess) -> None:
    """An unknown kind names itself in a kubectl-style error."""
    result = kubelite("get", "foo", server=cluster.server)
    assert_one_line_failure(result, 'error: the server doesn\'t have a resource type "foo"')


@pytest.mark.slow
def test_empty_list_says_so_on_stderr(cluster: UpProcess) -> None:
    """No objects: an empty stdout and kubectl's `No resources found` on stderr, exit 0."""
    ns = new_namespace()
    result = kubelite("get", "pods", "-n", ns, server=cluster.server)
    assert result.returncode == 0 and result.stdout == ""
    assert result.stderr == f"No resources found in {ns} namespace.\n"


def test_unreachable_server_fails_with_one_line() -> None:
    """With no apiserver at the address, the CLI says so in one line and exits 1."""
    server = f"127.0.0.1:{free_port()}"
    result = kubelite("--server", server, "get", "pods", server=None, timeout=20)
    assert_one_line_failure(result, f"error: cannot connect to the apiserver at {server}:")


def test_bad_file_fails_with_one_line(tmp_path: Path) -> None:
    """A YAML error names the file and never reaches the server."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: [\n")
    result = kubelite("apply", "-f", str(bad), server=f"127.0.0.1:{free_port()}")
    assert_one_line_failure(result, f"error: {bad}: yaml parse error")


@pytest.mark.slow
def test_watch_prints_changes_and_exits_zero_on_ctrl_c(cluster: UpProcess) -> None:
    """`get -w` prints the table, then a row per change, and Ctrl-C ends it cleanly."""
    ns = new_namespace()
    kubelite("create", "namespace", ns, server=cluster.server)
    cm = f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: watched\n  namespace: {ns}\n"
    kubelite("apply", "-f", "-", stdin=cm, server=cluster.server)
    env = dict(os.environ, KUBELITE_SERVER=cluster.server)
    watcher = subprocess.Popen([kubelite_binary(), "get", "cm", "-n", ns, "-w"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env=env)
    assert watcher.stdout is not None
    assert watcher.stdout.readline().split() == ["NAME", "DATA", "AGE"]
    assert watcher.stdout.readline().split()[:2] == ["watched", "0"]
    changed = cm + "data:\n  a: b\n"
    kubelite("apply", "-f", "-", stdin=changed, server=cluster.server)
    assert watcher.stdout.readline().split()[:2] == ["watched", "1"]
    watcher.send_signal(signal.SIGINT)
    assert watcher.wait(timeout=10) == 0
    assert "Traceback" not in watcher.stderr.read()
    kubelite("delete", "ns", ns, "--wait=false", server=cluster.server)


@pytest.mark.slow
def test_up_refuses_a_port_in_use_in_one_line(cluster: UpProcess, tmp_path: Path) -> None:
    """A second `kubelite up` on the same address fails at once, readably."""
    result = subprocess.run(
        [kubelite_binary(), "up", "--listen", cluster.server, "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "already in use" in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_up_stops_every_child_on_signal(tmp_path: Path, signum: int) -> None:
    """SIGTERM or Ctrl-C stops redis and the apiserver, leaves no process behind, exits 0."""
    started = start_up(tmp_path / "data")
    assert started.banner.strip() == f"kubelite is up: apiserver at {started.server}"
    children = child_pids(started.proc.pid)
    assert len(children) >= 2  # redis-server and the apiserver
    assert (tmp_path / "data" / "logs" / "apiserver.log").exists()
    started.proc.send_signal(signum)
    assert started.proc.wait(timeout=30) == 0
    assert_all_gone(children)


def assert_all_gone(pids: set[int]) -> None:
    deadline = time.monotonic() + 5
    while any(running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in pids if running(pid)]


@pytest.mark.slow
def test_up_reports_a_dead_child_and_shuts_down(tmp_path: Path) -> None:
    """When the apiserver dies on its own, up says so, stops the rest and exits 1."""
    started = start_up(tmp_path / "data")
    children = child_pids(started.proc.pid)
    apiserver = next(pid for pid in children
                     if b"services.apiserver" in Path(f"/proc/{pid}/cmdline").read_bytes())
    os.kill(apiserver, signal.SIGKILL)
    assert started.proc.wait(timeout=30) == 1
    assert started.proc.stdout is not None
    output = started.proc.stdout.read()
    assert "error: apiserver exited unexpectedly with code -9" in output
    assert_all_gone(children)


@pytest.mark.slow
def test_server_warnings_print_on_stderr(cluster: UpProcess) -> None:
    """A field kubelite stores but ignores comes back as `Warning: ...`; the apply succeeds."""
    ns = new_namespace()
    kubelite("create", "namespace", ns, server=cluster.server)
    pod_yaml = ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: host\nspec:\n"
                "  hostNetwork: true\n  containers:\n  - name: c\n    image: busybox\n")
    result = kubelite("apply", "-n", ns, "-f", "-", stdin=pod_yaml, server=cluster.server)
    assert result.returncode == 0 and result.stdout == "pod/host created\n"
    assert result.stderr.startswith("Warning: spec.hostNetwork: not implemented"), result.stderr
    kubelite("delete", "ns", ns, "--wait=false", server=cluster.server)


def read_json_object(stream: Any) -> dict[str, Any]:
    """One indented top-level JSON object from a text stream (it ends with a lone `}`)."""
    lines = []
    while True:
        line = stream.readline()
        assert line, "the stream ended"
        lines.append(line)
        if line.rstrip("\n") == "}":
            return json.loads("".join(lines))


@pytest.mark.slow
def test_watch_as_json_prints_one_object_per_event(cluster: UpProcess) -> None:
    """`get NAME -w -o json` prints the object, then the object again after each change."""
    ns = new_namespace()
    kubelite("create", "namespace", ns, server=cluster.server)
    cm = f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: watched\n  namespace: {ns}\n"
    kubelite("apply", "-f", "-", stdin=cm, server=cluster.server)
    env = dict(os.environ, KUBELITE_SERVER=cluster.server)
    watcher = subprocess.Popen(
        [kubelite_binary(), "get", "cm", "watched", "-n", ns, "-w", "-o", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert watcher.stdout is not None
    first = read_json_object(watcher.stdout)
    assert first["kind"] == "ConfigMap" and "data" not in first
    kubelite("apply", "-f", "-", stdin=cm + "data:\n  a: b\n", server=cluster.server)
    second = read_json_object(watcher.stdout)
    assert second["data"] == {"a": "b"}
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    watcher.send_signal(signal.SIGINT)
    assert watcher.wait(timeout=10) == 0
    kubelite("delete", "ns", ns, "--wait=false", server=cluster.server)

"""The CLI's workload commands: logs, scale, rollout and expose, plus the service and
endpoints columns of `get`.

Pure logic first (status messages, history, rollback choice, the Service that
expose builds, columns), then the async command flows against a scripted fake
client, then the real binary against `kubelite up`. The end-to-end tests work
whether or not `kubelite up` runs a controller manager: with one, they wait for
its ReplicaSets and statuses; without one, they write those through the API.
"""

from __future__ import annotations

import asyncio
import copy
import io
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubelite import errors
from kubelite.cli import columns, deployutil, expose, logs, main, rollout, scale, targets
from kubelite.cli.reporting import BadRequestError, CliError, api_error_line
from kubelite.cli.session import Session
from kubelite.client import Client, ObjectList, WatchEvent
from kubelite.localcluster import component_exists
from kubelite.resources import lookup
from kubelite.testing import eventually_sync
from tests.test_cli import (
    UpProcess,
    assert_one_line_failure,
    kubelite,
    kubelite_binary,
    start_up,
)

Obj = dict[str, Any]
NOW = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


def ago(seconds: float) -> str:
    return (NOW - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def template(image: str = "nginx:1.14.2", hash_: str | None = None,
             annotations: dict[str, str] | None = None) -> Obj:
    labels = {"app": "web"}
    if hash_:
        labels["pod-template-hash"] = hash_
    meta: Obj = {"labels": labels}
    if annotations:
        meta["annotations"] = annotations
    return {"metadata": meta,
            "spec": {"containers": [{"name": "nginx", "image": image,
                                     "ports": [{"containerPort": 80, "protocol": "TCP"}]}]}}


def deployment(name: str = "web", *, desired: int = 3, generation: int = 2,
               image: str = "nginx:1.16.1", **status: Any) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default", "uid": "deploy-uid",
                         "generation": generation, "resourceVersion": "10",
                         "labels": {"app": "web"},
                         "annotations": {deployutil.REVISION_ANNOTATION: "2"}},
            "spec": {"replicas": desired, "selector": {"matchLabels": {"app": "web"}},
                     "template": template(image)},
            "status": status}


def replicaset(revision: int | None, image: str, *, owner: str = "deploy-uid",
               cause: str = "", name: str = "") -> Obj:
    annotations = {}
    if revision is not None:
        annotations[deployutil.REVISION_ANNOTATION] = str(revision)
    if cause:
        annotations[deployutil.CHANGE_CAUSE_ANNOTATION] = cause
    hash_ = f"h{revision}"
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name or f"web-{hash_}", "namespace": "default",
                         "annotations": annotations,
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                                              "name": "web", "uid": owner,
                                              "controller": True}]},
            "spec": {"replicas": 0,
                     "selector": {"matchLabels": {"app": "web", "pod-template-hash": hash_}},
                     "template": template(image, hash_)}}


# --- rollout status messages -------------------------------------------------------

@pytest.mark.parametrize(("status", "message", "done"), [
    ({"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1},
     'Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been '
     "updated...", False),
    ({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 3, "availableReplicas": 3},
     'Waiting for deployment "web" rollout to finish: 1 old replicas are pending '
     "termination...", False),
    ({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 2},
     'Waiting for deployment "web" rollout to finish: 2 of 3 updated replicas are '
     "available...", False),
    ({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3},
     'deployment "web" successfully rolled out', True),
    ({"observedGeneration": 3, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3},
     'deployment "web" successfully rolled out', True),
    ({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3},
     "Waiting for deployment spec update to be observed...", False),
    ({}, "Waiting for deployment spec update to be observed...", False),
])
def test_rollout_status_messages_follow_kubectls_viewer(status: Obj, message: str,
                                                        done: bool) -> None:
    """Each stage of a rollout reads as kubectl's DeploymentStatusViewer prints it."""
    assert deployutil.rollout_status(deployment(**status)) == (message, done)


def test_rollout_status_with_zero_replicas_is_done_once_observed() -> None:
    """A Deployment scaled to zero has finished rolling out as soon as it is observed."""
    assert deployutil.rollout_status(deployment(desired=0, observedGeneration=2))[1]


def test_exceeded_progress_deadline_is_an_error() -> None:
    """Progressing with reason ProgressDeadlineExceeded fails, once the spec is observed."""
    stuck = deployment(observedGeneration=2, replicas=1, updatedReplicas=1, conditions=[
        {"type": "Available", "status": "False"},
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}])
    with pytest.raises(CliError, match='^deployment "web" exceeded its progress deadline$'):
        deployutil.rollout_status(stuck)
    stuck["metadata"]["generation"] = 3  # a new spec: the old verdict no longer counts
    assert deployutil.rollout_status(stuck)[0].startswith("Waiting for deployment spec")


def test_rollout_status_can_insist_on_a_revision() -> None:
    """--revision N fails when the Deployment is at another revision."""
    done = deployment(observedGeneration=2, replicas=3, updatedReplicas=3, availableReplicas=3)
    assert deployutil.rollout_status(done, 2)[1]
    with pytest.raises(CliError, match=r"desired revision \(3\) is different from the "
                                       r"running revision \(2\)"):
        deployutil.rollout_status(done, 3)


# --- history and undo -----------------------------------------------------------------

def test_history_lists_owned_revisions_in_order_with_change_causes() -> None:
    """Only ReplicaSets owned by the Deployment's uid count; rows sort by revision."""
    owned = [replicaset(3, "c", cause="kubelite apply -f v3.yaml"), replicaset(1, "a"),
             replicaset(10, "d"), replicaset(None, "x")]
    other = replicaset(2, "b", owner="someone-else")
    mine = deployutil.owned_replicasets(deployment(), [*owned, other])
    assert len(mine) == 4
    assert deployutil.history_table(mine).splitlines() == [
        "REVISION  CHANGE-CAUSE",
        "1         <none>",
        "3         kubelite apply -f v3.yaml",
        "10        <none>"]


def test_history_without_revisions_says_so() -> None:
    assert deployutil.history_table([]) == "No rollout history found."
    assert deployutil.history_table([replicaset(None, "x")]) == "No rollout history found."


def test_history_of_one_revision_shows_its_pod_template() -> None:
    """--revision N describes that revision's template; a missing one is an error."""
    text = deployutil.revision_details([replicaset(1, "nginx:1.14.2", cause="first"),
                                        replicaset(2, "nginx:1.16.1")], 1)
    lines = text.splitlines()
    assert lines[0] == "Pod Template:"
    assert lines[1].split() == ["Labels:", "app=web"]
    assert lines[2].split() == ["pod-template-hash=h1"]
    assert any(line.split() == ["Image:", "nginx:1.14.2"] for line in lines)
    assert "kubernetes.io/change-cause=first" in text
    with pytest.raises(CliError, match="unable to find the specified revision"):
        deployutil.revision_details([replicaset(1, "a")], 7)


def test_undo_picks_the_previous_revision_by_default() -> None:
    """Without --to-revision the target is the second-highest revision, wherever listed."""
    sets = [replicaset(2, "b"), replicaset(5, "e"), replicaset(None, "x"), replicaset(4, "d")]
    assert deployutil.revision(deployutil.rollback_source(sets)) == 4
    assert deployutil.revision(deployutil.rollback_source(sets, 2)) == 2


def test_undo_to_a_missing_revision_is_an_error() -> None:
    sets = [replicaset(1, "a"), replicaset(2, "b")]
    with pytest.raises(CliError, match="^unable to find specified revision 7 in history$"):
        deployutil.rollback_source(sets, 7)
    with pytest.raises(CliError, match='no rollout history found for deployment "web"'):
        deployutil.rollback_source([replicaset(1, "a")])


def test_undo_copies_the_template_without_its_hash_and_the_annotations() -> None:
    """The ReplicaSet's template replaces the Deployment's, minus pod-template-hash; its
    annotations replace the Deployment's, except the ones kubectl never copies."""
    live = deployment()
    live["metadata"]["annotations"].update({
        deployutil.LAST_APPLIED_ANNOTATION: "{}", "team": "a"})
    source = replicaset(1, "nginx:1.14.2", cause="first rollout")
    result = deployutil.rolled_back(copy.deepcopy(live), source)
    assert result is not None
    assert result["spec"]["template"] == template("nginx:1.14.2")
    assert "pod-template-hash" not in result["spec"]["template"]["metadata"]["labels"]
    assert result["metadata"]["annotations"] == {
        deployutil.REVISION_ANNOTATION: "2", deployutil.LAST_APPLIED_ANNOTATION: "{}",
        deployutil.CHANGE_CAUSE_ANNOTATION: "first rollout"}
    assert source["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] == "h1"


def test_undo_to_the_current_template_is_skipped() -> None:
    """Templates that differ only in pod-template-hash are the same: nothing to do."""
    live = deployment(image="nginx:1.16.1")
    assert deployutil.rolled_back(live, replicaset(2, "nginx:1.16.1")) is None
    assert deployutil.equal_ignore_hash({"metadata": {"labels": {"pod-template-hash": "x"}}},
                                        {"metadata": {}})


# --- expose ---------------------------------------------------------------------------

def target(kind: str, name: str = "web") -> targets.Target:
    return targets.Target(lookup(kind), name)


def test_expose_deployment_selects_its_pods_on_the_given_ports() -> None:
    """selector = spec.selector.matchLabels; targetPort defaults to the port."""
    svc = expose.build_service(target("deploy"), deployment(),
                               expose.ExposeOptions(port="80", type="NodePort"))
    assert svc == {"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "web", "namespace": "default",
                                "labels": {"app": "web"}},
                   "spec": {"selector": {"app": "web"}, "type": "NodePort",
                            "ports": [{"port": 80, "targetPort": 80, "protocol": "TCP"}]}}


def test_expose_takes_name_target_port_and_protocol() -> None:
    options = expose.ExposeOptions(port="53", target_port="5353", name="dns", protocol="UDP")
    svc = expose.build_service(target("deploy"), deployment(), options)
    assert svc["metadata"]["name"] == "dns"
    assert svc["spec"]["ports"] == [{"port": 53, "targetPort": 5353, "protocol": "UDP"}]
    named = expose.build_service(target("deploy"), deployment(),
                                 expose.ExposeOptions(port="80", target_port="http"))
    assert named["spec"]["ports"][0]["targetPort"] == "http"


def test_expose_without_port_uses_the_container_ports() -> None:
    """Several introspected ports are named port-1, port-2..., as kubectl names them."""
    deploy = deployment()
    deploy["spec"]["template"]["spec"]["containers"][0]["ports"] = [
        {"containerPort": 8080}, {"containerPort": 53, "protocol": "UDP"}]
    svc = expose.build_service(target("deploy"), deploy, expose.ExposeOptions())
    assert svc["spec"]["ports"] == [
        {"name": "port-1", "port": 8080, "targetPort": 8080, "protocol": "TCP"},
        {"name": "port-2", "port": 53, "targetPort": 53, "protocol": "UDP"}]
    deploy["spec"]["template"]["spec"]["containers"][0]["ports"] = []
    with pytest.raises(CliError, match="couldn't find port via --port flag or introspection"):
        expose.build_service(target("deploy"), deploy, expose.ExposeOptions())


def test_expose_refuses_a_selector_with_match_expressions() -> None:
    """A Service selector is a plain map: matchExpressions cannot be carried over."""
    deploy = deployment()
    deploy["spec"]["selector"]["matchExpressions"] = [
        {"key": "tier", "operator": "In", "values": ["a"]}]
    with pytest.raises(CliError, match="matchExpressions"):
        expose.build_service(target("deploy"), deploy, expose.ExposeOptions(port="80"))
    svc = expose.build_service(target("deploy"), deploy,
                               expose.ExposeOptions(port="80", selector="app=web,tier=a"))
    assert svc["spec"]["selector"] == {"app": "web", "tier": "a"}


def test_expose_pod_and_service_use_their_labels_and_selector() -> None:
    pod = {"metadata": {"name": "p", "namespace": "default",
                        "labels": {"app": "web", "pod-template-hash": "h"}},
           "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 9376}]}]}}
    svc = expose.build_service(target("pod", "p"), pod, expose.ExposeOptions())
    assert svc["spec"]["selector"] == {"app": "web", "pod-template-hash": "h"}
    assert svc["spec"]["ports"] == [{"port": 9376, "targetPort": 9376, "protocol": "TCP"}]
    other = {"metadata": {"name": "s"}, "spec": {"selector": {"app": "x"},
                                                  "ports": [{"port": 80, "protocol": "TCP"}]}}
    again = expose.build_service(target("svc", "s"), other,
                                 expose.ExposeOptions(name="s2", cluster_ip="None"))
    assert again["spec"]["selector"] == {"app": "x"} and again["spec"]["clusterIP"] == "None"
    with pytest.raises(CliError, match="has no selector"):
        expose.build_service(target("pod", "p"), {"metadata": {"name": "p"}},
                             expose.ExposeOptions(port="80"))


@pytest.mark.parametrize("port", ["0", "70000", "http"])
def test_expose_rejects_bad_ports(port: str) -> None:
    with pytest.raises(CliError, match="--port"):
        expose.build_service(target("deploy"), deployment(), expose.ExposeOptions(port=port))


def test_expose_refuses_kinds_without_pods() -> None:
    with pytest.raises(CliError, match="cannot expose a ConfigMap"):
        expose.build_service(target("cm"), {"metadata": {"name": "x"}},
                             expose.ExposeOptions(port="80"))


# --- get svc / get ep columns -----------------------------------------------------------

def svc_row(spec: Obj, status: Obj | None = None, wide: bool = False) -> list[str]:
    obj = {"metadata": {"name": "web", "creationTimestamp": ago(65)}, "spec": spec,
           "status": status or {}}
    return columns.table(lookup("svc"), columns.TableOptions(wide=wide), NOW)[1](obj)


def test_service_columns_match_kubectl() -> None:
    """NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE, node ports as 80:30123/TCP."""
    headers, _ = columns.table(lookup("svc"), columns.TableOptions(), NOW)
    assert headers == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    assert svc_row({"type": "ClusterIP", "clusterIP": "10.96.0.1",
                    "ports": [{"port": 80, "protocol": "TCP"}]}) == [
        "web", "ClusterIP", "10.96.0.1", "<none>", "80/TCP", "65s"]
    assert svc_row({"type": "NodePort", "clusterIP": "10.96.0.2",
                    "ports": [{"port": 80, "nodePort": 30123, "protocol": "TCP"},
                              {"port": 443, "nodePort": 30443}]})[4] == (
        "80:30123/TCP,443:30443/TCP")
    assert svc_row({"clusterIP": "None", "ports": []})[2:5] == ["None", "<none>", "<none>"]
    assert svc_row({"selector": {"b": "2", "a": "1"}}, wide=True)[-1] == "a=1,b=2"


def test_service_external_ips_follow_kubectl() -> None:
    """LoadBalancer ingress first, then externalIPs; <pending> without either."""
    assert svc_row({"type": "LoadBalancer", "ports": []})[3] == "<pending>"
    assert svc_row({"type": "LoadBalancer", "externalIPs": ["1.1.1.1"]},
                   {"loadBalancer": {"ingress": [{"ip": "2.2.2.2"}]}})[3] == "2.2.2.2,1.1.1.1"
    assert svc_row({"type": "ClusterIP", "externalIPs": ["1.1.1.1"]})[3] == "1.1.1.1"
    assert svc_row({"type": "ExternalName", "externalName": "db.example.com"})[3] == (
        "db.example.com")


def test_endpoints_column_matches_kubectl() -> None:
    """Each port with every address, three shown, `+ N more...`, IPv6 in brackets."""
    headers, row = columns.table(lookup("ep"), columns.TableOptions(), NOW)
    assert headers == ["NAME", "ENDPOINTS", "AGE"]
    obj = {"metadata": {"name": "web", "creationTimestamp": ago(5)},
           "subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"},
                                      {"ip": "10.0.0.3"}, {"ip": "10.0.0.4"}],
                        "notReadyAddresses": [{"ip": "10.0.0.9"}],
                        "ports": [{"port": 80}]}]}
    assert row(obj) == ["web", "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 1 more...", "5s"]
    two_ports = {"subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
                              "ports": [{"port": 80}, {"port": 443}]}]}
    assert columns.format_endpoints(two_ports) == (
        "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more...")
    assert columns.format_endpoints({"subsets": [{"addresses": [{"ip": "fd00::1"}],
                                                  "ports": [{"port": 80}]}]}) == "[fd00::1]:80"
    assert columns.format_endpoints({"subsets": [{"addresses": [{"ip": "10.0.0.7"}]}]}) == (
        "10.0.0.7")
    assert columns.format_endpoints({"subsets": [{"notReadyAddresses": [{"ip": "10.0.0.9"}],
                                                  "ports": [{"port": 80}]}]}) == "<none>"


# --- logs: container and pod choice ----------------------------------------------------------

def pod(name: str, *, node: str = "node-0", phase: str = "Running", ready: bool = True,
        ready_since: float = 60, restarts: int = 0, created: float = 120,
        containers: tuple[str, ...] = ("main",), inits: tuple[str, ...] = (),
        annotations: dict[str, str] | None = None) -> Obj:
    conditions = [{"type": "Ready", "status": "True" if ready else "False",
                   "lastTransitionTime": ago(ready_since)}]
    return {"metadata": {"name": name, "namespace": "default", "creationTimestamp": ago(created),
                         "labels": {"app": "web"}, "annotations": annotations or {}},
            "spec": {"nodeName": node, "containers": [{"name": c} for c in containers],
                     "initContainers": [{"name": c} for c in inits]},
            "status": {"phase": phase, "conditions": conditions,
                       "containerStatuses": [{"name": containers[0],
                                              "restartCount": restarts}]}}


def test_logs_default_to_the_first_container_and_say_so_when_there_are_several() -> None:
    assert logs.choose_container(pod("p"), "") == ("main", [])
    several = pod("p", containers=("app", "sidecar"), inits=("setup",))
    assert logs.choose_container(several, "") == (
        "app", ['Defaulted container "app" out of: app, sidecar, setup (init)'])
    assert logs.choose_container(several, "setup") == ("setup", [])


def test_logs_honour_the_default_container_annotation() -> None:
    chosen = pod("p", containers=("app", "sidecar"),
                 annotations={logs.DEFAULT_CONTAINER_ANNOTATION: "sidecar"})
    assert logs.choose_container(chosen, "") == ("sidecar", [])
    wrong = pod("p", containers=("app",),
                annotations={logs.DEFAULT_CONTAINER_ANNOTATION: "gone"})
    assert logs.choose_container(wrong, "") == (
        "app", ['Default container name "gone" not found in pod p'])


def test_logs_of_an_unknown_container_fail() -> None:
    with pytest.raises(CliError, match="^container nope is not valid for pod p$"):
        logs.choose_container(pod("p"), "nope")


def test_logs_of_a_workload_read_the_pod_kubectl_would_pick() -> None:
    """Scheduled, running, ready, longest ready, most restarts, oldest — in that order."""
    candidates = [
        pod("unscheduled", node="", created=999),
        pod("pending", phase="Pending", created=998),
        pod("unready", ready=False, created=997),
        pod("ready-recently", ready_since=5, created=996),
        pod("ready-long", ready_since=50),
        pod("ready-long-restarted", ready_since=50, restarts=2, created=10),
    ]
    assert logs.pick_pod(candidates)["metadata"]["name"] == "ready-long-restarted"
    assert logs.pick_pod(candidates[:5])["metadata"]["name"] == "ready-long"
    assert logs.pick_pod(candidates[:3])["metadata"]["name"] == "unready"
    assert logs.pick_pod(candidates[:2])["metadata"]["name"] == "pending"


@pytest.mark.parametrize(("args", "container", "expected"), [
    (["web-1"], "", ("Pod", "web-1", "")),
    (["web-1", "sidecar"], "", ("Pod", "web-1", "sidecar")),
    (["pod/web-1"], "c", ("Pod", "web-1", "c")),
    (["deployment/web"], "", ("Deployment", "web", "")),
    (["rs/web-abc"], "", ("ReplicaSet", "web-abc", "")),
])
def test_logs_arguments(args: list[str], container: str,
                        expected: tuple[str, str, str]) -> None:
    """`POD`, `POD CONTAINER`, `TYPE/NAME`, with -c."""
    found, chosen = logs.parse_args(args, container)
    assert (found.info.kind, found.name, chosen) == expected


def test_logs_refuse_a_container_given_twice() -> None:
    with pytest.raises(CliError, match="only one of -c or an inline"):
        logs.parse_args(["web-1", "a"], "b")


# --- argument parsing ----------------------------------------------------------------------

def test_one_object_is_named_kind_slash_name_or_kind_name() -> None:
    for args in (["deploy/web"], ["deployment", "web"], ["deployments.apps/web"]):
        found = targets.parse_target(args, verb="scale")
        assert (found.info.kind, found.name, found.display) == (
            "Deployment", "web", "deployment.apps/web")
    with pytest.raises(CliError, match="you must specify the name of the deployment"):
        targets.parse_target(["deployment"], verb="rollout status")
    with pytest.raises(CliError, match='the server doesn\'t have a resource type "widget"'):
        targets.parse_target(["widget/x"], verb="scale")


def test_scale_takes_several_objects_and_only_scalable_kinds() -> None:
    found = scale.parse_targets(["deploy", "a", "b"])
    assert [(t.info.kind, t.name) for t in found] == [("Deployment", "a"), ("Deployment", "b")]
    found = scale.parse_targets(["deploy/a", "rs/b"])
    assert [(t.info.kind, t.name) for t in found] == [("Deployment", "a"), ("ReplicaSet", "b")]
    with pytest.raises(CliError, match="cannot scale pods"):
        scale.check_scalable(target("pod"))
    with pytest.raises(CliError, match='required flag\\(s\\) "replicas" not set'):
        scale.check_options(scale.ScaleOptions())
    with pytest.raises(CliError, match="must be greater than or equal to 0"):
        scale.check_options(scale.ScaleOptions(replicas=-1))


def test_rollout_flags_parse_like_kubectls() -> None:
    """`-w` takes no value (so it may precede the name); `--watch=false` turns it off."""
    parser = main.build_parser()
    args = parser.parse_args(["rollout", "status", "-w", "deploy/web", "--timeout", "5m"])
    assert (args.rollout_command, args.targets, args.rollout_watch, args.timeout) == (
        "status", ["deploy/web"], True, 300)
    args = parser.parse_args(["-n", "x", "rollout", "status", "deployment", "web",
                              "--watch=false"])
    assert (args.targets, args.rollout_watch, args.namespace) == (["deployment", "web"],
                                                                  False, "x")
    args = parser.parse_args(["rollout", "undo", "deploy/web", "--to-revision", "2", "-n", "y"])
    assert (args.to_revision, args.namespace) == (2, "y")
    args = parser.parse_args(["logs", "-f", "web-1", "--tail", "5", "-c", "main"])
    assert (args.targets, args.follow, args.tail, args.container) == (["web-1"], True, 5,
                                                                      "main")


def test_bad_rollout_command_lines_fail_with_one_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main.main(["rollout"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: the following arguments are "
                                                   "required: SUBCOMMAND")
    assert main.main(["rollout", "status", "rs/web"]) == 1
    assert capsys.readouterr().err == (
        "error: rollout status is only implemented for deployments, daemonsets and "
        "statefulsets, not replicasets.apps\n")


def test_logs_errors_read_as_bad_requests() -> None:
    line = api_error_line(BadRequestError('pod "x" does not have a host assigned'),
                          server="s", timeout=1)
    assert line == 'Error from server (BadRequest): pod "x" does not have a host assigned'


# --- command flows against a scripted client ------------------------------------------------

@dataclass
class FakeClient:
    """Just enough of kubelite.client.Client for the workload commands."""

    objects: dict[tuple[str, str], Obj] = field(default_factory=dict)
    events: list[WatchEvent] = field(default_factory=list)
    log_chunks: list[bytes] = field(default_factory=list)
    log_error: errors.ApiError | None = None
    updates: list[Obj] = field(default_factory=list)
    patches: list[tuple[str, str, Obj]] = field(default_factory=list)
    conflicts: int = 0
    log_requests: list[Obj] = field(default_factory=list)

    def add(self, resource: str, obj: Obj) -> None:
        self.objects[(resource, obj["metadata"]["name"])] = obj

    async def get(self, resource: str, name: str, *, namespace: str | None = None) -> Obj:
        try:
            return copy.deepcopy(self.objects[(resource, name)])
        except KeyError:
            raise errors.NotFoundError(f'{resource} "{name}" not found') from None

    async def list(self, resource: str, *, namespace: str | None = None,
                   label_selector: str = "", **_: Any) -> ObjectList:
        items = [copy.deepcopy(o) for (r, _n), o in self.objects.items() if r == resource]
        return ObjectList(items=items, resource_version="99")

    async def update(self, resource: str, obj: Obj, *, namespace: str | None = None) -> Obj:
        if self.conflicts:
            self.conflicts -= 1
            raise errors.ConflictError("the object has been modified")
        self.updates.append(copy.deepcopy(obj))
        self.add(resource, obj)
        return obj

    async def patch(self, resource: str, name: str, patch: Obj, *,
                    namespace: str | None = None) -> Obj:
        self.patches.append((resource, name, patch))
        return self.objects.get((resource, name), {})

    async def watch(self, resource: str, **_: Any) -> AsyncIterator[WatchEvent]:
        for event in self.events:
            yield event
        await asyncio.Event().wait()  # a live watch: nothing more happens

    async def logs(self, name: str, **request: Any) -> AsyncIterator[bytes]:
        self.log_requests.append({"name": name, **request})
        if self.log_error is not None:
            raise self.log_error
        for chunk in self.log_chunks:
            yield chunk


def fake_session(client: FakeClient) -> tuple[Session, io.StringIO, io.StringIO]:
    out, err = io.StringIO(), io.StringIO()
    return Session(client=client, server="fake", timeout=1.0, out=out, err=err), out, err  # type: ignore[arg-type]


async def test_rollout_status_follows_the_watch_until_done() -> None:
    """The first state, then each new message (repeats are not printed), until done."""
    client = FakeClient()
    client.add("deployments", deployment(observedGeneration=1))
    states = [deployment(observedGeneration=2, replicas=1, updatedReplicas=1),
              deployment(observedGeneration=2, replicas=1, updatedReplicas=1),
              deployment(observedGeneration=2, replicas=4, updatedReplicas=3),
              deployment(observedGeneration=2, replicas=3, updatedReplicas=3,
                         availableReplicas=2),
              deployment(observedGeneration=2, replicas=3, updatedReplicas=3,
                         availableReplicas=3)]
    client.events = [WatchEvent("BOOKMARK", {"metadata": {"resourceVersion": "11"}})] + [
        WatchEvent("MODIFIED", s) for s in states]
    session, out, _ = fake_session(client)
    assert await rollout.status(session, ["deploy/web"], rollout.StatusOptions()) == 0
    assert out.getvalue().splitlines() == [
        "Waiting for deployment spec update to be observed...",
        'Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been '
        "updated...",
        'Waiting for deployment "web" rollout to finish: 1 old replicas are pending '
        "termination...",
        'Waiting for deployment "web" rollout to finish: 2 of 3 updated replicas are '
        "available...",
        'deployment "web" successfully rolled out']


async def test_rollout_status_without_watch_prints_once() -> None:
    client = FakeClient()
    client.add("deployments", deployment(observedGeneration=1))
    session, out, _ = fake_session(client)
    assert await rollout.status(session, ["deploy/web"],
                                rollout.StatusOptions(watch=False)) == 0
    assert out.getvalue() == "Waiting for deployment spec update to be observed...\n"


async def test_rollout_status_times_out() -> None:
    client = FakeClient()
    client.add("deployments", deployment(observedGeneration=1))
    session, _, _ = fake_session(client)
    with pytest.raises(CliError, match="^timed out waiting for the condition$"):
        await rollout.status(session, ["deploy/web"], rollout.StatusOptions(timeout=0.2))


async def test_rollout_status_fails_on_deadline_or_deletion() -> None:
    client = FakeClient()
    client.add("deployments", deployment(observedGeneration=1))
    stuck = deployment(observedGeneration=2, conditions=[
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}])
    client.events = [WatchEvent("MODIFIED", stuck)]
    session, _, _ = fake_session(client)
    with pytest.raises(CliError, match='exceeded its progress deadline'):
        await rollout.status(session, ["deploy/web"], rollout.StatusOptions())
    client.events = [WatchEvent("DELETED", deployment())]
    with pytest.raises(CliError, match='deployment "web" has been deleted'):
        await rollout.status(session, ["deploy/web"], rollout.StatusOptions())


async def test_rollout_undo_updates_the_deployment_and_retries_conflicts() -> None:
    client = FakeClient(conflicts=1)
    client.add("deployments", deployment(image="nginx:1.16.1"))
    client.add("replicasets", replicaset(1, "nginx:1.14.2"))
    client.add("replicasets", replicaset(2, "nginx:1.16.1"))
    client.add("replicasets", replicaset(9, "elsewhere", owner="other"))
    session, out, _ = fake_session(client)
    assert await rollout.undo(session, ["deployment", "web"]) == 0
    assert out.getvalue() == "deployment.apps/web rolled back\n"
    (written,) = client.updates
    assert written["spec"]["template"] == template("nginx:1.14.2")
    assert written["metadata"]["resourceVersion"] == "10"  # the read's: a safe update
    out.truncate(0)
    out.seek(0)
    assert await rollout.undo(session, ["deploy/web"], to_revision=1) == 0
    assert out.getvalue() == ("deployment.apps/web skipped rollback (current template "
                              "already matches revision 1)\n")
    with pytest.raises(CliError, match="unable to find specified revision 9 in history"):
        await rollout.undo(session, ["deploy/web"], to_revision=9)


async def test_rollout_history_prints_the_deployment_then_its_revisions() -> None:
    client = FakeClient()
    client.add("deployments", deployment())
    client.add("replicasets", replicaset(2, "b", cause="second"))
    client.add("replicasets", replicaset(1, "a"))
    session, out, _ = fake_session(client)
    assert await rollout.history(session, ["deploy/web"]) == 0
    assert out.getvalue().splitlines() == ["deployment.apps/web", "REVISION  CHANGE-CAUSE",
                                           "1         <none>", "2         second"]
    out.truncate(0)
    out.seek(0)
    await rollout.history(session, ["deploy/web"], revision=2)
    lines = out.getvalue().splitlines()
    assert lines[:2] == ["deployment.apps/web with revision #2", "Pod Template:"]


async def test_rollout_restart_pause_and_resume_patch_the_deployment() -> None:
    client = FakeClient()
    client.add("deployments", deployment())
    session, out, _ = fake_session(client)
    await rollout.restart(session, ["deploy/web"])
    _, _, patch = client.patches[-1]
    stamp = patch["spec"]["template"]["metadata"]["annotations"][
        deployutil.RESTARTED_AT_ANNOTATION]
    assert datetime.fromisoformat(stamp).tzinfo is not None
    await rollout.set_paused(session, ["deploy/web"], paused=True)
    assert client.patches[-1][2] == {"spec": {"paused": True}}
    client.objects[("deployments", "web")]["spec"]["paused"] = True
    await rollout.set_paused(session, ["deploy/web"], paused=True)
    assert out.getvalue().splitlines() == ["deployment.apps/web restarted",
                                           "deployment.apps/web paused",
                                           "deployment.apps/web already paused"]
    with pytest.raises(CliError, match="can't restart paused deployment"):
        await rollout.restart(session, ["deploy/web"])
    with pytest.raises(CliError, match="cannot rollback a paused deployment"):
        await rollout.undo(session, ["deploy/web"])


async def test_scale_patches_replicas_or_checks_the_current_count() -> None:
    client = FakeClient()
    client.add("deployments", deployment(desired=3))
    session, out, _ = fake_session(client)
    assert await scale.run(session, ["deploy", "web"], [], scale.ScaleOptions(replicas=5)) == 0
    assert client.patches == [("deployments", "web", {"spec": {"replicas": 5}})]
    assert out.getvalue() == "deployment.apps/web scaled\n"
    with pytest.raises(CliError, match="^Expected replicas to be 2, was 3$"):
        await scale.run(session, ["deploy/web"], [],
                        scale.ScaleOptions(replicas=1, current_replicas=2))
    await scale.run(session, ["deploy/web"], [], scale.ScaleOptions(replicas=1,
                                                                    current_replicas=3))
    assert client.updates[-1]["spec"]["replicas"] == 1


async def test_logs_copy_bytes_unchanged_and_pick_a_pod_of_a_deployment() -> None:
    """Chunks reach stdout's binary buffer as they are; a workload's pod is named on stderr."""
    client = FakeClient(log_chunks=[b"line 1\n", b"\xff\x00binary\n"])
    client.add("deployments", deployment())
    client.add("pods", pod("web-a", ready=False))
    client.add("pods", pod("web-b"))
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="utf-8")
    err = io.StringIO()
    session = Session(client=client, server="fake", timeout=1.0, out=out, err=err)  # type: ignore[arg-type]
    options = logs.LogsOptions(follow=True, tail=10, timestamps=True)
    assert await logs.run(session, ["deployment/web"], options) == 0
    assert raw.getvalue() == b"line 1\n\xff\x00binary\n"
    assert err.getvalue() == "Found 2 pods, using pod/web-b\n"
    assert client.log_requests == [{"name": "web-b", "namespace": "default",
                                    "container": "main", "follow": True, "previous": False,
                                    "tail_lines": 10, "timestamps": True}]


async def test_logs_report_the_servers_refusal_as_a_bad_request() -> None:
    client = FakeClient(log_error=errors.InvalidError('pod "p" does not have a host assigned'))
    client.add("pods", pod("p", node=""))
    session, _, _ = fake_session(client)
    with pytest.raises(BadRequestError, match="does not have a host assigned"):
        await logs.run(session, ["p"], logs.LogsOptions())
    assert client.log_requests[0]["tail_lines"] is None


async def test_logs_of_a_workload_without_pods_gives_up() -> None:
    client = FakeClient()
    client.add("deployments", deployment())
    session, _, _ = fake_session(client)
    with pytest.raises(CliError, match="no pods found for deployment.apps/web"):
        await logs.run(session, ["deploy/web"], logs.LogsOptions(pod_running_timeout=0))
    with pytest.raises(CliError, match="cannot get logs from configmaps"):
        await logs.run(session, ["cm/web"], logs.LogsOptions())


# --- end to end: the real binary against `kubelite up` -------------------------------------

CONTROLLER = component_exists("controller")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpProcess]:
    """One `kubelite up` for this module; each test works in its own namespace."""
    running_up = start_up(tmp_path_factory.mktemp("workloads") / "data")
    yield running_up
    running_up.stop()


def api(server: str, work: Callable[[Client], Any]) -> Any:
    """Runs one coroutine function against the cluster's API."""
    async def run() -> Any:
        async with Client(server, timeout=10) as client:
            return await work(client)
    return asyncio.run(run())


# Each check runs the CLI as a process: poll at a CLI's pace, not the kit's default.
wait_until = partial(eventually_sync, interval=0.2)


def make_namespace(server: str) -> str:
    ns = f"wl-{uuid.uuid4().hex[:8]}"
    created = kubelite("create", "namespace", ns, server=server)
    assert created.returncode == 0, created.stderr
    return ns


def deployment_manifest(name: str, namespace: str, *, replicas: int = 1,
                        message: str = "v1", extra_spec: Obj | None = None,
                        pod_spec: Obj | None = None) -> Obj:
    """A Deployment whose pods sleep (runnable by the process runtime)."""
    spec: Obj = {"containers": [{"name": "main", "image": "busybox:1.36",
                                 "command": ["sleep", "3600"],
                                 "env": [{"name": "MESSAGE", "value": message}],
                                 "ports": [{"containerPort": 8080}]}]}
    spec.update(pod_spec or {})
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
                     **(extra_spec or {})}}


NOWHERE = {"nodeSelector": {"kubelite.test/nowhere": "true"}}  # no node will ever match


def apply_obj(server: str, obj: Obj) -> None:
    result = kubelite("apply", "-f", "-", stdin=yaml.safe_dump(obj), server=server)
    assert result.returncode == 0, result.stderr


def get_json(server: str, *args: str) -> Obj:
    result = kubelite("get", *args, "-o", "json", server=server)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.slow
def test_scale_sets_replicas_through_the_binary(cluster: UpProcess, tmp_path: Path) -> None:
    """scale by KIND NAME, KIND/NAME and -f; preconditions and missing objects fail in one
    line."""
    server = cluster.server
    ns = make_namespace(server)
    manifest = deployment_manifest("web", ns, replicas=0)
    apply_obj(server, manifest)

    result = kubelite("scale", "deployment", "web", "--replicas", "3", "-n", ns, server=server)
    assert (result.returncode, result.stdout) == (0, "deployment.apps/web scaled\n")
    assert get_json(server, "deploy", "web", "-n", ns)["spec"]["replicas"] == 3

    stale = kubelite("scale", "deploy/web", "--replicas", "1", "--current-replicas", "5",
                     "-n", ns, server=server)
    assert_one_line_failure(stale, "error: Expected replicas to be 5, was 3")

    path = tmp_path / "web.yaml"
    path.write_text(yaml.safe_dump(manifest))
    from_file = kubelite("scale", "-f", str(path), "--replicas", "0", server=server)
    assert from_file.stdout == "deployment.apps/web scaled\n", from_file.stderr
    assert get_json(server, "deploy", "web", "-n", ns)["spec"]["replicas"] == 0

    missing = kubelite("scale", "rs", "nope", "--replicas", "1", "-n", ns, server=server)
    assert_one_line_failure(missing, 'Error from server (NotFound): replicasets.apps "nope" '
                                     "not found")
    pods = kubelite("scale", "pod/x", "--replicas", "1", "-n", ns, server=server)
    assert_one_line_failure(pods, "error: cannot scale pods")
    kubelite("delete", "ns", ns, "--wait=false", server=server)


@pytest.mark.slow
def test_expose_creates_a_service_with_a_cluster_ip(cluster: UpProcess) -> None:
    """expose deployment → a Service selecting its pods; `get svc` shows it as kubectl does."""
    server = cluster.server
    ns = make_namespace(server)
    apply_obj(server, deployment_manifest("web", ns, replicas=0))

    result = kubelite("expose", "deployment", "web", "--port", "80", "--target-port", "8080",
                      "-n", ns, server=server)
    assert (result.returncode, result.stdout) == (0, "service/web exposed\n"), result.stderr
    svc = get_json(server, "svc", "web", "-n", ns)
    assert svc["spec"]["selector"] == {"app": "web"}
    assert svc["spec"]["ports"] == [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]
    assert re.fullmatch(r"\d+\.\d+\.\d+\.\d+", svc["spec"]["clusterIP"])
    assert svc["metadata"]["labels"] == {"app": "web"}

    node_port = kubelite("expose", "deploy/web", "--port", "80", "--type", "NodePort",
                         "--name", "web-np", "-n", ns, server=server)
    assert node_port.stdout == "service/web-np exposed\n", node_port.stderr
    introspected = kubelite("expose", "deploy/web", "--name", "web-auto", "-n", ns,
                            server=server)
    assert introspected.stdout == "service/web-auto exposed\n", introspected.stderr

    table = kubelite("get", "svc", "-n", ns, server=server).stdout.splitlines()
    assert table[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    rows = {line.split()[0]: line.split() for line in table[1:]}
    assert rows["web"][1:5] == ["ClusterIP", svc["spec"]["clusterIP"], "<none>", "80/TCP"]
    assert rows["web-np"][1] == "NodePort" and re.fullmatch(r"80:\d+/TCP", rows["web-np"][4])
    assert rows["web-auto"][4] == "8080/TCP"

    again = kubelite("expose", "deployment", "web", "--port", "80", "-n", ns, server=server)
    assert_one_line_failure(again, 'Error from server (AlreadyExists): services "web"')

    expressions = deployment_manifest("picky", ns, replicas=0)
    expressions["spec"]["selector"]["matchExpressions"] = [
        {"key": "app", "operator": "In", "values": ["picky"]}]
    apply_obj(server, expressions)
    refused = kubelite("expose", "deployment", "picky", "--port", "80", "-n", ns, server=server)
    assert_one_line_failure(refused, "error: couldn't retrieve selectors")
    kubelite("delete", "ns", ns, "--wait=false", server=server)


@pytest.mark.slow
def test_get_endpoints_shows_three_addresses_then_a_count(cluster: UpProcess) -> None:
    server = cluster.server
    ns = make_namespace(server)
    apply_obj(server, {"apiVersion": "v1", "kind": "Endpoints",
                       "metadata": {"name": "manual", "namespace": ns},
                       "subsets": [{"addresses": [{"ip": f"10.9.0.{i}"} for i in range(1, 5)],
                                    "ports": [{"port": 80}]}]})
    table = kubelite("get", "ep", "-n", ns, server=server).stdout.splitlines()
    assert table[0].split() == ["NAME", "ENDPOINTS", "AGE"]
    assert table[1].split()[:5] == ["manual", "10.9.0.1:80,10.9.0.2:80,10.9.0.3:80", "+", "1",
                                    "more..."]
    kubelite("delete", "ns", ns, "--wait=false", server=server)


def owned_replicasets(server: str, ns: str, deploy: Obj) -> list[Obj]:
    listed = get_json(server, "rs", "-n", ns)["items"]
    return deployutil.owned_replicasets(deploy, listed)


def revisions_of(server: str, ns: str, name: str) -> dict[int, Obj]:
    deploy = get_json(server, "deploy", name, "-n", ns)
    return {deployutil.revision(rs): rs for rs in owned_replicasets(server, ns, deploy)
            if deployutil.revision(rs) is not None}


def make_history(server: str, ns: str, name: str) -> None:
    """Revision 1 with MESSAGE=v1, then revision 2 with MESSAGE=v2 (change-cause set).

    With a controller manager the Deployment controller makes the ReplicaSets;
    without one, the test makes them as it would, owned by the Deployment's uid.
    """
    first = deployment_manifest(name, ns, message="v1", pod_spec=NOWHERE)
    apply_obj(server, first)
    second = deployment_manifest(name, ns, message="v2", pod_spec=NOWHERE)
    second["metadata"]["annotations"] = {"kubernetes.io/change-cause": "MESSAGE=v2"}
    if CONTROLLER:
        wait_until(lambda: 1 in revisions_of(server, ns, name), what="revision 1")
        apply_obj(server, second)
        wait_until(lambda: 2 in revisions_of(server, ns, name), what="revision 2")
        return
    apply_obj(server, second)
    deploy = get_json(server, "deploy", name, "-n", ns)
    owner = {"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
             "uid": deploy["metadata"]["uid"], "controller": True,
             "blockOwnerDeletion": True}
    for number, manifest in ((1, first), (2, second)):
        template_ = copy.deepcopy(manifest["spec"]["template"])
        template_["metadata"]["labels"]["pod-template-hash"] = f"h{number}"
        annotations = {deployutil.REVISION_ANNOTATION: str(number)}
        annotations.update(manifest["metadata"].get("annotations") or {})
        rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
              "metadata": {"name": f"{name}-h{number}", "namespace": ns,
                           "labels": template_["metadata"]["labels"],
                           "annotations": annotations, "ownerReferences": [owner]},
              "spec": {"replicas": 0, "selector": {"matchLabels": template_["metadata"]["labels"]},
                       "template": template_}}
        apply_obj(server, rs)


def message_of(obj: Obj) -> str:
    container = obj["spec"]["template"]["spec"]["containers"][0]
    return next(e["value"] for e in container["env"] if e["name"] == "MESSAGE")


@pytest.mark.slow
def test_rollout_history_and_undo_through_the_binary(cluster: UpProcess) -> None:
    """history lists both revisions; undo restores revision 1's template; a missing
    revision and a no-op undo say so."""
    server = cluster.server
    ns = make_namespace(server)
    make_history(server, ns, "web")

    listed = kubelite("rollout", "history", "deployment/web", "-n", ns, server=server)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == ["deployment.apps/web", "REVISION  CHANGE-CAUSE",
                                          "1         <none>", "2         MESSAGE=v2"]
    details = kubelite("rollout", "history", "deploy", "web", "--revision", "1", "-n", ns,
                       server=server)
    assert details.stdout.startswith("deployment.apps/web with revision #1\nPod Template:\n")
    assert "MESSAGE:" in details.stdout and "v1" in details.stdout
    missing = kubelite("rollout", "history", "deploy/web", "--revision", "9", "-n", ns,
                       server=server)
    assert_one_line_failure(missing, "error: unable to find the specified revision")

    nowhere = kubelite("rollout", "undo", "deploy/web", "--to-revision", "9", "-n", ns,
                       server=server)
    assert_one_line_failure(nowhere, "error: unable to find specified revision 9 in history")

    undone = kubelite("rollout", "undo", "deployment/web", "-n", ns, server=server)
    assert (undone.returncode, undone.stdout) == (0, "deployment.apps/web rolled back\n"), (
        undone.stderr)
    deploy = get_json(server, "deploy", "web", "-n", ns)
    assert message_of(deploy) == "v1"
    assert "pod-template-hash" not in deploy["spec"]["template"]["metadata"]["labels"]

    # The revision that now matches: 1 without a controller; with one, the controller
    # moves revision 1 to revision 3 (as Kubernetes does), so wait for that.
    if CONTROLLER:
        wait_until(lambda: sorted(revisions_of(server, ns, "web")) == [2, 3],
                 what="revision 1 to become revision 3")
        current = 3
    else:
        current = 1
    skipped = kubelite("rollout", "undo", "deploy/web", "--to-revision", str(current), "-n", ns,
                       server=server)
    assert skipped.stdout == (f"deployment.apps/web skipped rollback (current template "
                              f"already matches revision {current})\n"), skipped.stderr
    kubelite("delete", "ns", ns, "--wait=false", server=server)


def set_status(server: str, ns: str, name: str, status: Obj) -> None:
    async def write(client: Client) -> None:
        deploy = await client.get("deployments", name, namespace=ns)
        deploy["status"] = {"observedGeneration": deploy["metadata"]["generation"], **status}
        await client.update_status("deployments", deploy, namespace=ns)
    api(server, write)


@pytest.mark.slow
def test_rollout_status_succeeds_times_out_and_sees_the_deadline(cluster: UpProcess) -> None:
    """A Deployment of zero replicas rolls out; one whose pods cannot be placed times out,
    and fails at once when its progress deadline has passed."""
    server = cluster.server
    ns = make_namespace(server)
    apply_obj(server, deployment_manifest("zero", ns, replicas=0))
    if not CONTROLLER:
        set_status(server, ns, "zero", {"replicas": 0, "updatedReplicas": 0})
    done = kubelite("rollout", "status", "deploy/zero", "--timeout", "30s", "-n", ns,
                    server=server, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == 'deployment "zero" successfully rolled out'

    apply_obj(server, deployment_manifest("stuck", ns, replicas=1, pod_spec=NOWHERE))
    waited = kubelite("rollout", "status", "deploy/stuck", "--timeout", "2s", "-n", ns,
                      server=server)
    assert waited.returncode == 1
    assert waited.stderr == "error: timed out waiting for the condition\n"
    assert waited.stdout.startswith("Waiting for deployment"), waited.stdout

    deadline = deployment_manifest("late", ns, replicas=1, pod_spec=NOWHERE,
                                   extra_spec={"progressDeadlineSeconds": 1})
    apply_obj(server, deadline)
    if not CONTROLLER:
        set_status(server, ns, "late", {"replicas": 1, "updatedReplicas": 1, "conditions": [
            {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
             "message": 'ReplicaSet "late-x" has timed out progressing.'}]})
    exceeded = kubelite("rollout", "status", "deploy/late", "--timeout", "45s", "-n", ns,
                        server=server, timeout=60)
    assert_one_line_failure(exceeded, 'error: deployment "late" exceeded its progress deadline')

    gone = kubelite("rollout", "status", "deploy/none", "-n", ns, server=server)
    assert_one_line_failure(gone, 'Error from server (NotFound): deployments.apps "none" '
                                  "not found")
    kubelite("delete", "ns", ns, "--wait=false", server=server)


@pytest.mark.slow
def test_logs_failures_are_one_line(cluster: UpProcess) -> None:
    """A missing pod is NotFound; a pod with no node is the apiserver's BadRequest."""
    server = cluster.server
    ns = make_namespace(server)
    missing = kubelite("logs", "nope", "-n", ns, server=server)
    assert_one_line_failure(missing, 'Error from server (NotFound): pods "nope" not found')

    stuck = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stuck", "namespace": ns},
             "spec": {"schedulerName": "no-such-scheduler", **NOWHERE,
                      "containers": [{"name": "c", "image": "busybox:1.36",
                                      "command": ["sleep", "3600"]}]}}
    apply_obj(server, stuck)
    unscheduled = kubelite("logs", "stuck", "-n", ns, server=server)
    assert_one_line_failure(unscheduled, "Error from server (BadRequest): ")
    assert "stuck" in unscheduled.stderr and "host" in unscheduled.stderr

    wrong = kubelite("logs", "stuck", "-c", "other", "-n", ns, server=server)
    assert_one_line_failure(wrong, "error: container other is not valid for pod stuck")
    workload = kubelite("logs", "deploy/none", "-n", ns, server=server)
    assert_one_line_failure(workload, 'Error from server (NotFound): deployments.apps "none"')
    kubelite("delete", "ns", ns, "--wait=false", server=server)


PRINTER = ("import sys, time\n"
           "sys.stdout.buffer.write(bytes(range(256)) + b'\\n')\n"
           "for i in range(1000):\n"
           "    print('line', i, flush=True)\n"
           "    time.sleep(0.2)\n")


@pytest.mark.slow
def test_logs_of_a_running_pod_stream_and_follow(cluster: UpProcess) -> None:
    """The log comes back byte for byte; -f follows it until Ctrl-C, which exits 0."""
    server = cluster.server
    ns = make_namespace(server)
    printer = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "printer", "namespace": ns, "labels": {"app": "printer"}},
               "spec": {"containers": [{"name": "main", "image": "python:3.11",
                                        "command": [sys.executable, "-c", PRINTER]}]}}
    apply_obj(server, printer)
    env = dict(os.environ, KUBELITE_SERVER=server)

    def read_log(*flags: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([kubelite_binary(), "logs", "printer", "-n", ns, *flags],
                              capture_output=True, env=env, timeout=30)

    wait_until(lambda: b"line 2" in read_log().stdout, timeout=60, what="the pod to print")
    whole = read_log()
    assert whole.returncode == 0, whole.stderr
    assert whole.stdout.startswith(bytes(range(256)) + b"\nline 0\nline 1\n")
    tail = read_log("--tail", "1")
    assert re.fullmatch(rb"line \d+\n", tail.stdout), tail.stdout

    follower = subprocess.Popen([kubelite_binary(), "logs", "-f", "printer", "--tail", "1",
                                 "-n", ns], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=env)
    assert follower.stdout is not None
    first = int(follower.stdout.readline().split()[1])
    later = int(follower.stdout.readline().split()[1])
    assert later == first + 1
    follower.send_signal(signal.SIGINT)
    assert follower.wait(timeout=10) == 0
    assert follower.stderr is not None and b"Traceback" not in follower.stderr.read()
    kubelite("delete", "ns", ns, "--wait=false", server=server)

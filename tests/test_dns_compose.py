"""Cluster DNS in docker-compose: the whole cluster of docker-compose.yml (its dns
service included) on a network of its own, as tests/test_compose.py brings it up,
and a pod that resolves Services by name with its own libc (`getent`).

The readiness flip is the real one: a web pod's exec readiness probe starts
failing, the kubelet turns the pod unready, the Endpoints controller moves its
address to notReadyAddresses, and the headless name stops answering with it
within 2 s of the pod's Ready condition turning False. Names outside the cluster
are not asked here: in compose they would leave the machine (tests/test_dns.py
and tests/test_dns_docker.py test forwarding against a fake upstream). Docker
test: run it alone, `python -m pytest -q tests/test_dns_compose.py`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.test_compose import (
    COMPOSE_V2,
    DEMO_IMAGE,
    LABEL_POD_UID,
    ComposeCluster,
    eventually,
    is_ready,
    run,
    running_cluster,
)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory,
            request: pytest.FixtureRequest) -> Iterator[ComposeCluster]:
    with running_cluster(COMPOSE_V2, tmp_path_factory, request) as cluster:
        yield cluster


def pod(name: str, labels: dict[str, str], **container: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "c", "image": DEMO_IMAGE,
                                     "imagePullPolicy": "IfNotPresent", **container}]}}


def container_of(cluster: ComposeCluster, name: str) -> str:
    uid = cluster.pod(name)["metadata"]["uid"]
    ids = run(["docker", "ps", "-q", "--filter", f"label={LABEL_POD_UID}={uid}",
               "--filter", "label=io.kubernetes.container.name=c"]).stdout.split()
    assert len(ids) == 1, ids
    return ids[0]


def in_pod(cid: str, *command: str) -> tuple[int, str]:
    proc = run(["docker", "exec", cid, *command], check=False)
    return proc.returncode, proc.stdout


def test_a_pod_finds_services_by_name_and_headless_answers_follow_readiness(
        cluster: ComposeCluster) -> None:
    """`getent hosts web` and web.default.svc.cluster.local give the ClusterIP; the
    headless name gives the ready pods, and an unready one leaves within 2 s."""
    probe = {"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1,
             "failureThreshold": 1}
    cluster.apply(
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
         "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80,
                                                         "targetPort": 8080}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
         "spec": {"clusterIP": "None", "selector": {"app": "db"},
                  "ports": [{"name": "pg", "port": 5432}]}},
        pod("web-0", {"app": "web"}),
        pod("db-0", {"app": "db"}, readinessProbe=probe),
        pod("db-1", {"app": "db"}, readinessProbe=probe),
        pod("client", {}, command=["sleep", "3600"]))
    eventually(lambda: all(cluster.pod(n).get("status", {}).get("phase") == "Running"
                           for n in ("web-0", "db-0", "db-1", "client")),
               timeout=60, what="the pods running")
    for name in ("db-0", "db-1"):
        in_pod(container_of(cluster, name), "touch", "/tmp/ready")
    db_ips = {cluster.pod(n)["status"]["podIP"] for n in ("db-0", "db-1")}
    client = container_of(cluster, "client")

    _, resolv = in_pod(client, "cat", "/etc/resolv.conf")
    dns_ip = str(cluster.service_range.network_address)
    assert resolv.splitlines()[:3] == [
        f"nameserver {dns_ip}",
        "search default.svc.cluster.local svc.cluster.local cluster.local",
        "options ndots:5"], resolv

    cluster_ip = cluster.get("service", "web")["spec"]["clusterIP"]
    for name in ("web", "web.default.svc.cluster.local"):
        code, out = in_pod(client, "getent", "hosts", name)
        assert code == 0 and out.split()[0] == cluster_ip, (name, out)

    def headless() -> set[str]:
        code, out = in_pod(client, "getent", "ahostsv4", "db")
        return {line.split()[0] for line in out.splitlines()} if code == 0 else set()

    eventually(lambda: headless() == db_ips, timeout=30, what="db answering with both pods")
    in_pod(container_of(cluster, "db-1"), "rm", "/tmp/ready")
    eventually(lambda: not is_ready(cluster.pod("db-1")), timeout=20, interval=0.1,
               what="db-1 unready")
    unready_at = time.monotonic()
    remaining = db_ips - {cluster.pod("db-1")["status"]["podIP"]}
    eventually(lambda: headless() == remaining, timeout=2, interval=0.1,
               what="db-1 leaving the headless answer")
    assert time.monotonic() - unready_at < 2.0


def test_statefulset_pods_have_stable_names_through_the_governing_service(
        cluster: ComposeCluster) -> None:
    """A StatefulSet's pods are `<pod>.<serviceName>` from any pod of the namespace, with
    the pod's own libc resolver and search path (the docker runtime). Not `web`: the
    test above left a bare pod named web-0."""
    cluster.apply(
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "nginx"},
         "spec": {"clusterIP": "None", "selector": {"app": "nginx"},
                  "ports": [{"name": "web", "port": 8080}]}},
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "www"},
         "spec": {"serviceName": "nginx", "replicas": 2,
                  "selector": {"matchLabels": {"app": "nginx"}},
                  "template": {"metadata": {"labels": {"app": "nginx"}}, "spec": {
                      "containers": [{"name": "c", "image": DEMO_IMAGE,
                                      "imagePullPolicy": "IfNotPresent"}]}}}},
        pod("sts-client", {}, command=["sleep", "3600"]))
    eventually(lambda: all(is_ready(cluster.pod(n)) for n in ("www-0", "www-1"))
               and cluster.pod("sts-client").get("status", {}).get("phase") == "Running",
               timeout=90, what="www-0, www-1 and the client running")
    client = container_of(cluster, "sts-client")
    for name in ("www-0", "www-1"):
        want = cluster.pod(name)["status"]["podIP"]

        def answer(name: str = name) -> str:
            code, out = in_pod(client, "getent", "hosts", f"{name}.nginx")
            return out.split()[0] if code == 0 and out.split() else ""
        eventually(lambda w=want, a=answer: a() == w, timeout=30,
                   what=f"{name}.nginx resolving to {want}")
        code, out = in_pod(client, "getent", "hosts", f"{name}.nginx.default.svc.cluster.local")
        assert code == 0 and out.split()[0] == want, out

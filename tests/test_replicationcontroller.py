"""ReplicationControllers on a real cluster (`kubelite up`, process runtime): the Kubernetes
in Action manifest keeps its replicas, and deleting it honours each propagation policy."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from kubelite.client import Client
from kubelite.testing import wait_deleted, wait_for, wait_for_list

from .e2e import Cluster, eventually, start_cluster, wait_nodes_ready

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start_cluster(tmp_path_factory.mktemp("rc"), nodes=1)
    yield c
    c.stop()


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[Client]:
    async with Client(cluster.target) as c:
        await wait_nodes_ready(c, 1)
        yield c


@pytest.fixture
async def ns(api: Client) -> str:
    name = f"rc-{uuid.uuid4().hex[:8]}"
    await api.create("namespaces", {"metadata": {"name": name}})
    return name


def kubia(name: str = "kubia", replicas: int = 3) -> dict[str, Any]:
    """Kubernetes in Action's kubia-rc.yaml, with a sleeping process for the image."""
    return {
        "apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"app": "kubia"},
                 "template": {"metadata": {"labels": {"app": "kubia"}},
                              "spec": {"containers": [{
                                  "name": "kubia", "image": "luksa/kubia",
                                  "command": ["sleep", "3600"],
                                  "ports": [{"containerPort": 8080}]}]}}},
    }


def _running(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for p in pods if (p.get("status") or {}).get("phase") == "Running"
            and not p["metadata"].get("deletionTimestamp")]


async def test_an_rc_keeps_three_replicas_through_a_pod_kill(api: Client, ns: str) -> None:
    rc = await api.create("replicationcontrollers", kubia(), namespace=ns)
    assert rc["spec"]["selector"] == {"app": "kubia"}
    assert rc["metadata"]["labels"] == {"app": "kubia"}  # defaulted from the template
    pods = await wait_for_list(api, "pods", lambda ps: len(_running(ps)) == 3 and ps,
                               namespace=ns,
                               label_selector="app=kubia", timeout=40)
    victim = _running(pods)[0]
    assert victim["metadata"]["ownerReferences"][0]["kind"] == "ReplicationController"
    await api.delete("pods", victim["metadata"]["name"], namespace=ns)
    await wait_for_list(
        api, "pods", lambda ps: len(_running(ps)) == 3
        and victim["metadata"]["uid"] not in {p["metadata"]["uid"] for p in ps},
        namespace=ns, label_selector="app=kubia", timeout=40)
    await wait_for(api, "replicationcontrollers", "kubia",
                   lambda r: (r.get("status") or {}).get("readyReplicas") == 3
                   and r["status"].get("replicas") == 3, namespace=ns, timeout=30)


@pytest.mark.parametrize("policy", ["Foreground", "Background", "Orphan"])
async def test_deleting_an_rc_follows_the_propagation_policy(api: Client, ns: str,
                                                             policy: str) -> None:
    await api.create("replicationcontrollers", kubia(replicas=2), namespace=ns)
    pods = await wait_for_list(api, "pods", lambda ps: len(ps) == 2 and ps, namespace=ns,
                               label_selector="app=kubia", timeout=30)
    await api.delete("replicationcontrollers", "kubia", namespace=ns,
                     propagation_policy=policy)
    await wait_deleted(api, "replicationcontrollers", "kubia", namespace=ns, timeout=30)
    if policy == "Orphan":
        async def orphaned() -> bool:
            left = (await api.list("pods", namespace=ns, label_selector="app=kubia")).items
            return (len(left) == 2 and all(not p["metadata"].get("ownerReferences")
                                           for p in left))
        await eventually(orphaned, timeout=20)
    else:
        for pod in pods:
            await wait_deleted(api, "pods", pod["metadata"]["name"], namespace=ns, timeout=30)

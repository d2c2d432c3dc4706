"""cordon, uncordon and drain: kubectl's filters as pure logic, then the real `kubelite`
binary against a two-node `kubelite up`, where a drain must never take a Deployment
below what its PodDisruptionBudget allows."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from kubelite.cli.drain import (
    DAEMONSET_FATAL,
    DAEMONSET_WARNING,
    LOCAL_STORAGE_FATAL,
    UNMANAGED_FATAL,
    UNMANAGED_WARNING,
    DrainOptions,
    filter_pods,
)
from kubelite.client import Client
from tests.test_cli import kubelite, kubelite_binary

from .e2e import Cluster, echo_container, eventually, is_ready, start_cluster, wait_nodes_ready

Obj = dict[str, Any]


# -- which pods a drain removes (pure logic) ------------------------------------------


def _pod(name: str, *, owner: str | None = "ReplicaSet", phase: str = "Running",
         volumes: list[Obj] | None = None, mirror: bool = False) -> Obj:
    meta: Obj = {"name": name, "namespace": "default"}
    if owner:
        meta["ownerReferences"] = [{"kind": owner, "name": "o", "uid": "u", "controller": True}]
    if mirror:
        meta["annotations"] = {"kubernetes.io/config.mirror": "x"}
    return {"metadata": meta, "spec": {"volumes": volumes or []}, "status": {"phase": phase}}


def test_drain_refuses_what_kubectl_refuses_unless_told() -> None:
    pods = [_pod("rs"), _pod("bare", owner=None), _pod("ds", owner="DaemonSet"),
            _pod("scratch", volumes=[{"name": "v", "emptyDir": {}}]),
            _pod("done", owner=None, phase="Succeeded"), _pod("mirror", owner=None, mirror=True)]
    found = filter_pods(pods, DrainOptions())
    assert [p["metadata"]["name"] for p in found.delete] == ["rs", "done"]
    assert found.errors == {UNMANAGED_FATAL: ["default/bare"], DAEMONSET_FATAL: ["default/ds"],
                            LOCAL_STORAGE_FATAL: ["default/scratch"]}
    forced = filter_pods(pods, DrainOptions(force=True, ignore_daemonsets=True,
                                            delete_emptydir_data=True))
    assert not forced.errors
    assert [p["metadata"]["name"] for p in forced.delete] == ["rs", "bare", "scratch", "done"]
    assert forced.warnings[UNMANAGED_WARNING] == ["default/bare"]
    assert forced.warnings[DAEMONSET_WARNING] == ["default/ds"]


# -- against a real cluster -----------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start_cluster(tmp_path_factory.mktemp("drain"), nodes=2)
    yield c
    c.stop()


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[Client]:
    async with Client(cluster.target) as c:
        await wait_nodes_ready(c, 2)
        yield c
        for node in ("node-0", "node-1"):  # every test starts with both schedulable
            await c.patch("nodes", node, {"spec": {"unschedulable": None}})


@pytest.fixture
async def ns(api: Client) -> str:
    name = f"drain-{uuid.uuid4().hex[:8]}"
    await api.create("namespaces", {"metadata": {"name": name}})
    return name


def echo_pod(name: str, node: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [echo_container(marker=uuid.uuid4().hex)],
                     "nodeSelector": {"kubernetes.io/hostname": node},
                     "terminationGracePeriodSeconds": 5}}


async def _pod_node(api: Client, ns: str, name: str) -> str:
    return (await api.get("pods", name, namespace=ns))["spec"].get("nodeName") or ""


@pytest.mark.slow
async def test_cordon_and_uncordon_print_as_kubectl_and_steer_scheduling(
        cluster: Cluster, api: Client, ns: str) -> None:
    """A cordoned node takes no new pod; uncordoned, the waiting pod lands there."""
    out = kubelite("cordon", "node-1", server=cluster.target)
    assert (out.returncode, out.stdout) == (0, "node/node-1 cordoned\n"), out.stderr
    again = kubelite("cordon", "node-1", server=cluster.target)
    assert again.stdout == "node/node-1 already cordoned\n"
    listing = kubelite("get", "nodes", server=cluster.target).stdout
    assert "Ready,SchedulingDisabled" in listing

    await api.create("pods", echo_pod("pinned", "node-1"), namespace=ns)
    await asyncio.sleep(3)
    assert await _pod_node(api, ns, "pinned") == ""

    out = kubelite("uncordon", "node-1", server=cluster.target)
    assert (out.returncode, out.stdout) == (0, "node/node-1 uncordoned\n"), out.stderr
    assert kubelite("uncordon", "node-1", server=cluster.target).stdout == \
        "node/node-1 already uncordoned\n"
    assert await eventually(lambda: _pod_node(api, ns, "pinned"), timeout=70,
                            what="the pinned pod scheduled") == "node-1"
    missing = kubelite("cordon", "node-9", server=cluster.target)
    assert missing.returncode == 1 and "NotFound" in missing.stderr


@pytest.mark.slow
async def test_drain_refuses_a_pod_without_a_controller_unless_forced(
        cluster: Cluster, api: Client, ns: str) -> None:
    await api.create("pods", echo_pod("bare", "node-0"), namespace=ns)
    await eventually(lambda: _ready(api, ns, "bare"), timeout=60, what="bare pod Ready")
    refused = kubelite("drain", "node-0", server=cluster.target)
    assert refused.returncode == 1
    assert refused.stdout.startswith("node/node-0 cordoned\n")
    assert f"{UNMANAGED_FATAL}: {ns}/bare" in refused.stderr
    assert 'error: unable to drain node "node-0"' in refused.stderr
    assert await _ready(api, ns, "bare")

    forced = kubelite("drain", "node-0", "--force", "--ignore-daemonsets", "--timeout", "60s",
                      server=cluster.target, timeout=90)
    assert forced.returncode == 0, forced.stderr
    lines = forced.stdout.splitlines()
    assert lines[0] == "node/node-0 already cordoned"
    assert f"evicting pod {ns}/bare" in lines and "pod/bare evicted" in lines
    assert lines[-1] == "node/node-0 drained"
    assert f"Warning: {UNMANAGED_WARNING}: {ns}/bare" in forced.stderr


async def _ready(api: Client, ns: str, name: str) -> bool:
    return is_ready(await api.get("pods", name, namespace=ns))


async def _healthy(api: Client, ns: str) -> list[Obj]:
    pods = (await api.list("pods", namespace=ns, label_selector="app=web")).items
    return [p for p in pods if is_ready(p) and not p["metadata"].get("deletionTimestamp")]


@pytest.mark.slow
async def test_drain_never_takes_a_deployment_below_its_budget(
        cluster: Cluster, api: Client, ns: str) -> None:
    """3 replicas, minAvailable 2: the drain waits for each replacement to be Ready before
    it evicts the next pod, and finishes once all run on the other node."""
    container = echo_container(marker=uuid.uuid4().hex)
    await api.create("deployments", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [container],
                                       "terminationGracePeriodSeconds": 5}}}}, namespace=ns)
    await api.create("pdb", {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                             "metadata": {"name": "web"},
                             "spec": {"minAvailable": 2,
                                      "selector": {"matchLabels": {"app": "web"}}}},
                     namespace=ns)

    async def three_ready() -> list[Obj]:
        healthy = await _healthy(api, ns)
        return healthy if len(healthy) == 3 else []

    pods = await eventually(three_ready, timeout=90, what="3 Ready replicas")

    async def budget_computed() -> bool:
        status = (await api.get("pdb", "web", namespace=ns)).get("status") or {}
        return status.get("disruptionsAllowed") == 1

    await eventually(budget_computed, timeout=30, what="the budget to allow 1 disruption")
    on_node: dict[str, list[str]] = {}
    for p in pods:
        on_node.setdefault(p["spec"]["nodeName"], []).append(p["metadata"]["name"])
    node = max(on_node, key=lambda n: len(on_node[n]))
    other = next(n for n in ("node-0", "node-1") if n != node)
    drained = on_node[node]

    lowest = 3
    samples = 0
    stop = asyncio.Event()

    async def sample() -> None:
        nonlocal lowest, samples
        while not stop.is_set():
            lowest = min(lowest, len(await _healthy(api, ns)))
            samples += 1
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample())
    env = {**os.environ, "KUBELITE_SERVER": cluster.target, "KUBELITE_DRAIN_RETRY_INTERVAL": "0.5"}
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        kubelite_binary(), "drain", node, "--ignore-daemonsets", "--timeout", "150s",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 180)
    finally:
        stop.set()
        await sampler
    stdout, stderr = out.decode(), err.decode()
    assert proc.returncode == 0, f"{stdout}\n{stderr}"
    lines = stdout.splitlines()
    assert lines[0] == f"node/{node} cordoned"
    assert lines[-1] == f"node/{node} drained"
    for name in drained:
        assert f"evicting pod {ns}/{name}" in lines and f"pod/{name} evicted" in lines
    # At least 2 of 3 pods ran there (2 nodes), and the budget allowed one disruption at a
    # time, so it refused at least once.
    assert len(drained) >= 2
    assert "Cannot evict pod as it would violate the pod's disruption budget." in stderr
    assert "will retry after 0.5s" in stderr
    assert samples > 10 and lowest >= 2, (lowest, samples, time.monotonic() - started)
    print(f"drain of {node} ({len(drained)} pods) took {time.monotonic() - started:.1f}s; "
          f"fewest healthy replicas seen: {lowest} in {samples} samples")

    healthy = await eventually(three_ready, timeout=60, what="3 Ready replicas again")
    assert {p["spec"]["nodeName"] for p in healthy} == {other}
    node_obj = await api.get("nodes", node)
    assert node_obj["spec"].get("unschedulable") is True


def test_get_and_describe_pdb_show_what_kubectl_shows() -> None:
    """`get pdb` columns (N/A for the unset bound) and `describe pdb`'s status block."""
    from datetime import UTC, datetime

    from kubelite.cli import columns, describe
    from kubelite.resources import lookup

    info = lookup("pdb")
    budget = {"metadata": {"name": "web", "namespace": "default",
                           "creationTimestamp": "2026-01-01T00:00:00Z"},
              "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}},
              "status": {"disruptionsAllowed": 1, "currentHealthy": 3, "desiredHealthy": 2,
                         "expectedPods": 3}}
    now = datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)
    headers, row = columns.table(info, columns.TableOptions(), now)
    assert headers == ["NAME", "MIN AVAILABLE", "MAX UNAVAILABLE", "ALLOWED DISRUPTIONS", "AGE"]
    assert row(budget) == ["web", "2", "N/A", "1", "30s"]
    text = describe.describe(budget, info, [], now=now)
    for line in ("Min available:", "Selector:", "Allowed disruptions:", "Total:"):
        assert line in text
    assert "app=web" in text

"""DaemonSets on a real 3-node cluster (`kubelite up`, process runtime): one pod per node,
nodes joining and leaving, taints and nodeSelector, RollingUpdate with maxUnavailable and
maxSurge (sampled throughout), OnDelete, failed pods with backoff, `kubelite rollout` and
`drain --ignore-daemonsets`, and the garbage collector's propagation policies."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kubelite.client import Client
from kubelite.localcluster import ManagedProcess, free_port, python_module_argv
from kubelite.testing import wait_deleted, wait_for, wait_for_list
from services.controller.daemonset import target_node_name

from .e2e import FAST_TIMINGS, Cluster, eventually, start_cluster, wait_nodes_ready
from .test_cli import kubelite_binary

pytestmark = pytest.mark.slow

Obj = dict[str, Any]
NODES = ("node-0", "node-1", "node-2")
BACKOFF = 0.5


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start_cluster(tmp_path_factory.mktemp("ds"), nodes=3,
                      env={"KUBELITE_DAEMONSET_BACKOFF_BASE": str(BACKOFF),
                           "KUBELITE_DAEMONSET_BACKOFF_MAX": "4"})
    yield c
    c.stop()


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[Client]:
    async with Client(cluster.target) as c:
        await wait_nodes_ready(c, 3)
        yield c


@pytest.fixture
async def ns(api: Client) -> AsyncIterator[str]:
    name = f"ds-{uuid.uuid4().hex[:8]}"
    await api.create("namespaces", {"metadata": {"name": name}})
    yield name
    with contextlib.suppress(Exception):
        await api.delete("namespaces", name)


def daemonset(name: str, *, image: str = "agent:1", pod: Obj | None = None, **spec: Any) -> Obj:
    pod_spec = {"terminationGracePeriodSeconds": 2,
                "containers": [{"name": "main", "image": image,
                                "command": ["sleep", "3600"]}], **(pod or {})}
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
                     **spec}}


def ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or ())


def live(pod: Obj) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and (pod.get("status") or {}).get(
        "phase") not in ("Succeeded", "Failed")


def by_node(pods: list[Obj]) -> dict[str, list[Obj]]:
    out: dict[str, list[Obj]] = {}
    for pod in pods:
        out.setdefault(target_node_name(pod) or "", []).append(pod)
    return out


def rolled_out(want: int, generation: int = 1):
    def check(ds: Obj) -> bool:
        s = ds.get("status") or {}
        return (s.get("observedGeneration") == ds["metadata"]["generation"] >= generation
                and s.get("desiredNumberScheduled") == want
                and s.get("updatedNumberScheduled") == want
                and s.get("numberAvailable") == want and s.get("currentNumberScheduled") == want
                and s.get("numberMisscheduled") == 0)
    return check


async def settled(api: Client, ns: str, name: str, want: int, generation: int = 1) -> Obj:
    """Waits for the rollout to finish (no pod left where none should run) and for exactly
    one live pod per desired node."""
    ds = await wait_for(api, "daemonsets", name, rolled_out(want, generation), namespace=ns,
                        timeout=40)
    await wait_for_list(api, "pods", lambda ps: len(ps) == want and all(
        live(p) and ready(p) for p in ps) and ps, namespace=ns, label_selector=f"app={name}",
        timeout=40, what=f"{want} ready pods of {name}")
    return ds


async def patch_node(api: Client, name: str, change) -> None:
    for _ in range(5):
        node = await api.get("nodes", name)
        change(node)
        try:
            await api.update("nodes", node)
            return
        except Exception:  # noqa: BLE001 - a conflict with the kubelet's status writes
            await asyncio.sleep(0.1)
    raise AssertionError(f"could not update node {name}")


def add_taint(taint: Obj):
    def change(node: Obj) -> None:
        taints = node.setdefault("spec", {}).setdefault("taints", [])
        taints[:] = [t for t in taints if t.get("key") != taint["key"]] + [taint]
    return change


def remove_taint(key: str):
    def change(node: Obj) -> None:
        spec = node.setdefault("spec", {})
        spec["taints"] = [t for t in spec.get("taints") or [] if t.get("key") != key] or None
        if spec["taints"] is None:
            del spec["taints"]
    return change


def set_label(key: str, value: str | None):
    def change(node: Obj) -> None:
        labels = node["metadata"].setdefault("labels", {})
        if value is None:
            labels.pop(key, None)
        else:
            labels[key] = value
    return change


@dataclass
class Sampler:
    """Follows the namespace's pods through a watch and records, at every event, how many of
    `nodes` have no ready live pod, how many run two live pods, and when each pod was first
    seen ready or deleting."""

    api: Client
    ns: str
    nodes: tuple[str, ...]
    pods: dict[str, Obj] = field(default_factory=dict)
    worst_unready: int = 0
    worst_doubled: int = 0
    samples: int = 0
    ready_at: dict[str, float] = field(default_factory=dict)
    gone_at: dict[str, float] = field(default_factory=dict)

    def observe(self) -> None:
        self.samples += 1
        nodes = by_node([p for p in self.pods.values() if live(p)])
        unready = sum(1 for n in self.nodes if not any(ready(p) for p in nodes.get(n, [])))
        doubled = sum(1 for n in self.nodes if len(nodes.get(n, [])) > 1)
        self.worst_unready = max(self.worst_unready, unready)
        self.worst_doubled = max(self.worst_doubled, doubled)

    async def run(self, started: asyncio.Event) -> None:
        listed = await self.api.list("pods", namespace=self.ns)
        self.pods = {p["metadata"]["uid"]: p for p in listed.items}
        revision = listed.resource_version
        started.set()
        async for event in self.api.watch("pods", namespace=self.ns, resource_version=revision):
            if event.type == "BOOKMARK":
                continue
            pod = event.object
            uid = pod["metadata"]["uid"]
            now = time.monotonic()
            if event.type == "DELETED" or not live(pod):
                self.gone_at.setdefault(uid, now)
            if ready(pod) and live(pod):
                self.ready_at.setdefault(uid, now)
            if event.type == "DELETED":
                self.pods.pop(uid, None)
            else:
                self.pods[uid] = pod
            self.observe()


@contextlib.asynccontextmanager
async def sampling(api: Client, ns: str, nodes: tuple[str, ...] = NODES
                   ) -> AsyncIterator[Sampler]:
    sampler = Sampler(api, ns, nodes)
    started = asyncio.Event()
    task = asyncio.create_task(sampler.run(started))
    await started.wait()
    try:
        yield sampler
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def cli(cluster: Cluster, *args: str, timeout: float = 60) -> tuple[int, str, str]:
    env = {**os.environ, "KUBELITE_SERVER": cluster.target, "KUBELITE_DRAIN_RETRY_INTERVAL": "0.5"}
    proc = await asyncio.create_subprocess_exec(
        kubelite_binary(), *args, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


# -- placement ------------------------------------------------------------------------------


async def test_one_pod_per_node_placed_by_the_scheduler(api: Client, ns: str,
                                                        cluster: Cluster) -> None:
    await api.create("daemonsets", daemonset("agent"), namespace=ns)
    ds = await settled(api, ns, "agent", 3)
    assert ds["status"]["numberReady"] == 3 and ds["status"]["numberMisscheduled"] == 0
    assert ds["status"]["numberUnavailable"] == 0
    pods = (await api.list("pods", namespace=ns)).items
    assert sorted(p["spec"]["nodeName"] for p in pods) == list(NODES)
    revisions = (await api.list("controllerrevisions", namespace=ns)).items
    assert [r["revision"] for r in revisions] == [1]
    hash_ = revisions[0]["metadata"]["labels"]["controller-revision-hash"]
    assert revisions[0]["metadata"]["name"] == f"agent-{hash_}"
    for pod in pods:
        node = pod["spec"]["nodeName"]
        # Bound by the scheduler through a node affinity term, not by setting nodeName.
        assert pod["spec"]["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"] == {"nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In",
                                  "values": [node]}]}]}
        assert pod["metadata"]["labels"] == {"app": "agent", "controller-revision-hash": hash_,
                                             "pod-template-generation": "1"}
        ref = pod["metadata"]["ownerReferences"][0]
        assert (ref["kind"], ref["name"], ref["controller"]) == ("DaemonSet", "agent", True)
        tolerations = {(t["key"], t["effect"]): t for t in pod["spec"]["tolerations"]}
        for key in ("not-ready", "unreachable"):
            assert "tolerationSeconds" not in tolerations[(f"node.kubernetes.io/{key}",
                                                           "NoExecute")]
        for key in ("disk-pressure", "memory-pressure", "pid-pressure", "unschedulable"):
            assert (f"node.kubernetes.io/{key}", "NoSchedule") in tolerations
    code, out, err = await cli(cluster, "get", "ds", "-n", ns, "-o", "wide")
    assert code == 0, err
    header, row = out.splitlines()[:2]
    assert header.split() == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE",
                              "NODE", "SELECTOR", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"]
    assert row.split()[:7] == ["agent", "3", "3", "3", "3", "3", "<none>"]
    assert row.split()[-3:] == ["main", "agent:1", "app=agent"]
    code, out, err = await cli(cluster, "get", "all", "-n", ns)
    assert code == 0 and "daemonset.apps/agent" in out, (out, err)

    # drain: DaemonSet pods are refused without --ignore-daemonsets, and left in place with it.
    mine = next(p["metadata"]["name"] for p in pods if p["spec"]["nodeName"] == "node-2")
    try:
        code, out, err = await cli(cluster, "drain", "node-2", "--timeout", "20s")
        assert code != 0 and "cannot delete DaemonSet-managed Pods" in err, (out, err)
        assert f"{ns}/{mine}" in err
        code, out, err = await cli(cluster, "drain", "node-2", "--ignore-daemonsets",
                                   "--timeout", "30s")
        assert code == 0, (out, err)
        assert "ignoring DaemonSet-managed Pods" in err and f"{ns}/{mine}" in err
        assert out.splitlines()[-1] == "node/node-2 drained"
        # Cordoned (unschedulable: tolerated), the daemon pod stays.
        still = await api.get("pods", mine, namespace=ns)
        assert live(still) and ready(still)
    finally:
        await cli(cluster, "uncordon", "node-2")


async def test_pods_follow_nodes_that_join_and_leave(api: Client, ns: str, cluster: Cluster,
                                                     tmp_path: Path) -> None:
    await api.create("daemonsets", daemonset("follow"), namespace=ns)
    await settled(api, ns, "follow", 3)
    name = f"node-x{uuid.uuid4().hex[:5]}"
    ip = f"127.10.0.{random.randint(100, 250)}"
    argv = python_module_argv(
        "services.kubelet", "--server", cluster.target, "--node-name", name,
        "--listen", f"{ip}:{free_port(ip)}", "--root-dir", str(tmp_path / name),
        "--pod-cidr", f"127.{random.randint(60, 90)}.{random.randint(0, 255)}.0/24",
        "--kill-pods-on-exit", "true")
    kubelet = ManagedProcess(name, argv, tmp_path / f"{name}.log",
                             {**FAST_TIMINGS, "KUBELITE_METRICS_PORT": str(free_port())}).start()
    try:
        await wait_nodes_ready(api, 4)
        await settled(api, ns, "follow", 4)
        pods = (await api.list("pods", namespace=ns)).items
        joined = [p for p in pods if p["spec"].get("nodeName") == name]
        assert len(joined) == 1, [p["spec"].get("nodeName") for p in pods]
    finally:
        kubelet.stop(10)
        with contextlib.suppress(Exception):
            await api.delete("nodes", name)
    # The node is gone: so is its pod, and the DaemonSet wants 3 again.
    await wait_deleted(api, "pods", joined[0]["metadata"]["name"], namespace=ns, timeout=30)
    ds = await settled(api, ns, "follow", 3)
    assert ds["status"]["numberMisscheduled"] == 0


async def test_taints_tolerations_and_node_selector_choose_the_nodes(api: Client,
                                                                     ns: str) -> None:
    taint = {"key": "dedicated", "value": "infra", "effect": "NoSchedule"}
    evict = {"key": "evict", "value": "now", "effect": "NoExecute"}
    try:
        await patch_node(api, "node-2", add_taint(taint))
        await api.create("daemonsets", daemonset("picky"), namespace=ns)
        await settled(api, ns, "picky", 2)
        pods = (await api.list("pods", namespace=ns)).items
        assert sorted(by_node(pods)) == ["node-0", "node-1"]  # none for the tainted node
        # Tolerating the taint puts a pod there too (a template change: a rollout).
        await api.patch("daemonsets", "picky", {"spec": {"template": {"spec": {
            "tolerations": [{"key": "dedicated", "operator": "Exists",
                             "effect": "NoSchedule"}]}}}}, namespace=ns)
        await settled(api, ns, "picky", 3, generation=2)
        # A NoExecute taint it does not tolerate removes the pod already there.
        before = by_node((await api.list("pods", namespace=ns)).items)["node-1"][0]
        await patch_node(api, "node-1", add_taint(evict))
        await wait_deleted(api, "pods", before["metadata"]["name"], namespace=ns, timeout=30)
        ds = await settled(api, ns, "picky", 2, generation=2)
        assert sorted(by_node((await api.list("pods", namespace=ns)).items)) == [
            "node-0", "node-2"]
        assert ds["status"]["numberMisscheduled"] == 0

        # nodeSelector: only labelled nodes, following the labels as they change.
        await patch_node(api, "node-0", set_label("ds-role", "edge"))
        await api.create("daemonsets", daemonset("edge", pod={"nodeSelector": {
            "ds-role": "edge"}}), namespace=ns)
        await settled(api, ns, "edge", 1)
        await patch_node(api, "node-2", set_label("ds-role", "edge"))  # tainted NoSchedule
        await patch_node(api, "node-1", set_label("ds-role", "edge"))  # tainted NoExecute
        await patch_node(api, "node-2", remove_taint("dedicated"))
        await settled(api, ns, "edge", 2)
        edge = (await api.list("pods", namespace=ns, label_selector="app=edge")).items
        assert sorted(by_node(edge)) == ["node-0", "node-2"]
        await patch_node(api, "node-0", set_label("ds-role", None))
        await wait_for_list(api, "pods", lambda ps: sorted(by_node(ps)) == ["node-2"],
                            namespace=ns, label_selector="app=edge", timeout=30)
        ds = await settled(api, ns, "edge", 1)
        assert ds["status"]["numberMisscheduled"] == 0
    finally:
        for node in NODES:
            await patch_node(api, node, remove_taint("dedicated"))
            await patch_node(api, node, remove_taint("evict"))
            await patch_node(api, node, set_label("ds-role", None))


# -- updates --------------------------------------------------------------------------------


async def test_rolling_update_keeps_within_max_unavailable(api: Client, ns: str) -> None:
    spec = {"minReadySeconds": 1, "updateStrategy": {"type": "RollingUpdate",
                                                     "rollingUpdate": {"maxUnavailable": 1}}}
    await api.create("daemonsets", daemonset("roll", **spec), namespace=ns)
    await settled(api, ns, "roll", 3)
    old = {p["metadata"]["uid"] for p in (await api.list("pods", namespace=ns)).items}
    async with sampling(api, ns) as sampler:
        started = time.monotonic()
        await api.patch("daemonsets", "roll", {"spec": {"template": {"spec": {"containers": [
            {"name": "main", "image": "agent:2", "command": ["sleep", "3601"]}]}}}},
            namespace=ns)
        await settled(api, ns, "roll", 3, generation=2)
        took = time.monotonic() - started
    pods = (await api.list("pods", namespace=ns)).items
    assert not old & {p["metadata"]["uid"] for p in pods}  # every pod was replaced
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {"agent:2"}
    print(f"rolling update of 3 nodes took {took:.1f}s; at most {sampler.worst_unready} node(s)"
          f" without a ready pod in {sampler.samples} samples")
    assert sampler.samples >= 12  # 3 deletions, 3 creations, their status changes
    assert sampler.worst_unready == 1  # maxUnavailable: 1 (and the rollout did take one)
    assert sampler.worst_doubled == 0  # no surge: never two live pods on a node
    # One node at a time, each waiting minReadySeconds for the one before: >= 2 s.
    assert took >= 2.0


async def test_max_surge_starts_the_new_pod_before_the_old_one_goes(api: Client,
                                                                    ns: str) -> None:
    spec = {"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {
        "maxUnavailable": 0, "maxSurge": 1}}}
    await api.create("daemonsets", daemonset("surge", **spec), namespace=ns)
    await settled(api, ns, "surge", 3)
    old = {p["metadata"]["uid"]: target_node_name(p)
           for p in (await api.list("pods", namespace=ns)).items}
    async with sampling(api, ns) as sampler:
        await api.patch("daemonsets", "surge", {"spec": {"template": {"spec": {"containers": [
            {"name": "main", "image": "agent:2", "command": ["sleep", "3601"]}]}}}},
            namespace=ns)
        await settled(api, ns, "surge", 3, generation=2)
    new = {p["metadata"]["uid"]: target_node_name(p)
           for p in (await api.list("pods", namespace=ns)).items}
    assert not set(old) & set(new) and sorted(new.values()) == list(NODES)
    print(f"surge: at most {sampler.worst_unready} node(s) without a ready pod and "
          f"{sampler.worst_doubled} with two pods in {sampler.samples} samples")
    assert sampler.worst_unready == 0  # maxUnavailable 0: every node kept a ready pod
    assert sampler.worst_doubled == 1  # maxSurge 1: one node at a time had two
    for uid, node in old.items():
        replacement = next(u for u, n in new.items() if n == node)
        assert sampler.ready_at[replacement] <= sampler.gone_at[uid], node


async def test_on_delete_replaces_only_deleted_pods(api: Client, ns: str) -> None:
    await api.create("daemonsets", daemonset("od", updateStrategy={"type": "OnDelete"}),
                     namespace=ns)
    await settled(api, ns, "od", 3)
    before = {p["metadata"]["uid"]: p for p in (await api.list("pods", namespace=ns)).items}
    await api.patch("daemonsets", "od", {"spec": {"template": {"metadata": {
        "annotations": {"v": "2"}}}}}, namespace=ns)
    ds = await wait_for(api, "daemonsets", "od", lambda d: d["status"].get(
        "observedGeneration") == 2, namespace=ns, timeout=30)
    assert ds["status"]["updatedNumberScheduled"] == 0
    assert ds["status"]["numberAvailable"] == 3
    pods = (await api.list("pods", namespace=ns)).items
    assert {p["metadata"]["uid"] for p in pods} == set(before)  # nothing was replaced
    victim = next(iter(before.values()))
    await api.delete("pods", victim["metadata"]["name"], namespace=ns)
    ds = await wait_for(api, "daemonsets", "od", lambda d: d["status"].get(
        "updatedNumberScheduled") == 1 and d["status"].get("numberAvailable") == 3,
        namespace=ns, timeout=30)
    pods = (await api.list("pods", namespace=ns)).items
    fresh = [p for p in pods if p["metadata"]["uid"] not in before]
    assert len(fresh) == 1 and target_node_name(fresh[0]) == target_node_name(victim)
    assert fresh[0]["metadata"]["annotations"] == {"v": "2"}
    assert fresh[0]["metadata"]["labels"]["pod-template-generation"] == "2"
    assert len(pods) == 3


async def test_rollout_status_history_and_undo(api: Client, ns: str, cluster: Cluster) -> None:
    await api.create("daemonsets", daemonset("cli"), namespace=ns)
    code, out, err = await cli(cluster, "rollout", "status", "ds/cli", "-n", ns,
                               "--timeout", "60s")
    assert code == 0, err
    assert out.splitlines()[-1] == 'daemon set "cli" successfully rolled out'
    first = {p["metadata"]["labels"]["controller-revision-hash"]
             for p in (await api.list("pods", namespace=ns)).items}
    await api.patch("daemonsets", "cli", {
        "metadata": {"annotations": {"kubernetes.io/change-cause": "image agent:2"}},
        "spec": {"template": {"spec": {"containers": [
            {"name": "main", "image": "agent:2", "command": ["sleep", "3601"]}]}}}},
        namespace=ns)
    code, out, err = await cli(cluster, "rollout", "status", "daemonset/cli", "-n", ns,
                               "--timeout", "60s")
    assert code == 0, err
    assert "Waiting for daemon set" in out or "successfully rolled out" in out
    assert out.splitlines()[-1] == 'daemon set "cli" successfully rolled out'
    ds = await api.get("daemonsets", "cli", namespace=ns)
    assert rolled_out(3, 2)(ds), ds["status"]
    code, out, err = await cli(cluster, "rollout", "history", "ds/cli", "-n", ns)
    assert code == 0, err
    rows = [line.split(None, 1) for line in out.splitlines()[2:]]
    assert rows == [["1", "<none>"], ["2", "image agent:2"]], out
    code, out, err = await cli(cluster, "rollout", "history", "ds/cli", "-n", ns,
                               "--revision", "2")
    assert code == 0 and "agent:2" in out, err

    code, out, err = await cli(cluster, "rollout", "undo", "ds/cli", "-n", ns)
    assert code == 0, err
    assert out.strip() == "daemonset.apps/cli rolled back"
    await settled(api, ns, "cli", 3, generation=3)
    pods = (await api.list("pods", namespace=ns)).items
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {"agent:1"}
    assert {p["metadata"]["labels"]["controller-revision-hash"] for p in pods} == first
    # The old revision was renumbered to be the newest, not copied.
    revisions = sorted((r["revision"], r["metadata"]["labels"]["controller-revision-hash"])
                       for r in (await api.list("controllerrevisions", namespace=ns)).items)
    assert [n for n, _ in revisions] == [2, 3] and revisions[1][1] in first

    code, out, err = await cli(cluster, "rollout", "restart", "ds/cli", "-n", ns)
    assert code == 0 and out.strip() == "daemonset.apps/cli restarted", err
    await settled(api, ns, "cli", 3, generation=4)
    revisions = (await api.list("controllerrevisions", namespace=ns)).items
    assert sorted(r["revision"] for r in revisions) == [2, 3, 4]


async def test_revision_history_limit_truncates_old_revisions(api: Client, ns: str) -> None:
    await api.create("daemonsets", daemonset("hist", revisionHistoryLimit=1), namespace=ns)
    await settled(api, ns, "hist", 3)
    for i in (2, 3, 4):
        await api.patch("daemonsets", "hist", {"spec": {"template": {"metadata": {
            "annotations": {"v": str(i)}}}}}, namespace=ns)
        await settled(api, ns, "hist", 3, generation=i)
    revisions = await wait_for_list(
        api, "controllerrevisions", lambda rs: len(rs) == 2 and rs, namespace=ns, timeout=20)
    assert sorted(r["revision"] for r in revisions) == [3, 4]  # the current and one old


# -- failures ---------------------------------------------------------------------------------


async def test_a_failed_daemon_pod_is_replaced_with_backoff(api: Client, ns: str) -> None:
    """On a node with no kubelet (so nothing else touches the pod), each failure is
    answered by a deletion and a new pod; each deletion after the first waits longer."""
    node = f"fake-{uuid.uuid4().hex[:6]}"
    await api.create("nodes", {"metadata": {"name": node, "labels": {"ds-fake": node}},
                               "spec": {"taints": [{"key": "ds-fake", "value": node,
                                                    "effect": "NoSchedule"}]}})
    try:
        created = await api.get("nodes", node)
        status = {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                  "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                  "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                  "lastHeartbeatTime": created["metadata"]["creationTimestamp"],
                                  "lastTransitionTime": created["metadata"][
                                      "creationTimestamp"]}]}
        await api.update_status("nodes", {**created, "status": status})
        await api.create("daemonsets", daemonset("flaky", pod={
            "nodeSelector": {"ds-fake": node},
            "tolerations": [{"key": "ds-fake", "operator": "Exists"}]}), namespace=ns)
        deleted_at: list[float] = []
        seen: set[str] = set()
        for _ in range(3):
            pod = await wait_for_list(api, "pods", lambda ps: next(
                (p for p in ps if p["metadata"]["uid"] not in seen and live(p)
                 and p["spec"].get("nodeName") == node), None),
                namespace=ns, timeout=20, what="a new bound daemon pod")
            seen.add(pod["metadata"]["uid"])
            failed = dict(pod, status={**pod["status"], "phase": "Failed",
                                       "reason": "Rejected", "message": "test"})
            await api.update_status("pods", failed)
            await wait_deleted(api, "pods", pod["metadata"]["name"], namespace=ns, timeout=20)
            deleted_at.append(time.monotonic())
        gaps = [b - a for a, b in zip(deleted_at, deleted_at[1:], strict=False)]
        print(f"failed daemon pods deleted {', '.join(f'{g:.2f}s' for g in gaps)} apart")
        # 0.5 s after the first deletion, then 1 s after the second.
        assert gaps[0] >= BACKOFF * 0.9 and gaps[1] >= 2 * BACKOFF * 0.9, gaps
        events = (await api.list("events", namespace=ns)).items
        assert any(e.get("reason") == "FailedDaemonPod" for e in events)
    finally:
        await api.delete("nodes", node)


# -- garbage collection ---------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["Foreground", "Background", "Orphan"])
async def test_deleting_a_daemonset_follows_the_propagation_policy(api: Client, ns: str,
                                                                   policy: str) -> None:
    await api.create("daemonsets", daemonset("gc"), namespace=ns)
    await settled(api, ns, "gc", 3)
    pods = (await api.list("pods", namespace=ns)).items
    revisions = (await api.list("controllerrevisions", namespace=ns)).items
    assert len(pods) == 3 and len(revisions) == 1
    await api.delete("daemonsets", "gc", namespace=ns, propagation_policy=policy)
    if policy == "Foreground":
        # The DaemonSet waits, marked, until its pods and revisions are gone.
        marked = await api.get("daemonsets", "gc", namespace=ns)
        assert "foregroundDeletion" in marked["metadata"]["finalizers"]
        await wait_deleted(api, "daemonsets", "gc", namespace=ns, timeout=40)
        left = (await api.list("pods", namespace=ns)).items
        assert not [p for p in left if live(p)]
        assert (await api.list("controllerrevisions", namespace=ns)).items == []
        return
    await wait_deleted(api, "daemonsets", "gc", namespace=ns, timeout=30)
    if policy == "Orphan":
        async def orphaned() -> bool:
            left = (await api.list("pods", namespace=ns)).items
            revs = (await api.list("controllerrevisions", namespace=ns)).items
            return (len(left) == 3 and len(revs) == 1
                    and all(not o["metadata"].get("ownerReferences") for o in left + revs))
        await eventually(orphaned, timeout=20, what="orphaned pods and revisions")
        assert {p["metadata"]["uid"] for p in (await api.list("pods", namespace=ns)).items} \
            == {p["metadata"]["uid"] for p in pods}
        return
    for pod in pods:
        await wait_deleted(api, "pods", pod["metadata"]["name"], namespace=ns, timeout=40)
    await wait_for_list(api, "controllerrevisions", lambda rs: not rs, namespace=ns, timeout=20)

"""The controller manager as a real process against a real apiserver.

No kubelet or scheduler runs here, so pods stay Pending and unscheduled.
Where a test needs ready pods, a FakeKubelet does what a kubelet would do
through the API (status: Running, Ready=True), and nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kubelite.client import Client
from kubelite.errors import ConflictError, NotFoundError
from kubelite.localcluster import ManagedProcess, free_port, python_module_argv, wait_healthy
from kubelite.objects import now_rfc3339
from kubelite.testing import eventually

Obj = dict[str, Any]


# -- the process ----------------------------------------------------------------


class ControllerManager:
    """A controller-manager child process with short leader-election timings."""

    def __init__(self, server: str, workdir: Path, *, lease: str, identity: str,
                 extra: tuple[str, ...] = ()) -> None:
        self.health = f"127.0.0.1:{free_port()}"
        self.metrics_port = free_port()
        self.identity = identity
        argv = python_module_argv(
            "services.controller", "--server", server, "--health-listen", self.health,
            "--metrics-port", str(self.metrics_port), "--identity", identity,
            "--leader-elect-resource-name", lease,
            "--leader-elect-lease-duration", "3", "--leader-elect-renew-deadline", "2.5",
            "--leader-elect-retry-period", "0.25", "--shutdown-grace", "2", *extra)
        self.process = ManagedProcess(identity, argv, workdir / f"{identity}.log")

    def start(self) -> ControllerManager:
        self.process.start()
        wait_healthy(self.health, 30, self.process.proc)
        return self

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                    timeout=2) as resp:
            return resp.read().decode()

    def metric(self, name: str, labels: str) -> float | None:
        prefix = f"{name}{{{labels}}} "
        for line in self.metrics().splitlines():
            if line.startswith(prefix):
                return float(line[len(prefix):])
        return None

    def is_leader(self, lease: str) -> bool:
        return self.metric("leader_election_master_status", f'name="{lease}"') == 1.0

    def stop(self) -> None:
        self.process.stop(5)

    def kill(self) -> None:
        self.process.kill()


def wait_leader(manager: ControllerManager, lease: str, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if manager.is_leader(lease):
            return
        time.sleep(0.05)
    raise AssertionError(f"{manager.identity} did not lead within {within}s:\n"
                         f"{manager.process.tail()}")


@pytest.fixture(scope="module")
def controller_manager(shared_apiserver, tmp_path_factory) -> Iterator[ControllerManager]:
    """One controller manager for this module's tests (they use their own namespaces)."""
    lease = f"kcm-{uuid.uuid4().hex[:8]}"
    manager = ControllerManager(
        shared_apiserver.target, tmp_path_factory.mktemp("controller"), lease=lease,
        identity="kcm-main", extra=("--controllers", "*,-nodelifecycle")).start()
    try:
        wait_leader(manager, lease)
    except Exception:
        manager.kill()
        raise
    yield manager
    manager.stop()


@pytest.fixture
async def ns(controller_manager: ControllerManager, namespace: str) -> str:
    """A fresh namespace, with the module's controller manager running."""
    return namespace


# -- helpers --------------------------------------------------------------------


def labels_of(obj: Obj) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def is_live(pod: Obj) -> bool:
    return not pod["metadata"].get("deletionTimestamp")


def is_ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or ())


def controller_uid(obj: Obj) -> str | None:
    for ref in obj["metadata"].get("ownerReferences") or ():
        if ref.get("controller"):
            return ref.get("uid")
    return None


def container(image: str = "busybox:1.36") -> Obj:
    return {"name": "main", "image": image, "command": ["sleep", "3600"]}


def replicaset(name: str, namespace: str, replicas: int, labels: dict[str, str],
               ports: list[Obj] | None = None) -> Obj:
    main = container()
    if ports:
        main["ports"] = ports
    return {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [main]}}},
    }


def deployment(name: str, namespace: str, replicas: int, *, image: str = "busybox:1.36",
               strategy: Obj | None = None, **spec: Any) -> Obj:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "strategy": strategy or {"type": "RollingUpdate", "rollingUpdate": {
                     "maxSurge": 1, "maxUnavailable": 0}},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [container(image)]}},
                 **spec},
    }


def bare_pod(name: str, namespace: str, labels: dict[str, str]) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {"containers": [container()]}}


async def pods(client: Client, namespace: str, selector: str = "") -> list[Obj]:
    return (await client.list("pods", namespace=namespace, label_selector=selector)).items


async def live_pods(client: Client, namespace: str, selector: str = "") -> list[Obj]:
    return [p for p in await pods(client, namespace, selector) if is_live(p)]


async def replicasets(client: Client, namespace: str) -> list[Obj]:
    return (await client.list("replicasets", namespace=namespace)).items


async def exists(client: Client, resource: str, name: str, namespace: str) -> bool:
    try:
        await client.get(resource, name, namespace=namespace)
    except NotFoundError:
        return False
    return True


async def patch_replicas(client: Client, resource: str, name: str, namespace: str,
                         replicas: int) -> None:
    await client.patch(resource, name, {"spec": {"replicas": replicas}}, namespace=namespace)


class FakeKubelet:
    """Does what a kubelet does to a pod's status through the API: Running and Ready."""

    def __init__(self, client: Client, namespace: str) -> None:
        self.client = client
        self.namespace = namespace
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> FakeKubelet:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        async for event in self.client.watch("pods", namespace=self.namespace):
            pod = event.object
            if event.type in ("ADDED", "MODIFIED") and is_live(pod) and not is_ready(pod):
                await mark_ready(self.client, pod)


_POD_IPS = iter(range(1, 1 << 16))


async def mark_ready(client: Client, pod: Obj, ready: bool = True) -> None:
    stamp = now_rfc3339()
    flag = "True" if ready else "False"
    status = {**(pod.get("status") or {}), "phase": "Running", "conditions": [
        {"type": "Ready", "status": flag, "lastTransitionTime": stamp},
        {"type": "ContainersReady", "status": flag, "lastTransitionTime": stamp}]}
    if not status.get("podIP"):
        n = next(_POD_IPS)
        status["podIP"] = f"127.77.{n >> 8}.{n & 255}"
    try:
        await client.update_status("pods", {**pod, "status": status})
    except (NotFoundError, ConflictError):
        pass  # gone, or changed: the watch brings the newer version


class PodCensus:
    """Follows every pod event in a namespace and keeps score after each one."""

    def __init__(self, client: Client, namespace: str,
                 score: Callable[[dict[str, Obj]], None]) -> None:
        self.client = client
        self.namespace = namespace
        self.score = score
        self.pods: dict[str, Obj] = {}
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> PodCensus:
        listed = await self.client.list("pods", namespace=self.namespace)
        for pod in listed.items:
            self.pods[pod["metadata"]["name"]] = pod
        self._task = asyncio.create_task(self._run(listed.resource_version))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self, revision: str) -> None:
        async for event in self.client.watch("pods", namespace=self.namespace,
                                             resource_version=revision):
            if event.type == "BOOKMARK":
                continue
            name = event.object["metadata"]["name"]
            if event.type == "DELETED":
                self.pods.pop(name, None)
            else:
                self.pods[name] = event.object
            self.score(self.pods)


# -- ReplicaSet -------------------------------------------------------------------


async def test_replicaset_creates_exactly_replicas_pods_owned_by_it(client: Client, ns: str):
    """A ReplicaSet of 3 gets 3 pods from its template, each with a controller reference."""
    rs = await client.create("replicasets", replicaset("web", ns, 3, {"app": "web"}))

    found = await eventually(lambda: _n_live(client, ns, 3), what="3 pods")
    await asyncio.sleep(0.5)  # and no more come
    found = await live_pods(client, ns)
    assert len(found) == 3
    for pod in found:
        assert pod["metadata"]["name"].startswith("web-")
        assert pod["metadata"]["generateName"] == "web-"
        assert labels_of(pod) == {"app": "web"}
        assert pod["metadata"]["ownerReferences"] == [{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
            "uid": rs["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]

    async def status_reported() -> Obj | None:
        got = await client.get("replicasets", "web", namespace=ns)
        status = got.get("status") or {}
        return status if status.get("replicas") == 3 and status.get(
            "observedGeneration") == got["metadata"]["generation"] else None

    status = await eventually(status_reported, what="status")
    assert status["fullyLabeledReplicas"] == 3
    assert status["readyReplicas"] == 0 and status["availableReplicas"] == 0

    async with FakeKubelet(client, ns):
        async def all_available() -> bool:
            got = await client.get("replicasets", "web", namespace=ns)
            return (got.get("status") or {}).get("availableReplicas") == 3

        await eventually(all_available, what="availableReplicas 3")
    events = (await client.list("events", namespace=ns)).items
    reasons = [e["reason"] for e in events if e["involvedObject"].get("name") == "web"]
    assert reasons.count("SuccessfulCreate") == 3


async def _none_live(client: Client, ns: str, selector: str) -> bool:
    return not await live_pods(client, ns, selector)


async def _has_status(client: Client, resource: str, name: str, ns: str) -> bool:
    return "replicas" in ((await client.get(resource, name, namespace=ns)).get("status") or {})


async def _n_live(client: Client, ns: str, n: int, selector: str = "") -> list[Obj] | None:
    found = await live_pods(client, ns, selector)
    return found if len(found) == n else None


async def test_replicaset_never_overshoots_under_scale_bursts(client: Client, ns: str):
    """Scaling 0→20→0→20 in quick succession never has more than 20 live pods."""
    most = 0

    def score(current: dict[str, Obj]) -> None:
        nonlocal most
        most = max(most, sum(1 for p in current.values() if is_live(p)))

    async with PodCensus(client, ns, score):
        await client.create("replicasets", replicaset("burst", ns, 0, {"app": "burst"}))
        # Until the controller's first status, the apiserver rejects every write to a new
        # ReplicaSet (its initial status {} lacks the schema's required status.replicas).
        await eventually(lambda: _has_status(client, "replicasets", "burst", ns),
                         what="a first status")
        for replicas in (20, 0, 20):
            await patch_replicas(client, "replicasets", "burst", ns, replicas)
            await asyncio.sleep(0.05)
        await eventually(lambda: _n_live(client, ns, 20), what="20 pods")
        await asyncio.sleep(1.0)
        for replicas in (0, 20, 0, 20, 5, 20):
            await patch_replicas(client, "replicasets", "burst", ns, replicas)
        await eventually(lambda: _n_live(client, ns, 20), what="20 pods again")
        await asyncio.sleep(1.0)
    assert most <= 20
    assert len(await live_pods(client, ns)) == 20


async def test_replicaset_replaces_a_deleted_pod(client: Client, ns: str):
    """Deleting one of its pods makes the ReplicaSet create a replacement."""
    await client.create("replicasets", replicaset("heal", ns, 2, {"app": "heal"}))
    first = await eventually(lambda: _n_live(client, ns, 2), what="2 pods")
    victim = first[0]["metadata"]["name"]
    await client.delete("pods", victim, namespace=ns)

    async def replaced() -> list[Obj] | None:
        found = await _n_live(client, ns, 2)
        return found if found and victim not in {p["metadata"]["name"] for p in found} else None

    await eventually(replaced, what="a replacement pod")
    await asyncio.sleep(0.3)
    assert len(await live_pods(client, ns)) == 2


async def test_replicaset_replaces_a_failed_pod_but_keeps_it(client: Client, ns: str):
    """A terminated (Failed) pod no longer counts: a replacement is made, the pod stays."""
    await client.create("replicasets", replicaset("term", ns, 1, {"app": "term"}))
    (first,) = await eventually(lambda: _n_live(client, ns, 1), what="1 pod")
    await client.update_status("pods", {**first, "status": {**first["status"],
                                                            "phase": "Failed"}})

    async def replaced() -> list[Obj] | None:
        found = await pods(client, ns)
        phases = sorted((p.get("status") or {}).get("phase") for p in found)
        return found if phases == ["Failed", "Pending"] else None

    await eventually(replaced, what="a replacement beside the failed pod")
    await asyncio.sleep(0.3)
    assert len(await pods(client, ns)) == 2
    rs = await client.get("replicasets", "term", namespace=ns)
    assert rs["status"]["replicas"] == 1


async def test_available_replicas_wait_for_min_ready_seconds(client: Client, ns: str):
    """With minReadySeconds 2, ready pods become available only two seconds later."""
    rs = replicaset("slow", ns, 2, {"app": "slow"})
    rs["spec"]["minReadySeconds"] = 2
    await client.create("replicasets", rs)

    async def counts() -> tuple[int, int]:
        status = (await client.get("replicasets", "slow", namespace=ns)).get("status") or {}
        return status.get("readyReplicas", 0), status.get("availableReplicas", 0)

    async with FakeKubelet(client, ns):
        await eventually(lambda: _async_eq(counts(), (2, 0)), what="ready, not yet available")
        ready_at = time.monotonic()
        await eventually(lambda: _async_eq(counts(), (2, 2)), timeout=10, what="available")
    assert time.monotonic() - ready_at >= 0.9  # whole seconds: at least one has passed


async def test_replicaset_adopts_orphans_and_releases_pods_that_stop_matching(
        client: Client, ns: str):
    """A matching orphan is adopted (and counted); a relabelled pod is released and replaced."""
    await client.create("pods", bare_pod("orphan", ns, {"app": "adopt"}))
    rs = await client.create("replicasets", replicaset("adopt", ns, 2, {"app": "adopt"}))
    uid = rs["metadata"]["uid"]

    async def adopted() -> bool:
        orphan = await client.get("pods", "orphan", namespace=ns)
        return controller_uid(orphan) == uid

    await eventually(adopted, what="the orphan adopted")
    await eventually(lambda: _n_live(client, ns, 2), what="2 pods")
    await asyncio.sleep(0.3)
    assert len(await live_pods(client, ns)) == 2  # the orphan counts: only one created

    await client.patch("pods", "orphan", {"metadata": {"labels": {"app": "elsewhere"}}},
                       namespace=ns)

    async def released() -> bool:
        orphan = await client.get("pods", "orphan", namespace=ns)
        return not orphan["metadata"].get("ownerReferences")

    await eventually(released, what="the relabelled pod released")
    await eventually(lambda: _n_live(client, ns, 2, "app=adopt"), what="a replacement")
    assert await exists(client, "pods", "orphan", ns)


# -- Deployment ---------------------------------------------------------------------


async def _replicaset_of(client: Client, ns: str, deployment_uid: str,
                         replicas: int | None = None) -> list[Obj]:
    return [rs for rs in await replicasets(client, ns) if controller_uid(rs) == deployment_uid
            and (replicas is None or rs["spec"]["replicas"] == replicas)]


async def test_deployment_creates_a_replicaset_named_by_the_template_hash(
        client: Client, ns: str):
    """The new ReplicaSet is <name>-<hash>, and the hash labels its selector, template, pods."""
    d = await client.create("deployments", deployment("app", ns, 2))
    found = await eventually(lambda: _replicaset_of(client, ns, d["metadata"]["uid"]),
                             what="a replicaset")
    assert len(found) == 1
    rs = found[0]
    pod_hash = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"app-{pod_hash}"
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "app", "pod-template-hash": pod_hash}
    assert rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"] == pod_hash
    annotations = rs["metadata"]["annotations"]
    assert annotations["deployment.kubernetes.io/revision"] == "1"
    assert annotations["deployment.kubernetes.io/desired-replicas"] == "2"
    assert annotations["deployment.kubernetes.io/max-replicas"] == "3"
    created = await eventually(lambda: _n_live(client, ns, 2), what="2 pods")
    assert all(labels_of(p)["pod-template-hash"] == pod_hash for p in created)

    async with FakeKubelet(client, ns):
        async def complete() -> Obj | None:
            got = await client.get("deployments", "app", namespace=ns)
            status = got.get("status") or {}
            conditions = {c["type"]: c for c in status.get("conditions") or ()}
            done = (status.get("availableReplicas") == 2 and status.get("updatedReplicas") == 2
                    and conditions.get("Progressing", {}).get("reason")
                    == "NewReplicaSetAvailable")
            return got if done else None

        got = await eventually(complete, what="a complete rollout")
    status = got["status"]
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Available"]["status"] == "True"
    assert conditions["Available"]["reason"] == "MinimumReplicasAvailable"
    assert status["observedGeneration"] == got["metadata"]["generation"]
    assert status["replicas"] == 2 and status["readyReplicas"] == 2
    assert status["unavailableReplicas"] == 0
    assert got["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    events = (await client.list("events", namespace=ns)).items
    assert any(e["reason"] == "ScalingReplicaSet"
               and e["message"] == f"Scaled up replica set app-{pod_hash} to 2" for e in events)


async def _rolled_out(client: Client, ns: str, name: str) -> Obj | None:
    d = await client.get("deployments", name, namespace=ns)
    status = d.get("status") or {}
    want = d["spec"]["replicas"]
    done = (status.get("observedGeneration") == d["metadata"]["generation"]
            and status.get("updatedReplicas") == want and status.get("replicas") == want
            and status.get("availableReplicas") == want)
    return d if done else None


async def test_rolling_update_with_no_unavailability_keeps_every_replica_ready(
        client: Client, ns: str):
    """maxUnavailable 0 / maxSurge 1: never fewer than `replicas` ready pods; old RS ends at 0."""
    replicas = 4
    fewest: int | None = None
    most_live = 0
    watching = False

    def score(current: dict[str, Obj]) -> None:
        nonlocal fewest, most_live
        if not watching:
            return
        live = [p for p in current.values() if is_live(p)]
        ready = sum(1 for p in live if is_ready(p))
        fewest = ready if fewest is None else min(fewest, ready)
        most_live = max(most_live, len(live))

    async with FakeKubelet(client, ns), PodCensus(client, ns, score):
        d = await client.create("deployments", deployment("roll", ns, replicas))
        await eventually(lambda: _rolled_out(client, ns, "roll"), what="first rollout")
        first = (await _replicaset_of(client, ns, d["metadata"]["uid"]))[0]
        watching = True
        await client.patch("deployments", "roll", {"spec": {"template": {"spec": {
            "containers": [container("busybox:1.37")]}}}}, namespace=ns)

        async def second_done() -> Obj | None:
            done = await _rolled_out(client, ns, "roll")
            return done if done and done["metadata"]["generation"] == 2 else None

        await eventually(second_done, timeout=30, what="second rollout")
    assert fewest is not None and fewest >= replicas
    assert most_live <= replicas + 1  # maxSurge 1
    rss = {rs["metadata"]["name"]: rs for rs in await replicasets(client, ns)}
    assert rss[first["metadata"]["name"]]["spec"]["replicas"] == 0
    new = [rs for name, rs in rss.items() if name != first["metadata"]["name"]]
    assert len(new) == 1 and new[0]["spec"]["replicas"] == replicas
    assert new[0]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    images = {p["spec"]["containers"][0]["image"] for p in await live_pods(client, ns)}
    assert images == {"busybox:1.37"}


async def test_default_rolling_update_stays_within_max_unavailable(client: Client, ns: str):
    """25%/25% of 8 replicas: at least 6 ready pods throughout, and it completes."""
    replicas = 8
    fewest: int | None = None
    watching = False

    def score(current: dict[str, Obj]) -> None:
        nonlocal fewest
        if watching:
            ready = sum(1 for p in current.values() if is_live(p) and is_ready(p))
            fewest = ready if fewest is None else min(fewest, ready)

    async with FakeKubelet(client, ns), PodCensus(client, ns, score):
        await client.create("deployments", deployment("dflt", ns, replicas, strategy={
            "type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%",
                                                       "maxUnavailable": "25%"}}))
        await eventually(lambda: _rolled_out(client, ns, "dflt"), what="first rollout")
        watching = True
        await client.patch("deployments", "dflt", {"spec": {"template": {"spec": {
            "containers": [container("busybox:1.37")]}}}}, namespace=ns)

        async def second_done() -> Obj | None:
            done = await _rolled_out(client, ns, "dflt")
            return done if done and done["metadata"]["generation"] == 2 else None

        await eventually(second_done, timeout=30, what="second rollout")
    assert fewest is not None and fewest >= replicas - 2
    images = {p["spec"]["containers"][0]["image"] for p in await live_pods(client, ns)}
    assert images == {"busybox:1.37"}


async def test_rollback_by_copying_an_old_template_reuses_its_replicaset(
        client: Client, ns: str):
    """Copying revision 1's template back (as `rollout undo` does) revives that ReplicaSet."""
    async with FakeKubelet(client, ns):
        d = await client.create("deployments", deployment("undo", ns, 2))
        await eventually(lambda: _rolled_out(client, ns, "undo"), what="v1")
        v1 = (await _replicaset_of(client, ns, d["metadata"]["uid"]))[0]
        await client.patch("deployments", "undo", {"spec": {"template": {"spec": {
            "containers": [container("busybox:1.37")]}}}}, namespace=ns)

        async def v2_done() -> Obj | None:
            done = await _rolled_out(client, ns, "undo")
            return done if done and done["metadata"]["generation"] == 2 else None

        await eventually(v2_done, timeout=20, what="v2")

        # What kubectl rollout undo does: the old ReplicaSet's template, minus the hash label.
        template = copy.deepcopy(v1["spec"]["template"])
        del template["metadata"]["labels"]["pod-template-hash"]
        current = await client.get("deployments", "undo", namespace=ns)
        current["spec"]["template"] = template
        await client.update("deployments", current)

        async def v3_done() -> Obj | None:
            done = await _rolled_out(client, ns, "undo")
            return done if done and done["metadata"]["generation"] == 3 else None

        done = await eventually(v3_done, timeout=20, what="the rollback")
    rss = await _replicaset_of(client, ns, d["metadata"]["uid"])
    assert len(rss) == 2  # no duplicate of v1
    revived = next(rs for rs in rss if rs["metadata"]["uid"] == v1["metadata"]["uid"])
    assert revived["spec"]["replicas"] == 2
    annotations = revived["metadata"]["annotations"]
    assert annotations["deployment.kubernetes.io/revision"] == "3"
    assert annotations["deployment.kubernetes.io/revision-history"] == "1"
    assert done["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    other = next(rs for rs in rss if rs["metadata"]["uid"] != v1["metadata"]["uid"])
    assert other["spec"]["replicas"] == 0


async def test_revision_history_limit_prunes_old_replicasets(client: Client, ns: str):
    """With revisionHistoryLimit 1, three templates leave the new ReplicaSet and one old one."""
    async with FakeKubelet(client, ns):
        d = await client.create("deployments", deployment("hist", ns, 1,
                                                          revisionHistoryLimit=1))
        await eventually(lambda: _rolled_out(client, ns, "hist"), what="v1")
        for generation, image in ((2, "busybox:1.37"), (3, "busybox:1.38")):
            await client.patch("deployments", "hist", {"spec": {"template": {"spec": {
                "containers": [container(image)]}}}}, namespace=ns)

            async def done(generation: int = generation) -> Obj | None:
                got = await _rolled_out(client, ns, "hist")
                return got if got and got["metadata"]["generation"] == generation else None

            await eventually(done, timeout=20, what=f"generation {generation}")

    async def pruned() -> list[Obj] | None:
        rss = await _replicaset_of(client, ns, d["metadata"]["uid"])
        return rss if len(rss) == 2 else None

    rss = await eventually(pruned, what="two replicasets left")
    revisions = sorted(int(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"])
                       for rs in rss)
    assert revisions == [2, 3]


async def test_recreate_removes_old_pods_before_creating_new_ones(client: Client, ns: str):
    """Strategy Recreate: no moment has pods of the old and the new template together."""
    overlap = False
    watching = False

    def score(current: dict[str, Obj]) -> None:
        nonlocal overlap
        if not watching:
            return
        hashes = {labels_of(p).get("pod-template-hash") for p in current.values()
                  if is_live(p)}
        overlap = overlap or len(hashes) > 1

    async with PodCensus(client, ns, score):
        await client.create("deployments", deployment("re", ns, 3,
                                                      strategy={"type": "Recreate"}))
        await eventually(lambda: _n_live(client, ns, 3), what="3 v1 pods")
        watching = True
        await client.patch("deployments", "re", {"spec": {"template": {"spec": {
            "containers": [container("busybox:1.37")]}}}}, namespace=ns)

        async def new_pods() -> list[Obj] | None:
            found = await _n_live(client, ns, 3)
            return found if found and all(p["spec"]["containers"][0]["image"] == "busybox:1.37"
                                          for p in found) else None

        await eventually(new_pods, what="3 v2 pods")
    assert not overlap


async def test_paused_deployment_does_not_roll_out_until_resumed(client: Client, ns: str):
    """A template change while paused makes no new ReplicaSet; resuming rolls it out."""
    d = await client.create("deployments", deployment("pause", ns, 1))
    await eventually(lambda: _n_live(client, ns, 1), what="1 pod")
    await client.patch("deployments", "pause", {"spec": {"paused": True}}, namespace=ns)

    async def paused_condition() -> bool:
        got = await client.get("deployments", "pause", namespace=ns)
        return any(c.get("reason") == "DeploymentPaused"
                   for c in (got.get("status") or {}).get("conditions") or ())

    await eventually(paused_condition, what="DeploymentPaused")
    await client.patch("deployments", "pause", {"spec": {"template": {"spec": {
        "containers": [container("busybox:1.37")]}}}}, namespace=ns)
    await asyncio.sleep(1.0)
    assert len(await _replicaset_of(client, ns, d["metadata"]["uid"])) == 1
    await client.patch("deployments", "pause", {"spec": {"paused": False}}, namespace=ns)
    await eventually(lambda: _two(client, ns, d["metadata"]["uid"]),
                     what="a second replicaset after resume")


async def _two(client: Client, ns: str, uid: str) -> bool:
    return len(await _replicaset_of(client, ns, uid)) == 2


async def test_progress_deadline_exceeded_when_pods_never_become_ready(
        client: Client, ns: str):
    """progressDeadlineSeconds 1 with pods that never turn ready: Progressing False."""
    await client.create("deployments", deployment("stuck", ns, 1, progressDeadlineSeconds=1))

    async def timed_out() -> Obj | None:
        got = await client.get("deployments", "stuck", namespace=ns)
        for cond in (got.get("status") or {}).get("conditions") or ():
            if cond["type"] == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
                return cond
        return None

    cond = await eventually(timed_out, timeout=10, what="ProgressDeadlineExceeded")
    assert cond["status"] == "False"
    got = await client.get("deployments", "stuck", namespace=ns)
    available = next(c for c in got["status"]["conditions"] if c["type"] == "Available")
    # maxUnavailable 0 of 1 replica: the one unready pod means no minimum availability.
    assert available["status"] == "False"
    assert available["reason"] == "MinimumReplicasUnavailable"


# -- endpoints -----------------------------------------------------------------------------


async def test_endpoints_follow_the_pods_a_service_selects(client: Client, ns: str):
    """Ready pods are addresses on the resolved targetPort; unready ones move aside."""
    await client.create("services", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "ep", "namespace": ns},
        "spec": {"selector": {"app": "ep"},
                 "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})
    await client.create("replicasets", replicaset(
        "ep", ns, 2, {"app": "ep"}, ports=[{"name": "http", "containerPort": 8080}]))

    async def endpoints(ready: int, not_ready: int = 0) -> Obj | None:
        try:
            got = await client.get("endpoints", "ep", namespace=ns)
        except NotFoundError:
            return None
        subsets = got.get("subsets") or []
        have = (sum(len(s.get("addresses") or []) for s in subsets),
                sum(len(s.get("notReadyAddresses") or []) for s in subsets))
        return got if have == (ready, not_ready) else None

    assert await eventually(lambda: endpoints(0, 0), what="empty endpoints")
    async with FakeKubelet(client, ns):
        got = await eventually(lambda: endpoints(2), what="two ready addresses")
    subset = got["subsets"][0]
    assert subset["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    ips = {a["ip"] for a in subset["addresses"]}
    found = await live_pods(client, ns)
    assert ips == {p["status"]["podIP"] for p in found}

    await mark_ready(client, found[0], ready=False)
    got = await eventually(lambda: endpoints(1, 1), what="one address not ready")
    assert got["subsets"][0]["notReadyAddresses"][0]["targetRef"]["name"] == \
        found[0]["metadata"]["name"]

    await client.delete("services", "ep", namespace=ns)

    async def gone() -> bool:
        return not await exists(client, "endpoints", "ep", ns)

    await eventually(gone, what="the endpoints deleted with the service")


# -- garbage collection -----------------------------------------------------------------


async def _no_objects(client: Client, ns: str) -> bool:
    return not await pods(client, ns) and not await replicasets(client, ns)


async def test_deleting_a_deployment_deletes_its_replicasets_and_pods(client: Client, ns: str):
    """Background propagation (the default): the Deployment goes at once, then the rest."""
    await client.create("deployments", deployment("bg", ns, 2))
    await eventually(lambda: _n_live(client, ns, 2), what="2 pods")
    await client.delete("deployments", "bg", namespace=ns)
    assert not await exists(client, "deployments", "bg", ns)
    await eventually(lambda: _no_objects(client, ns), what="replicasets and pods gone")


async def test_foreground_deletion_waits_for_dependents(client: Client, ns: str):
    """The owner stays (deletionTimestamp, finalizer) until its dependents are gone."""
    await client.create("deployments", deployment("fg", ns, 2))
    created = await eventually(lambda: _n_live(client, ns, 2), what="2 pods")
    held = created[0]["metadata"]["name"]
    # Something else (a kubelet, say) still has work to do on this pod.
    await client.patch("pods", held, {"metadata": {"finalizers": ["test.kubelite.io/hold"]}},
                       namespace=ns)
    await client.delete("deployments", "fg", namespace=ns, propagation_policy="Foreground")

    async def only_held_pod_left() -> bool:
        left = await pods(client, ns)
        return [p["metadata"]["name"] for p in left] == [held] and bool(
            left[0]["metadata"].get("deletionTimestamp"))

    await eventually(only_held_pod_left, what="all but the held pod deleted")
    await asyncio.sleep(0.5)
    d = await client.get("deployments", "fg", namespace=ns)
    assert d["metadata"]["deletionTimestamp"]
    assert d["metadata"]["finalizers"] == ["foregroundDeletion"]
    rss = await replicasets(client, ns)
    assert len(rss) == 1 and "foregroundDeletion" in rss[0]["metadata"]["finalizers"]

    await client.patch("pods", held, {"metadata": {"finalizers": None}}, namespace=ns)

    async def all_gone() -> bool:
        return await _no_objects(client, ns) and not await exists(client, "deployments", "fg",
                                                                   ns)

    await eventually(all_gone, what="everything deleted")


async def test_orphan_deletion_keeps_dependents_without_owner_references(
        client: Client, ns: str):
    """Orphan propagation: the ReplicaSet goes, its pods stay and no longer name it."""
    await client.create("replicasets", replicaset("orph", ns, 2, {"app": "orph"}))
    await eventually(lambda: _n_live(client, ns, 2), what="2 pods")
    await client.delete("replicasets", "orph", namespace=ns, propagation_policy="Orphan")

    async def gone() -> bool:
        return not await exists(client, "replicasets", "orph", ns)

    await eventually(gone, what="the replicaset deleted")
    await asyncio.sleep(0.5)
    left = await live_pods(client, ns)
    assert len(left) == 2
    assert all(not p["metadata"].get("ownerReferences") for p in left)


async def test_dependents_of_an_owner_that_no_longer_exists_are_deleted(
        client: Client, ns: str):
    """A pod naming an owner uid that does not exist (deleted while the GC was down) goes."""
    pod = bare_pod("dangling", ns, {"app": "dangling"})
    pod["metadata"]["ownerReferences"] = [{
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "ghost",
        "uid": str(uuid.uuid4()), "controller": True, "blockOwnerDeletion": True}]
    await client.create("pods", pod)
    keeper = bare_pod("keeper", ns, {"app": "keeper"})
    owner = await client.create("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                               "metadata": {"name": "owner", "namespace": ns}})
    keeper["metadata"]["ownerReferences"] = [{
        "apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
        "uid": owner["metadata"]["uid"]}]
    await client.create("pods", keeper)

    async def dangling_gone() -> bool:
        return not await exists(client, "pods", "dangling", ns)

    await eventually(dangling_gone, what="the dangling pod deleted")
    assert await exists(client, "pods", "keeper", ns)  # its owner exists


# -- leader election -------------------------------------------------------------------


async def test_only_the_leader_acts_and_a_standby_takes_over(apiserver, tmp_path: Path):
    """Two replicas: one lease holder acts; killing it hands the work to the other.

    What happened while nobody led (an owner deleted) is cleaned up by the new leader.
    """
    lease = "kube-controller-manager"
    managers = [ControllerManager(apiserver.target, tmp_path, lease=lease, identity=f"kcm-{i}",
                                  extra=("--controllers", "replicaset,garbagecollector"))
                for i in range(2)]
    for manager in managers:
        manager.start()
    try:
        async with Client(apiserver.target) as client:
            async def holder() -> str:
                try:
                    got = await client.get("leases", lease, namespace="kube-system")
                except NotFoundError:
                    return ""
                return got["spec"].get("holderIdentity") or ""

            leader_id = await eventually(holder, what="a lease holder")
            leader = next(m for m in managers if m.identity == leader_id)
            standby = next(m for m in managers if m is not leader)
            await eventually(lambda: _async(leader.is_leader(lease)), what="leader metric")
            assert not standby.is_leader(lease)

            await client.create("replicasets", replicaset("ha", "default", 5, {"app": "ha"}))
            await client.create("replicasets", replicaset("doomed", "default", 2,
                                                          {"app": "doomed"}))
            await eventually(lambda: _n_live(client, "default", 5, "app=ha"), what="5 pods")
            await eventually(lambda: _n_live(client, "default", 2, "app=doomed"),
                             what="2 doomed pods")
            await asyncio.sleep(0.5)
            assert len(await live_pods(client, "default", "app=ha")) == 5  # not 10

            leader.kill()
            # Nobody leads for a moment: this owner's pods are left dangling.
            await client.delete("replicasets", "doomed", namespace="default")
            assert len(await live_pods(client, "default", "app=doomed")) == 2
            await eventually(lambda: _async_eq(holder(), standby.identity), timeout=10,
                             what="the standby holding the lease")
            await eventually(lambda: _async(standby.is_leader(lease)), what="standby leads")
            await patch_replicas(client, "replicasets", "ha", "default", 8)
            await eventually(lambda: _n_live(client, "default", 8, "app=ha"), what="8 pods")
            await eventually(lambda: _none_live(client, "default", "app=doomed"),
                             what="the dangling pods collected")
            await asyncio.sleep(0.5)
            assert len(await live_pods(client, "default", "app=ha")) == 8
    finally:
        for manager in managers:
            manager.stop()


async def _async(value: Any) -> Any:
    return value


async def _async_eq(value: Awaitable[Any], expected: Any) -> bool:
    return (await value) == expected


# -- node lifecycle -----------------------------------------------------------------------


async def test_node_whose_lease_is_not_renewed_becomes_unknown(apiserver, tmp_path: Path):
    """A node lease left unrenewed past the grace period: Ready Unknown, NodeNotReady event."""
    manager = ControllerManager(apiserver.target, tmp_path, lease="kcm", identity="kcm-node",
                                extra=("--controllers", "nodelifecycle",
                                       "--node-monitor-grace-period", "1.5",
                                       "--node-monitor-period", "0.2")).start()
    try:
        async with Client(apiserver.target) as client:
            stamp = now_rfc3339()
            await client.create("nodes", {
                "apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
                "status": {"conditions": [{
                    "type": "Ready", "status": "True", "reason": "KubeletReady",
                    "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}]}})
            await client.create("leases", {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": "n1", "namespace": "kube-node-lease"},
                "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40,
                         "renewTime": now_rfc3339(micro=True)}})
            pod = bare_pod("on-n1", "default", {"app": "n1"})
            pod["spec"]["nodeName"] = "n1"
            pod = await client.create("pods", pod)
            await mark_ready(client, pod)
            started = time.monotonic()

            async def ready_status() -> str:
                node = await client.get("nodes", "n1")
                return next(c["status"] for c in node["status"]["conditions"]
                            if c["type"] == "Ready")

            await eventually(lambda: _async_eq(ready_status(), "Unknown"), timeout=10,
                             what="Ready Unknown")
            assert time.monotonic() - started >= 1.0  # not before the grace period
            node = await client.get("nodes", "n1")
            ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
            assert ready["reason"] == "NodeStatusUnknown"

            async def pod_not_ready() -> bool:
                return not is_ready(await client.get("pods", "on-n1", namespace="default"))

            await eventually(pod_not_ready, what="the pod marked not ready")

            async def event_recorded() -> bool:
                events = (await client.list("events", namespace="default")).items
                return any(e["reason"] == "NodeNotReady"
                           and e["involvedObject"].get("kind") == "Node" for e in events)

            await eventually(event_recorded, what="a NodeNotReady event")
    finally:
        manager.stop()


# -- metrics ------------------------------------------------------------------------------


async def test_exposes_workqueue_and_reconcile_metrics(controller_manager: ControllerManager,
                                                       client: Client, ns: str):
    """The workqueue metrics are labelled by controller; reconcile errors are counted."""
    await client.create("replicasets", replicaset("m", ns, 1, {"app": "m"}))
    await eventually(lambda: _n_live(client, ns, 1), what="1 pod")
    text = controller_manager.metrics()
    for name in ("replicaset", "deployment", "endpoint", "garbagecollector"):
        assert f'workqueue_adds_total{{name="{name}"}}' in text
        assert f'workqueue_depth{{name="{name}"}}' in text
        assert f'workqueue_queue_duration_seconds_count{{name="{name}"}}' in text
        assert f'workqueue_work_duration_seconds_count{{name="{name}"}}' in text
        assert f'workqueue_retries_total{{name="{name}"}}' in text
        assert f'controller_reconcile_errors_total{{controller="{name}"}}' in text

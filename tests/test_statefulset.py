"""StatefulSets on a real cluster (`kubelite up`, process runtime, the local-path
provisioner and the cluster DNS): ordered creation with a claim per ordinal, a pod
that comes back with its name and data, DNS names through the headless Service,
scale-down in reverse order, partitioned rolling updates, OnDelete, Parallel,
`kubelite rollout` and the garbage collector."""

from __future__ import annotations

import asyncio
import contextlib
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from kubelite.client import Client
from kubelite.errors import ApiError, InvalidError, NotFoundError
from kubelite.testing import eventually, wait_deleted, wait_for
from services.controller.statefulset import (
    POD_INDEX_LABEL,
    POD_NAME_LABEL,
    claim_name,
    claim_owner_refs,
    compute_status,
    parent_and_ordinal,
    revision_for_ordinal,
    statefulset_claim,
    statefulset_pod,
)

from .e2e import Cluster, start_cluster, wait_nodes_ready

pytestmark = pytest.mark.slow
Obj = dict[str, Any]

SCRIPT = "echo $POD_NAME >> /data/log; exec sleep 3600"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start_cluster(tmp_path_factory.mktemp("sts"), nodes=2)
    yield c
    c.stop()


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[Client]:
    async with Client(cluster.target) as c:
        await wait_nodes_ready(c, 2)
        yield c


@pytest.fixture
async def ns(api: Client) -> str:
    name = f"sts-{uuid.uuid4().hex[:8]}"
    await api.create("namespaces", {"metadata": {"name": name}})
    return name


def statefulset(name: str, replicas: int = 3, *, claims: bool = True, version: str = "1",
                probe: Obj | None = None, **spec: Any) -> Obj:
    container: Obj = {
        "name": "main", "image": "nginx", "command": ["sh", "-c", SCRIPT],
        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "VERSION", "value": version}]}
    if probe is not None:
        container["readinessProbe"] = probe
    if claims:
        container["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    else:
        container["command"] = ["sleep", "3600"]
    body: Obj = {
        "serviceName": "nginx", "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}},
                     "spec": {"terminationGracePeriodSeconds": 1, "containers": [container]}},
        **spec}
    if claims:
        body["volumeClaimTemplates"] = [{"metadata": {"name": "data"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
            "spec": body}


def headless(name: str = "nginx", app: str = "web") -> Obj:
    return {"metadata": {"name": name}, "spec": {
        "clusterIP": "None", "selector": {"app": app},
        "ports": [{"name": "web", "port": 80}]}}


def ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def version_of(pod: Obj) -> str:
    env = pod["spec"]["containers"][0].get("env") or []
    return next((e.get("value", "") for e in env if e["name"] == "VERSION"), "")


class PodLog:
    """A watch of the namespace's pods: when each name was first seen, first Ready, and first
    seen being deleted (monotonic seconds), and the uids each name had."""

    def __init__(self) -> None:
        self.added: dict[str, float] = {}
        self.ready: dict[str, float] = {}
        self.deleting: dict[str, float] = {}
        self.order: list[str] = []  # names in the order their deletion began
        self.uids: dict[str, list[str]] = {}

    def see(self, kind: str, pod: Obj) -> None:
        meta = pod["metadata"]
        name, uid, now = meta["name"], meta["uid"], time.monotonic()
        if uid not in self.uids.setdefault(name, []):
            self.uids[name].append(uid)
            self.added.setdefault(name, now)
        if ready(pod):
            self.ready.setdefault(name, now)
        if (kind == "DELETED" or meta.get("deletionTimestamp")) and name not in self.deleting:
            self.deleting[name] = now
            self.order.append(name)


@contextlib.asynccontextmanager
async def watching(api: Client, ns: str) -> AsyncIterator[PodLog]:
    log = PodLog()
    opened = asyncio.Event()

    async def watch() -> None:
        async for event in api.watch("pods", namespace=ns, allow_bookmarks=True):
            opened.set()
            if event.type != "BOOKMARK":
                log.see(event.type, event.object)

    task = asyncio.create_task(watch())
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                await opened.wait()
        yield log
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def pods_of(api: Client, ns: str, app: str) -> list[Obj]:
    items = (await api.list("pods", namespace=ns, label_selector=f"app={app}")).items
    return sorted(items, key=lambda p: p["metadata"]["name"])


async def wait_ready_set(api: Client, ns: str, name: str, replicas: int,
                         timeout: float = 60) -> Obj:
    return await wait_for(api, "statefulsets", name, lambda s: (
        (s.get("status") or {}).get("readyReplicas") == replicas
        and (s.get("status") or {}).get("replicas") == replicas
        and (s.get("status") or {}).get("observedGeneration") == s["metadata"]["generation"]),
        namespace=ns, timeout=timeout, what=f"{name} with {replicas} ready replicas")


def claim_dir(volume: Obj) -> Path:
    return Path(volume["spec"]["hostPath"]["path"])


async def volume_of(api: Client, ns: str, claim: str) -> Obj:
    bound = await wait_for(api, "persistentvolumeclaims", claim,
                           lambda c: (c.get("status") or {}).get("phase") == "Bound",
                           namespace=ns, timeout=30)
    return await api.get("persistentvolumes", bound["spec"]["volumeName"])


def cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    binary = str(Path(sys.executable).parent / "kubelite")
    return subprocess.run([binary, "--server", cluster.target, *args], capture_output=True,
                          text=True, timeout=90)


async def run_cli(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(cli, cluster, *args)


# -- units ------------------------------------------------------------------------------


def _set(**spec: Any) -> Obj:
    body = statefulset("web", 3, **spec)
    body["metadata"].update(namespace="ns", uid="set-uid")
    return body


def test_pods_carry_identity_claims_and_revision() -> None:
    sts = _set()
    pod = statefulset_pod(sts, sts["spec"]["template"], 2, "web-abc")
    assert pod["metadata"]["name"] == "web-2"
    assert pod["metadata"]["labels"] == {
        "app": "web", POD_NAME_LABEL: "web-2", POD_INDEX_LABEL: "2",
        "controller-revision-hash": "web-abc"}
    assert (pod["spec"]["hostname"], pod["spec"]["subdomain"]) == ("web-2", "nginx")
    assert pod["spec"]["volumes"] == [{"name": "data", "persistentVolumeClaim": {
        "claimName": "data-web-2"}}]
    claim = statefulset_claim(sts, sts["spec"]["volumeClaimTemplates"][0], 2)
    assert claim["metadata"]["name"] == claim_name(sts["spec"]["volumeClaimTemplates"][0],
                                                   sts, 2) == "data-web-2"
    assert parent_and_ordinal(pod) == ("web", 2)
    assert parent_and_ordinal({"metadata": {"name": "web"}}) is None


def test_partition_decides_the_revision_of_a_new_pod() -> None:
    sts = _set(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 2}})
    assert [revision_for_ordinal(sts, i, "old", "new", 0) for i in range(3)] == [
        "old", "old", "new"]
    on_delete = _set(updateStrategy={"type": "OnDelete"})
    assert revision_for_ordinal(on_delete, 0, "old", "new", 3) == "new"


def test_claim_owners_follow_the_retention_policy() -> None:
    pod = {"metadata": {"name": "web-2", "uid": "pod-uid"}}
    claim = {"metadata": {"name": "data-web-2", "ownerReferences": [
        {"kind": "Other", "name": "x", "uid": "other"}]}}

    def owners(when_deleted: str, when_scaled: str, condemned: bool) -> list[str]:
        sts = _set(persistentVolumeClaimRetentionPolicy={"whenDeleted": when_deleted,
                                                         "whenScaled": when_scaled})
        return [r["uid"] for r in claim_owner_refs(sts, pod, claim, condemned)]
    assert owners("Retain", "Retain", True) == ["other"]
    assert owners("Delete", "Retain", True) == ["other", "set-uid"]
    assert owners("Retain", "Delete", False) == ["other"]
    assert owners("Retain", "Delete", True) == ["other", "pod-uid"]
    assert owners("Delete", "Delete", True) == ["other", "pod-uid"]
    assert owners("Delete", "Delete", False) == ["other", "set-uid"]


def test_status_counts_revisions_and_rolls_the_current_revision_over() -> None:
    sts = _set()
    sts["metadata"]["generation"] = 4

    def pod(name: str, revision: str, is_ready: bool = True) -> Obj:
        return {"metadata": {"name": name, "labels": {"controller-revision-hash": revision}},
                "status": {"phase": "Running", "conditions": [
                    {"type": "Ready", "status": "True" if is_ready else "False",
                     "lastTransitionTime": "2020-01-01T00:00:00Z"}]}}
    mid = compute_status(sts, [pod("web-0", "a"), pod("web-1", "a"), pod("web-2", "b")],
                         "a", "b", 0, time.time())
    assert (mid["replicas"], mid["readyReplicas"], mid["currentReplicas"],
            mid["updatedReplicas"], mid["currentRevision"], mid["updateRevision"],
            mid["observedGeneration"]) == (3, 3, 2, 1, "a", "b", 4)
    done = compute_status(sts, [pod(f"web-{i}", "b") for i in range(3)], "a", "b", 0,
                          time.time())
    assert (done["currentRevision"], done["currentReplicas"]) == ("b", 3)
    not_ready = compute_status(sts, [pod("web-0", "b"), pod("web-1", "b"),
                                     pod("web-2", "b", False)], "a", "b", 0, time.time())
    assert not_ready["currentRevision"] == "a"


# -- a whole cluster ---------------------------------------------------------------------


async def test_defaults_and_checks(api: Client, ns: str) -> None:
    created = await api.create("statefulsets", statefulset("web", claims=False), namespace=ns)
    spec = created["spec"]
    assert spec["podManagementPolicy"] == "OrderedReady"
    assert spec["updateStrategy"] == {"type": "RollingUpdate",
                                      "rollingUpdate": {"partition": 0}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain",
                                                            "whenScaled": "Retain"}
    with pytest.raises(InvalidError, match="spec: Forbidden: updates to statefulset spec"):
        await api.patch("statefulsets", "web", {"spec": {"serviceName": "other"}},
                        namespace=ns)
    bad = statefulset("bad", claims=False)
    bad["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    with pytest.raises(InvalidError, match="spec.template.spec.restartPolicy"):
        await api.create("statefulsets", bad, namespace=ns)
    bad = statefulset("bad")
    bad["spec"]["volumeClaimTemplates"][0]["spec"].pop("accessModes")
    with pytest.raises(InvalidError, match=r"spec.volumeClaimTemplates\[0\].spec.accessModes"):
        await api.create("statefulsets", bad, namespace=ns)


async def test_ordered_pods_with_stable_claims_names_and_reverse_scale_down(
        cluster: Cluster, api: Client, ns: str) -> None:
    """web-0, web-1, web-2 in order, each Ready before the next, each with its own claim;
    web-1 comes back with its claim and data; web-0.nginx resolves from a pod; scale to 1
    removes web-2 then web-1 and keeps their claims."""
    await api.create("services", headless(), namespace=ns)
    async with watching(api, ns) as log:
        await api.create("statefulsets", statefulset("web"), namespace=ns)
        await wait_ready_set(api, ns, "web", 3)
    assert log.added["web-1"] >= log.ready["web-0"], log.__dict__
    assert log.added["web-2"] >= log.ready["web-1"], log.__dict__
    pods = await pods_of(api, ns, "web")
    assert [p["metadata"]["name"] for p in pods] == ["web-0", "web-1", "web-2"]
    for i, pod in enumerate(pods):
        assert pod["spec"]["hostname"] == f"web-{i}" and pod["spec"]["subdomain"] == "nginx"
        labels = pod["metadata"]["labels"]
        assert labels["statefulset.kubernetes.io/pod-name"] == f"web-{i}"
        assert labels["apps.kubernetes.io/pod-index"] == str(i)
        claim = next(v for v in pod["spec"]["volumes"] if v["name"] == "data")
        assert claim["persistentVolumeClaim"]["claimName"] == f"data-web-{i}"
    claims = (await api.list("persistentvolumeclaims", namespace=ns)).items
    assert sorted(c["metadata"]["name"] for c in claims) == ["data-web-0", "data-web-1",
                                                             "data-web-2"]
    assert all(c["metadata"]["labels"] == {"app": "web"} for c in claims)

    # web-1 is deleted: the same name comes back, on the same claim, and finds its data.
    volume = await volume_of(api, ns, "data-web-1")
    log_file = claim_dir(volume) / "log"
    old_uid = pods[1]["metadata"]["uid"]
    await api.delete("pods", "web-1", namespace=ns)

    async def back() -> Obj | None:
        pod = await api.get("pods", "web-1", namespace=ns)
        return pod if pod["metadata"]["uid"] != old_uid and ready(pod) else None
    again = await eventually(back, 60, interval=0.2, what="web-1 back", ignore=(NotFoundError,))
    claim = next(v for v in again["spec"]["volumes"] if v["name"] == "data")
    assert claim["persistentVolumeClaim"]["claimName"] == "data-web-1"

    def two_lines() -> list[str] | None:
        lines = log_file.read_text().split() if log_file.exists() else []
        return lines if len(lines) == 2 else None
    assert await eventually(lambda: asyncio.to_thread(two_lines), 30,
                            what="web-1's second write") == ["web-1", "web-1"]

    # The stable network identity: web-0.nginx.<ns>.svc.cluster.local from a pod.
    await resolves_from_a_pod(cluster, api, ns, f"web-0.nginx.{ns}.svc.cluster.local",
                              pods[0]["status"]["podIP"])

    got = await run_cli(cluster, "get", "sts", "-n", ns)
    assert got.returncode == 0, got.stderr
    assert [line.split()[:2] for line in got.stdout.splitlines()] == [
        ["NAME", "READY"], ["web", "3/3"]]
    async with watching(api, ns) as log:
        scaled = await run_cli(cluster, "scale", "sts", "web", "--replicas", "1", "-n", ns)
        assert scaled.returncode == 0, scaled.stderr
        assert scaled.stdout.strip() == "statefulset.apps/web scaled"
        await wait_ready_set(api, ns, "web", 1)
        await eventually(lambda: _names(api, ns, "web", ["web-0"]), 30, what="only web-0")
    assert log.order[:2] == ["web-2", "web-1"], log.order
    assert log.deleting["web-1"] >= log.deleting["web-2"]
    claims = (await api.list("persistentvolumeclaims", namespace=ns)).items
    assert len(claims) == 3  # whenScaled: Retain


async def _names(api: Client, ns: str, app: str, want: list[str]) -> bool:
    return [p["metadata"]["name"] for p in await pods_of(api, ns, app)] == want


def _dns_address(cluster: Cluster) -> tuple[str, int] | None:
    text = (cluster.data_dir / "up.out").read_text(errors="replace")
    match = re.search(r"DNS:\s+([0-9.]+):(\d+)", text)
    return (match.group(1), int(match.group(2))) if match else None


RESOLVE = """
import sys, dns.message, dns.query
query = dns.message.make_query(sys.argv[1], "A")
answer = dns.query.udp(query, sys.argv[2], port=int(sys.argv[3]), timeout=2)
print(" ".join(r.address for rrset in answer.answer for r in rrset), flush=True)
"""


async def resolves_from_a_pod(cluster: Cluster, api: Client, ns: str, name: str,
                              want: str) -> None:
    """A pod asks the cluster DNS for name and prints the answer (process runtime pods
    share the host's resolv.conf, so the pod names the server: docs/dns.md)."""
    address = await eventually(lambda: asyncio.to_thread(_dns_address, cluster), 10,
                               what="the DNS address in up.out")
    pod = {"metadata": {"name": "resolver"}, "spec": {
        "restartPolicy": "OnFailure", "containers": [{
            "name": "dig", "image": "python:3",
            "command": [sys.executable, "-c", RESOLVE, name, address[0], str(address[1])]}]}}
    await api.create("pods", pod, namespace=ns)

    async def answered() -> str | None:
        try:
            out = b"".join([chunk async for chunk in api.logs("resolver", namespace=ns)])
        except ApiError:
            return None  # not started yet
        return out.decode().strip() or None
    assert await eventually(answered, 30, interval=0.3, what=f"{name} resolved") == want


async def test_partitioned_rolling_update_rollout_history_and_undo(
        cluster: Cluster, api: Client, ns: str) -> None:
    await api.create("statefulsets", statefulset("web", claims=False), namespace=ns)
    await wait_ready_set(api, ns, "web", 3)
    first = await api.get("statefulsets", "web", namespace=ns)
    rev1 = first["status"]["updateRevision"]
    assert first["status"]["currentRevision"] == rev1

    # Partition 2: only web-2 moves to the new template.
    first["spec"]["updateStrategy"]["rollingUpdate"]["partition"] = 2
    first["spec"]["template"]["spec"]["containers"][0]["env"][1]["value"] = "2"
    await api.update("statefulsets", first, namespace=ns)
    updated = await wait_for(api, "statefulsets", "web", lambda s: (
        s["status"].get("updatedReplicas") == 1 and s["status"].get("readyReplicas") == 3),
        namespace=ns, timeout=60)
    rev2 = updated["status"]["updateRevision"]
    assert rev2 != rev1 and updated["status"]["currentRevision"] == rev1
    versions = {p["metadata"]["name"]: version_of(p) for p in await pods_of(api, ns, "web")}
    assert versions == {"web-0": "1", "web-1": "1", "web-2": "2"}
    status = await run_cli(cluster, "rollout", "status", "sts/web", "-n", ns, "--timeout", "5s")
    assert status.returncode == 0, status.stderr
    assert "partitioned roll out complete: 1 new pods have been updated" in status.stdout

    # Partition 0: the rest follow, highest ordinal first.
    async with watching(api, ns) as log:
        await api.patch("statefulsets", "web", {"spec": {"updateStrategy": {
            "rollingUpdate": {"partition": 0}}}}, namespace=ns)
        done = await run_cli(cluster, "rollout", "status", "statefulset/web", "-n", ns,
                             "--timeout", "60s")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == (
        f"statefulset rolling update complete 3 pods at revision {rev2}...")
    assert log.order == ["web-1", "web-0"], log.order
    final = await api.get("statefulsets", "web", namespace=ns)
    assert final["status"]["currentRevision"] == rev2
    versions = {p["metadata"]["name"]: version_of(p) for p in await pods_of(api, ns, "web")}
    assert set(versions.values()) == {"2"}

    history = await run_cli(cluster, "rollout", "history", "sts/web", "-n", ns)
    assert history.returncode == 0, history.stderr
    lines = [line.split() for line in history.stdout.splitlines() if line.strip()]
    assert lines[0] == ["statefulset.apps/web"], history.stdout
    assert lines[1] == ["REVISION", "CHANGE-CAUSE"]
    assert [row[0] for row in lines[2:]] == ["1", "2"]
    undo = await run_cli(cluster, "rollout", "undo", "sts/web", "-n", ns)
    assert undo.returncode == 0, undo.stderr
    assert undo.stdout.strip() == "statefulset.apps/web rolled back"

    async def back_on_rev1() -> Obj | None:
        sts = await api.get("statefulsets", "web", namespace=ns)
        st = sts.get("status") or {}
        return sts if (st.get("updateRevision") == rev1 and st.get("currentRevision") == rev1
                       and st.get("readyReplicas") == 3
                       and st.get("updatedReplicas") == 3) else None
    await eventually(back_on_rev1, 60, interval=0.3, what="the rollback rolled out")
    revisions = {r["metadata"]["name"]: r["revision"]
                 for r in (await api.list("controllerrevisions", namespace=ns)).items}
    assert revisions == {rev2: 2, rev1: 3}  # the old revision is renumbered, not copied
    versions = {p["metadata"]["name"]: version_of(p) for p in await pods_of(api, ns, "web")}
    assert set(versions.values()) == {"1"}


async def test_on_delete_replaces_only_deleted_pods(api: Client, ns: str) -> None:
    await api.create("statefulsets", statefulset("web", 2, claims=False,
                                                 updateStrategy={"type": "OnDelete"}),
                     namespace=ns)
    await wait_ready_set(api, ns, "web", 2)
    sts = await api.get("statefulsets", "web", namespace=ns)
    sts["spec"]["template"]["spec"]["containers"][0]["env"][1]["value"] = "2"
    await api.update("statefulsets", sts, namespace=ns)
    await wait_for(api, "statefulsets", "web", lambda s: s["status"].get(
        "observedGeneration") == s["metadata"]["generation"], namespace=ns)
    assert {version_of(p) for p in await pods_of(api, ns, "web")} == {"1"}
    old = (await api.get("pods", "web-0", namespace=ns))["metadata"]["uid"]
    await api.delete("pods", "web-0", namespace=ns)

    async def replaced() -> Obj | None:
        pod = await api.get("pods", "web-0", namespace=ns)
        return pod if pod["metadata"]["uid"] != old else None
    pod = await eventually(replaced, 60, interval=0.2, what="web-0 recreated",
                           ignore=(NotFoundError,))
    assert version_of(pod) == "2"
    assert version_of(await api.get("pods", "web-1", namespace=ns)) == "1"


NEVER_READY = {"exec": {"command": ["false"]}, "periodSeconds": 1}


async def test_ordered_ready_waits_and_parallel_does_not(api: Client, ns: str) -> None:
    """Pods that never become Ready: OrderedReady stops at web-0, Parallel makes all."""
    await api.create("statefulsets", statefulset("par", 3, claims=False, probe=NEVER_READY,
                                                 podManagementPolicy="Parallel"), namespace=ns)
    await api.create("statefulsets", statefulset("ord", 3, claims=False, probe=NEVER_READY),
                     namespace=ns)
    await eventually(lambda: _names(api, ns, "par", ["par-0", "par-1", "par-2"]), 30,
                     what="all three Parallel pods")
    await wait_for(api, "pods", "ord-0", lambda p: (p.get("status") or {}).get(
        "phase") == "Running", namespace=ns, timeout=30)
    # ord-0 has been Running (not Ready) for as long as the Parallel set took, and more.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        assert await _names(api, ns, "ord", ["ord-0"])
        await asyncio.sleep(0.3)


async def test_garbage_collector_and_claim_retention(api: Client, ns: str) -> None:
    """Background deletion takes the pods and revisions and keeps Retain claims; Delete
    claims go with a scale-down and with the set; orphan keeps the pods."""
    await api.create("statefulsets", statefulset("keep", 1), namespace=ns)
    await api.create("statefulsets", statefulset(
        "drop", 2, persistentVolumeClaimRetentionPolicy={"whenDeleted": "Delete",
                                                         "whenScaled": "Delete"}),
        namespace=ns)
    await api.create("statefulsets", statefulset("orph", 1, claims=False), namespace=ns)
    for name, count in (("keep", 1), ("drop", 2), ("orph", 1)):
        await wait_ready_set(api, ns, name, count)

    await api.patch("statefulsets", "drop", {"spec": {"replicas": 1}}, namespace=ns)
    await wait_deleted(api, "persistentvolumeclaims", "data-drop-1", namespace=ns, timeout=30)

    await api.delete("statefulsets", "keep", namespace=ns, propagation_policy="Background")
    await api.delete("statefulsets", "drop", namespace=ns, propagation_policy="Foreground")
    await api.delete("statefulsets", "orph", namespace=ns, propagation_policy="Orphan")
    await wait_deleted(api, "pods", "keep-0", namespace=ns, timeout=30)
    await wait_deleted(api, "pods", "drop-0", namespace=ns, timeout=30)
    await wait_deleted(api, "persistentvolumeclaims", "data-drop-0", namespace=ns, timeout=30)
    await wait_deleted(api, "statefulsets", "orph", namespace=ns, timeout=30)

    async def revisions_gone() -> bool:
        left = (await api.list("controllerrevisions", namespace=ns)).items
        return all(not r["metadata"]["name"].startswith(("keep-", "drop-")) for r in left)
    await eventually(revisions_gone, 30, what="the revisions collected")
    orphan = await api.get("pods", "orph-0", namespace=ns)
    assert not orphan["metadata"].get("ownerReferences")
    assert (await api.get("persistentvolumeclaims", "data-keep-0", namespace=ns))

"""Storage: the binder's matching logic (units), and a whole local cluster (`kubelite up`,
two nodes) where a claim of the default StorageClass is provisioned on its first
consumer's node, keeps its data across pods, and takes its directory with it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kubelite import testing
from kubelite.client import Client
from kubelite.errors import NotFoundError
from kubelite.testing import LocalCluster
from kubelite.volumebinding import find_match, pv_allows_node, released_phase
from services.controller.provisioner import new_volume

Obj = dict[str, Any]


# -- units ---------------------------------------------------------------------------------


def pv(name: str, size: str, modes: list[str], sc: str = "", **spec: Any) -> Obj:
    return {"metadata": {"name": name}, "status": {"phase": "Available"},
            "spec": {"capacity": {"storage": size}, "accessModes": modes,
                     "storageClassName": sc, "hostPath": {"path": f"/x/{name}"}, **spec}}


def pvc(size: str, modes: list[str], sc: str = "", name: str = "c") -> Obj:
    return {"metadata": {"name": name, "namespace": "ns", "uid": "u1"},
            "spec": {"accessModes": modes, "storageClassName": sc,
                     "resources": {"requests": {"storage": size}}}}


def node(name: str) -> Obj:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}}


def test_binder_picks_the_smallest_fitting_volume_of_the_class() -> None:
    volumes = [pv("big", "10Gi", ["ReadWriteOnce"]), pv("small", "2Gi", ["ReadWriteOnce"]),
               pv("tiny", "500Mi", ["ReadWriteOnce"]), pv("rox", "2Gi", ["ReadOnlyMany"]),
               pv("other", "2Gi", ["ReadWriteOnce"], sc="fast")]
    assert find_match(pvc("1Gi", ["ReadWriteOnce"]), volumes)["metadata"]["name"] == "small"
    assert find_match(pvc("1Gi", ["ReadWriteOnce"], sc="fast"),
                      volumes)["metadata"]["name"] == "other"
    assert find_match(pvc("20Gi", ["ReadWriteOnce"]), volumes) is None
    assert find_match(pvc("1Gi", ["ReadWriteMany"]), volumes) is None


def test_binder_honours_claim_refs_and_node_affinity() -> None:
    taken = pv("taken", "1Gi", ["ReadWriteOnce"],
               claimRef={"namespace": "ns", "name": "someone", "uid": "u9"})
    mine = pv("mine", "5Gi", ["ReadWriteOnce"], claimRef={"namespace": "ns", "name": "c"})
    assert find_match(pvc("1Gi", ["ReadWriteOnce"]), [taken]) is None
    assert find_match(pvc("1Gi", ["ReadWriteOnce"]), [taken, mine])["metadata"]["name"] == "mine"
    pinned = pv("pinned", "1Gi", ["ReadWriteOnce"], nodeAffinity={"required": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": ["n1"]}]}]}})
    assert pv_allows_node(pinned, node("n1")) and not pv_allows_node(pinned, node("n2"))
    assert find_match(pvc("1Gi", ["ReadWriteOnce"]), [pinned], node("n2")) is None
    assert find_match(pvc("1Gi", ["ReadWriteOnce"]), [pinned], node("n1")) is pinned


def test_released_volumes_follow_their_reclaim_policy() -> None:
    assert released_phase(pv("r", "1Gi", [], persistentVolumeReclaimPolicy="Retain")) == (
        "Released", "")
    phase, message = released_phase(pv("d", "1Gi", [], persistentVolumeReclaimPolicy="Delete"))
    assert phase == "Failed" and "no deletable volume plugin matched" in message
    local = pv("l", "1Gi", [], persistentVolumeReclaimPolicy="Delete")
    local["metadata"]["annotations"] = {"pv.kubernetes.io/provisioned-by":
                                        "kubelite.io/local-path"}
    assert released_phase(local) == ("Released", "")


def test_provisioned_volume_is_a_directory_on_the_chosen_node() -> None:
    claim = pvc("1Gi", ["ReadWriteOnce"], sc="standard", name="data")
    n = node("n1")
    n["metadata"]["annotations"] = {"kubelite.io/local-path-root": "/var/k/local-path"}
    volume = new_volume(claim, {"metadata": {"name": "standard"}, "reclaimPolicy": "Delete"}, n)
    assert volume["metadata"]["name"] == "pvc-u1"
    assert volume["spec"]["hostPath"] == {"path": "/var/k/local-path/pvc-u1_ns_data",
                                          "type": "DirectoryOrCreate"}
    assert volume["spec"]["claimRef"]["uid"] == "u1"
    assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert pv_allows_node(volume, n) and not pv_allows_node(volume, node("n2"))


# -- a whole cluster -----------------------------------------------------------------------


async def wait(fn: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    return await testing.eventually(fn, timeout, interval=0.2, what=what,
                                    ignore=(NotFoundError,))


DB_SCRIPT = ("echo $POD_NAME >> /var/lib/db/log; "
             "while true; do sleep 1; done")


def deployment(name: str, namespace: str, claim: str) -> Obj:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1, "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 1,
                    "containers": [{
                        "name": "db", "image": "postgres:16",
                        "command": ["sh", "-c", DB_SCRIPT],
                        "env": [{"name": "POD_NAME", "valueFrom": {"fieldRef": {
                            "fieldPath": "metadata.name"}}}],
                        "volumeMounts": [{"name": "data", "mountPath": "/var/lib/db"}]}],
                    "volumes": [{"name": "data",
                                 "persistentVolumeClaim": {"claimName": claim}}]}}}}


async def running_pod(client: Client, namespace: str, app: str, not_named: str = "") -> Obj:
    async def one() -> Obj | None:
        pods = (await client.list("pods", namespace=namespace,
                                  label_selector=f"app={app}")).items
        for p in pods:
            if (p["metadata"]["name"] != not_named and not p["metadata"].get("deletionTimestamp")
                    and (p.get("status") or {}).get("phase") == "Running"):
                return p
        return None
    return await wait(one, f"a running {app} pod")


@pytest.fixture
def two_nodes(kubelite_cluster_factory: Callable[..., LocalCluster]) -> LocalCluster:
    """Started outside the test's event loop (the factory waits with one of its own)."""
    return kubelite_cluster_factory(nodes=2)


async def test_database_keeps_its_data_on_its_node_and_the_claim_takes_it_away(
        two_nodes: LocalCluster) -> None:
    cluster = two_nodes
    async with cluster.client() as client:
        standard = await wait(lambda: client.get("storageclasses", "standard"),
                              "the default StorageClass")
        assert standard["metadata"]["annotations"][
            "storageclass.kubernetes.io/is-default-class"] == "true"
        assert standard["volumeBindingMode"] == "WaitForFirstConsumer"
        assert standard["reclaimPolicy"] == "Delete"
        ns = await testing.create_namespace(client, "st")
        claim = await client.create("persistentvolumeclaims", {
            "metadata": {"name": "data", "namespace": ns},
            "spec": {"accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}}})
        assert claim["spec"]["storageClassName"] == "standard"  # DefaultStorageClass
        assert claim["status"]["phase"] == "Pending"

        await client.create("deployments", deployment("db", ns, "data"), namespace=ns)
        first = await running_pod(client, ns, "db")
        node_name = first["spec"]["nodeName"]
        claim = await wait(lambda: _bound(client, ns, "data"), "the claim bound")
        assert claim["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == \
            node_name
        volume = await client.get("persistentvolumes", claim["spec"]["volumeName"])
        assert volume["status"]["phase"] == "Bound"
        assert volume["spec"]["claimRef"]["uid"] == claim["metadata"]["uid"]
        assert volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0][
            "matchExpressions"][0]["values"] == [node_name]
        directory = Path(volume["spec"]["hostPath"]["path"])
        log = directory / "log"
        await wait(lambda: _contains(log, first["metadata"]["name"]), "the first pod's write")

        # The pod goes; its replacement lands on the same node and finds the data.
        for _ in range(2):
            await client.delete("pods", first["metadata"]["name"], namespace=ns)
            second = await running_pod(client, ns, "db", not_named=first["metadata"]["name"])
            assert second["spec"]["nodeName"] == node_name
            await wait(lambda s=second: _contains(log, s["metadata"]["name"]),
                       "the next pod's write")
            assert first["metadata"]["name"] in log.read_text()
            first = second

        # Deleting the claim (once its consumer is gone) removes the data and the PV.
        await client.delete("deployments", "db", namespace=ns)
        await wait(lambda: _no_pods(client, ns), "the pods gone")
        await client.delete("persistentvolumeclaims", "data", namespace=ns)
        await wait(lambda: _gone(client, "persistentvolumes", volume["metadata"]["name"]),
                   "the PV deleted")
        assert not await asyncio.to_thread(directory.exists)


async def test_static_volume_binds_is_released_and_a_lost_claim_says_so(
        kubelite_cluster: LocalCluster) -> None:
    cluster = kubelite_cluster
    async with cluster.client() as client:
        ns = await testing.create_namespace(client, "st")
        await client.create("persistentvolumes", {
            "metadata": {"name": f"static-{ns}"},
            "spec": {"capacity": {"storage": "2Gi"}, "accessModes": ["ReadWriteOnce"],
                     "storageClassName": "", "hostPath": {"path": "/tmp/static"}}})
        await wait(lambda: _phase(client, "persistentvolumes", f"static-{ns}", "Available"),
                   "the PV Available")
        await client.create("persistentvolumeclaims", {
            "metadata": {"name": "mine", "namespace": ns},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "",
                     "resources": {"requests": {"storage": "1Gi"}}}})
        claim = await wait(lambda: _bound(client, ns, "mine"), "the static claim bound")
        assert claim["spec"]["volumeName"] == f"static-{ns}"
        assert claim["status"]["capacity"] == {"storage": "2Gi"}
        await client.delete("persistentvolumeclaims", "mine", namespace=ns)
        await wait(lambda: _phase(client, "persistentvolumes", f"static-{ns}", "Released"),
                   "the PV Released (Retain)")

        await client.create("persistentvolumes", {
            "metadata": {"name": f"lost-{ns}"},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                     "storageClassName": "", "hostPath": {"path": "/tmp/lost"},
                     "claimRef": {"namespace": ns, "name": "doomed"}}})
        await client.create("persistentvolumeclaims", {
            "metadata": {"name": "doomed", "namespace": ns},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "",
                     "resources": {"requests": {"storage": "1Gi"}}}})
        await wait(lambda: _bound(client, ns, "doomed"), "the pre-bound claim bound")
        await client.delete("persistentvolumes", f"lost-{ns}")
        await wait(lambda: _phase(client, "persistentvolumeclaims", "doomed", "Lost", ns),
                   "the claim Lost")


async def _bound(client: Client, ns: str, name: str) -> Obj | None:
    claim = await client.get("persistentvolumeclaims", name, namespace=ns)
    return claim if (claim.get("status") or {}).get("phase") == "Bound" else None


async def _phase(client: Client, resource: str, name: str, phase: str,
                 ns: str | None = None) -> bool:
    obj = await client.get(resource, name, namespace=ns)
    return (obj.get("status") or {}).get("phase") == phase


async def _contains(path: Path, text: str) -> bool:
    try:
        return text in await asyncio.to_thread(path.read_text)
    except OSError:
        return False


async def _no_pods(client: Client, ns: str) -> bool:
    return not (await client.list("pods", namespace=ns)).items


async def _gone(client: Client, resource: str, name: str) -> bool:
    try:
        await client.get(resource, name)
    except NotFoundError:
        return True
    return False


def test_get_prints_storage_as_kubectl_does() -> None:
    from datetime import UTC, datetime

    from kubelite.printing import TableOptions, table
    from kubelite.resources import lookup

    def cells(kind: str, obj: Obj) -> dict[str, str]:
        headers, row = table(lookup(kind), TableOptions(), datetime.now(UTC))
        return dict(zip(headers, row(obj), strict=True))
    stamp = {"creationTimestamp": "2026-01-01T00:00:00Z"}
    sc = {"metadata": {"name": "standard", **stamp, "annotations": {
        "storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "kubelite.io/local-path", "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer"}
    assert {k: v for k, v in cells("sc", sc).items() if k != "AGE"} == {
        "NAME": "standard (default)", "PROVISIONER": "kubelite.io/local-path",
        "RECLAIMPOLICY": "Delete", "VOLUMEBINDINGMODE": "WaitForFirstConsumer",
        "ALLOWVOLUMEEXPANSION": "false"}
    claim = {"metadata": {"name": "data", **stamp},
             "spec": {"volumeName": "pvc-1", "storageClassName": "standard"},
             "status": {"phase": "Bound", "capacity": {"storage": "1Gi"},
                        "accessModes": ["ReadWriteOnce"]}}
    assert {k: v for k, v in cells("pvc", claim).items() if k != "AGE"} == {
        "NAME": "data", "STATUS": "Bound", "VOLUME": "pvc-1", "CAPACITY": "1Gi",
        "ACCESS MODES": "RWO", "STORAGECLASS": "standard", "VOLUMEATTRIBUTESCLASS": "<unset>"}
    volume = {"metadata": {"name": "pvc-1", **stamp},
              "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                       "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "standard",
                       "claimRef": {"namespace": "default", "name": "data"}},
              "status": {"phase": "Bound"}}
    assert {k: v for k, v in cells("pv", volume).items() if k != "AGE"} == {
        "NAME": "pvc-1", "CAPACITY": "1Gi", "ACCESS MODES": "RWO", "RECLAIM POLICY": "Delete",
        "STATUS": "Bound", "CLAIM": "default/data", "STORAGECLASS": "standard",
        "VOLUMEATTRIBUTESCLASS": "<unset>", "REASON": ""}

"""Volumes on the docker runtime: a real kubelet process with `--runtime docker` and the
machine's Docker engine. The volume manager's directories are bind-mounted (readOnly
enforced by the kernel), a memory-backed emptyDir is one tmpfs volume shared by the
pod's containers, and a configMap update reaches the running container.

Run one test at a time (`-k`): each starts pods on the machine's Docker."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import docker

from kubelite.client import Client
from services.kubelet.runtime_docker import LABEL_NODE
from tests import test_kubelet_docker as kd
from tests.test_kubelet import KubeletProcess, eventually, get_pod, make_pod, status_of
from tests.test_kubelet_docker import BASE, wait_running_ready

# The docker kubelet module's fixtures, shared as they are.
docker_api, network, kubelet, ns = kd.docker_api, kd.network, kd.kubelet, kd.ns

Obj = dict[str, Any]


def sh(name: str, script: str, **extra: Any) -> Obj:
    return {"name": name, "image": BASE, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", script], **extra}


def volume_dir(k: KubeletProcess, pod: Obj, plugin: str, name: str) -> Path:
    return k.root / "pods" / pod["metadata"]["uid"] / "volumes" / plugin / name


async def read(path: Path) -> str:
    try:
        return await asyncio.to_thread(path.read_text)
    except OSError:
        return ""


async def test_bind_mounts_tmpfs_and_read_only_on_docker(
        client: Client, ns: str, kubelet: KubeletProcess, docker_api: Any) -> None:
    await client.create("configmaps", {"metadata": {"name": "cfg", "namespace": ns},
                                       "data": {"key": "one"}})
    writer = sh("writer", "echo shared > /mem/x; mount | grep ' /mem ' > /out/mount; "
                "sleep 3600", volumeMounts=[{"name": "mem", "mountPath": "/mem"},
                                            {"name": "out", "mountPath": "/out"}])
    reader = sh("reader", "while [ ! -f /shm/x ]; do sleep 0.1; done; cp /shm/x /out/x; "
                "touch /cfg/new 2> /out/ro; echo $? >> /out/ro; "
                "while true; do cat /cfg/key > /out/seen.tmp; mv /out/seen.tmp /out/seen; "
                "sleep 0.2; done",
                volumeMounts=[{"name": "mem", "mountPath": "/shm"},
                              {"name": "out", "mountPath": "/out"},
                              {"name": "cfg", "mountPath": "/cfg", "readOnly": True}])
    pod = make_pod("vols", ns, kubelet.node, writer, reader)
    pod["spec"]["terminationGracePeriodSeconds"] = 1
    pod["spec"]["volumes"] = [{"name": "mem", "emptyDir": {"medium": "Memory",
                                                           "sizeLimit": "16Mi"}},
                              {"name": "out", "emptyDir": {}},
                              {"name": "cfg", "configMap": {"name": "cfg"}}]
    created = await client.create("pods", pod)
    await wait_running_ready(client, "vols", ns, within=60)
    out = volume_dir(kubelet, created, "kubernetes.io~empty-dir", "out")

    async def has(name: str, text: str) -> bool:
        return text in await read(out / name)
    await eventually(lambda: has("x", "shared"), what="the tmpfs shared by both containers")
    mount = await read(out / "mount")
    assert "tmpfs" in mount and "size=16384k" in mount
    await eventually(lambda: has("ro", "Read-only file system"), what="readOnly enforced")
    await eventually(lambda: has("seen", "one"), what="the configMap")

    cm = await client.get("configmaps", "cfg", namespace=ns)
    cm["data"]["key"] = "two"
    await client.update("configmaps", cm)
    await eventually(lambda: has("seen", "two"), within=20, what="the update, no restart")
    current = await get_pod(client, "vols", ns)
    assert all(s["restartCount"] == 0 for s in current["status"]["containerStatuses"])
    assert status_of(current, "reader")["ready"]

    uid = created["metadata"]["uid"]
    volume = f"kubelite-{uid}-mem"
    assert docker_api.inspect_volume(volume)["Labels"][LABEL_NODE] == kubelet.node
    await client.delete("pods", "vols", namespace=ns)

    def volume_gone() -> bool:
        try:
            docker_api.inspect_volume(volume)
        except docker.errors.NotFound:
            return True
        return False

    async def removed() -> bool:
        return await asyncio.to_thread(volume_gone) and not await asyncio.to_thread(out.exists)
    await eventually(removed, within=30, what="the pod's volumes removed with it")


async def test_fs_group_owns_the_volumes_and_joins_the_container(
        client: Client, ns: str, kubelet: KubeletProcess) -> None:
    app = sh("app", "id -G > /data/groups; stat -c %g /data > /data/owner; "
             "stat -L -c %g /etc/cfg/key > /data/cfg-owner; sleep 3600",
             volumeMounts=[{"name": "data", "mountPath": "/data"},
                           {"name": "cfg", "mountPath": "/etc/cfg"}])
    await client.create("configmaps", {"metadata": {"name": "fs", "namespace": ns},
                                       "data": {"key": "v"}})
    pod = make_pod("fsgroup", ns, kubelet.node, app)
    pod["spec"]["terminationGracePeriodSeconds"] = 1
    pod["spec"]["securityContext"] = {"fsGroup": 2345}
    pod["spec"]["volumes"] = [{"name": "data", "emptyDir": {}},
                              {"name": "cfg", "configMap": {"name": "fs"}}]
    created = await client.create("pods", pod)
    await wait_running_ready(client, "fsgroup", ns, within=60)
    data = volume_dir(kubelet, created, "kubernetes.io~empty-dir", "data")

    async def written() -> bool:
        return bool((await read(data / "cfg-owner")).strip())
    await eventually(written, what="the container's report")
    assert "2345" in (await read(data / "groups")).split()
    assert (await read(data / "owner")).strip() == "2345"
    assert (await read(data / "cfg-owner")).strip() == "2345"

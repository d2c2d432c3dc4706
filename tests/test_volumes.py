"""Volumes on the process runtime: a real kubelet process against a real apiserver,
pods bound to its node directly; and unit tests of the atomic writer and the checks."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kubelite.client import Client
from services.kubelet.runtime import Mount
from services.kubelet.runtime_process import rewrite_mount_paths
from services.kubelet.volumes import MountError, check_host_path, keyed_payload, write_atomic
from tests.test_kubelet import (
    KubeletProcess,
    events_for,
    eventually,
    get_pod,
    make_pod,
    sh,
    status_of,
    wait_running_ready,
)

Obj = dict[str, Any]


# -- units: the atomic writer ---------------------------------------------------------


def test_atomic_writer_layout_and_swap(tmp_path: Path) -> None:
    """Files sit in a timestamped dir behind ..data; user names are symlinks through it;
    a rewrite swaps ..data and removes the old dir and names no longer wanted."""
    target = tmp_path / "vol"
    assert write_atomic(target, {"a": (b"one", 0o644), "dir/b": (b"bee", 0o600)})
    data = target / "..data"
    assert data.is_symlink() and os.readlink(data).startswith("..")
    assert os.readlink(target / "a") == "..data/a"
    assert os.readlink(target / "dir") == "..data/dir"
    assert (target / "dir" / "b").read_bytes() == b"bee"
    assert stat.S_IMODE((target / "dir" / "b").stat().st_mode) == 0o600
    first = data.resolve()
    assert not write_atomic(target, {"a": (b"one", 0o644), "dir/b": (b"bee", 0o600)})
    assert data.resolve() == first  # unchanged content: nothing rewritten
    assert write_atomic(target, {"a": (b"two", 0o644)})
    assert (target / "a").read_bytes() == b"two"
    assert not (target / "dir").exists() and not (target / "dir").is_symlink()
    assert not first.exists()
    hidden = sorted(p.name for p in target.iterdir() if p.name.startswith(".."))
    assert len(hidden) == 2 and "..data" in hidden  # ..data and one timestamped dir


def test_atomic_writer_refuses_escaping_paths(tmp_path: Path) -> None:
    for bad in ("../x", "/etc/passwd", "..data/x"):
        with pytest.raises(MountError):
            write_atomic(tmp_path / "v", {bad: (b"", 0o644)})


def test_keyed_payload_items_modes_and_missing_keys() -> None:
    data = {"a": b"1", "b": b"2"}
    assert keyed_payload({}, data, what="configmap", default_mode=0o640) == {
        "a": (b"1", 0o640), "b": (b"2", 0o640)}
    source = {"items": [{"key": "a", "path": "x/a.txt", "mode": 0o600}]}
    assert keyed_payload(source, data, what="configmap", default_mode=0o644) == {
        "x/a.txt": (b"1", 0o600)}
    with pytest.raises(MountError, match="non-existent config key: c"):
        keyed_payload({"items": [{"key": "c", "path": "c"}]}, data, what="configmap",
                      default_mode=0o644)
    assert keyed_payload({"items": [{"key": "c", "path": "c"}], "optional": True}, data,
                         what="configmap", default_mode=0o644) == {}


def test_host_path_type_checks(tmp_path: Path) -> None:
    made = tmp_path / "made" / "deep"
    check_host_path(str(made), "DirectoryOrCreate")
    assert made.is_dir()
    check_host_path(str(tmp_path / "f" / "file"), "FileOrCreate")
    assert (tmp_path / "f" / "file").is_file()
    check_host_path(str(made), "Directory")
    with pytest.raises(MountError, match="is not a file"):
        check_host_path(str(made), "File")
    with pytest.raises(MountError, match="is not a directory"):
        check_host_path(str(tmp_path / "f" / "file"), "Directory")
    with pytest.raises(MountError, match="is not a socket file"):
        check_host_path(str(made), "Socket")
    with pytest.raises(MountError, match="is not a character device"):
        check_host_path(str(made), "CharDevice")
    check_host_path("/dev/null", "CharDevice")
    with pytest.raises(MountError, match="does not exist"):
        check_host_path(str(tmp_path / "nope"), "Directory")


def test_process_runtime_rewrites_whole_mount_paths() -> None:
    mounts = [Mount("/data", "/n/d"), Mount("/data/sub", "/n/s"), Mount("/etc/cfg", "/n/c")]
    assert rewrite_mount_paths("cat /data/x /data/sub/y /database >/data", mounts) == \
        "cat /n/d/x /n/s/y /database >/n/d"
    assert rewrite_mount_paths("X=/etc/cfg:/etc/cfgx", mounts) == "X=/n/c:/etc/cfgx"


# -- a real kubelet ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def kubelet(shared_apiserver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeletProcess]:
    k = KubeletProcess(shared_apiserver.target, tmp_path_factory.mktemp("vol")).start()
    yield k
    k.stop()
    k.kill_leftovers()


@pytest.fixture(scope="module")
def host_kubelet(shared_apiserver,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeletProcess]:
    k = KubeletProcess(shared_apiserver.target, tmp_path_factory.mktemp("volhost"),
                       "--allow-host-path", "true").start()
    yield k
    k.stop()
    k.kill_leftovers()


def volume_dir(k: KubeletProcess, pod: Obj, plugin: str, name: str) -> Path:
    return k.root / "pods" / pod["metadata"]["uid"] / "volumes" / plugin / name


def read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


async def test_empty_dir_is_shared_by_the_containers_and_removed_with_the_pod(
        client: Client, namespace: str, kubelet: KubeletProcess) -> None:
    pod = make_pod("shared", namespace, kubelet.node,
                   sh("writer", "echo hello > /data/msg; sleep 3600",
                      volumeMounts=[{"name": "scratch", "mountPath": "/data"}]),
                   sh("reader", "while [ ! -f /in/msg ]; do sleep 0.1; done; "
                      "cp /in/msg /in/seen; env | grep KUBELITE_MOUNT_ > /in/env; sleep 3600",
                      volumeMounts=[{"name": "scratch", "mountPath": "/in"}]))
    pod["spec"]["volumes"] = [{"name": "scratch", "emptyDir": {}}]
    created = await client.create("pods", pod)
    await wait_running_ready(client, "shared", namespace)
    directory = volume_dir(kubelet, created, "kubernetes.io~empty-dir", "scratch")
    await eventually(lambda: _async(read(directory / "seen") == "hello\n"), what="reader saw")
    await eventually(lambda: _async(f"KUBELITE_MOUNT_0=/in={directory}" in
                                    read(directory / "env")), what="the mount's env var")
    assert stat.S_IMODE(directory.stat().st_mode) == 0o777
    await client.delete("pods", "shared", namespace=namespace, grace_period_seconds=0)
    await eventually(lambda: _async(not directory.exists()), what="emptyDir removed")


async def _async(value: Any) -> Any:
    return value


async def test_config_map_volume_items_modes_and_live_update(
        client: Client, namespace: str, kubelet: KubeletProcess) -> None:
    await client.create("configmaps", {"metadata": {"name": "cfg", "namespace": namespace},
                                       "data": {"greeting": "one", "other": "x"}})
    pod = make_pod("cfgpod", namespace, kubelet.node,
                   sh("app", "while true; do cat /etc/cfg/conf/greeting.txt > /out/seen.tmp; "
                      "mv /out/seen.tmp /out/seen; sleep 0.1; done",
                      volumeMounts=[{"name": "cfg", "mountPath": "/etc/cfg", "readOnly": True},
                                    {"name": "out", "mountPath": "/out"}]))
    pod["spec"]["volumes"] = [
        {"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 0o640, "items": [
            {"key": "greeting", "path": "conf/greeting.txt", "mode": 0o600}]}},
        {"name": "out", "emptyDir": {}}]
    created = await client.create("pods", pod)
    await wait_running_ready(client, "cfgpod", namespace)
    cfg = volume_dir(kubelet, created, "kubernetes.io~configmap", "cfg")
    out = volume_dir(kubelet, created, "kubernetes.io~empty-dir", "out")
    await eventually(lambda: _async(read(out / "seen") == "one"), what="first content")
    assert sorted(p.name for p in cfg.iterdir() if not p.name.startswith("..")) == ["conf"]
    assert os.readlink(cfg / "conf") == "..data/conf"
    assert stat.S_IMODE((cfg / "conf" / "greeting.txt").stat().st_mode) == 0o600
    first = (cfg / "..data").resolve()
    assert await events_for(client, namespace, "cfgpod", "ReadOnlyNotEnforced")

    cm = await client.get("configmaps", "cfg", namespace=namespace)
    cm["data"]["greeting"] = "two"
    await client.update("configmaps", cm)
    # Within the kubelet's sync period (--sync-frequency 5 in these tests).
    await eventually(lambda: _async(read(out / "seen") == "two"), within=20,
                     what="updated content without a restart")
    assert (cfg / "..data").resolve() != first and not first.exists()
    current = await get_pod(client, "cfgpod", namespace)
    assert status_of(current)["restartCount"] == 0


async def test_downward_api_and_projected_volumes(client: Client, namespace: str,
                                                  kubelet: KubeletProcess) -> None:
    await client.create("configmaps", {"metadata": {"name": "proj", "namespace": namespace},
                                       "data": {"k": "v"}})
    pod = make_pod("downward", namespace, kubelet.node,
                   sh("app", "sleep 3600", resources={"limits": {"memory": "64Mi"}},
                      volumeMounts=[{"name": "info", "mountPath": "/etc/info"},
                                    {"name": "all", "mountPath": "/etc/all"}]))
    pod["metadata"]["labels"] = {"app": "web", "tier": "front"}
    pod["spec"]["volumes"] = [
        {"name": "info", "downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
            {"path": "mem", "resourceFieldRef": {"containerName": "app",
                                                 "resource": "limits.memory",
                                                 "divisor": "1Mi"}}]}},
        {"name": "all", "projected": {"sources": [
            {"configMap": {"name": "proj"}},
            {"downwardAPI": {"items": [{"path": "ns", "fieldRef": {
                "fieldPath": "metadata.namespace"}}]}}]}}]
    created = await client.create("pods", pod)
    await wait_running_ready(client, "downward", namespace)
    info = volume_dir(kubelet, created, "kubernetes.io~downward-api", "info")
    assert read(info / "labels") == 'app="web"\ntier="front"'
    assert read(info / "name") == "downward"
    assert read(info / "mem") == "64"
    projected = volume_dir(kubelet, created, "kubernetes.io~projected", "all")
    assert read(projected / "k") == "v"
    assert read(projected / "ns") == namespace


async def test_failed_mount_until_the_config_map_appears(client: Client, namespace: str,
                                                         kubelet: KubeletProcess) -> None:
    pod = make_pod("waits", namespace, kubelet.node,
                   sh("app", "cat /cfg/key; sleep 3600",
                      volumeMounts=[{"name": "cfg", "mountPath": "/cfg"}]))
    pod["spec"]["volumes"] = [{"name": "cfg", "configMap": {"name": "late"}}]
    await client.create("pods", pod)
    events = await eventually(lambda: events_for(client, namespace, "waits", "FailedMount"),
                              what="a FailedMount event")
    assert events[0]["type"] == "Warning"
    assert events[0]["message"] == ('MountVolume.SetUp failed for volume "cfg" : configmap '
                                    '"late" not found')
    current = await get_pod(client, "waits", namespace)
    assert current["status"]["phase"] == "Pending"
    assert status_of(current)["state"]["waiting"]["reason"] == "ContainerCreating"
    await client.create("configmaps", {"metadata": {"name": "late", "namespace": namespace},
                                       "data": {"key": "here"}})
    await wait_running_ready(client, "waits", namespace, within=30)


async def test_host_path_is_refused_without_the_flag(client: Client, namespace: str,
                                                     kubelet: KubeletProcess) -> None:
    pod = make_pod("hosty", namespace, kubelet.node, sh("app", "sleep 3600", volumeMounts=[
        {"name": "h", "mountPath": "/h"}]))
    pod["spec"]["volumes"] = [{"name": "h", "hostPath": {"path": "/tmp"}}]
    await client.create("pods", pod)

    async def failed() -> Obj | None:
        p = await get_pod(client, "hosty", namespace)
        return p if p["status"].get("phase") == "Failed" else None
    current = await eventually(failed, what="pod rejected")
    assert current["status"]["reason"] == "HostPathNotAllowed"
    assert "--allow-host-path" in current["status"]["message"]


async def test_host_path_with_the_flag_checks_its_type(client: Client, namespace: str,
                                                       host_kubelet: KubeletProcess,
                                                       tmp_path: Path) -> None:
    made = tmp_path / "made"
    pod = make_pod("hostok", namespace, host_kubelet.node, sh(
        "app", "echo from-pod > /h/file; sleep 3600",
        volumeMounts=[{"name": "h", "mountPath": "/h"}]))
    pod["spec"]["volumes"] = [{"name": "h", "hostPath": {"path": str(made),
                                                         "type": "DirectoryOrCreate"}}]
    await client.create("pods", pod)
    await wait_running_ready(client, "hostok", namespace)
    await eventually(lambda: _async(read(made / "file") == "from-pod\n"), what="hostPath write")

    bad = make_pod("hostbad", namespace, host_kubelet.node, sh(
        "app", "sleep 3600", volumeMounts=[{"name": "h", "mountPath": "/h"}]))
    bad["spec"]["volumes"] = [{"name": "h", "hostPath": {"path": str(made), "type": "File"}}]
    await client.create("pods", bad)
    events = await eventually(lambda: events_for(client, namespace, "hostbad", "FailedMount"),
                              what="FailedMount for the type check")
    assert f"hostPath type check failed: {made} is not a file" in events[0]["message"]


async def test_empty_dir_over_its_size_limit_evicts_the_pod(client: Client, namespace: str,
                                                           kubelet: KubeletProcess) -> None:
    pod = make_pod("filler", namespace, kubelet.node, sh(
        "app", "head -c 2000000 /dev/urandom > /scratch/big; sleep 3600",
        volumeMounts=[{"name": "scratch", "mountPath": "/scratch"}]))
    pod["spec"]["volumes"] = [{"name": "scratch", "emptyDir": {"sizeLimit": "1Mi"}}]
    await client.create("pods", pod)

    async def evicted() -> Obj | None:
        p = await get_pod(client, "filler", namespace)
        return p if p["status"].get("phase") == "Failed" else None
    current = await eventually(evicted, within=30, what="pod evicted")
    assert current["status"]["reason"] == "Evicted"
    assert current["status"]["message"] == \
        'Usage of EmptyDir volume "scratch" exceeds the limit "1Mi". '
    assert "terminated" in status_of(current)["state"]


def test_warnings_name_only_what_is_left_unimplemented() -> None:
    from services.apiserver.validation import unimplemented_fields

    pod = {"spec": {"securityContext": {"fsGroup": 2000, "runAsUser": 1000},
                    "volumes": [{"name": "a", "emptyDir": {}}, {"name": "b", "nfs": {}}],
                    "containers": [{"name": "c", "image": "i", "volumeMounts": [
                        {"name": "a", "mountPath": "/a"}]}]}}
    # securityContext is implemented now (services/kubelet/security.py): no warning.
    assert unimplemented_fields([("spec", pod["spec"])]) == [
        "spec.volumes[1].nfs: volume type not implemented by kubelite; a kubelet refuses the pod"]


def test_volume_checks_name_the_bad_field() -> None:
    from kubelite.errors import InvalidError
    from kubelite.resources import lookup
    from services.apiserver.validation import check_object, check_pod

    pod = {"metadata": {"name": "p"}, "spec": {
        "volumes": [{"name": "a", "emptyDir": {}}, {"name": "a", "emptyDir": {}},
                    {"name": "h", "hostPath": {"path": "rel", "type": "Nope"}}],
        "containers": [{"name": "c", "image": "i", "volumeMounts": [
            {"name": "zzz", "mountPath": "/x"}, {"name": "a", "mountPath": "/x",
                                                 "subPath": "../up"}]}]}}
    with pytest.raises(InvalidError) as err:
        check_object(lookup("pods"), pod, kind_check=check_pod)
    text = str(err.value)
    for expected in ('spec.volumes[1].name: Duplicate value: "a"',
                     "spec.volumes[2].hostPath.path: Required value",
                     'spec.volumes[2].hostPath.type: Unsupported value: "Nope"',
                     'spec.containers[0].volumeMounts[0].name: Not found: "zzz"',
                     "spec.containers[0].volumeMounts[1].mountPath: Invalid value",
                     "spec.containers[0].volumeMounts[1].subPath: Invalid value"):
        assert expected in text, expected

"""The kubelet's volume manager: every volume of a pod is a directory on the node.

The one idea, as in Kubernetes' kubelet: **a volume is materialized on the node
before a container starts, and a container only sees it through a mount.** Each
volume of a pod gets a directory under the kubelet's root dir,

    <root>/pods/<pod uid>/volumes/<plugin>/<volume name>

with the plugin named as Kubernetes names it (kubernetes.io~empty-dir,
kubernetes.io~configmap, kubernetes.io~secret, kubernetes.io~downward-api,
kubernetes.io~projected); a hostPath or a persistentVolumeClaim is the node's
own path. The runtime then maps each volumeMount onto it: the docker runtime
bind-mounts it (a named tmpfs volume for emptyDir medium Memory), the process
runtime, which cannot mount, rewrites the mount paths in a container's command,
args, env and workingDir (docs/volumes.md).

configMap, secret, downwardAPI and projected volumes are written as Kubernetes'
atomic writer does: the files go into a fresh timestamped directory, a
`..data` symlink is swapped to it in one rename, and every user-visible name is
a symlink `key -> ..data/key`. A reader thus sees the old or the new content,
never half of each. The kubelet calls `setup` on every sync of a pod (its
resync, --sync-frequency, included), so an update reaches a running pod within
the sync period; content that did not change is not rewritten.

A source that is missing (a ConfigMap, a Secret, an unbound claim) raises
MountError with Kubernetes' FailedMount message; the pod stays ContainerCreating
and the next sync tries again. Nothing here blocks the event loop: file work
runs in a thread.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from kubelite.client import Client
from kubelite.errors import ApiError, NotFoundError
from kubelite.quantity import parse_quantity, to_int
from services.kubelet.envvars import EnvError, field_ref_value, resource_field_value
from services.kubelet.runtime import ContainerConfigError, Mount

log = logging.getLogger("kubelite.kubelet.volumes")

Obj = dict[str, Any]
Payload = dict[str, tuple[bytes, int]]  # relative path: (content, mode)

PLUGIN_DIRS = {
    "emptyDir": "kubernetes.io~empty-dir",
    "configMap": "kubernetes.io~configmap",
    "secret": "kubernetes.io~secret",
    "downwardAPI": "kubernetes.io~downward-api",
    "projected": "kubernetes.io~projected",
}
WRITTEN_KINDS = ("configMap", "secret", "downwardAPI", "projected")
SUPPORTED_KINDS = (*PLUGIN_DIRS, "hostPath", "persistentVolumeClaim")
DEFAULT_MODE = 0o644
DATA_LINK = "..data"
# The annotation with which the local-path provisioner marks the PVs it made, and the
# Node annotation naming the directory under which this kubelet keeps their data.
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
LOCAL_PATH_PROVISIONER = "kubelite.io/local-path"
LOCAL_PATH_ROOT_ANNOTATION = "kubelite.io/local-path-root"

HOST_PATH_TYPES = ("", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket",
                   "CharDevice", "BlockDevice")


class MountError(Exception):
    """A volume cannot be set up yet (FailedMount); the message is Kubernetes'."""


@dataclass(frozen=True)
class Volume:
    """One materialized volume of a pod."""

    name: str
    kind: str
    path: str  # on the node ("" for a docker tmpfs volume)
    read_only: bool = False  # the source says so (a persistentVolumeClaim readOnly)
    tmpfs_volume: str = ""
    tmpfs_size: int = 0


def volume_kind(volume: Obj) -> str:
    for kind in SUPPORTED_KINDS:
        if kind in volume:
            return kind
    return next((k for k in volume if k != "name"), "")


# -- the atomic writer -------------------------------------------------------------


def _read_current(target: Path) -> Payload | None:
    data = target / DATA_LINK
    if not data.is_symlink():
        return None
    out: Payload = {}
    base = data.resolve()
    for dirpath, _, files in os.walk(base):
        for name in files:
            path = Path(dirpath) / name
            rel = str(path.relative_to(base))
            out[rel] = (path.read_bytes(), stat.S_IMODE(path.stat().st_mode))
    return out


def write_atomic(target: Path, payload: Payload, *, gid: int | None = None) -> bool:
    """Makes target hold exactly payload, atomically for readers; False if it already did.

    Kubernetes' AtomicWriter layout: target/..<timestamp> holds the files,
    target/..data -> ..<timestamp> is replaced in one rename, and each top-level
    name is a symlink through ..data. With gid (the pod's fsGroup) the files belong
    to that group and are group-readable, as Kubernetes sets them.
    """
    if gid is not None:
        payload = {rel: (content, mode | 0o040) for rel, (content, mode) in payload.items()}
    for rel in payload:
        parts = Path(rel).parts
        if not rel or Path(rel).is_absolute() or ".." in parts or parts[0].startswith(".."):
            raise MountError(f"invalid path {rel!r}: must be relative and may not contain "
                             "'..'")
    target.mkdir(parents=True, exist_ok=True)
    if _read_current(target) == payload:
        return False
    data = target / DATA_LINK
    old = data.resolve() if data.is_symlink() else None
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
    fresh = Path(tempfile.mkdtemp(prefix=stamp, dir=target))
    for rel, (content, mode) in payload.items():
        path = fresh / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        os.chmod(path, mode)
        if gid is not None:
            os.chown(path, -1, gid)
    os.chmod(fresh, 0o755)
    tmp = target / "..data_tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(fresh.name, tmp)
    os.replace(tmp, data)  # the one atomic step
    tops = {Path(rel).parts[0] for rel in payload}
    for top in tops:
        link = target / top
        if not link.is_symlink():
            if link.exists():
                shutil.rmtree(link) if link.is_dir() else link.unlink()
            os.symlink(f"{DATA_LINK}/{top}", link)
    for entry in target.iterdir():
        if not entry.name.startswith("..") and entry.name not in tops:
            entry.unlink() if entry.is_symlink() or entry.is_file() else shutil.rmtree(entry)
    if old is not None and old != fresh and old.parent == target:
        shutil.rmtree(old, ignore_errors=True)
    return True


# -- payloads ------------------------------------------------------------------------


def _mode(item: Obj, default_mode: int) -> int:
    mode = item.get("mode")
    return int(mode) if mode is not None else default_mode


def keyed_payload(source: Obj, data: Mapping[str, bytes], *, what: str,
                  default_mode: int) -> Payload:
    """A configMap or secret's files: every key, or only `items` (key -> path, mode)."""
    items = source.get("items")
    if not items:
        return {key: (value, default_mode) for key, value in data.items()}
    out: Payload = {}
    for item in items:
        key = item.get("key", "")
        if key not in data:
            if source.get("optional"):
                continue
            raise MountError(f"{what} references non-existent config key: {key}")
        out[item.get("path") or key] = (data[key], _mode(item, default_mode))
    return out


def downward_payload(pod: Obj, items: list[Obj], *, default_mode: int, pod_ip: str,
                     host_ip: str, node_name: str, allocatable: Mapping[str, str]) -> Payload:
    meta = pod.get("metadata") or {}
    containers = {c.get("name"): c for c in (pod.get("spec") or {}).get("containers") or []}
    out: Payload = {}
    for item in items:
        path = item.get("path", "")
        if "fieldRef" in item:
            field_path = (item["fieldRef"] or {}).get("fieldPath", "")
            if field_path in ("metadata.labels", "metadata.annotations"):
                values = meta.get(field_path.split(".")[1]) or {}
                # Kubernetes' format: key="value" lines, sorted, values quoted as Go's %q.
                text = "\n".join(f"{k}={json.dumps(str(v))}" for k, v in sorted(values.items()))
            else:
                try:
                    text = field_ref_value(pod, field_path, pod_ip=pod_ip, host_ip=host_ip,
                                           node_name=node_name)
                except EnvError as err:
                    raise MountError(str(err)) from None
        elif "resourceFieldRef" in item:
            ref = item["resourceFieldRef"] or {}
            container = containers.get(ref.get("containerName"))
            if container is None:
                raise MountError(f'resourceFieldRef: container "{ref.get("containerName")}" '
                                 "not found in the pod")
            try:
                text = resource_field_value(container, ref, allocatable)
            except EnvError as err:
                raise MountError(str(err)) from None
        else:
            raise MountError(f"downwardAPI item {path!r} has neither fieldRef nor "
                             "resourceFieldRef")
        out[path] = (text.encode(), _mode(item, default_mode))
    return out


def _configmap_bytes(cm: Obj) -> dict[str, bytes]:
    out = {k: str(v).encode() for k, v in (cm.get("data") or {}).items()}
    for k, v in (cm.get("binaryData") or {}).items():
        out[k] = base64.b64decode(v)
    return out


def _secret_bytes(secret: Obj) -> dict[str, bytes]:
    out = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    for k, v in (secret.get("stringData") or {}).items():
        out.setdefault(k, str(v).encode())
    return out


# -- hostPath ------------------------------------------------------------------------


def check_host_path(path: str, type_: str) -> None:
    """Kubernetes' hostPath type checks; the *OrCreate types create what is missing."""
    if type_ not in HOST_PATH_TYPES:
        raise MountError(f"hostPath type {type_!r} is not supported")
    p = Path(path)
    if type_ == "DirectoryOrCreate":
        if not p.exists():
            p.mkdir(mode=0o755, parents=True, exist_ok=True)
        type_ = "Directory"
    elif type_ == "FileOrCreate":
        if not p.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
            p.touch(mode=0o644)
        type_ = "File"
    if not type_:
        return
    checks = {
        "Directory": (p.is_dir, "a directory"),
        "File": (p.is_file, "a file"),
        "Socket": (p.is_socket, "a socket file"),
        "CharDevice": (p.is_char_device, "a character device"),
        "BlockDevice": (p.is_block_device, "a block device"),
    }
    test, noun = checks[type_]
    if not p.exists():
        raise MountError(f"hostPath type check failed: {path} does not exist")
    if not test():
        raise MountError(f"hostPath type check failed: {path} is not {noun}")


def apply_fs_group(path: Path, gid: int) -> None:
    """Kubernetes' volume ownership: group gid, group-writable, setgid directories."""
    def fix(p: Path, is_dir: bool) -> None:
        os.chown(p, -1, gid, follow_symlinks=False)
        mode = stat.S_IMODE(p.stat().st_mode)
        os.chmod(p, mode | (0o2070 if is_dir else 0o060))
    if path.is_symlink() or not path.exists():
        return
    fix(path, path.is_dir())
    for dirpath, dirs, files in os.walk(path):
        for name in dirs:
            if not (Path(dirpath) / name).is_symlink():
                fix(Path(dirpath) / name, True)
        for name in files:
            if not (Path(dirpath) / name).is_symlink():
                fix(Path(dirpath) / name, False)


def _shared_dir(path: Path) -> None:
    """An emptyDir: world-writable (0777, as Kubernetes makes it), whatever the umask."""
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o777)


def dir_usage(path: Path) -> int:
    """Bytes used under path (allocated blocks, as du counts them)."""
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total


# -- the manager ---------------------------------------------------------------------


class VolumeManager:
    """Materializes, refreshes, checks and removes the volumes of this node's pods."""

    def __init__(self, *, client: Client, root_dir: str, node_name: str, host_ip: str,
                 allocatable: Mapping[str, str], allow_host_path: bool,
                 docker_tmpfs: bool) -> None:
        self.client = client
        self.root = Path(root_dir).resolve()
        self.node_name = node_name
        self.host_ip = host_ip
        self.allocatable = allocatable
        self.allow_host_path = allow_host_path
        # The docker runtime shares a memory-backed emptyDir as a named tmpfs volume; the
        # process runtime puts its directory on /dev/shm (a tmpfs) where there is one.
        self.docker_tmpfs = docker_tmpfs
        self.shm = Path("/dev/shm").is_dir()

    @property
    def local_path_root(self) -> Path:
        """Where the local-path provisioner's volumes of this node keep their data."""
        return self.root / "local-path"

    def pod_dir(self, uid: str) -> Path:
        return self.root / "pods" / uid / "volumes"

    def _shm_dir(self, uid: str, name: str) -> Path:
        return Path("/dev/shm") / "kubelite" / uid / name

    # -- admission -----------------------------------------------------------------

    def refusal(self, pod: Obj) -> tuple[str, str] | None:
        """Why this kubelet refuses the pod's volumes outright (reason, message), if it does."""
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            kind = volume_kind(volume)
            if kind not in SUPPORTED_KINDS:
                return ("UnsupportedVolume", f'Pod was rejected: volume "{volume.get("name")}"'
                        f": volume type {kind} is not supported by kubelite")
            if kind == "hostPath" and not self.allow_host_path:
                return ("HostPathNotAllowed",
                        f'Pod was rejected: hostPath volume "{volume.get("name")}" is not '
                        "allowed: this kubelet was not started with --allow-host-path (it "
                        "holds the container runtime's socket, so a hostPath can give a pod "
                        "the node)")
        return None

    # -- setup ---------------------------------------------------------------------

    async def setup(self, pod: Obj, *, pod_ip: str = "") -> dict[str, Volume]:
        """Every volume of pod, materialized now (idempotent; refreshes written volumes).

        Raises MountError, with the FailedMount message, for the first volume that
        cannot be set up.
        """
        spec = pod.get("spec") or {}
        gid = (spec.get("securityContext") or {}).get("fsGroup")
        out: dict[str, Volume] = {}
        for volume in spec.get("volumes") or []:
            name = volume.get("name", "")
            try:
                vol = await self._setup_one(pod, volume, pod_ip, gid)
                if gid is not None and vol.path and vol.kind in ("emptyDir",
                                                                 "persistentVolumeClaim"):
                    await asyncio.to_thread(apply_fs_group, Path(vol.path), int(gid))
            except MountError as err:
                raise MountError(f'MountVolume.SetUp failed for volume "{name}" : {err}') \
                    from None
            except PermissionError as err:
                raise MountError(f'MountVolume.SetUp failed for volume "{name}" : cannot '
                                 f"apply fsGroup {gid}: {err.strerror}") from None
            except OSError as err:
                raise MountError(f'MountVolume.SetUp failed for volume "{name}" : {err}') \
                    from None
            out[name] = vol
        return out

    async def _setup_one(self, pod: Obj, volume: Obj, pod_ip: str,
                         gid: int | None) -> Volume:
        uid = pod["metadata"]["uid"]
        namespace = pod["metadata"].get("namespace", "")
        name = volume.get("name", "")
        kind = volume_kind(volume)
        source = volume.get(kind) or {}
        if kind == "emptyDir":
            size = to_int(parse_quantity(source["sizeLimit"])) if source.get("sizeLimit") else 0
            if source.get("medium") == "Memory":
                if self.docker_tmpfs:
                    return Volume(name, kind, "", tmpfs_volume=f"kubelite-{uid}-{name}",
                                  tmpfs_size=size)
                if self.shm:
                    path = self._shm_dir(uid, name)
                    await asyncio.to_thread(_shared_dir, path)
                    return Volume(name, kind, str(path))
            path = self.pod_dir(uid) / PLUGIN_DIRS[kind] / name
            await asyncio.to_thread(_shared_dir, path)
            return Volume(name, kind, str(path))
        if kind in WRITTEN_KINDS:
            payload = await self._payload(pod, kind, source, namespace, pod_ip)
            path = self.pod_dir(uid) / PLUGIN_DIRS[kind] / name
            await asyncio.to_thread(partial(write_atomic, path, payload,
                                            gid=int(gid) if gid is not None else None))
            return Volume(name, kind, str(path))
        if kind == "hostPath":
            if not self.allow_host_path:
                raise MountError("hostPath volumes are not allowed on this node "
                                 "(--allow-host-path)")
            path = source.get("path", "")
            await asyncio.to_thread(check_host_path, path, source.get("type") or "")
            return Volume(name, kind, path)
        if kind == "persistentVolumeClaim":
            return await self._claim(name, source, namespace)
        raise MountError(f"volume type {kind} is not supported")

    async def _get(self, resource: str, name: str, namespace: str | None) -> Obj | None:
        try:
            return await self.client.get(resource, name, namespace=namespace)
        except NotFoundError:
            return None
        except ApiError as err:
            raise MountError(f'cannot read {resource} "{name}": {err}') from None

    async def _keyed(self, kind: str, source: Obj, namespace: str, default_mode: int) -> Payload:
        if kind == "configMap":
            name, resource, noun = source.get("name", ""), "configmaps", "configmap"
        else:
            name, resource, noun = source.get("secretName") or source.get("name", ""), \
                "secrets", "secret"
        obj = await self._get(resource, name, namespace)
        if obj is None:
            if source.get("optional"):
                return {}
            raise MountError(f'{noun} "{name}" not found')
        data = _configmap_bytes(obj) if kind == "configMap" else _secret_bytes(obj)
        return keyed_payload(source, data, what=noun, default_mode=default_mode)

    async def _payload(self, pod: Obj, kind: str, source: Obj, namespace: str,
                       pod_ip: str) -> Payload:
        default_mode = int(source.get("defaultMode", DEFAULT_MODE))
        if kind in ("configMap", "secret"):
            return await self._keyed(kind, source, namespace, default_mode)
        if kind == "downwardAPI":
            return downward_payload(pod, source.get("items") or [], default_mode=default_mode,
                                    pod_ip=pod_ip, host_ip=self.host_ip,
                                    node_name=self.node_name, allocatable=self.allocatable)
        out: Payload = {}  # projected: the sources' files, later ones win
        for proj in source.get("sources") or []:
            if "configMap" in proj:
                out.update(await self._keyed("configMap", proj["configMap"] or {}, namespace,
                                             default_mode))
            elif "secret" in proj:
                out.update(await self._keyed("secret", proj["secret"] or {}, namespace,
                                             default_mode))
            elif "downwardAPI" in proj:
                out.update(downward_payload(
                    pod, (proj["downwardAPI"] or {}).get("items") or [],
                    default_mode=default_mode, pod_ip=pod_ip, host_ip=self.host_ip,
                    node_name=self.node_name, allocatable=self.allocatable))
            else:
                raise MountError(f"projected source {next(iter(proj), '?')} is not supported")
        return out

    async def _claim(self, name: str, source: Obj, namespace: str) -> Volume:
        claim_name = source.get("claimName", "")
        pvc = await self._get("persistentvolumeclaims", claim_name, namespace)
        if pvc is None:
            raise MountError(f'persistentvolumeclaim "{claim_name}" not found')
        phase = (pvc.get("status") or {}).get("phase")
        pv_name = (pvc.get("spec") or {}).get("volumeName")
        if phase != "Bound" or not pv_name:
            raise MountError(f'persistentvolumeclaim "{claim_name}" is not bound '
                             f"(phase {phase or 'Pending'})")
        pv = await self._get("persistentvolumes", pv_name, None)
        if pv is None:
            raise MountError(f'persistentvolume "{pv_name}" not found')
        spec = pv.get("spec") or {}
        if "hostPath" in spec:
            path, type_ = spec["hostPath"].get("path", ""), spec["hostPath"].get("type") or ""
        elif "local" in spec:
            path, type_ = spec["local"].get("path", ""), "Directory"
        else:
            raise MountError(f'persistentvolume "{pv_name}": only hostPath and local volumes '
                             "can be mounted by kubelite")
        ours = (pv["metadata"].get("annotations") or {}).get(PROVISIONED_BY) == \
            LOCAL_PATH_PROVISIONER
        if ours:
            # The provisioner cannot reach the node's disk: the directory is made here.
            type_ = "DirectoryOrCreate"
        await asyncio.to_thread(check_host_path, path, type_)
        read_only = bool(source.get("readOnly")) or \
            (spec.get("accessModes") or []) == ["ReadOnlyMany"]
        return Volume(name, "persistentVolumeClaim", path, read_only=read_only)

    # -- mounts --------------------------------------------------------------------

    @staticmethod
    def mounts_for(cspec: Obj, volumes: Mapping[str, Volume]) -> list[Mount]:
        """The container's volumeMounts as runtime mounts (subPath applied)."""
        out: list[Mount] = []
        for vm in cspec.get("volumeMounts") or []:
            name, target = vm.get("name", ""), vm.get("mountPath", "")
            vol = volumes.get(name)
            if vol is None:
                raise ContainerConfigError(f'cannot find volume "{name}" to mount into '
                                           f'container "{cspec.get("name")}"')
            sub = (vm.get("subPath") or "").strip("/")
            if sub and (".." in Path(sub).parts):
                raise ContainerConfigError(f'subPath "{sub}" may not contain ".."')
            read_only = bool(vm.get("readOnly")) or vol.read_only
            if vol.tmpfs_volume:
                if sub:
                    raise ContainerConfigError(
                        f'subPath "{sub}" of emptyDir "{name}" with medium Memory: the docker '
                        "runtime shares that volume as a tmpfs volume, which has no subPath")
                out.append(Mount(target, read_only=read_only, tmpfs_volume=vol.tmpfs_volume,
                                 tmpfs_size=vol.tmpfs_size))
                continue
            host = Path(vol.path)
            if sub:
                host = host / sub
                if not host.exists() and not host.is_symlink():
                    host.mkdir(parents=True, exist_ok=True)  # as Kubernetes does for subPath
            out.append(Mount(target, host_path=str(host), read_only=read_only))
        return out

    # -- eviction ------------------------------------------------------------------

    def over_size_limit(self, pod: Obj) -> str | None:
        """Kubernetes' eviction message when an emptyDir is over its sizeLimit (blocking:
        call in a thread)."""
        uid = pod["metadata"]["uid"]
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            source = volume.get("emptyDir")
            if source is None or not source.get("sizeLimit"):
                continue
            limit = to_int(parse_quantity(source["sizeLimit"]))
            name = volume.get("name", "")
            memory = source.get("medium") == "Memory"
            if memory and self.docker_tmpfs:
                continue  # the tmpfs volume has size=sizeLimit: writes fail instead
            if memory and self.shm:
                path = self._shm_dir(uid, name)
            else:
                path = self.pod_dir(uid) / PLUGIN_DIRS["emptyDir"] / name
            if path.is_dir() and dir_usage(path) > limit:
                return (f'Usage of EmptyDir volume "{name}" exceeds the limit '
                        f'"{source["sizeLimit"]}". ')
        return None

    # -- teardown ------------------------------------------------------------------

    def teardown(self, uid: str) -> None:
        """Removes what the pod's volumes hold on this node (emptyDirs, written volumes);
        hostPath and claim data stay. Blocking: call in a thread."""
        shutil.rmtree(self.pod_dir(uid), ignore_errors=True)
        shutil.rmtree(Path("/dev/shm") / "kubelite" / uid, ignore_errors=True)

    def clean_released(self, pv: Obj) -> bool:
        """Deletes the data of a Released local-path PV of this node with reclaimPolicy
        Delete; True when the caller may delete the PV object. Blocking."""
        spec = pv.get("spec") or {}
        path = Path((spec.get("hostPath") or spec.get("local") or {}).get("path", ""))
        root = self.local_path_root
        if not path.is_absolute() or root not in path.parents:
            return False  # not under this node's local-path root: never delete it
        shutil.rmtree(path, ignore_errors=True)
        return not path.exists()


async def reclaim_local_path(manager: VolumeManager, pv: Obj) -> None:
    """reclaimPolicy Delete for a Released local-path PV of this node: its directory is
    removed here (only the node reaches its disk), then the PV object."""
    spec, status = pv.get("spec") or {}, pv.get("status") or {}
    if (status.get("phase") != "Released"
            or spec.get("persistentVolumeReclaimPolicy") != "Delete"
            or not local_path_pv_of_node(pv, manager.node_name)):
        return
    name = pv["metadata"]["name"]
    if not await asyncio.to_thread(manager.clean_released, pv):
        return
    try:
        await manager.client.delete("persistentvolumes", name,
                                    uid=pv["metadata"].get("uid", ""))
    except NotFoundError:
        pass
    except ApiError as err:  # the PV's next update (or resync) tries again
        log.warning("cannot delete a reclaimed PV", extra={"kv": {"pv": name,
                                                                  "error": str(err)}})
        return
    log.info("local-path volume deleted", extra={"kv": {"pv": name}})


async def publish_local_path_root(manager: VolumeManager) -> None:
    """Names this node's local-path directory in a Node annotation, for the provisioner
    (which runs elsewhere) to put the PVs it makes for this node there."""
    await manager.client.patch("nodes", manager.node_name, {"metadata": {"annotations": {
        LOCAL_PATH_ROOT_ANNOTATION: str(manager.local_path_root)}}})


def volume_sources(pod: Obj) -> set[tuple[str, str]]:
    """The (kind, name) of every ConfigMap and Secret the pod's volumes read."""
    out: set[tuple[str, str]] = set()
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        sources = [volume] + list((volume.get("projected") or {}).get("sources") or [])
        for source in sources:
            if isinstance(source.get("configMap"), dict):
                out.add(("ConfigMap", source["configMap"].get("name", "")))
            if isinstance(source.get("secret"), dict):
                secret = source["secret"]
                out.add(("Secret", secret.get("secretName") or secret.get("name", "")))
    return out


def local_path_pv_of_node(pv: Obj, node_name: str) -> bool:
    """Whether pv is a local-path PV whose data lives on node_name."""
    meta, spec = pv.get("metadata") or {}, pv.get("spec") or {}
    if (meta.get("annotations") or {}).get(PROVISIONED_BY) != LOCAL_PATH_PROVISIONER:
        return False
    terms = (((spec.get("nodeAffinity") or {}).get("required") or {})
             .get("nodeSelectorTerms") or [])
    for term in terms:
        for expr in term.get("matchExpressions") or []:
            if expr.get("key") == "kubernetes.io/hostname" and node_name in (
                    expr.get("values") or []):
                return True
    return False


__all__ = ["LOCAL_PATH_PROVISIONER", "LOCAL_PATH_ROOT_ANNOTATION", "MountError",
           "PROVISIONED_BY", "Volume", "VolumeManager", "apply_fs_group", "check_host_path",
           "downward_payload", "keyed_payload", "local_path_pv_of_node",
           "publish_local_path_root", "reclaim_local_path", "write_atomic"]

"""The docker runtime: a pod is a holder ("pause") container and its containers,
siblings on the host's Docker, every one of them joined to the holder's network.

The one idea, as the kubelet's dockershim did it: **the sandbox is a container.**
`run_pod_sandbox` starts a small holder container on the cluster network
(`--docker-network`); its address there is the pod's IP. Each of the pod's
containers starts with `network_mode=container:<holder>` (and the holder's IPC
namespace), so the containers of a pod share one IP and reach each other on
`localhost`, and the pod IP outlives container restarts. The holder runs the
`--pod-infra-image`: its own ENTRYPOINT if it has one (such as
registry.k8s.io/pause), else `sleep infinity` (the kubelite image, which every
node that runs a kubelet already has). If the holder dies, the pod's running
containers are killed (their network namespace lost its interface) and a new
holder, with a new IP, is made; the kubelet then restarts the containers.

Docker itself is the state store: nothing is written on the kubelet's disk.
Every container the runtime creates carries labels (pod uid, name and
namespace, container name, restart count, spec hash, the sandbox's id, this
node's name and a managed-by marker), and every list filters on the managed-by
marker *and* the node name. So a restarted kubelet adopts exactly its own
containers, two kubelets sharing one Docker engine (docker-compose) never see
each other's, and a container that kubelite did not create is never touched.
Docker's restart policy stays "no": the kubelet restarts containers itself,
with CrashLoopBackOff; a restart is a new container named after its restart
count, and the previous one is kept (exited) for `logs --previous`.

The Docker SDK is blocking: every call runs in a small pool of threads of this
runtime, never on the event loop, and log streams run in a thread each.
Errors from the SDK are translated here into the runtime's exception tree.
See docs/docker-runtime.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import re
import shutil
import struct
import tarfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import docker
import requests
from docker import errors as docker_errors
from docker.types import LogConfig
from docker.types import Mount as DockerMount

from services.kubelet.dnsconfig import (
    PodDns,
    docker_host_config,
    resolv_conf_command,
    rewrites_resolv_conf,
)
from services.kubelet.runtime import (
    FALLBACK_LOG_LINES,
    LABEL_CONTAINER_NAME,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
    MAX_TERMINATION_MESSAGE_BYTES,
    Container,
    ContainerConfig,
    ContainerConfigError,
    ContainerStartError,
    ContainerState,
    ExecResult,
    ImagePullError,
    NotFound,
    PodSandbox,
    PodSandboxConfig,
    RuntimeError_,
    fallback_message,
)
from services.kubelet.security import SecurityError, check_image_user
from services.kubelet.security import docker_options as security_docker_options
from services.kubelet.stats import ContainerUsage

log = logging.getLogger("kubelite.kubelet.docker")

T = TypeVar("T")
Obj = dict[str, Any]

# Labels of ours next to the io.kubernetes.* ones of runtime.py (dockershim's names).
LABEL_MANAGED_BY = "io.kubelite.managed-by"
MANAGED_BY = "kubelet"
LABEL_NODE = "io.kubelite.node"
LABEL_TYPE = "io.kubernetes.docker.type"
TYPE_SANDBOX = "podsandbox"
TYPE_CONTAINER = "container"
LABEL_SANDBOX_ID = "io.kubernetes.sandbox.id"
LABEL_RESTART_COUNT = "io.kubernetes.container.restartCount"
LABEL_HASH = "io.kubernetes.container.hash"
LABEL_CPU_REQUEST = "io.kubelite.resources.requests.cpu"
LABEL_MEMORY_REQUEST = "io.kubelite.resources.requests.memory"
LABEL_PORTS = "io.kubelite.ports"
# As dockershim labelled them: a restarted kubelet reads an adopted container's exit message.
LABEL_TERMINATION_PATH = "io.kubernetes.container.terminationMessagePath"
LABEL_TERMINATION_POLICY = "io.kubernetes.container.terminationMessagePolicy"

DEFAULT_NETWORK = "bridge"
DEFAULT_INFRA_IMAGE = "kubelite:latest"
INFRA_COMMAND = ("sleep", "infinity")
POOL_SIZE = 16
START_TIMEOUT = 10.0  # a container created but not started for this long never will be
STATUS_TIMEOUT = 3.0  # an engine that does not answer /_ping within this is down
STOP_AFTER_KILL = 10.0
EXEC_OUTPUT_LIMIT = 10 * 1024
LOG_QUEUE = 64
LOG_CONFIG = LogConfig(type="json-file", config={"max-size": "10m", "max-file": "3"})
_UNSET_TIME = "0001-01-01T00:00:00Z"
_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


class Conflict(RuntimeError_):
    """Docker refused because of the object's state (HTTP 409)."""


def parse_time(text: str | None) -> float | None:
    """Docker's RFC 3339 times (nanoseconds) as epoch seconds; None for the zero time."""
    if not text or text.startswith("0001-01-01"):
        return None
    match = _TIME.match(text)
    if not match:
        return None
    head, frac, zone = match.groups()
    stamp = datetime.fromisoformat(head + ("+00:00" if zone == "Z" else zone))
    return stamp.astimezone(UTC).timestamp() + (float("0." + frac) if frac else 0.0)


def cpu_shares(millicores: int) -> int:
    """requests.cpu as cpu.shares, as the kubelet's MilliCPUToShares (at least 2)."""
    return max(2, millicores * 1024 // 1000)


def _empty_file(path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb"):
        pass


def docker_mounts(config: ContainerConfig) -> list[DockerMount]:
    """The container's volumeMounts as Docker mounts: bind mounts of the node directories
    the volume manager made, and named tmpfs volumes for emptyDir medium Memory."""
    out = []
    for m in config.mounts:
        if m.tmpfs_volume:
            out.append(DockerMount(m.container_path, m.tmpfs_volume, type="volume",
                                   read_only=m.read_only))
        else:
            out.append(DockerMount(m.container_path, m.host_path, type="bind",
                                   read_only=m.read_only))
    return out


def container_name(config: ContainerConfig) -> str:
    """k8s_<container>_<pod>_<namespace>_<uid>_<restart count>, as dockershim named them."""
    return (f"k8s_{config.name}_{config.pod_name}_{config.pod_namespace}_{config.pod_uid}_"
            f"{config.restart_count}")


def sandbox_name(config: PodSandboxConfig, attempt: int) -> str:
    return f"k8s_POD_{config.name}_{config.namespace}_{config.uid}_{attempt}"


class Demuxer:
    """stdout and stderr of a Docker multiplexed stream (8-byte frame headers), in order,
    keeping only the last `limit` bytes of output."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.output = bytearray()
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= 8:
            size = struct.unpack(">I", self._buffer[4:8])[0]
            if len(self._buffer) < 8 + size:
                break
            self.output += self._buffer[8:8 + size]
            del self._buffer[:8 + size]
        if len(self.output) > self.limit:
            del self.output[:len(self.output) - self.limit]


def container_from_inspect(data: Obj, *, starting: bool = False,
                           now: float | None = None) -> Container:
    """A Container from `docker inspect` output.

    A container that Docker failed to start stays "created" with State.Error set:
    it is reported as exited with reason StartError (exit code as Docker has it, 128
    if none). One that stayed "created" for START_TIMEOUT without anyone starting it
    (a kubelet died between create and start) is reported the same way, so that the
    kubelet replaces it.
    """
    labels = (data.get("Config") or {}).get("Labels") or {}
    state = data.get("State") or {}
    status = state.get("Status", "")
    created = parse_time(data.get("Created")) or 0.0
    started = parse_time(state.get("StartedAt"))
    finished = parse_time(state.get("FinishedAt"))
    error = state.get("Error") or ""
    exit_code: int | None = None
    reason = message = ""
    now = time.time() if now is None else now
    if status in ("running", "paused", "restarting"):
        run_state = ContainerState.RUNNING
    elif status == "created" and not error and (starting or now - created < START_TIMEOUT):
        run_state = ContainerState.CREATED
    else:
        run_state = ContainerState.EXITED
        exit_code = int(state.get("ExitCode") or 0)
        if status == "created":
            reason = "StartError"
            message = error or "the container was created but never started"
            exit_code = exit_code or 128
            finished = finished or started or created
        elif state.get("OOMKilled"):
            reason = "OOMKilled"
        else:
            reason = "Completed" if exit_code == 0 else "Error"
            message = error
        finished = finished or started or created
        if started is not None and finished < started:
            finished = started  # Docker's clocks differ by microseconds
    return Container(
        id=data["Id"], pod_uid=labels.get(LABEL_POD_UID, ""),
        pod_namespace=labels.get(LABEL_POD_NAMESPACE, ""),
        pod_name=labels.get(LABEL_POD_NAME, ""), name=labels.get(LABEL_CONTAINER_NAME, ""),
        image=(data.get("Config") or {}).get("Image", ""),
        restart_count=int(labels.get(LABEL_RESTART_COUNT) or 0), state=run_state,
        created_at=created, started_at=started, finished_at=finished, exit_code=exit_code,
        reason=reason, message=message, spec_hash=labels.get(LABEL_HASH, ""),
        pid=int(state.get("Pid") or 0) or None, labels=dict(labels),
    )


def _explain(err: docker_errors.APIError) -> str:
    return str(err.explanation or err)


class DockerRuntime:
    """Pods as holder containers plus sibling containers (see the module docstring)."""

    name = "docker"

    def __init__(self, *, node_name: str, network: str = DEFAULT_NETWORK,
                 pod_infra_image: str = DEFAULT_INFRA_IMAGE, docker_host: str = "",
                 pool_size: int = POOL_SIZE, state_dir: str = "") -> None:
        self.node_name = node_name
        # A directory that is the same path on the Docker host as here (the kubelet runs
        # beside dockerd): termination message files are bind-mounted from it. Without one
        # (a kubelet in a container of its own: connect checks) the file is copied out of
        # the exited container instead, which cannot reach a file under its /dev (a tmpfs).
        self.state_dir = state_dir
        self._messages: dict[str, str] = {}  # exited container id -> termination message
        self.network = network
        self.pod_infra_image = pod_infra_image
        self.docker_host = docker_host
        self.version = "docker://unknown"
        self._pool = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="docker")
        self._pool_size = pool_size
        self._api: docker.APIClient | None = None
        self._infra_command: list[str] | None = list(INFRA_COMMAND)
        self._sandboxes: dict[str, tuple[str, PodSandbox]] = {}  # pod uid -> (holder id, it)
        self._sandbox_locks: dict[str, asyncio.Lock] = {}
        self._inspected: dict[str, tuple[str, Obj]] = {}  # id -> (list state, inspect data)
        self._starting: set[str] = set()

    # -- plumbing -------------------------------------------------------------

    @property
    def api(self) -> docker.APIClient:
        if self._api is None:
            raise RuntimeError_("the docker runtime is not connected (call connect first)")
        return self._api

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Runs one blocking SDK call in the pool; SDK errors become RuntimeError_s."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, partial(fn, *args, **kwargs))
        except docker_errors.NotFound as err:
            raise NotFound(_explain(err)) from err
        except docker_errors.APIError as err:
            if err.status_code == 409:
                raise Conflict(_explain(err)) from err
            raise RuntimeError_(_explain(err)) from err
        except (requests.exceptions.RequestException, docker_errors.DockerException) as err:
            raise RuntimeError_(f"cannot reach the Docker engine: {err}") from err

    def _labels_filter(self, **extra: str) -> dict[str, list[str]]:
        labels = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_NODE: self.node_name, **extra}
        return {"label": [f"{k}={v}" for k, v in labels.items()]}

    def _ours(self, data: Obj) -> bool:
        labels = (data.get("Config") or data).get("Labels") or {}
        return (labels.get(LABEL_MANAGED_BY) == MANAGED_BY
                and labels.get(LABEL_NODE) == self.node_name)

    async def _inspect(self, container_id: str) -> Obj | None:
        """The container's inspect data if it exists and is ours, else None."""
        try:
            data = await self._call(self.api.inspect_container, container_id)
        except NotFound:
            return None
        return data if self._ours(data) else None

    # -- lifecycle ------------------------------------------------------------

    @classmethod
    async def connect(cls, **kwargs: Any) -> DockerRuntime:
        """A runtime connected to the Docker engine (its version is known from here on)."""
        runtime = cls(**kwargs)
        await runtime._connect()
        return runtime

    async def _connect(self) -> None:
        def make() -> docker.APIClient:
            params: Obj = docker.utils.kwargs_from_env()
            if self.docker_host:
                params["base_url"] = self.docker_host
            return docker.APIClient(version="auto", max_pool_size=self._pool_size, **params)

        try:
            self._api = await self._call(make)
            version = await self._call(self.api.version)
        except RuntimeError_ as err:
            raise RuntimeError_(f"cannot reach the Docker engine at "
                                f"{self.docker_host or 'DOCKER_HOST or the default socket'}: "
                                f"{err}") from err
        self.version = f"docker://{version.get('Version', 'unknown')}"
        if self.state_dir and not await self._shares_filesystem():
            log.info("the Docker engine does not share this kubelet's filesystem: termination "
                     "messages are copied out of exited containers", extra={"kv": {
                         "stateDir": self.state_dir}})
            self.state_dir = ""

    async def _shares_filesystem(self) -> bool:
        """Whether paths here are the engine's (a kubelet beside dockerd, not in a container
        of its own): the engine's root directory is then visible here."""
        try:
            info = await self._call(self.api.info)
        except RuntimeError_:
            return False
        root = str(info.get("DockerRootDir") or "")
        return bool(root) and await asyncio.to_thread(
            os.path.isdir, os.path.join(root, "containers"))

    async def status(self) -> str:
        """Healthy while the engine answers /_ping (with a timeout of its own, so that a
        hung engine cannot hold a pool thread for the client's minute)."""
        if self._api is None:
            return "not connected to the Docker engine"

        def ping() -> int:
            return self.api._get(self.api._url("/_ping"), timeout=STATUS_TIMEOUT).status_code

        try:
            code = await self._call(ping)
        except RuntimeError_ as err:
            return str(err)
        return "" if code == 200 else f"the Docker engine answered /_ping with HTTP {code}"

    async def start(self) -> None:
        """Checks the network and the infra image, and adopts what an earlier kubelet left."""
        if self._api is None:
            await self._connect()
        try:
            await self._call(self.api.inspect_network, self.network)
        except NotFound:
            raise RuntimeError_(f"docker network {self.network!r} does not exist: create it "
                                f"(docker network create {self.network}) or pick another with "
                                "--docker-network") from None
        try:
            image = await self._call(self.api.inspect_image, self.pod_infra_image)
            entrypoint = (image.get("Config") or {}).get("Entrypoint")
            self._infra_command = None if entrypoint else list(INFRA_COMMAND)
        except NotFound:
            log.warning("the pod infra image is not present; sandboxes cannot start until it is",
                        extra={"kv": {"image": self.pod_infra_image}})
        for sandbox_id, sandbox in await self._list_sandboxes():
            self._sandboxes[sandbox.uid] = (sandbox_id, sandbox)
        containers = await self.list_containers()
        log.info("docker runtime started", extra={"kv": {
            "version": self.version, "network": self.network, "node": self.node_name,
            "adopted_sandboxes": len(self._sandboxes), "adopted_containers": len(containers)}})

    async def close(self) -> None:
        """Leaves every container running; closes the connection and the thread pool."""
        if self._api is not None:
            with contextlib.suppress(Exception):
                await self._call(self.api.close)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- sandboxes ------------------------------------------------------------

    async def _list_sandboxes(self, uid: str | None = None) -> list[tuple[str, PodSandbox]]:
        extra = {LABEL_TYPE: TYPE_SANDBOX}
        if uid is not None:
            extra[LABEL_POD_UID] = uid
        rows = await self._call(self.api.containers, all=True,
                                filters=self._labels_filter(**extra))
        out = []
        for row in rows:
            if row.get("State") != "running":
                continue
            labels = row.get("Labels") or {}
            out.append((row["Id"], PodSandbox(
                uid=labels.get(LABEL_POD_UID, ""), namespace=labels.get(LABEL_POD_NAMESPACE, ""),
                name=labels.get(LABEL_POD_NAME, ""), ip=self._ip_of(row),
                created_at=float(row.get("Created") or 0))))
        return out

    def _ip_of(self, data: Obj) -> str:
        networks = (data.get("NetworkSettings") or {}).get("Networks") or {}
        found = networks.get(self.network) or next(iter(networks.values()), None) or {}
        return found.get("IPAddress") or ""

    async def run_pod_sandbox(self, config: PodSandboxConfig, *,
                              preferred_ip: str = "") -> PodSandbox:
        """The pod's holder container, created if needed. preferred_ip is not honoured:
        Docker's IPAM hands out addresses, and a live holder keeps its own."""
        lock = self._sandbox_locks.setdefault(config.uid, asyncio.Lock())
        async with lock:
            return await self._run_pod_sandbox(config)

    async def _run_pod_sandbox(self, config: PodSandboxConfig) -> PodSandbox:
        rows = await self._call(self.api.containers, all=True, filters=self._labels_filter(
            **{LABEL_TYPE: TYPE_SANDBOX, LABEL_POD_UID: config.uid}))
        live = [r for r in rows if r.get("State") == "running"]
        if live:
            holder = live[0]
            cached = self._sandboxes.get(config.uid)
            if cached is not None and cached[0] == holder["Id"]:
                return cached[1]
            sandbox = PodSandbox(uid=config.uid, namespace=config.namespace, name=config.name,
                                 ip=self._ip_of(holder), created_at=float(holder["Created"]))
            self._sandboxes[config.uid] = (holder["Id"], sandbox)
            return sandbox
        if rows:
            await self._replace_dead_sandbox(config.uid, rows)
        return await self._create_sandbox(config, attempt=len(rows))

    async def _replace_dead_sandbox(self, uid: str, rows: list[Obj]) -> None:
        """The holder died: the containers in its network namespace lost their network."""
        running = [c for c in await self.list_containers(pod_uid=uid) if c.running]
        log.warning("pod sandbox is not running; its containers are killed and a new one made",
                    extra={"kv": {"uid": uid, "containers": len(running)}})
        for c in running:
            with contextlib.suppress(RuntimeError_):
                await self.stop_container(c.id, grace=0)
        for row in rows:
            with contextlib.suppress(NotFound):
                await self._call(self.api.remove_container, row["Id"], force=True)
        self._sandboxes.pop(uid, None)

    def _create_blocking(self, args: Obj) -> str:
        """docker create (in a pool thread); args["host_config"] holds HostConfig's kwargs."""
        api = self.api
        args = dict(args, host_config=api.create_host_config(**args["host_config"]))
        return api.create_container(**args)["Id"]

    async def _create_sandbox(self, config: PodSandboxConfig, *, attempt: int) -> PodSandbox:
        api = self.api
        labels = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_NODE: self.node_name,
                  LABEL_TYPE: TYPE_SANDBOX, LABEL_POD_UID: config.uid,
                  LABEL_POD_NAME: config.name, LABEL_POD_NAMESPACE: config.namespace}
        ports: list[Any] = []
        bindings: dict[str, Any] = {}
        for p in config.port_mappings:
            key = f"{p.container_port}/{p.protocol.lower()}"
            ports.append((p.container_port, p.protocol.lower()))
            if p.host_port:
                bindings[key] = (p.host_ip, p.host_port) if p.host_ip else p.host_port
        if config.port_mappings:
            labels[LABEL_PORTS] = json.dumps([
                {"containerPort": p.container_port, "protocol": p.protocol,
                 **({"hostPort": p.host_port} if p.host_port else {})}
                for p in config.port_mappings])
        host_config = {"network_mode": self.network, "ipc_mode": "shareable",
                       "port_bindings": bindings or None, "log_config": LOG_CONFIG,
                       "restart_policy": {"Name": "no"},
                       **docker_host_config(config.dns, config.host_aliases)}
        try:
            holder_id = await self._call(self._create_blocking, {
                "image": self.pod_infra_image, "entrypoint": self._infra_command,
                "command": [] if self._infra_command else None,
                "hostname": (config.hostname or config.name)[:63], "labels": labels,
                "ports": ports or None, "host_config": host_config,
                "name": sandbox_name(config, attempt)})
        except NotFound as err:
            raise RuntimeError_(f"cannot create the pod sandbox: the pod infra image "
                                f"{self.pod_infra_image!r} is not present: {err}") from err
        try:
            await self._call(api.start, holder_id)
            if config.dns is not None and rewrites_resolv_conf(config.dns) and \
                    self._infra_command:
                await self._write_resolv_conf(holder_id, config.dns)
            data = await self._call(api.inspect_container, holder_id)
        except RuntimeError_:
            with contextlib.suppress(RuntimeError_):
                await self._call(api.remove_container, holder_id, force=True)
            raise
        sandbox = PodSandbox(uid=config.uid, namespace=config.namespace, name=config.name,
                             ip=self._ip_of(data), created_at=parse_time(data["Created"]) or 0.0)
        self._sandboxes[config.uid] = (holder_id, sandbox)
        log.info("pod sandbox started", extra={"kv": {
            "pod": f"{config.namespace}/{config.name}", "id": holder_id[:12], "ip": sandbox.ip}})
        return sandbox

    async def _write_resolv_conf(self, holder_id: str, dns: PodDns) -> None:
        """Kubernetes' resolv.conf in the holder (the kubelite image has a shell; an
        image without one keeps Docker's file, which forwards to the same servers)."""
        result = await self._call(self._exec_blocking, holder_id, resolv_conf_command(dns), 5.0)
        if result.exit_code != 0:
            log.warning("could not write the pod's resolv.conf; Docker's stays",
                        extra={"kv": {"id": holder_id[:12], "output": result.output[:200]}})

    async def remove_pod_sandbox(self, uid: str) -> None:
        self._sandboxes.pop(uid, None)
        self._sandbox_locks.pop(uid, None)
        rows = await self._call(self.api.containers, all=True, filters=self._labels_filter(
            **{LABEL_TYPE: TYPE_SANDBOX, LABEL_POD_UID: uid}))
        for row in rows:
            with contextlib.suppress(NotFound):
                await self._call(self.api.remove_container, row["Id"], force=True, v=True)
        volumes = (await self._call(self.api.volumes, filters={"label": [
            f"{LABEL_MANAGED_BY}={MANAGED_BY}", f"{LABEL_NODE}={self.node_name}",
            f"{LABEL_POD_UID}={uid}"]})).get("Volumes") or []
        for volume in volumes:
            with contextlib.suppress(RuntimeError_):
                await self._call(self.api.remove_volume, volume["Name"], force=True)

    async def list_pod_sandboxes(self) -> list[PodSandbox]:
        return [sandbox for _, sandbox in await self._list_sandboxes()]

    # -- containers -----------------------------------------------------------

    async def _holder_of(self, sandbox: PodSandbox) -> str:
        cached = self._sandboxes.get(sandbox.uid)
        if cached is not None:
            return cached[0]
        for holder_id, found in await self._list_sandboxes(sandbox.uid):
            self._sandboxes[sandbox.uid] = (holder_id, found)
            return holder_id
        raise ContainerStartError(f"pod {sandbox.namespace}/{sandbox.name} has no running "
                                  "sandbox")

    def _create_args(self, holder_id: str, config: ContainerConfig) -> Obj:
        labels = dict(config.labels)
        labels.update({
            LABEL_MANAGED_BY: MANAGED_BY, LABEL_NODE: self.node_name, LABEL_TYPE: TYPE_CONTAINER,
            LABEL_SANDBOX_ID: holder_id, LABEL_POD_UID: config.pod_uid,
            LABEL_POD_NAME: config.pod_name, LABEL_POD_NAMESPACE: config.pod_namespace,
            LABEL_CONTAINER_NAME: config.name, LABEL_RESTART_COUNT: str(config.restart_count),
            LABEL_HASH: config.spec_hash,
        })
        if config.cpu_request:
            labels[LABEL_CPU_REQUEST] = f"{config.cpu_request}m"
        if config.memory_request:
            labels[LABEL_MEMORY_REQUEST] = str(config.memory_request)
        if config.termination_message_path:
            labels[LABEL_TERMINATION_PATH] = config.termination_message_path
            labels[LABEL_TERMINATION_POLICY] = config.termination_message_policy
        env = dict(config.env)  # later entries win
        host_config = {
            "network_mode": f"container:{holder_id}", "ipc_mode": f"container:{holder_id}",
            "mem_limit": config.memory_limit or None,
            # No swap, as Kubernetes: a container over its limit is OOM-killed.
            "memswap_limit": config.memory_limit or None,
            "nano_cpus": config.cpu_limit * 1_000_000 or None,
            "cpu_shares": cpu_shares(config.cpu_request) if config.cpu_request else None,
            "log_config": LOG_CONFIG, "restart_policy": {"Name": "no"},
            "mounts": docker_mounts(config),
            "group_add": [str(config.fs_group)] if config.fs_group is not None else None,
        }
        message_file = self._termination_file(config)
        if message_file:
            host_config["mounts"] = [*host_config.get("mounts", []), docker.types.Mount(
                config.termination_message_path, message_file, type="bind")]
        create: Obj = {}
        if config.security is not None:
            try:
                create, security_host = security_docker_options(config.security)
            except SecurityError as err:
                raise ContainerConfigError(str(err)) from None
            host_config.update(security_host)
        # Kubernetes' mapping: command replaces the image's ENTRYPOINT, args its CMD; with
        # no command the image's ENTRYPOINT runs, with args (if any) as its CMD.
        return {
            "image": config.image,
            "entrypoint": list(config.command) or None,
            "command": list(config.args) if (config.command or config.args) else None,
            "environment": [f"{k}={v}" for k, v in env.items()],
            "working_dir": config.working_dir or None,
            "labels": labels, "host_config": host_config, "name": container_name(config),
            **create,
        }

    def _termination_file(self, config: ContainerConfig) -> str:
        """The host file bind-mounted at the container's terminationMessagePath (created
        empty by start_container, as the kubelet does), or "" without a state_dir."""
        if not (self.state_dir and config.termination_message_path):
            return ""
        return os.path.join(self.state_dir, "termination", container_name(config),
                            "termination-log")

    def _termination_dir(self, container: Container) -> str:
        name = (f"k8s_{container.name}_{container.pod_name}_{container.pod_namespace}_"
                f"{container.pod_uid}_{container.restart_count}")  # as container_name
        return os.path.join(self.state_dir, "termination", name)

    async def _with_message(self, container: Container) -> Container:
        """The exited container with its termination message (read once, then cached)."""
        if not container.exited or container.reason == "StartError":
            return container
        message = self._messages.get(container.id)
        if message is None:
            message = await self._termination_message(container)
            self._messages[container.id] = message
        return replace(container, message=message) if message else container

    async def _termination_message(self, container: Container) -> str:
        path = container.labels.get(LABEL_TERMINATION_PATH, "")
        policy = container.labels.get(LABEL_TERMINATION_POLICY, "File")
        message = b""
        if path:
            try:
                message = await self._call(self._read_message, container, path)
            except (RuntimeError_, OSError, tarfile.TarError):
                message = b""  # nothing written there (or /dev, a tmpfs gone with it)
        if not message.strip() and policy == "FallbackToLogsOnError" and container.exit_code:
            try:
                log = await self._call(self.api.logs, container.id, stdout=True, stderr=True,
                                       tail=FALLBACK_LOG_LINES)
            except RuntimeError_:
                log = b""
            return fallback_message(log)
        return message[:MAX_TERMINATION_MESSAGE_BYTES].decode(errors="replace")

    def _read_message(self, container: Container, path: str) -> bytes:
        """The message file: from the state dir, else copied out of the stopped container."""
        if self.state_dir:
            host = os.path.join(self._termination_dir(container), "termination-log")
            if os.path.exists(host):
                with open(host, "rb") as f:
                    return f.read(MAX_TERMINATION_MESSAGE_BYTES)
        stream, _ = self.api.get_archive(container.id, path)
        data = b"".join(stream)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            member = tar.next()
            extracted = tar.extractfile(member) if member is not None else None
            return extracted.read(MAX_TERMINATION_MESSAGE_BYTES) if extracted else b""

    async def _create(self, args: Obj) -> str:
        """Creates the container; a leftover of ours under the same name is removed first."""
        for attempt in range(2):
            try:
                return await self._call(self._create_blocking, args)
            except Conflict:
                old = await self._inspect(args["name"])
                if attempt or old is None or (old.get("State") or {}).get("Running"):
                    raise
                log.info("removing a leftover container of the same name",
                         extra={"kv": {"name": args["name"], "id": old["Id"][:12]}})
                await self._call(self.api.remove_container, old["Id"], force=True)
        raise AssertionError("unreachable")

    async def _ensure_tmpfs_volumes(self, config: ContainerConfig) -> None:
        """The pod's memory-backed emptyDirs: named tmpfs volumes, made by the first of its
        containers that mounts them and removed with its sandbox."""
        for m in config.mounts:
            if not m.tmpfs_volume:
                continue
            options = "size=" + str(m.tmpfs_size) if m.tmpfs_size else ""
            labels = {LABEL_MANAGED_BY: MANAGED_BY, LABEL_NODE: self.node_name,
                      LABEL_POD_UID: config.pod_uid}
            try:
                await self._call(self.api.inspect_volume, m.tmpfs_volume)
            except NotFound:
                await self._call(self.api.create_volume, m.tmpfs_volume, driver="local",
                                 driver_opts={"type": "tmpfs", "device": "tmpfs",
                                              **({"o": options} if options else {})},
                                 labels=labels)

    async def start_container(self, sandbox: PodSandbox, config: ContainerConfig) -> Container:
        if not config.image:
            raise ContainerConfigError(f'container "{config.name}" has no image')
        if config.security is not None and config.security.run_as_non_root:
            image = await self._call(self.api.inspect_image, config.image)
            try:
                check_image_user(config.security, (image.get("Config") or {}).get("User", ""))
            except SecurityError as err:
                raise ContainerConfigError(str(err)) from None
        holder_id = await self._holder_of(sandbox)
        await self._ensure_tmpfs_volumes(config)
        args = self._create_args(holder_id, config)
        message_file = self._termination_file(config)
        if message_file:
            await asyncio.to_thread(_empty_file, message_file)
        try:
            container_id = await self._create(args)
        except NotFound as err:
            raise ContainerStartError(f"cannot create container {config.name}: {err}") from err
        except RuntimeError_ as err:
            raise ContainerStartError(f"cannot create container {config.name}: {err}") from err
        self._starting.add(container_id)
        try:
            try:
                await self._call(self.api.start, container_id)
            except NotFound as err:
                raise ContainerStartError(f"cannot start container {config.name}: {err}") \
                    from err
            except RuntimeError_ as err:
                # Docker keeps it "created" with State.Error: it reads as a StartError exit.
                log.info("container failed to start", extra={"kv": {
                    "id": container_id[:12], "error": str(err)[:300]}})
            data = await self._call(self.api.inspect_container, container_id)
        finally:
            self._starting.discard(container_id)
        # A container that exits at once (echo to its message file; exit 2) is already
        # exited here: its status carries the termination message from the first report.
        return await self._with_message(container_from_inspect(data))

    async def stop_container(self, container_id: str, *, grace: float) -> None:
        data = await self._inspect(container_id)
        if data is None:
            raise NotFound(f"no container {container_id}")
        if not (data.get("State") or {}).get("Running"):
            return
        stop_signal = (data.get("Config") or {}).get("StopSignal") or "SIGTERM"
        if grace > 0 and await self._kill(container_id, stop_signal):
            if await self._wait_exit(container_id, grace):
                return
        await self._kill(container_id, "SIGKILL")
        if not await self._wait_exit(container_id, STOP_AFTER_KILL):
            raise RuntimeError_(f"container {container_id} did not exit after SIGKILL")

    async def _kill(self, container_id: str, sig: str) -> bool:
        try:
            await self._call(self.api.kill, container_id, signal=sig)
            return True
        except (Conflict, NotFound):
            return False  # not running (any more)

    async def _wait_exit(self, container_id: str, limit: float) -> bool:
        """Polls the state (a blocking `wait` would hold a pool thread for the grace)."""
        deadline = time.monotonic() + limit
        delay = 0.01
        while True:
            data = await self._inspect(container_id)
            if data is None or not (data.get("State") or {}).get("Running"):
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 0.2)

    async def remove_container(self, container_id: str) -> None:
        data = await self._inspect(container_id)
        if data is None:
            self._inspected.pop(container_id, None)
            return
        if (data.get("State") or {}).get("Running"):
            raise RuntimeError_(f"container {container_id} is still running")
        with contextlib.suppress(NotFound):
            await self._call(self.api.remove_container, container_id, v=True)
        self._inspected.pop(container_id, None)
        self._messages.pop(container_id, None)
        if self.state_dir:
            directory = self._termination_dir(container_from_inspect(data))
            await asyncio.to_thread(shutil.rmtree, directory, True)

    async def container_status(self, container_id: str) -> Container | None:
        data = await self._inspect(container_id)
        if data is None or (data["Config"].get("Labels") or {}).get(LABEL_TYPE) != TYPE_CONTAINER:
            return None
        self._inspected[container_id] = ((data.get("State") or {}).get("Status", ""), data)
        return await self._with_message(
            container_from_inspect(data, starting=container_id in self._starting))

    async def list_containers(self, *, pod_uid: str | None = None,
                              labels: Mapping[str, str] | None = None) -> list[Container]:
        """One list call; a container is inspected again only when its state changed."""
        extra = dict(labels or {})
        extra[LABEL_TYPE] = TYPE_CONTAINER
        if pod_uid is not None:
            extra[LABEL_POD_UID] = pod_uid
        rows = await self._call(self.api.containers, all=True,
                                filters=self._labels_filter(**extra))
        stale = [r for r in rows if (self._inspected.get(r["Id"]) or ("",))[0] != r.get("State")]

        async def inspect(row: Obj) -> None:
            try:
                data = await self._call(self.api.inspect_container, row["Id"])
            except NotFound:
                return  # removed meanwhile
            self._inspected[row["Id"]] = (row.get("State", ""), data)

        await asyncio.gather(*(inspect(r) for r in stale))
        if pod_uid is None and not labels:
            listed = {r["Id"] for r in rows}
            for cid in [c for c in self._inspected if c not in listed]:
                del self._inspected[cid]
        now = time.time()
        for cid in [c for c in self._messages if c not in self._inspected]:
            del self._messages[cid]
        return list(await asyncio.gather(*(self._with_message(container_from_inspect(
            self._inspected[r["Id"]][1], starting=r["Id"] in self._starting, now=now))
            for r in rows if r["Id"] in self._inspected)))

    # -- logs and exec --------------------------------------------------------

    async def logs(self, container_id: str, *, tail_lines: int | None = None,
                   follow: bool = False) -> AsyncIterator[bytes]:
        """Docker's log of the instance, read by a thread of its own and handed over through
        a bounded queue; closing the generator closes the stream (and ends the thread)."""
        if await self._inspect(container_id) is None:
            raise NotFound(f"no container {container_id}")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue(LOG_QUEUE)
        closed = threading.Event()
        lock = threading.Lock()
        stream_box: list[Any] = []

        def hand_over(item: bytes | BaseException | None) -> bool:
            future = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
            while not closed.is_set():
                try:
                    future.result(timeout=0.5)
                    return True
                except TimeoutError:
                    continue
                except Exception:  # noqa: BLE001 - the loop is gone
                    return False
            future.cancel()
            return False

        def pump() -> None:
            try:
                stream = self.api.logs(container_id, stdout=True, stderr=True, stream=True,
                                       follow=follow,
                                       tail="all" if tail_lines is None else max(0, tail_lines))
                with lock:
                    if closed.is_set():
                        stream.close()
                        return
                    stream_box.append(stream)
                for chunk in stream:
                    if chunk and not hand_over(chunk):
                        return
            except Exception as err:  # noqa: BLE001 - handed to the reader
                if not closed.is_set():
                    hand_over(err)
                return
            hand_over(None)

        thread = threading.Thread(target=pump, name=f"docker-logs-{container_id[:12]}",
                                  daemon=True)
        thread.start()
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    if closed.is_set():
                        return
                    raise RuntimeError_(f"reading the log of {container_id}: {item}")
                yield item
        finally:
            with lock:
                closed.set()
                for stream in stream_box:
                    with contextlib.suppress(Exception):
                        stream.close()

    async def exec(self, container_id: str, command: Sequence[str], *,
                   time_limit: float) -> ExecResult:
        """Runs the command in the container (its env, user and working dir). On timeout the
        result says so; the command itself keeps running, as Docker cannot kill an exec."""
        if await self._inspect(container_id) is None:
            raise NotFound(f"no container {container_id}")
        try:
            return await self._call(self._exec_blocking, container_id, list(command),
                                    time_limit)
        except (NotFound, Conflict, RuntimeError_) as err:
            return ExecResult(-1, f"exec {command[0] if command else ''!r}: {err}".encode())

    def _exec_blocking(self, container_id: str, command: list[str],
                       time_limit: float) -> ExecResult:
        api = self.api
        exec_id = api.exec_create(container_id, command, stdout=True, stderr=True)["Id"]
        sock = api.exec_start(exec_id, socket=True)
        raw_sock = getattr(sock, "_sock", sock)
        deadline = time.monotonic() + time_limit
        output = Demuxer(EXEC_OUTPUT_LIMIT)
        timed_out = False
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                raw_sock.settimeout(remaining)
                try:
                    chunk = raw_sock.recv(65536)
                except TimeoutError:
                    timed_out = True
                    break
                if not chunk:
                    break
                output.feed(chunk)
        finally:
            with contextlib.suppress(Exception):
                sock.close()
            with contextlib.suppress(Exception):
                raw_sock.close()
        if timed_out:
            return ExecResult(-1, b"", timed_out=True)
        for _ in range(100):  # the exit code lands just after the stream ends
            info = api.exec_inspect(exec_id)
            if not info.get("Running") and info.get("ExitCode") is not None:
                return ExecResult(int(info["ExitCode"]), bytes(output.output))
            time.sleep(0.01)
        return ExecResult(-1, bytes(output.output))

    # -- images (ImageService) ------------------------------------------------

    async def image_present(self, image: str) -> bool:
        try:
            await self._call(self.api.inspect_image, image)
            return True
        except NotFound:
            return False

    async def pull_image(self, image: str) -> None:
        def pull() -> None:
            # Errors may come in the progress stream after a 200, not only as the status.
            for item in self.api.pull(image, stream=True, decode=True):
                if isinstance(item, dict) and item.get("error"):
                    raise ImagePullError(f"Error response from daemon: {item['error']}")

        try:
            await self._call(pull)
        except ImagePullError:
            raise
        except RuntimeError_ as err:
            raise ImagePullError(f"Error response from daemon: {err}") from err

    # -- stats (services/kubelet/stats.py reads this) -------------------------

    async def container_stats(self, container_id: str) -> ContainerUsage | None:
        """Cumulative CPU seconds and the working set (usage minus inactive file pages)."""
        if await self._inspect(container_id) is None:
            return None
        try:
            data = await self._call(self.api.stats, container_id, stream=False, one_shot=True)
        except (NotFound, Conflict):
            return None
        cpu = ((data.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage")
        memory = data.get("memory_stats") or {}
        if cpu is None or "usage" not in memory:
            return None
        stats = memory.get("stats") or {}
        inactive = stats.get("total_inactive_file", stats.get("inactive_file", 0))
        return ContainerUsage(cpu_seconds=cpu / 1e9,
                              memory_bytes=max(0, int(memory["usage"]) - int(inactive)))


__all__ = ["DockerRuntime", "container_from_inspect", "parse_time"]

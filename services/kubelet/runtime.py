"""The container runtime interface: everything the kubelet asks of a runtime.

The one idea, as in Kubernetes' CRI: the kubelet decides *what* should run and
the runtime only does *how*. A runtime knows two things:

- a **pod sandbox**: what the containers of one pod share, above all the pod's
  IP address. The process runtime makes it a directory plus a loopback address;
  the docker runtime will make it a pause container whose network namespace the
  pod's containers join.
- a **container**: one *instance* of a pod's container. A restart is a new
  instance with a new id and `restart_count + 1`; the old instance stays (exited)
  so that its log and exit code can be read (`kubectl logs --previous`).

Runtimes are level-reportable: `list_containers()` returns every instance the
runtime holds, including those started by an earlier kubelet process, so that a
restarted kubelet adopts them instead of starting duplicates. Containers carry
the `io.kubernetes.*` labels that tie them to their pod.

Times are Unix epoch seconds (floats). Nothing in this module blocks.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from services.kubelet.dnsconfig import PodDns
from services.kubelet.security import SecurityContext

# The labels that tie a container to its pod, as the kubelet's dockershim set them.
LABEL_POD_UID = "io.kubernetes.pod.uid"
LABEL_POD_NAME = "io.kubernetes.pod.name"
LABEL_POD_NAMESPACE = "io.kubernetes.pod.namespace"
LABEL_CONTAINER_NAME = "io.kubernetes.container.name"


class ContainerState(enum.StrEnum):
    CREATED = "created"  # the runtime knows it, but it has not started (yet)
    RUNNING = "running"
    EXITED = "exited"


class RuntimeError_(Exception):  # noqa: N801 - do not shadow the builtin RuntimeError
    """Base of the errors a runtime raises."""


class ContainerConfigError(RuntimeError_):
    """The container cannot be created as specified (CreateContainerConfigError)."""


class ContainerStartError(RuntimeError_):
    """The runtime failed to start the container (RunContainerError)."""


class NotFound(RuntimeError_):
    """No such container or sandbox."""


class ImagePullError(RuntimeError_):
    """Pulling an image failed (ErrImagePull); the message is the runtime's own."""


@dataclass(frozen=True)
class PortMapping:
    """A container port of the pod; published on the node when host_port is set (CRI)."""

    container_port: int
    protocol: str = "TCP"
    host_port: int = 0
    host_ip: str = ""


@dataclass(frozen=True)
class PodSandboxConfig:
    uid: str
    namespace: str
    name: str
    hostname: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    port_mappings: Sequence[PortMapping] = ()
    dns: PodDns | None = None  # the pod's resolv.conf (None: the runtime's default)
    host_aliases: Sequence[tuple[str, Sequence[str]]] = ()  # extra /etc/hosts lines


@dataclass(frozen=True)
class PodSandbox:
    uid: str
    namespace: str
    name: str
    ip: str
    created_at: float


@dataclass(frozen=True)
class Mount:
    """One volumeMount, resolved by the kubelet's volume manager (services.kubelet.volumes).

    host_path is the directory or file on the node (subPath already applied); a docker
    runtime bind-mounts it. tmpfs_volume names instead a memory-backed volume shared by
    the pod's containers (emptyDir medium Memory on the docker runtime).
    """

    container_path: str
    host_path: str = ""
    read_only: bool = False
    tmpfs_volume: str = ""
    tmpfs_size: int = 0  # bytes; 0: the runtime's default


@dataclass(frozen=True)
class ContainerConfig:
    """One container instance to start: the kubelet has resolved everything in it."""

    pod_uid: str
    pod_namespace: str
    pod_name: str
    name: str
    image: str
    command: Sequence[str]  # empty: the image's entrypoint (which the process runtime lacks)
    args: Sequence[str]
    env: Sequence[tuple[str, str]]  # in order; later entries win
    working_dir: str = ""
    restart_count: int = 0
    spec_hash: str = ""  # the kubelet restarts a container whose spec hash changed
    memory_limit: int = 0  # bytes; 0: none
    labels: Mapping[str, str] = field(default_factory=dict)
    cpu_limit: int = 0  # millicores; 0: none
    cpu_request: int = 0  # millicores
    memory_request: int = 0  # bytes
    # Where the container writes why it ended (read into the terminated state's message);
    # "": nowhere. FallbackToLogsOnError: the log's tail when the file is empty on failure.
    termination_message_path: str = ""
    termination_message_policy: str = "File"
    # The effective securityContext (services/kubelet/security.py); None: all defaults.
    security: SecurityContext | None = None
    mounts: Sequence[Mount] = ()
    fs_group: int | None = None  # pod securityContext.fsGroup: a supplementary group


@dataclass(frozen=True)
class Container:
    """One container instance as the runtime sees it now."""

    id: str
    pod_uid: str
    pod_namespace: str
    pod_name: str
    name: str
    image: str
    restart_count: int
    state: ContainerState
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    reason: str = ""  # when exited: Completed, Error, OOMKilled, StartError, ...
    message: str = ""
    spec_hash: str = ""
    pid: int | None = None  # the main process, where the runtime has one on this host
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.state is ContainerState.RUNNING

    @property
    def exited(self) -> bool:
        return self.state is ContainerState.EXITED


@dataclass(frozen=True)
class ExecResult:
    exit_code: int  # -1 when the command could not run or timed out
    output: bytes
    timed_out: bool = False


# As the kubelet: at most this much of the termination message file is read, and the
# fallback takes at most the log's last lines and bytes.
MAX_TERMINATION_MESSAGE_BYTES = 4096
FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048


def fallback_message(log: bytes) -> str:
    """The termination message FallbackToLogsOnError takes from a log: its last 80
    lines, at most 2048 bytes of them."""
    tail = b"\n".join(log.rstrip(b"\n").split(b"\n")[-FALLBACK_LOG_LINES:])
    return tail[-FALLBACK_LOG_BYTES:].decode(errors="replace")


@runtime_checkable
class Runtime(Protocol):
    """A container runtime (see the module docstring). Implementations: process, docker."""

    #: The scheme of containerIDs ("process", "docker").
    name: str
    #: Shown in Node status.nodeInfo.containerRuntimeVersion.
    version: str

    async def start(self) -> None:
        """Loads what an earlier kubelet left running; call once before anything else."""

    async def close(self) -> None:
        """Releases the runtime's resources; running containers keep running."""

    async def status(self) -> str:
        """"" when the runtime can run containers, else why not (CRI's RuntimeReady
        condition): the kubelet reports its node NotReady meanwhile."""

    # -- sandboxes ------------------------------------------------------------

    async def run_pod_sandbox(self, config: PodSandboxConfig, *,
                              preferred_ip: str = "") -> PodSandbox:
        """The pod's sandbox, created if needed (idempotent); its IP is stable."""

    async def remove_pod_sandbox(self, uid: str) -> None:
        """Removes the sandbox and frees its IP; its containers must be stopped first."""

    async def list_pod_sandboxes(self) -> list[PodSandbox]: ...

    # -- containers -----------------------------------------------------------

    async def start_container(self, sandbox: PodSandbox, config: ContainerConfig) -> Container:
        """Creates and starts one container instance.

        Raises ContainerConfigError when the config cannot run on this runtime, and
        ContainerStartError when starting failed. A command that cannot be executed
        may also show up as an instance that exited with reason StartError.
        """

    async def stop_container(self, container_id: str, *, grace: float) -> None:
        """SIGTERM, up to `grace` seconds, then SIGKILL; returns once it has exited."""

    async def remove_container(self, container_id: str) -> None:
        """Forgets an exited instance and deletes its log."""

    async def container_status(self, container_id: str) -> Container | None: ...

    async def list_containers(self, *, pod_uid: str | None = None,
                              labels: Mapping[str, str] | None = None) -> list[Container]:
        """Every instance (running or not), optionally of one pod or with these labels."""

    def logs(self, container_id: str, *, tail_lines: int | None = None,
             follow: bool = False) -> AsyncIterator[bytes]:
        """The instance's output; with follow, streams until the instance ends."""

    async def exec(self, container_id: str, command: Sequence[str], *,
                   time_limit: float) -> ExecResult:
        """Runs a command as the container would (its env and working dir)."""


@runtime_checkable
class ImageService(Protocol):
    """CRI's image service, for runtimes that run images (docker; the process runtime has
    none). The kubelet owns the pull policy, the pull back-off and the events."""

    async def image_present(self, image: str) -> bool: ...

    async def pull_image(self, image: str) -> None:
        """Pulls image; raises ImagePullError with the registry's message."""


__all__ = [
    "Container",
    "ContainerConfig",
    "ContainerConfigError",
    "ContainerStartError",
    "ContainerState",
    "ExecResult",
    "FALLBACK_LOG_BYTES",
    "FALLBACK_LOG_LINES",
    "MAX_TERMINATION_MESSAGE_BYTES",
    "fallback_message",
    "ImagePullError",
    "ImageService",
    "LABEL_CONTAINER_NAME",
    "LABEL_POD_NAME",
    "LABEL_POD_NAMESPACE",
    "LABEL_POD_UID",
    "Mount",
    "NotFound",
    "PodSandbox",
    "PortMapping",
    "PodSandboxConfig",
    "Runtime",
    "RuntimeError_",
]

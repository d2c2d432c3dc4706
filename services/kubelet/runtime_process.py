"""The process runtime: a pod's containers are local processes (the embedded default).

**It does not isolate containers.** Every container runs as the kubelet's user,
on the kubelet's filesystem and kernel namespaces; the image is recorded but
never pulled, and a container needs a `command` (there is no image to supply an
entrypoint). A pod's "network" is one loopback address from the node's pod
CIDR (127.x.y.z), handed to its processes as POD_IP for them to bind to; nothing
stops a process from binding elsewhere. Memory limits are enforced by a
watchdog in the shim that SIGKILLs the container (OOMKilled), CPU limits not at
all. The docker runtime, behind the same interface, isolates for real.
See docs/process-runtime.md.

Layout under the root dir (everything a restarted kubelet needs to adopt):

    ipam.json                            the last pod IP handed out (round robin)
    pods/<pod uid>/sandbox.json          uid, namespace, name, ip
    pods/<pod uid>/                      the default working dir of its containers
    containers/<id>/config.json          what to run, the pod it belongs to, restart count
    containers/<id>/state.json           written by the shim: pids, start times, exit
    containers/<id>/container.log        stdout+stderr of this instance
    containers/<id>/shim.log             the shim's own errors

Each container instance runs under a shim (services/kubelet/shim.py) in a
session of its own, so the container outlives the kubelet. The shim is this
process's child while this process lives (the relist reaps it); after a
kubelet restart it is nobody's child, and its liveness is read from /proc with
the recorded start time guarding against pid reuse (a zombie counts as dead).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.kubelet import shim as shim_module
from services.kubelet.ipam import PodIPAllocator
from services.kubelet.runtime import (
    Container,
    ContainerConfig,
    ContainerConfigError,
    ContainerStartError,
    ContainerState,
    ExecResult,
    Mount,
    NotFound,
    PodSandbox,
    PodSandboxConfig,
    RuntimeError_,
)
from services.kubelet.security import process_runtime_refusal

VERSION = "0.1.0"
SHIM_PATH = Path(shim_module.__file__).resolve()
START_TIMEOUT = 10.0
LOG_CHUNK = 64 * 1024
FOLLOW_POLL_SECONDS = 0.1
EXEC_OUTPUT_LIMIT = 10 * 1024
# Names the file a container's terminationMessagePath maps to (docs/pods.md).
TERMINATION_MESSAGE_ENV = "KUBELITE_TERMINATION_MESSAGE_PATH"


def rewrite_mount_paths(text: str, mounts: Sequence[Mount]) -> str:
    """text with each absolute mountPath (as a whole path prefix) replaced by the node
    directory behind it: a process cannot be given a mount, so its paths are mapped."""
    pairs = sorted(((m.container_path.rstrip("/") or "/", m.host_path) for m in mounts
                    if m.host_path and m.container_path.startswith("/")),
                   key=lambda p: -len(p[0]))
    if not pairs:
        return text
    pattern = re.compile(r"(?<![\w.\-/])(" + "|".join(re.escape(c) for c, _ in pairs)
                         + r")(?=$|[/\s\"';:,)=])")
    hosts = dict(pairs)
    return pattern.sub(lambda m: hosts[m.group(1)], text)


def mount_env(mounts: Sequence[Mount]) -> list[tuple[str, str]]:
    """KUBELITE_MOUNT_<n>=<mountPath>=<node path>, one per mount, in the pod's order."""
    return [(f"KUBELITE_MOUNT_{i}", f"{m.container_path}={m.host_path}")
            for i, m in enumerate(mounts) if m.host_path]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    # Owner-only: a container's config holds its environment, Secret values included.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(data))
    os.replace(tmp, path)


def process_alive(pid: int, start_time: int) -> bool:
    """True if pid is the process that started at start_time and is not a zombie."""
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    fields = data[data.rfind(b")") + 2:].split()
    try:
        state, started = fields[0], int(fields[19])
    except (IndexError, ValueError):
        return False
    if state in (b"Z", b"X"):
        return False
    return not start_time or started == start_time


def _signal_group(pgid: int, start_time: int, sig: int) -> bool:
    """Signals the container's process group, unless its leader's pid was reused."""
    if pgid <= 0 or not process_alive(pgid, start_time):
        # The leader is gone; the shim already SIGKILLed its group, or will.
        return False
    try:
        os.killpg(pgid, sig)
        return True
    except OSError:
        return False


def tail_offset(path: Path, lines: int) -> int:
    """The byte offset where the last `lines` lines of the file begin."""
    if lines <= 0:
        return path.stat().st_size
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        end = f.tell()
        pos = end
        # A final line without a newline still counts as a line.
        f.seek(max(0, end - 1))
        newlines_needed = lines + (1 if end and f.read(1) == b"\n" else 0)
        found = 0
        while pos > 0:
            step = min(LOG_CHUNK, pos)
            pos -= step
            f.seek(pos)
            block = f.read(step)
            for i in range(len(block) - 1, -1, -1):
                if block[i] == 0x0A:
                    found += 1
                    if found == newlines_needed:
                        return pos + i + 1
        return 0


@dataclass
class _Record:
    """What the runtime knows of one container instance."""

    id: str
    dir: Path
    config: dict[str, Any]
    state: dict[str, Any]
    created_at: float
    state_mtime: float = 0.0

    @property
    def exited(self) -> bool:
        return "exitCode" in self.state


class ProcessRuntime:
    """Containers as local processes under shims (see the module docstring)."""

    name = "process"
    version = f"process://{VERSION}"

    def __init__(self, root_dir: str | Path, *, pod_cidr: str) -> None:
        self.root = Path(root_dir).resolve()
        self.pods_dir = self.root / "pods"
        self.containers_dir = self.root / "containers"
        self.ipam = PodIPAllocator(pod_cidr)
        self._sandboxes: dict[str, PodSandbox] = {}
        self._records: dict[str, _Record] = {}
        self._children: dict[str, subprocess.Popen] = {}  # shims this process started
        self._lock = asyncio.Lock()  # serializes refreshes of container state
        self._sandbox_lock = asyncio.Lock()

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        await asyncio.to_thread(self._load)

    def _load(self) -> None:
        self.pods_dir.mkdir(parents=True, exist_ok=True)
        self.containers_dir.mkdir(parents=True, exist_ok=True)
        for path in sorted(self.pods_dir.glob("*/sandbox.json")):
            data = _read_json(path)
            if not data:
                continue
            sandbox = PodSandbox(uid=data["uid"], namespace=data["namespace"],
                                 name=data["name"], ip=data["ip"],
                                 created_at=data.get("createdAt", 0.0))
            if self.ipam.reserve(sandbox.uid, sandbox.ip):
                self._sandboxes[sandbox.uid] = sandbox
        last = _read_json(self.root / "ipam.json") or {}
        self.ipam.resume_after(str(last.get("lastAllocated") or ""))
        for path in sorted(self.containers_dir.glob("*/config.json")):
            config = _read_json(path)
            if not config:
                continue
            record = _Record(id=config["id"], dir=path.parent, config=config,
                             state=_read_json(path.parent / "state.json") or {},
                             created_at=config.get("createdAt", 0.0))
            self._records[record.id] = record

    async def status(self) -> str:
        """Healthy while the state directory takes writes: without it no shim can record
        a container's start or exit, so nothing may be started."""
        return await asyncio.to_thread(self._probe_state_dir)

    def _probe_state_dir(self) -> str:
        probe = self.containers_dir / ".health"
        try:
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as err:
            return f"the state directory {self.containers_dir} takes no writes: {err}"
        return ""

    async def close(self) -> None:
        """Leaves every container running; only reaps the shims that already exited."""
        for cid, child in list(self._children.items()):
            if child.poll() is not None:
                self._children.pop(cid, None)

    # -- sandboxes ------------------------------------------------------------

    async def run_pod_sandbox(self, config: PodSandboxConfig, *,
                              preferred_ip: str = "") -> PodSandbox:
        async with self._sandbox_lock:  # ipam.json records the allocations in order
            return await self._run_pod_sandbox(config, preferred_ip)

    async def _run_pod_sandbox(self, config: PodSandboxConfig, preferred_ip: str) -> PodSandbox:
        existing = self._sandboxes.get(config.uid)
        if existing is not None:
            return existing
        ip = self.ipam.allocate(config.uid, preferred=preferred_ip)
        sandbox = PodSandbox(uid=config.uid, namespace=config.namespace, name=config.name,
                             ip=ip, created_at=time.time())
        directory = self.pods_dir / config.uid

        def write() -> None:
            directory.mkdir(parents=True, exist_ok=True)
            _write_json(self.root / "ipam.json", {"lastAllocated": ip})
            _write_json(directory / "sandbox.json", {
                "uid": sandbox.uid, "namespace": sandbox.namespace, "name": sandbox.name,
                "ip": sandbox.ip, "createdAt": sandbox.created_at})

        try:
            await asyncio.to_thread(write)
        except OSError:
            self.ipam.release(config.uid)
            raise
        self._sandboxes[config.uid] = sandbox
        return sandbox

    async def remove_pod_sandbox(self, uid: str) -> None:
        self._sandboxes.pop(uid, None)
        self.ipam.release(uid)
        await asyncio.to_thread(shutil.rmtree, self.pods_dir / uid, True)

    async def list_pod_sandboxes(self) -> list[PodSandbox]:
        return list(self._sandboxes.values())

    # -- containers -----------------------------------------------------------

    def _container(self, record: _Record) -> Container:
        config, state = record.config, record.state
        if record.exited:
            run_state = ContainerState.EXITED
        elif "pid" in state:
            run_state = ContainerState.RUNNING
        else:
            run_state = ContainerState.CREATED
        return Container(
            id=record.id, pod_uid=config["podUid"], pod_namespace=config["podNamespace"],
            pod_name=config["podName"], name=config["name"], image=config.get("image", ""),
            restart_count=int(config.get("restartCount", 0)), state=run_state,
            created_at=record.created_at, started_at=state.get("startedAt"),
            finished_at=state.get("finishedAt"), exit_code=state.get("exitCode"),
            reason=state.get("reason", ""), message=state.get("message", ""),
            spec_hash=config.get("specHash", ""), pid=state.get("pid") or None,
            labels=config.get("labels") or {},
        )

    async def start_container(self, sandbox: PodSandbox, config: ContainerConfig) -> Container:
        if not config.command:
            raise ContainerConfigError(
                f'container "{config.name}" has no command: the process runtime runs a '
                "container's command and args as a local process and has no image to take an "
                "entrypoint from; set spec.containers[].command")
        if config.security is not None:
            refusal = process_runtime_refusal(config.security, uid=os.getuid(), gid=os.getgid())
            if refusal:
                raise ContainerConfigError(
                    f'container "{config.name}": securityContext cannot be honoured: {refusal}')
        if any(m.tmpfs_volume for m in config.mounts):
            raise ContainerConfigError("the process runtime has no tmpfs volumes")
        cid = uuid.uuid4().hex
        directory = self.containers_dir / cid
        mounts = config.mounts
        working_dir = (rewrite_mount_paths(config.working_dir, mounts) if config.working_dir
                       else str(self.pods_dir / sandbox.uid))
        command = [rewrite_mount_paths(c, mounts) for c in config.command]
        args = [rewrite_mount_paths(a, mounts) for a in config.args]
        env = [(k, rewrite_mount_paths(v, mounts)) for k, v in config.env] + mount_env(mounts)
        message_file = ""
        if config.termination_message_path:
            # No filesystem of its own: the path maps to a file in the container's directory,
            # named by an environment variable, and the spec's path written literally in the
            # command or args is rewritten to it (docs/pods.md).
            message_file = str(directory / "termination-log")
            command = [c.replace(config.termination_message_path, message_file) for c in command]
            args = [a.replace(config.termination_message_path, message_file) for a in args]
            env.append((TERMINATION_MESSAGE_ENV, message_file))
        data = {
            "id": cid, "podUid": config.pod_uid, "podNamespace": config.pod_namespace,
            "podName": config.pod_name, "name": config.name, "image": config.image,
            "restartCount": config.restart_count, "specHash": config.spec_hash,
            "labels": dict(config.labels), "command": command,
            "args": args, "env": [list(pair) for pair in env],
            "workingDir": working_dir, "memoryLimit": config.memory_limit,
            "logPath": str(directory / "container.log"), "createdAt": time.time(),
            "terminationMessagePath": message_file,
            "terminationMessagePolicy": config.termination_message_policy,
        }

        def launch() -> subprocess.Popen:
            directory.mkdir(parents=True)
            (self.pods_dir / sandbox.uid).mkdir(parents=True, exist_ok=True)
            _write_json(directory / "config.json", data)
            if message_file:
                Path(message_file).touch()
            with open(directory / "shim.log", "ab") as shim_log:
                return subprocess.Popen(
                    [sys.executable, "-I", str(SHIM_PATH), str(directory)],
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=shim_log,
                    start_new_session=True, close_fds=True, cwd="/",
                )

        record = _Record(id=cid, dir=directory, config=data, state={},
                         created_at=data["createdAt"])
        launching = asyncio.ensure_future(asyncio.to_thread(launch))
        try:
            child = await asyncio.shield(launching)
        except asyncio.CancelledError:
            # The thread starts the shim anyway: record it, so that a kubelet
            # stopping its pods (--kill-pods-on-exit) or syncing later knows it.
            with contextlib.suppress(Exception):
                self._children[cid] = await launching
                self._records[cid] = record
            raise
        except OSError as err:
            await asyncio.to_thread(shutil.rmtree, directory, True)
            raise ContainerStartError(f"cannot start the shim: {err}") from err
        self._children[cid] = child
        self._records[cid] = record
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            state = await asyncio.to_thread(_read_json, directory / "state.json")
            if state and "pid" in state:
                record.state = state
                break
            if child.poll() is not None:
                # The shim died before it could report: nothing runs.
                shim_err = await asyncio.to_thread(self._shim_error, directory)
                now = time.time()
                record.state = {"pid": 0, "startedAt": now, "finishedAt": now, "exitCode": 128,
                                "reason": "StartError",
                                "message": f"the shim exited with {child.returncode}: {shim_err}"}
                break
            if time.monotonic() > deadline:
                child.kill()
                raise ContainerStartError(f"the shim did not report within {START_TIMEOUT}s")
            await asyncio.sleep(0.005)
        return self._container(record)

    @staticmethod
    def _shim_error(directory: Path) -> str:
        try:
            return (directory / "shim.log").read_text(errors="replace").strip()[-500:]
        except OSError:
            return ""

    def _refresh_one(self, record: _Record) -> dict[str, Any] | None:
        """The record's new state if it changed (runs in a thread)."""
        path = record.dir / "state.json"
        try:
            mtime = path.stat().st_mtime
        except OSError:
            mtime = 0.0
        state = record.state
        if mtime and mtime != record.state_mtime:
            state = _read_json(path) or state
            record.state_mtime = mtime
        if "exitCode" in state:
            return state
        if "pid" not in state:
            if record.id in self._children or time.time() - record.created_at < START_TIMEOUT:
                return state  # being started
            # A kubelet died between writing config.json and the shim's first report.
            return dict(state, pid=0, startedAt=record.created_at, finishedAt=time.time(),
                        exitCode=128, reason="StartError",
                        message="the container's shim never reported that it started")
        if process_alive(int(state.get("pid") or 0), int(state.get("pidStartTime") or 0)):
            return state
        if process_alive(int(state.get("shimPid") or 0), int(state.get("shimStartTime") or 0)):
            return state  # the command ended; the shim is writing its exit
        # Both are gone and nothing recorded the exit (the shim was killed).
        again = _read_json(path) or state
        if "exitCode" in again:
            return again
        return dict(state, exitCode=137, finishedAt=time.time(), reason="Error",
                    message="the container's shim died without recording an exit code")

    async def _refresh(self, records: list[_Record]) -> None:
        for cid, child in list(self._children.items()):
            if child.poll() is not None:  # reap the shims of ours that exited
                self._children.pop(cid, None)
        live = [r for r in records if not r.exited]
        if not live:
            return
        async with self._lock:
            states = await asyncio.to_thread(lambda: [self._refresh_one(r) for r in live])
            for record, state in zip(live, states, strict=True):
                if state is not None:
                    record.state = state

    async def container_status(self, container_id: str) -> Container | None:
        record = self._records.get(container_id)
        if record is None:
            return None
        await self._refresh([record])
        return self._container(record)

    async def list_containers(self, *, pod_uid: str | None = None,
                              labels: Mapping[str, str] | None = None) -> list[Container]:
        records = [r for r in self._records.values()
                   if pod_uid is None or r.config.get("podUid") == pod_uid]
        if labels:
            records = [r for r in records
                       if all((r.config.get("labels") or {}).get(k) == v
                              for k, v in labels.items())]
        await self._refresh(records)
        return [self._container(r) for r in records]

    async def stop_container(self, container_id: str, *, grace: float) -> None:
        record = self._records.get(container_id)
        if record is None:
            raise NotFound(f"no container {container_id}")
        await self._refresh([record])
        if record.exited:
            return
        pid = int(record.state.get("pid") or 0)
        start = int(record.state.get("pidStartTime") or 0)
        if grace > 0 and _signal_group(pid, start, signal.SIGTERM):
            if await self._wait_exit(record, grace):
                return
        _signal_group(pid, start, signal.SIGKILL)
        if not await self._wait_exit(record, 10.0):
            raise RuntimeError_(f"container {container_id} did not exit after SIGKILL")

    async def _wait_exit(self, record: _Record, limit: float) -> bool:
        deadline = time.monotonic() + limit
        delay = 0.01
        while True:
            await self._refresh([record])
            if record.exited:
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 0.1)

    async def remove_container(self, container_id: str) -> None:
        record = self._records.get(container_id)
        if record is None:
            return
        await self._refresh([record])
        if not record.exited:
            raise RuntimeError_(f"container {container_id} is still running")
        self._records.pop(container_id, None)
        self._children.pop(container_id, None)
        await asyncio.to_thread(shutil.rmtree, record.dir, True)

    def log_path(self, container_id: str) -> Path:
        record = self._records.get(container_id)
        if record is None:
            raise NotFound(f"no container {container_id}")
        return Path(record.config["logPath"])

    async def logs(self, container_id: str, *, tail_lines: int | None = None,
                   follow: bool = False) -> AsyncIterator[bytes]:
        path = self.log_path(container_id)
        record = self._records[container_id]

        def open_at() -> tuple[Any, int]:
            if not path.exists():
                path.touch()
            offset = tail_offset(path, tail_lines) if tail_lines is not None else 0
            f = open(path, "rb")  # noqa: SIM115 - closed below
            f.seek(offset)
            return f, offset

        f, _ = await asyncio.to_thread(open_at)
        try:
            while True:
                chunk = await asyncio.to_thread(f.read, LOG_CHUNK)
                if chunk:
                    yield chunk
                    continue
                if not follow:
                    return
                await self._refresh([record])
                if record.exited:
                    # One last read: the final output may have landed before the exit.
                    while chunk := await asyncio.to_thread(f.read, LOG_CHUNK):
                        yield chunk
                    return
                await asyncio.sleep(FOLLOW_POLL_SECONDS)
        finally:
            f.close()

    async def exec(self, container_id: str, command: Sequence[str], *,
                   time_limit: float) -> ExecResult:
        record = self._records.get(container_id)
        if record is None:
            raise NotFound(f"no container {container_id}")
        config = record.config
        env = {k: v for k, v in config.get("env") or []}
        cwd = config.get("workingDir") or None
        try:
            proc = await asyncio.create_subprocess_exec(
                *command, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as err:
            return ExecResult(-1, f"exec {command[0] if command else ''!r}: {err}".encode())
        try:
            output, _ = await asyncio.wait_for(proc.communicate(), time_limit)
        except TimeoutError:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            return ExecResult(-1, b"", timed_out=True)
        except asyncio.CancelledError:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            raise
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)  # no strays from a probe
        return ExecResult(proc.returncode if proc.returncode is not None else -1,
                          output[-EXEC_OUTPUT_LIMIT:])

    # -- for tests and tools --------------------------------------------------

    def record_dir(self, container_id: str) -> Path:
        return self._records[container_id].dir

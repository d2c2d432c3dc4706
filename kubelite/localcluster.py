"""Runs kubelite's processes on this machine: redis-server, the apiserver and
whatever other components the repo has. `kubelite up` and the test suite share
it, so the tests start the cluster exactly the way a user does.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def _with_parent_death_signal(argv: list[str]) -> list[str]:
    """Prefixes argv so the child gets SIGTERM when its parent dies (util-linux's setpriv),
    so a SIGKILLed `kubelite up` or test run leaves no orphans. Unlike a preexec_fn this
    keeps subprocess's fast, fork-safe spawn path."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", "--", *argv] if setpriv else argv


class ClusterError(Exception):
    """A local process could not be started or did not become healthy."""


_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, never the same one twice in this process.

    The kernel may hand the same ephemeral port to two quick bind-and-close
    probes; `kubelite up` asks for a dozen ports before any child binds its own,
    so ports this process already gave out are skipped.
    """
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise ClusterError("no free port found")


def wait_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def grpc_healthy(target: str, timeout: float = 1.0, service: str = "") -> bool:
    """True when the gRPC health service at target answers SERVING."""
    with grpc.insecure_channel(target) as channel:
        try:
            resp = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError:
            return False
    return resp.status == health_pb2.HealthCheckResponse.SERVING


def wait_healthy(target: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ClusterError(f"process for {target} exited with code {proc.returncode}")
        if grpc_healthy(target, timeout=0.5):
            return
        time.sleep(0.05)
    raise ClusterError(f"{target} did not become healthy within {timeout:.0f}s")


@dataclass
class ManagedProcess:
    """A child process with its log file; stop() is SIGTERM, then SIGKILL."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            _with_parent_death_signal(list(self.argv)),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env}, start_new_session=True,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()

    def stop(self, grace: float = 10.0) -> None:
        if not self.alive():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class RedisServer:
    """A redis-server of our own on a free port, with AOF so a restart loses nothing.

    appendfsync everysec: Redis writes each command to the AOF before it replies,
    so a crash of the process (SIGKILL) loses nothing acknowledged; only a crash of
    the machine may lose the last second, which fsync would have made durable.
    `replica_of` starts it as a replica of that primary (host, port).
    """

    def __init__(self, workdir: Path, port: int | None = None, host: str = "127.0.0.1",
                 *, replica_of: tuple[str, int] | None = None, name: str = "redis",
                 appendfsync: str = "everysec") -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ClusterError("redis-server not found on PATH (apt-get install redis-server)")
        self.binary = binary
        self.host = host
        self.port = port or free_port(host)
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.replica_of = replica_of
        self.name = name
        self.appendfsync = appendfsync
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> RedisServer:
        argv = [
            self.binary, "--port", str(self.port), "--bind", self.host,
            "--dir", str(self.workdir), "--appendonly", "yes",
            "--appendfsync", self.appendfsync,
            "--save", "", "--protected-mode", "no", "--daemonize", "no",
        ]
        if self.replica_of:
            argv += ["--replicaof", self.replica_of[0], str(self.replica_of[1])]
        self.process = ManagedProcess(self.name, argv,
                                      self.workdir / f"{self.name}.log").start()
        if not wait_port(self.host, self.port, timeout):
            raise ClusterError(f"redis-server did not listen on {self.port}: "
                               f"{self.process.tail(5)}")
        return self

    def stop(self) -> None:
        if self.process:
            self.process.stop()

    def kill(self) -> None:
        if self.process:
            self.process.kill()


@dataclass(frozen=True)
class SentinelTimings:
    """How fast Sentinel declares a primary down and fails over (short for tests)."""

    down_after_ms: int = 5000
    failover_timeout_ms: int = 60000


class SentinelServer:
    """One `redis-server --sentinel` monitoring `master_name`, with a config of its own."""

    def __init__(self, workdir: Path, primary: tuple[str, int], *, master_name: str = "kubelite",
                 quorum: int = 2, timings: SentinelTimings = SentinelTimings(),
                 host: str = "127.0.0.1", name: str = "sentinel") -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ClusterError("redis-server not found on PATH (apt-get install redis-server)")
        self.binary = binary
        self.host = host
        self.port = free_port(host)
        self.workdir = workdir
        self.name = name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config = self.workdir / f"{name}.conf"
        # Sentinel rewrites its file as it learns the topology: written once, so that
        # a restarted Sentinel remembers the current primary and its config epoch.
        self.config.write_text("\n".join([
            f"port {self.port}", f"bind {host}", "protected-mode no", f"dir {self.workdir}",
            f"sentinel monitor {master_name} {primary[0]} {primary[1]} {quorum}",
            f"sentinel down-after-milliseconds {master_name} {timings.down_after_ms}",
            f"sentinel failover-timeout {master_name} {timings.failover_timeout_ms}",
            f"sentinel parallel-syncs {master_name} 1", "",
        ]))
        self.process: ManagedProcess | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> SentinelServer:
        argv = [self.binary, str(self.config), "--sentinel"]
        self.process = ManagedProcess(self.name, argv, self.workdir / f"{self.name}.log").start()
        if not wait_port(self.host, self.port, timeout):
            raise ClusterError(f"sentinel did not listen on {self.port}: "
                               f"{self.process.tail(5)}")
        return self

    def stop(self) -> None:
        if self.process:
            self.process.stop()

    def kill(self) -> None:
        if self.process:
            self.process.kill()


class RedisHA:
    """A Redis primary, its replicas and three Sentinels, all local processes.

    The apiservers find the primary through `sentinels` (--redis-sentinels) under
    `master_name`; `primary()` asks a Sentinel which server that is now.
    """

    def __init__(self, workdir: Path, *, replicas: int = 1, sentinels: int = 3,
                 master_name: str = "kubelite", timings: SentinelTimings = SentinelTimings(),
                 appendfsync: str = "everysec", primary_index: int = 0) -> None:
        self.master_name = master_name
        self.servers = [RedisServer(workdir / f"redis-{i}", name=f"redis-{i}",
                                    appendfsync=appendfsync) for i in range(replicas + 1)]
        primary = self.servers[primary_index if 0 <= primary_index <= replicas else 0]
        for server in self.servers:
            if server is not primary:
                server.replica_of = (primary.host, primary.port)
        self.sentinels = [SentinelServer(workdir / f"sentinel-{i}", (primary.host, primary.port),
                                         master_name=master_name, quorum=sentinels // 2 + 1,
                                         timings=timings, name=f"sentinel-{i}")
                          for i in range(sentinels)]

    @property
    def sentinel_addresses(self) -> str:
        return ",".join(s.address for s in self.sentinels)

    def processes(self) -> list[ManagedProcess]:
        return [p.process for p in [*self.servers, *self.sentinels] if p.process is not None]

    def start(self, timeout: float = 20.0) -> RedisHA:
        self.start_processes()
        self.wait_replicated(len(self.servers) - 1, timeout)
        return self

    def start_processes(self) -> list[ManagedProcess]:
        """Starts the servers (primary first) and the Sentinels; returns their processes."""
        started = []
        for server in sorted(self.servers, key=lambda s: s.replica_of is not None):
            server.start()
            assert server.process is not None
            started.append(server.process)
        for sentinel in self.sentinels:
            sentinel.start()
            assert sentinel.process is not None
            started.append(sentinel.process)
        return started

    def primary(self) -> RedisServer | None:
        """The server the Sentinels name as primary now (None if they name none)."""
        import redis

        for sentinel in self.sentinels:
            if sentinel.process is None or not sentinel.process.alive():
                continue
            try:
                with redis.Redis(sentinel.host, sentinel.port, socket_timeout=1) as conn:
                    host, port = conn.sentinel_get_master_addr_by_name(self.master_name)
            except (redis.RedisError, OSError, TypeError):
                continue
            for server in self.servers:
                if server.port == int(port):
                    return server
        return None

    def wait_replicated(self, replicas: int, timeout: float = 20.0) -> RedisServer:
        """Waits until the Sentinels' primary has `replicas` replicas online and in sync."""
        import redis

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            primary = self.primary()
            if primary is not None:
                try:
                    with redis.Redis(primary.host, primary.port, socket_timeout=1) as conn:
                        info = conn.info("replication")
                        online = sum(1 for k, v in info.items() if k.startswith("slave")
                                     and isinstance(v, dict) and v.get("state") == "online")
                        if info.get("role") == "master" and online >= replicas:
                            return primary
                except (redis.RedisError, OSError):
                    pass
            time.sleep(0.1)
        raise ClusterError(f"redis primary with {replicas} replica(s) not ready in {timeout:.0f}s")

    def stop(self) -> None:
        for process in [*self.sentinels, *reversed(self.servers)]:
            process.stop()


def component_exists(name: str) -> bool:
    """A component exists when services/<name>/__main__.py does."""
    try:
        return importlib.util.find_spec(f"services.{name}.__main__") is not None
    except ModuleNotFoundError:
        return False


def python_module_argv(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def apiserver_process(
    workdir: Path, *, listen: str, redis_url: str, metrics_port: int = 0,
    extra: Sequence[str] = (), name: str = "apiserver",
) -> ManagedProcess:
    argv = python_module_argv(
        "services.apiserver", "--listen", listen, "--redis-url", redis_url,
        "--metrics-port", str(metrics_port), *extra,
    )
    return ManagedProcess(name, argv, workdir / f"{name}.log")


def make_workdir(prefix: str = "kubelite-") -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


def write_kubeconfig(path: Path, server: str, *, name: str = "kubelite") -> Path:
    """A kubeconfig for stock kubectl and the client libraries: the REST API over plain
    HTTP on loopback, no credentials (the apiserver has no authentication)."""
    text = (
        "apiVersion: v1\nkind: Config\n"
        f"clusters:\n- name: {name}\n  cluster:\n    server: {server}\n"
        f"contexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: {name}\n"
        "    namespace: default\n"
        f"current-context: {name}\n"
        f"users:\n- name: {name}\n  user: {{}}\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path

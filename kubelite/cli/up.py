"""`kubelite up`: a whole cluster as local processes, until Ctrl-C or SIGTERM.

It starts redis-server (unless --redis-url names one), then the apiserver,
then every other component the repo has, each as a child process with its
log under DATA/logs/. The data dir defaults to `.kubelite/` in the current
directory, so a second `kubelite up` there finds the same objects again
(Redis keeps them in an append-only file under DATA/redis/).

Adding a component is one entry in COMPONENTS. Every component gets
`--server` (the apiserver address); its metrics port comes through the
environment (KUBELITE_METRICS_PORT), which config.add_flag reads as the
default of --metrics-port, so a component without metrics is not broken by it.

Kubernetes' own names for the node-loss timings (PASSED_ON: grace period,
tolerations, eviction rates, the kubelets' lease and status intervals) are
accepted and passed on to the component that owns each.

Shutdown stops the children in the reverse order of their start, each with
SIGTERM and then SIGKILL after a grace period. Children run in their own
session so that a Ctrl-C in the terminal reaches only `up`, which then stops
them in order. If a child dies on its own, `up` reports it and shuts down.

`up --ha` runs no single point of failure: Redis as a primary, a replica and
three Sentinels (the apiservers find the primary through them and acknowledge a
write once the replica holds it), two apiservers (on --listen and the port
after it), and two schedulers and two controller managers electing a leader.
Every component is given both apiserver addresses. There a child that dies is
reported and started again a second later (as `restart: unless-stopped` does
in docker-compose), so that killing any one process shows a failover and not a
shutdown. The data dir remembers which Redis server was the primary last.
"""

from __future__ import annotations

import argparse
import errno
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO

from kubelite import cli
from kubelite.cli.reporting import CliError
from kubelite.localcluster import (
    ClusterError,
    ManagedProcess,
    RedisHA,
    RedisServer,
    SentinelTimings,
    apiserver_process,
    component_exists,
    free_port,
    python_module_argv,
    wait_healthy,
    write_kubeconfig,
)

DEFAULT_DATA_DIR = ".kubelite"
STOP_GRACE_SECONDS = 10.0
HEALTH_TIMEOUT_SECONDS = 30.0
POLL_SECONDS = 0.2
HA_RESTART_DELAY_SECONDS = 1.0
# Sentinel declares the primary down after 3 s without an answer (Redis' default is 30 s).
HA_SENTINEL_TIMINGS = SentinelTimings(down_after_ms=3000, failover_timeout_ms=10000)


@dataclass(frozen=True)
class UpOptions:
    listen: str = "127.0.0.1:6443"
    redis_url: str = ""  # empty: start our own redis-server
    data_dir: str = DEFAULT_DATA_DIR
    nodes: int = 1
    metrics_port: int = 0  # the apiserver's; 0 picks a free port
    rest_listen: str = ""  # the REST API's; empty: the gRPC port + 1 if free, else any
    # (component module, flag, value): Kubernetes' own flags, passed on (PASSED_ON).
    component_flags: tuple[tuple[str, str, str], ...] = ()

    def flags_for(self, module: str) -> list[str]:
        return [arg for comp, flag, value in self.component_flags if comp == module
                for arg in (flag, value)]
    ha: bool = False  # two of each control-plane process, Redis with Sentinel


@dataclass(frozen=True)
class Component:
    """One kind of process `up` runs after the apiserver (services/<module>)."""

    module: str
    replicas: Callable[[UpOptions], int] = lambda options: 1
    # (options, index, data dir) -> extra flags; ports are picked free at start.
    args: Callable[[UpOptions, int, Path], list[str]] = (
        lambda options, index, data: ["--health-listen", f"127.0.0.1:{free_port()}"])

    def instance_name(self, index: int, count: int) -> str:
        return self.module if count == 1 else f"{self.module}-{index}"


# Node i takes 127.10.0.(i+1) and the pod range 127.(11+i).0.0/16, which must stay
# below the ClusterIP range 127.96.0.0/16.
MAX_NODES = 80


def node_name(index: int) -> str:
    return f"node-{index}"


def node_ip(index: int) -> str:
    """Each local node has its own loopback address: its kubelet and NodePorts live there."""
    return f"127.10.0.{index + 1}"


def pod_cidr(index: int) -> str:
    """Each local node hands out pod IPs from its own loopback /16."""
    return f"127.{11 + index}.0.0/16"


def _kubelet_args(options: UpOptions, index: int, data: Path) -> list[str]:
    ip = node_ip(index)
    return ["--node-name", node_name(index), "--listen", f"{ip}:{free_port(ip)}",
            "--root-dir", str(data / "kubelet" / node_name(index)),
            "--pod-cidr", pod_cidr(index),
            # Stopping `up` stops the pods too: no orphan processes. Their objects stay
            # in Redis, so the next `up` starts them again.
            "--kill-pods-on-exit", "true"]


def _proxy_args(options: UpOptions, index: int, data: Path) -> list[str]:
    return ["--node-name", node_name(index), "--node-ip", node_ip(index),
            "--health-listen", f"127.0.0.1:{free_port()}"]


#: The cluster DNS's loopback address, outside every node's 127.10.0.(i+1). Its port is
#: picked free (53 needs root); the process runtime's pods cannot be pointed at it (they
#: share the host's /etc/resolv.conf), so it serves `dig @ADDRESS -p PORT` and tools.
DNS_IP = "127.10.0.254"


def _dns_args(options: UpOptions, index: int, data: Path) -> list[str]:
    return ["--listen", f"{DNS_IP}:{free_port(DNS_IP)}",
            "--health-listen", f"127.0.0.1:{free_port()}"]


def dns_listen(argv: list[str] | tuple[str, ...]) -> str:
    """The --listen of a dns child's argv ("" if none)."""
    args = list(argv)
    return args[args.index("--listen") + 1] if "--listen" in args else ""


# In start order; shutdown runs in reverse. Only those that exist are started.
COMPONENTS: tuple[Component, ...] = (
    Component("controller", replicas=lambda o: 2 if o.ha else 1),
    Component("scheduler", replicas=lambda o: 2 if o.ha else 1),
    Component("kubelet", replicas=lambda o: o.nodes, args=_kubelet_args),
    Component("proxy", replicas=lambda o: o.nodes, args=_proxy_args),
    Component("dns", args=_dns_args),
)


#: Flags `up` takes under their Kubernetes names and hands to the component that owns them,
#: so that a demo can shorten the node-loss timings: flag -> (component, help).
PASSED_ON: dict[str, tuple[str, str]] = {
    "--default-not-ready-toleration-seconds": (
        "apiserver", "seconds pods tolerate a NotReady node before eviction (default 300)"),
    "--default-unreachable-toleration-seconds": (
        "apiserver", "seconds pods tolerate an unreachable node before eviction (default 300)"),
    "--node-monitor-grace-period": (
        "controller", "seconds a node may stay silent before it is marked Unknown (default 40)"),
    "--node-monitor-period": ("controller", "seconds between node health passes (default 5)"),
    "--node-eviction-rate": ("controller", "nodes per second to evict from (default 0.1)"),
    "--secondary-node-eviction-rate": (
        "controller", "the same in an unhealthy zone (default 0.01)"),
    "--unhealthy-zone-threshold": (
        "controller", "fraction of NotReady nodes that makes a zone unhealthy (default 0.55)"),
    "--large-cluster-size-threshold": (
        "controller", "zones up to this size stop evicting when unhealthy (default 50)"),
    "--node-lease-duration": ("kubelet", "the kubelets' node Lease duration (default 40)"),
    "--node-lease-renew-interval": (
        "kubelet", "seconds between the kubelets' Lease renewals (default 10)"),
    "--node-status-update-frequency": (
        "kubelet", "seconds between the kubelets' node status updates (default 10)"),
}


def add_passed_on_flags(parser: argparse.ArgumentParser) -> None:
    for flag, (component, text) in PASSED_ON.items():
        parser.add_argument(flag, metavar="N", type=_number, help=f"{component}: {text}")


def passed_on(args: argparse.Namespace) -> tuple[tuple[str, str, str], ...]:
    """The (component, flag, value) triples of the PASSED_ON flags that were given."""
    out = []
    for flag, (component, _) in PASSED_ON.items():
        value = getattr(args, flag.lstrip("-").replace("-", "_"), None)
        if value is not None:
            out.append((component, flag, value))
    return tuple(out)


def _number(text: str) -> str:
    try:
        float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    return text


class Shutdown(Exception):
    """Raised by the signal handler: stop everything and exit 0."""


class ChildDied(Exception):
    """A child process exited while the cluster was meant to be running."""


def split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise CliError(f'invalid --listen address "{address}": expected HOST:PORT')
    return host or "127.0.0.1", int(port)


def second_address(address: str) -> str:
    """Where the second apiserver of `up --ha` listens: the port after --listen's."""
    host, port = split_address(address)
    return f"{host}:{port + 1}"


def check_port_free(address: str) -> None:
    """Fails with one line when something already listens on the address.

    gRPC binds with SO_REUSEPORT, so a second apiserver would silently share
    the port with the first; this check is what prevents that.
    """
    host, port = split_address(address)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise CliError(f"cannot listen on {address}: the port is already in use "
                               f"(is another kubelite up running?)") from None
            raise CliError(f"cannot listen on {address}: {err.strerror}") from None


def _rest_address(listen: str, offset: int = 1) -> str:
    """A REST API's address: `offset` ports after the first gRPC port (past the gRPC
    ports of every apiserver) when that one is free, else any free port."""
    host, port = split_address(listen)
    candidate = f"{host}:{port + offset}"
    try:
        check_port_free(candidate)
        return candidate
    except CliError:
        return f"{host}:{free_port(host)}"


class LocalCluster:
    """The running children, in start order."""

    def __init__(self, options: UpOptions, out: IO[str]) -> None:
        self.options = options
        self.out = out
        self.data_dir = Path(options.data_dir).resolve()
        self.log_dir = self.data_dir / "logs"
        self.redis: RedisServer | None = None
        self.redis_ha: RedisHA | None = None
        self.children: list[ManagedProcess] = []
        self.metrics: dict[str, int] = {}  # component instance -> metrics port

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def start(self) -> None:
        options = self.options
        listens = [options.listen, second_address(options.listen)] if options.ha else [
            options.listen]
        for address in listens:
            check_port_free(address)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        redis_url = options.redis_url
        redis_flags: list[str] = []
        if options.ha:
            self.redis_ha = RedisHA(self.data_dir / "redis", replicas=1,
                                    timings=HA_SENTINEL_TIMINGS,
                                    primary_index=self._last_primary())
            try:
                for process in self.redis_ha.start_processes():
                    self.children.append(process)
                self.redis_ha.wait_replicated(1, HEALTH_TIMEOUT_SECONDS)
            except ClusterError as err:
                raise CliError(str(err)) from None
            redis_url = self.redis_ha.servers[0].url
            redis_flags = ["--redis-sentinels", self.redis_ha.sentinel_addresses,
                           "--redis-master-name", self.redis_ha.master_name,
                           "--redis-min-replicas", "1"]
        elif not redis_url:
            try:
                self.redis = RedisServer(self.data_dir / "redis")
                self.redis.start()
            except ClusterError as err:
                raise CliError(str(err)) from None
            assert self.redis.process is not None
            self.children.append(self.redis.process)
            redis_url = self.redis.url
        apiservers = []
        rest_listens = []
        for index, address in enumerate(listens):
            name = "apiserver" if len(listens) == 1 else f"apiserver-{index}"
            port = (options.metrics_port if index == 0 else 0) or free_port()
            rest_listen = ((options.rest_listen if index == 0 else "")
                           or _rest_address(options.listen, len(listens) + index))
            rest_listens.append(rest_listen)
            apiserver = apiserver_process(
                self.log_dir, listen=address, redis_url=redis_url, metrics_port=port,
                extra=(*redis_flags, "--rest-listen", rest_listen,
                       *options.flags_for("apiserver")), name=name)
            self.children.append(apiserver)  # before start: a signal may arrive at any moment
            self.metrics[name] = port
            apiserver.start()
            apiservers.append(apiserver)
        for address, apiserver in zip(listens, apiservers, strict=True):
            try:
                wait_healthy(address, HEALTH_TIMEOUT_SECONDS, apiserver.proc)
            except ClusterError as err:
                raise CliError(f"the apiserver did not start: {err} "
                               f"(see {apiserver.log_path})") from None
        server = ",".join(listens)
        for component in COMPONENTS:
            if not component_exists(component.module):
                continue
            count = component.replicas(options)
            for index in range(count):
                name = component.instance_name(index, count)
                argv = python_module_argv(f"services.{component.module}",
                                          "--server", server,
                                          *component.args(options, index, self.data_dir),
                                          *options.flags_for(component.module))
                port = free_port()
                env = {"KUBELITE_METRICS_PORT": str(port)}
                process = ManagedProcess(name, argv, self.log_dir / f"{name}.log", env)
                self.children.append(process)
                self.metrics[name] = port
                process.start()
        # kubectl takes one server: the first apiserver's REST face.
        kubeconfig = write_kubeconfig(self.data_dir / "kubeconfig", f"http://{rest_listens[0]}")
        self.say(f"kubelite is up: apiserver at {server}"
                 + (" (high availability)" if options.ha else ""))
        self.say(f"  REST:    {', '.join('http://' + r for r in rest_listens)} "
                 f"(Kubernetes API; kubeconfig: {kubeconfig})")
        if options.ha:
            assert self.redis_ha is not None
            self.say(f"  redis:   primary {self.redis_ha.servers[0].address}, replica "
                     f"{self.redis_ha.servers[1].address} (data in {self.data_dir / 'redis'})")
            self.say(f"  sentinels: {self.redis_ha.sentinel_addresses} "
                     f"(master name {self.redis_ha.master_name})")
            self.say(f"  use:     kubelite --server {server} get nodes  "
                     f"(or KUBELITE_SERVER={server})")
        else:
            self.say(f"  redis:   {redis_url}"
                     + (f" (data in {self.redis.workdir})" if self.redis else ""))
        for child in self.children:
            if child.name == "dns":
                self.say(f"  DNS:     {dns_listen(child.argv)} (cluster.local; UDP and TCP)")
        self.say("  metrics:")
        for name, port in self.metrics.items():
            self.say(f"    {name + ':':<14} http://127.0.0.1:{port}/metrics")
        self.say(f"  logs:    {self.log_dir}/"
                 + (f" (redis: {self.redis.process.log_path})"
                    if self.redis and self.redis.process else ""))
        started = ", ".join(f"{c.name} (pid {c.pid})" for c in self.children)
        self.say(f"  processes: {started}")
        self.say("For kubectl and the Kubernetes client libraries:")
        self.say(f"export KUBECONFIG={kubeconfig}")
        self.say("Press Ctrl-C to stop.")

    def _primary_file(self) -> Path:
        return self.data_dir / "redis" / "primary"

    def _last_primary(self) -> int:
        """The Redis server that was the primary when `up --ha` last stopped: its data
        is the newest, so it must not resynchronize from the other."""
        try:
            return int(self._primary_file().read_text().strip())
        except (OSError, ValueError):
            return 0

    def watch_children(self) -> None:
        """Returns never: raises ChildDied when a child exits, Shutdown on a signal.

        With --ha a dead child is reported and started again instead.
        """
        died: dict[str, float] = {}
        while True:
            for child in self.children:
                if child.alive():
                    continue
                code = child.proc.returncode if child.proc else None
                if not self.options.ha:
                    raise ChildDied(f"{child.name} exited unexpectedly with code {code} "
                                    f"(see {child.log_path})")
                now = time.monotonic()
                if child.name not in died:
                    died[child.name] = now
                    self.say(f"{child.name} exited with code {code}; restarting it in "
                             f"{HA_RESTART_DELAY_SECONDS:g}s (see {child.log_path})")
                elif now - died[child.name] >= HA_RESTART_DELAY_SECONDS:
                    del died[child.name]
                    child.start()
                    self.say(f"{child.name} restarted (pid {child.pid})")
            time.sleep(POLL_SECONDS)

    def stop(self) -> None:
        if self.redis_ha is not None:
            primary = self.redis_ha.primary()
            if primary is not None:
                self._primary_file().write_text(f"{self.redis_ha.servers.index(primary)}\n")
        for child in reversed(self.children):
            child.stop(STOP_GRACE_SECONDS)
        if self.redis is not None:
            self.redis.stop()  # in case a signal came between its start and our list


def _raise_shutdown(signum: int, frame: FrameType | None) -> None:
    raise Shutdown()


def run(options: UpOptions, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """Runs the cluster until a signal (exit 0) or a child's death (exit 1)."""
    out = out or sys.stdout
    err = err or sys.stderr
    if not 0 <= options.nodes <= MAX_NODES:
        raise CliError(f"--nodes must be between 0 and {MAX_NODES}")
    if cli.SILENCED_GRPC:
        os.environ.pop("GRPC_VERBOSITY", None)  # the children's logs should keep grpc's
    cluster = LocalCluster(options, out)
    previous = {sig: signal.signal(sig, _raise_shutdown) for sig in (signal.SIGTERM, signal.SIGINT)}
    code = 0
    try:
        cluster.start()
        cluster.watch_children()
    except (Shutdown, KeyboardInterrupt):
        pass
    except ChildDied as died:
        print(f"error: {died}", file=err, flush=True)
        code = 1
    except CliError as failure:
        print(f"error: {failure}", file=err, flush=True)
        code = 1
    finally:
        # A second Ctrl-C must not cut the orderly shutdown short.
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        cluster.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if code == 0:
        print("kubelite stopped", file=out, flush=True)
    return code

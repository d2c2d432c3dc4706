"""What every kubelite component process shares: flags, health, metrics,
leader election and a clean SIGTERM.

A component's `__main__` parses its flags (common ones via add_common_flags),
builds a frozen config, and hands `run_component` one coroutine: its work.
`run_component` serves gRPC health checking (and reflection) on
`--health-listen`, Prometheus metrics on `--metrics-port`, and stops the work
gracefully on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import Gauge, start_http_server

from kubelite.client import Client, default_server
from kubelite.config import add_flag
from kubelite.leaderelection import LeaderElector
from kubelite.supervise import supervise

log = logging.getLogger("kubelite.component")

LEADER_STATUS = Gauge("leader_election_master_status",
                      "1 while this process leads its lease, else 0.", ["name"])


@dataclass(frozen=True)
class CommonConfig:
    server: str
    health_listen: str
    metrics_port: int
    metrics_address: str
    log_level: str
    shutdown_grace: float


@dataclass(frozen=True)
class LeaderConfig:
    enabled: bool
    lease_name: str
    lease_namespace: str
    lease_duration: float
    renew_deadline: float
    retry_period: float
    identity: str


def add_common_flags(p: argparse.ArgumentParser, *, health_port: int, metrics_port: int) -> None:
    add_flag(p, "--server", default=default_server(),
             help="apiserver address, or several separated by commas (fail over)")
    add_flag(p, "--health-listen", default=f"127.0.0.1:{health_port}",
             help="gRPC health-checking address (port 0: any free port)")
    add_flag(p, "--metrics-port", default=metrics_port, help="Prometheus metrics port (0: off)")
    add_flag(p, "--metrics-address", default="127.0.0.1", help="metrics bind address")
    add_flag(p, "--log-level", default="info", help="debug, info, warning or error")
    add_flag(p, "--shutdown-grace", default=5.0, help="seconds to finish work on SIGTERM")


def common_config(args: argparse.Namespace) -> CommonConfig:
    return CommonConfig(server=args.server, health_listen=args.health_listen,
                        metrics_port=args.metrics_port, metrics_address=args.metrics_address,
                        log_level=args.log_level, shutdown_grace=args.shutdown_grace)


def add_leader_flags(p: argparse.ArgumentParser, *, lease_name: str) -> None:
    add_flag(p, "--leader-elect", default=True, help="run only while holding the lease")
    add_flag(p, "--leader-elect-resource-name", default=lease_name, help="the Lease's name")
    add_flag(p, "--leader-elect-resource-namespace", default="kube-system",
             help="the Lease's namespace")
    add_flag(p, "--leader-elect-lease-duration", default=15.0, help="lease duration, seconds")
    add_flag(p, "--leader-elect-renew-deadline", default=10.0, help="renew deadline, seconds")
    add_flag(p, "--leader-elect-retry-period", default=2.0, help="retry period, seconds")
    add_flag(p, "--identity", default="", help="leader identity (default: hostname_uuid)")


def leader_config(args: argparse.Namespace) -> LeaderConfig:
    identity = args.identity or f"{socket.gethostname()}_{uuid.uuid4()}"
    return LeaderConfig(
        enabled=args.leader_elect, lease_name=args.leader_elect_resource_name,
        lease_namespace=args.leader_elect_resource_namespace,
        lease_duration=args.leader_elect_lease_duration,
        renew_deadline=args.leader_elect_renew_deadline,
        retry_period=args.leader_elect_retry_period, identity=identity,
    )


async def run_leader_elected(client: Client, config: LeaderConfig,
                             work: Callable[[], Awaitable[None]]) -> None:
    """Runs `work` only while this process holds the lease (or always, if disabled)."""
    if not config.enabled:
        LEADER_STATUS.labels(config.lease_name).set(1)
        await supervise(f"leader-{config.lease_name}", work, logger=log)
        return

    def started() -> Awaitable[None]:
        LEADER_STATUS.labels(config.lease_name).set(1)
        log.info("became leader", extra={"kv": {"lease": config.lease_name,
                                                "identity": config.identity}})
        return work()

    def stopped() -> None:
        LEADER_STATUS.labels(config.lease_name).set(0)
        log.info("stopped leading", extra={"kv": {"lease": config.lease_name}})

    LEADER_STATUS.labels(config.lease_name).set(0)
    elector = LeaderElector(
        client, name=config.lease_name, namespace=config.lease_namespace,
        identity=config.identity, lease_duration=config.lease_duration,
        renew_deadline=config.renew_deadline, retry_period=config.retry_period,
        on_started_leading=started, on_stopped_leading=stopped,
    )
    await elector.run()


async def run_component(name: str, config: CommonConfig,
                        work: Callable[[], Awaitable[None]], *,
                        register: Callable[[grpc.aio.Server], list[str]] | None = None,
                        ready: asyncio.Event | None = None) -> None:
    """Serves health and metrics, runs `work` until SIGTERM/SIGINT, then stops cleanly.

    `register` may add the component's own gRPC services to the same server (the
    kubelet's Logs); it returns their full names, for reflection. Health turns
    SERVING once `ready` is set (the kubelet sets it when its Node is registered),
    or at once when there is no `ready`.
    """
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = register(server) if register else []
    reflection.enable_server_reflection(
        [*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    port = server.add_insecure_port(config.health_listen)
    if port == 0:
        raise SystemExit(f"kubelite-{name}: cannot listen on {config.health_listen}")
    await server.start()
    if config.metrics_port:
        start_http_server(config.metrics_port, addr=config.metrics_address)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(work(), name=f"{name}-main")

    async def serving() -> None:
        if ready is not None:
            await ready.wait()
        await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)

    announcer = asyncio.create_task(serving())
    log.info(f"{name} started", extra={"kv": {
        "server": config.server, "health": f"{config.health_listen.rsplit(':', 1)[0]}:{port}",
        "metrics_port": config.metrics_port, "pid": os.getpid()}})
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    exit_code = 0
    if task in done:
        exc = task.exception()
        if exc is not None:
            log.error(f"{name} failed", exc_info=exc)
            exit_code = 1
    else:
        log.info("shutting down")
        task.cancel()
        try:
            await asyncio.wait_for(asyncio.gather(task, return_exceptions=True),
                                   config.shutdown_grace)
        except TimeoutError:
            log.warning("work did not stop in time")
    stopper.cancel()
    announcer.cancel()
    await health_servicer.enter_graceful_shutdown()
    await server.stop(1.0)
    if exit_code:
        raise SystemExit(exit_code)

"""The apiserver process: flags → Config → wiring → serve until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from kubelite.api.v1 import api_pb2, api_pb2_grpc
from kubelite.config import add_flag, setup_logging
from kubelite.errors import UnavailableError
from kubelite.resources import RESOURCES
from kubelite.supervise import spawn

from . import rest
from .allocators import ServiceAllocator
from .metrics import track_storage
from .registry import Registry
from .service import ApiService
from .storage import Storage, parse_sentinels
from .validation import DEFAULT_SCHEMA_VERSION, resolve_schema_version
from .watchcache import WatchCache

log = logging.getLogger("kubelite.apiserver")


@dataclass(frozen=True)
class Config:
    listen: str
    rest_listen: str
    redis_url: str
    redis_sentinels: str
    redis_master_name: str
    redis_min_replicas: int
    redis_wait_timeout: float
    metrics_port: int
    metrics_address: str
    history: int
    watch_cache_size: int
    bookmark_interval: float
    storage_timeout: float
    key_prefix: str
    schema_version: str
    service_cluster_ip_range: str
    service_node_port_range: tuple[int, int]
    shutdown_grace: float
    log_level: str
    toleration_seconds: tuple[int, int] = (300, 300)  # (not-ready, unreachable)


def parse_args(argv: list[str] | None = None) -> Config:
    p = argparse.ArgumentParser(prog="kubelite-apiserver", description=__doc__)
    add_flag(p, "--listen", default="127.0.0.1:6443", help="gRPC address to serve on")
    add_flag(p, "--rest-listen", default="",
             help="HOST:PORT for Kubernetes' REST API (plain HTTP; empty: off)")
    add_flag(p, "--redis-url", default="redis://127.0.0.1:6379/0", help="Redis to store in")
    add_flag(p, "--redis-sentinels", default="",
             help="host:port,... of Redis Sentinels: find the primary through them and "
                  "follow its failovers (--redis-url is then unused)")
    add_flag(p, "--redis-master-name", default="kubelite",
             help="the name the Sentinels monitor the primary under")
    add_flag(p, "--redis-min-replicas", default=0,
             help="acknowledge a write only once this many replicas hold it (WAIT; 0: off)")
    add_flag(p, "--redis-wait-timeout", default=1.0,
             help="seconds a write waits for its replicas before it is refused as "
                  "UNAVAILABLE")
    add_flag(p, "--metrics-port", default=0, help="Prometheus metrics port (0: off)")
    add_flag(p, "--metrics-address", default="127.0.0.1", help="metrics bind address")
    add_flag(p, "--history", default=10000,
             help="events kept in the stream; older revisions cannot be watched from")
    add_flag(p, "--watch-cache-size", default=5000, help="recent events kept in memory")
    add_flag(p, "--bookmark-interval", default=60.0,
             help="seconds of quiet after which a watch gets a BOOKMARK")
    add_flag(p, "--storage-timeout", default=5.0, help="seconds a Redis call may take")
    add_flag(p, "--key-prefix", default="kl", help="prefix of every Redis key")
    add_flag(p, "--schema-version", default=DEFAULT_SCHEMA_VERSION,
             help="Kubernetes version whose JSON schemas validate objects")
    add_flag(p, "--service-cluster-ip-range", default="127.96.0.0/16",
             help="CIDR ClusterIPs come from (loopback for the process runtime)")
    add_flag(p, "--service-node-port-range", default="30000-32767",
             help="range NodePorts come from")
    add_flag(p, "--event-ttl", default="", type=str,
             help="DEPRECATED, ignored: the controller manager's --event-ttl expires Events")
    add_flag(p, "--shutdown-grace", default=5.0, help="seconds to finish calls on SIGTERM")
    add_flag(p, "--log-level", default="info", help="debug, info, warning or error")
    add_flag(p, "--default-not-ready-toleration-seconds", default=300,
             help="the tolerationSeconds every pod gets for node.kubernetes.io/not-ready:NoExecute")
    add_flag(p, "--default-unreachable-toleration-seconds", default=300,
             help="the tolerationSeconds every pod gets for "
                  "node.kubernetes.io/unreachable:NoExecute")
    a = p.parse_args(argv)
    if a.event_ttl:
        log.warning("--event-ttl is deprecated and ignored: Events now expire in the "
                    "controller manager (its --event-ttl)")
    return Config(
        listen=a.listen, rest_listen=a.rest_listen, redis_url=a.redis_url,
        redis_sentinels=a.redis_sentinels,
        redis_master_name=a.redis_master_name, redis_min_replicas=a.redis_min_replicas,
        redis_wait_timeout=a.redis_wait_timeout, metrics_port=a.metrics_port,
        metrics_address=a.metrics_address, history=a.history,
        watch_cache_size=a.watch_cache_size, bookmark_interval=a.bookmark_interval,
        storage_timeout=a.storage_timeout, key_prefix=a.key_prefix,
        schema_version=resolve_schema_version(a.schema_version),
        service_cluster_ip_range=a.service_cluster_ip_range,
        service_node_port_range=_port_range(p, a.service_node_port_range),
        shutdown_grace=a.shutdown_grace, log_level=a.log_level,
        toleration_seconds=(a.default_not_ready_toleration_seconds,
                            a.default_unreachable_toleration_seconds),
    )


def _port_range(parser: argparse.ArgumentParser, text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    if not (low.isdigit() and high.isdigit() and 0 < int(low) <= int(high) < 65536):
        parser.error(f"--service-node-port-range: expected LOW-HIGH, got {text!r}")
    return int(low), int(high)


async def _bootstrap(registry: Registry, health_servicer: health.aio.HealthServicer) -> None:
    """Creates the initial namespaces once Redis answers, then reports SERVING."""
    delay = 0.1
    while True:
        try:
            await registry.storage.ping()
            await registry.ensure_initial_namespaces()
            break
        except UnavailableError as err:
            log.warning("waiting for redis", extra={"kv": {"error": err.message}})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    await health_servicer.set("kubelite.api.v1.Api", health_pb2.HealthCheckResponse.SERVING)
    log.info("apiserver is serving")


async def serve(config: Config) -> None:
    storage = Storage(config.redis_url, prefix=config.key_prefix, history=config.history,
                      timeout=config.storage_timeout,
                      sentinels=parse_sentinels(config.redis_sentinels),
                      master_name=config.redis_master_name,
                      min_replicas=config.redis_min_replicas,
                      wait_timeout=config.redis_wait_timeout)
    registry = Registry(storage, schema_version=config.schema_version,
                        services=ServiceAllocator(config.service_cluster_ip_range,
                                                  config.service_node_port_range),
                        toleration_seconds=config.toleration_seconds)
    # The ring never reaches further back than the stream, so that a revision
    # trimmed from --history is OUT_OF_RANGE whichever of the two would serve it.
    cache = WatchCache(storage, size=min(config.watch_cache_size, config.history))
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", 16 * 1024 * 1024),
        ("grpc.max_send_message_length", 16 * 1024 * 1024),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.so_reuseport", 0),  # a second apiserver on the port must fail, not share it
    ])
    service = ApiService(registry, cache, bookmark_interval=config.bookmark_interval)
    api_pb2_grpc.add_ApiServicer_to_server(service, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection([
        api_pb2.DESCRIPTOR.services_by_name["Api"].full_name,
        health.SERVICE_NAME,
        reflection.SERVICE_NAME,
    ], server)
    await health_servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    port = server.add_insecure_port(config.listen)
    if port == 0:
        raise SystemExit(f"kubelite-apiserver: cannot listen on {config.listen}")
    if config.metrics_port:
        start_http_server(config.metrics_port, addr=config.metrics_address)
    await server.start()
    await cache.start()
    rest_runner = None
    if config.rest_listen:
        try:
            rest_runner = await rest.start(service, listen=config.rest_listen,
                                           schema_version=config.schema_version,
                                           shutdown_grace=config.shutdown_grace)
        except OSError as err:
            raise SystemExit(f"kubelite-apiserver: cannot listen on {config.rest_listen}: "
                             f"{err.strerror}") from None
    log.info("apiserver started", extra={"kv": {
        "listen": config.listen, "rest_listen": config.rest_listen,
        "redis": (f"sentinels {config.redis_sentinels} ({config.redis_master_name})"
                  if config.redis_sentinels else config.redis_url),
        "min_replicas": config.redis_min_replicas, "schemas": config.schema_version,
        "metrics_port": config.metrics_port}})
    # One-shot, and it retries Redis itself; a bug in it must still not pass silently.
    bootstrap = spawn("apiserver-bootstrap", lambda: _bootstrap(registry, health_servicer),
                      logger=log)
    storage_metrics = spawn("apiserver-storage-metrics", lambda: track_storage(
        storage, cache, [info.plural for info in RESOURCES]), logger=log)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await health_servicer.enter_graceful_shutdown()
    bootstrap.cancel()
    storage_metrics.cancel()
    if rest_runner is not None:
        await rest_runner.shutdown()
    await cache.stop()
    await server.stop(config.shutdown_grace)
    if rest_runner is not None:
        await rest_runner.cleanup()
    await storage.close()


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    setup_logging(config.log_level)
    asyncio.run(serve(config))


if __name__ == "__main__":
    main()

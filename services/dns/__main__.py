"""The cluster DNS process: flags → Config → wiring → serve until SIGTERM.

    python -m services.dns --server HOST:PORT --listen 0.0.0.0:53 \\
        [--cluster-domain cluster.local] [--upstream 10.0.0.2:53,...]

It answers for the cluster domain from Services and Endpoints (watched through
the apiserver) and forwards every other name to --upstream, or to the
nameservers of --resolv-conf (the host's, as CoreDNS's `forward . /etc/resolv.conf`).
Health (gRPC) and metrics (CoreDNS's names, port 9153 as CoreDNS's) as every
component. See docs/dns.md.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from dataclasses import dataclass

from kubelite.client import Client
from kubelite.component import CommonConfig, add_common_flags, common_config, run_component
from kubelite.config import add_flag, setup_logging

from .records import RecordTable
from .server import DnsServer, Forwarder, Upstream, listen
from .watcher import RecordWatcher

log = logging.getLogger("kubelite.dns")


@dataclass(frozen=True)
class Config:
    common: CommonConfig
    listen_host: str
    listen_port: int
    cluster_domain: str
    upstreams: tuple[Upstream, ...]
    forward_timeout: float
    ttl: int


def parse_host_port(text: str, default_port: int) -> tuple[str, int]:
    """host, host:port, [v6]:port or a bare v6 address."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, default_port


def resolv_conf_nameservers(path: str) -> list[str]:
    """The nameserver lines of a resolv.conf; [] when it is missing."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            out.append(fields[1])
    return out


def parse_args(argv: list[str] | None = None) -> Config:
    p = argparse.ArgumentParser(prog="kubelite-dns", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_flags(p, health_port=10053, metrics_port=9153)
    add_flag(p, "--listen", default="0.0.0.0:53", help="UDP and TCP address to answer on")
    add_flag(p, "--cluster-domain", default="cluster.local", help="the zone to answer for")
    add_flag(p, "--upstream", default="",
             help="comma-separated resolvers (host[:port]) for every other name; "
                  "empty: the nameservers of --resolv-conf")
    add_flag(p, "--resolv-conf", default="/etc/resolv.conf",
             help="where the upstreams are read from when --upstream is empty")
    add_flag(p, "--forward-timeout", default=2.0,
             help="seconds to wait for one upstream before trying the next")
    add_flag(p, "--ttl", default=5, help="TTL of the cluster's records (CoreDNS's default)")
    a = p.parse_args(argv)
    try:
        host, port = parse_host_port(a.listen, 53)
        texts = [t for t in a.upstream.split(",") if t.strip()] or \
            resolv_conf_nameservers(a.resolv_conf)
        upstreams = tuple(Upstream(*parse_host_port(t, 53)) for t in texts)
    except ValueError as err:
        p.error(f"bad address: {err}")
    if not upstreams:
        log.warning("no upstream resolvers: names outside the cluster get SERVFAIL")
    if a.ttl < 0 or a.forward_timeout <= 0:
        p.error("--ttl must be >= 0 and --forward-timeout > 0")
    return Config(common=common_config(a), listen_host=host, listen_port=port,
                  cluster_domain=a.cluster_domain.strip(".").lower(), upstreams=upstreams,
                  forward_timeout=a.forward_timeout, ttl=a.ttl)


async def serve(config: Config) -> None:
    ready = asyncio.Event()

    async def work() -> None:
        client = Client(config.common.server)
        table = RecordTable(config.cluster_domain)
        watcher = RecordWatcher(client, table)
        server = DnsServer(table, Forwarder(config.upstreams, timeout=config.forward_timeout),
                           ttl=config.ttl, server_label=f"dns://:{config.listen_port}")
        listeners = None
        try:
            await watcher.start()
            listeners = await listen(server, config.listen_host, config.listen_port)
            log.info("answering", extra={"kv": {
                "listen": f"{config.listen_host}:{listeners.port}",
                "zone": table.zone, "upstreams": ",".join(map(str, config.upstreams))}})
            ready.set()
            await asyncio.Event().wait()
        finally:
            if listeners is not None:
                await listeners.close()
            await server.drain()
            await watcher.stop()
            await client.close()

    await run_component("dns", config.common, work, ready=ready)


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    setup_logging(config.common.log_level)
    asyncio.run(serve(config))


if __name__ == "__main__":
    main()

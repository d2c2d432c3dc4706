"""The proxy process: flags → Config → wiring → run_component until SIGTERM.

    python -m services.proxy --server HOST:PORT --mode userspace|iptables \\
        --node-ip 127.0.0.1 --node-name NAME
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shlex
import socket
from dataclasses import dataclass

from kubelite.client import Client
from kubelite.component import CommonConfig, add_common_flags, common_config, run_component
from kubelite.config import add_flag, setup_logging
from kubelite.events import NORMAL, WARNING, EventRecorder
from kubelite.supervise import supervise

from .balancer import MODES, ROUND_ROBIN
from .iptables import Iptables, IptablesProxier
from .model import ServicePort
from .rules import RenderOptions
from .tracker import ServiceTracker
from .userspace import UserspaceProxier
from .vips import VipManager

log = logging.getLogger("kubelite.proxy")

USERSPACE = "userspace"
IPTABLES = "iptables"


@dataclass(frozen=True)
class Config:
    common: CommonConfig
    mode: str
    node_name: str
    node_ip: str
    balancing: str
    connect_timeout: float
    min_sync_period: float
    sync_period: float
    iptables: str
    iptables_exec_prefix: tuple[str, ...]
    masquerade_all: bool
    masquerade_bit: int
    cluster_cidr: str
    random_fully: bool
    cluster_ip_interface: str


def parse_args(argv: list[str] | None = None) -> Config:
    p = argparse.ArgumentParser(prog="kubelite-proxy", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_flags(p, health_port=10256, metrics_port=10249)
    add_flag(p, "--mode", default=USERSPACE, choices=[USERSPACE, IPTABLES],
             help="how Services are load-balanced")
    add_flag(p, "--node-name", default=socket.gethostname(), help="this node's name")
    add_flag(p, "--node-ip", default="127.0.0.1", help="this node's IP: NodePorts listen here")
    add_flag(p, "--balancing", default=ROUND_ROBIN, choices=list(MODES),
             help="userspace: how a connection's endpoint is chosen")
    add_flag(p, "--connect-timeout", default=1.0,
             help="userspace: seconds to connect to an endpoint before trying another")
    add_flag(p, "--min-sync-period", default=1.0,
             help="iptables: least seconds between two rule syncs")
    add_flag(p, "--sync-period", default=30.0,
             help="seconds between full resyncs (iptables), listener retries (userspace)")
    add_flag(p, "--iptables", default="iptables",
             help="iptables: the binary; -save and -restore are found beside it by name")
    add_flag(p, "--iptables-exec-prefix", default="",
             help="iptables: a command to run iptables under, e.g. 'ip netns exec NAME'")
    add_flag(p, "--masquerade-all", default=False,
             help="iptables: SNAT all traffic sent to ClusterIPs")
    add_flag(p, "--masquerade-bit", default=14,
             help="iptables: the fwmark bit that marks packets for SNAT (0-31)")
    add_flag(p, "--cluster-cidr", default="",
             help="iptables: traffic to ClusterIPs from outside this CIDR is SNATed")
    add_flag(p, "--random-fully", default=False,
             help="iptables: MASQUERADE with --random-fully")
    add_flag(p, "--cluster-ip-interface", default="",
             help="userspace: add each ClusterIP as a /32 to this interface before binding it "
                  "(docker runtime; needs NET_ADMIN). Empty: ClusterIPs are already local")
    a = p.parse_args(argv)
    if not 0 <= a.masquerade_bit <= 31:
        p.error("--masquerade-bit must be within 0-31")
    if a.min_sync_period < 0 or a.sync_period <= 0:
        p.error("--min-sync-period must be >= 0 and --sync-period > 0")
    return Config(
        common=common_config(a), mode=a.mode, node_name=a.node_name, node_ip=a.node_ip,
        balancing=a.balancing, connect_timeout=a.connect_timeout,
        min_sync_period=a.min_sync_period, sync_period=a.sync_period, iptables=a.iptables,
        iptables_exec_prefix=tuple(shlex.split(a.iptables_exec_prefix)),
        masquerade_all=a.masquerade_all, masquerade_bit=a.masquerade_bit,
        cluster_cidr=a.cluster_cidr, random_fully=a.random_fully,
        cluster_ip_interface=a.cluster_ip_interface,
    )


def _ref(kind: str, name: str, namespace: str = "") -> dict:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"kind": kind, "apiVersion": "v1", "metadata": meta}


async def run(config: Config) -> None:
    client = Client(config.common.server)
    recorder = EventRecorder(client, component="kube-proxy", host=config.node_name)
    tracker: ServiceTracker

    def listen_failed(sp: ServicePort, message: str) -> None:
        service = tracker.services.get(sp.key) or _ref("Service", sp.name, sp.namespace)
        recorder.event(service, WARNING, "FailedToListen", message)

    proxier: UserspaceProxier | IptablesProxier
    if config.mode == IPTABLES:
        proxier = IptablesProxier(
            iptables=Iptables(binary=config.iptables, exec_prefix=config.iptables_exec_prefix),
            options=RenderOptions(masquerade_bit=config.masquerade_bit,
                                  masquerade_all=config.masquerade_all,
                                  cluster_cidr=config.cluster_cidr,
                                  random_fully=config.random_fully),
            min_sync_period=config.min_sync_period, sync_period=config.sync_period)
    else:
        proxier = UserspaceProxier(
            node_ip=config.node_ip, balancing=config.balancing,
            connect_timeout=config.connect_timeout, sync_period=config.sync_period,
            vips=VipManager(config.cluster_ip_interface) if config.cluster_ip_interface
            else None,
            on_listen_error=listen_failed)
    tracker = ServiceTracker(client, proxier)
    recorder.event(_ref("Node", config.node_name), NORMAL, "Starting",
                   f"Starting kubelite-proxy ({config.mode} mode).")
    try:
        await tracker.start()
        # Supervised: a sync loop that raised would leave stale rules in place.
        await supervise("proxy-sync", proxier.run, logger=log)
    finally:
        await tracker.stop()
        await recorder.stop()
        await client.close()


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    setup_logging(config.common.log_level)
    asyncio.run(run_component("proxy", config.common, lambda: run(config)))


if __name__ == "__main__":
    main()

"""The kubelet's flags (each with a KUBELITE_* environment equivalent) and the
frozen config built from them."""

from __future__ import annotations

import argparse
import os
import socket
import zlib
from dataclasses import dataclass, field

from kubelite.component import CommonConfig, add_common_flags, common_config
from kubelite.config import add_flag
from kubelite.errors import InvalidError
from kubelite.quantity import cpu_millis, format_bytes, format_cpu, parse_quantity, to_int

DEFAULT_LISTEN = "127.0.0.1:0"
DEFAULT_METRICS_PORT = 10255


@dataclass(frozen=True)
class KubeletConfig:
    common: CommonConfig
    node_name: str
    listen: str  # host:port of the Kubelet gRPC service (and health), port resolved
    node_ip: str  # the InternalIP published in Node status
    root_dir: str
    pod_cidr: str
    runtime: str
    capacity: dict[str, str]  # cpu, memory, pods
    node_labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[dict[str, str], ...] = ()
    node_lease_duration: float = 40.0
    node_lease_renew_interval: float = 10.0
    node_status_update_frequency: float = 10.0
    backoff_base: float = 10.0
    backoff_cap: float = 300.0
    backoff_reset: float = 600.0
    pleg_relist_period: float = 1.0
    sync_frequency: float = 30.0
    orphan_grace: float = 2.0
    probe_period_scale: float = 1.0
    kill_pods_on_exit: bool = False
    stats_period: float = 10.0
    docker_host: str = ""  # --runtime docker: the engine (empty: $DOCKER_HOST or the socket)
    docker_network: str = "bridge"
    pod_infra_image: str = "kubelite:latest"
    cluster_dns: tuple[str, ...] = ()  # pods' nameservers for dnsPolicy ClusterFirst
    cluster_domain: str = "cluster.local"
    resolv_conf: str = "/etc/resolv.conf"  # dnsPolicy Default's
    allow_privileged: bool = False  # privileged containers (the kubelet holds the socket)
    allow_host_path: bool = False

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])


def add_kubelet_flags(p: argparse.ArgumentParser) -> None:
    add_common_flags(p, health_port=0, metrics_port=DEFAULT_METRICS_PORT)
    add_flag(p, "--node-name", default="", help="this node's name (default: the hostname)")
    add_flag(p, "--listen", default="",
             help="HOST:PORT of the Kubelet gRPC service (Logs) and of gRPC health; port 0 "
                  f"picks a free one (default: --health-listen, else {DEFAULT_LISTEN})")
    add_flag(p, "--node-ip", default="",
             help="the InternalIP to publish (default: the --listen host, or the hostname's "
                  "address when that is a wildcard)")
    add_flag(p, "--root-dir", default="",
             help="container state and logs (default: .kubelite/kubelet/NODE_NAME)")
    add_flag(p, "--pod-cidr", default="",
             help="pod IPs come from here, e.g. 127.11.0.0/16 (default: a /16 of 127/8 "
                  "derived from the node name)")
    add_flag(p, "--runtime", default="process",
             help="container runtime: process (local processes) or docker (sibling containers)",
             choices=["process", "docker"])
    add_flag(p, "--docker-host", default="",
             help="the Docker engine for --runtime docker (default: $DOCKER_HOST, else "
                  "unix:///var/run/docker.sock)")
    add_flag(p, "--docker-network", default="bridge",
             help="the Docker network pods run on; a pod's IP is its address there")
    add_flag(p, "--pod-infra-image", default="kubelite:latest",
             help="the image of each pod's holder (pause) container: its ENTRYPOINT if it has "
                  "one, else `sleep infinity`")
    add_flag(p, "--cluster-dns", default="",
             help="comma-separated IPs of the cluster DNS, the nameservers of ClusterFirst "
                  "pods (empty: they get dnsPolicy Default)")
    add_flag(p, "--cluster-domain", default="cluster.local",
             help="the cluster's DNS domain, in the pods' search list")
    add_flag(p, "--resolv-conf", default="/etc/resolv.conf",
             help="the resolv.conf that pods with dnsPolicy Default get")
    add_flag(p, "--cpu", default="", help="cpu capacity, e.g. 4 or 3500m (default: the host's)")
    add_flag(p, "--memory", default="",
             help="memory capacity, e.g. 8Gi (default: MemTotal of /proc/meminfo)")
    add_flag(p, "--max-pods", default=110, help="pods capacity")
    add_flag(p, "--node-labels", default="", help="extra Node labels: k=v,k2=v2")
    add_flag(p, "--register-with-taints", default="",
             help="taints to register the Node with: key=value:Effect,key:Effect")
    add_flag(p, "--node-lease-duration", default=40.0, help="node Lease duration, seconds")
    add_flag(p, "--node-lease-renew-interval", default=10.0,
             help="seconds between node Lease renewals")
    add_flag(p, "--node-status-update-frequency", default=10.0,
             help="seconds between Node status (Ready heartbeat) updates")
    add_flag(p, "--backoff-base", default=10.0, help="first CrashLoopBackOff delay, seconds")
    add_flag(p, "--backoff-cap", default=300.0, help="largest CrashLoopBackOff delay, seconds")
    add_flag(p, "--backoff-reset", default=600.0,
             help="a container that ran this long starts its back-off over, seconds")
    add_flag(p, "--pleg-relist-period", default=1.0,
             help="seconds between relists of the runtime's containers (exit detection)")
    add_flag(p, "--sync-frequency", default=30.0, help="seconds between resyncs of every pod")
    add_flag(p, "--orphan-grace", default=2.0,
             help="grace period, seconds, for containers whose Pod object is gone")
    add_flag(p, "--probe-period-scale", default=1.0,
             help="multiplies every probe's periodSeconds and initialDelaySeconds; the API "
                  "only takes whole seconds, so tests run probes faster with e.g. 0.2")
    add_flag(p, "--stats-period", default=10.0,
             help="seconds between samples of container and node usage (the Stats summary "
                  "behind `kubelite top` and the HPA; cpu is the rate between two samples)")
    add_flag(p, "--allow-privileged", default=False,
             help="run containers with securityContext.privileged (off by default: the "
                  "kubelet holds the Docker socket, and a privileged pod could take the node)")
    add_flag(p, "--allow-host-path", default=False,
             help="run pods with hostPath volumes (refused by default: the kubelet holds the "
                  "runtime's socket, so a hostPath can give a pod the node)")
    add_flag(p, "--kill-pods-on-exit", default=False,
             help="stop every container when the kubelet exits (by default they keep running "
                  "and a restarted kubelet adopts them)")


def parse_labels(text: str) -> dict[str, str]:
    labels = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"invalid label {item!r}: expected key=value")
        labels[key] = value
    return labels


def parse_taints(text: str) -> tuple[dict[str, str], ...]:
    taints = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        head, sep, effect = item.rpartition(":")
        if not sep or effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            raise ValueError(f"invalid taint {item!r}: expected key[=value]:Effect")
        key, _, value = head.partition("=")
        taint = {"key": key, "effect": effect}
        if value:
            taint["value"] = value
        taints.append(taint)
    return tuple(taints)


def host_memory_bytes(meminfo: str = "/proc/meminfo") -> int:
    try:
        with open(meminfo) as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def capacity(cpu: str, memory: str, max_pods: int) -> dict[str, str]:
    try:
        millis = cpu_millis(cpu) if cpu else (os.cpu_count() or 1) * 1000
        mem = to_int(parse_quantity(memory)) if memory else host_memory_bytes()
    except InvalidError as err:
        raise ValueError(str(err)) from None
    return {"cpu": format_cpu(millis), "memory": _format_memory(mem), "pods": str(max_pods)}


def _format_memory(value: int) -> str:
    if value % 1024 == 0:
        text = format_bytes(value)
        if text[-2:] in ("Ki", "Mi", "Gi"):
            return text
        return f"{value // 1024}Ki"
    return str(value)


def default_pod_cidr(node_name: str) -> str:
    """A /16 of 127/8 picked from the node's name (127.16.0.0 to 127.215.0.0)."""
    return f"127.{16 + zlib.crc32(node_name.encode()) % 200}.0.0/16"


def resolve_listen(listen: str) -> str:
    """host:port with port 0 replaced by a free port on host."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"invalid listen address {listen!r}: expected HOST:PORT")
    host = host or "127.0.0.1"
    if port == "0":
        bind = "0.0.0.0" if host in ("0.0.0.0", "[::]", "::") else host
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((bind, 0))
            port = str(sock.getsockname()[1])
    return f"{host}:{port}"


def node_ip_for(listen_host: str) -> str:
    if listen_host not in ("", "0.0.0.0", "[::]", "::"):
        return listen_host.strip("[]")
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def config_from_args(args: argparse.Namespace) -> KubeletConfig:
    common = common_config(args)
    node_name = args.node_name or socket.gethostname().lower()
    listen = resolve_listen(args.listen or args.health_listen or DEFAULT_LISTEN)
    common = CommonConfig(server=common.server, health_listen=listen,
                          metrics_port=common.metrics_port,
                          metrics_address=common.metrics_address,
                          log_level=common.log_level, shutdown_grace=common.shutdown_grace)
    return KubeletConfig(
        common=common,
        node_name=node_name,
        listen=listen,
        node_ip=args.node_ip or node_ip_for(listen.rsplit(":", 1)[0]),
        root_dir=os.path.abspath(args.root_dir or os.path.join(".kubelite", "kubelet",
                                                                node_name)),
        pod_cidr=args.pod_cidr or default_pod_cidr(node_name),
        runtime=args.runtime,
        capacity=capacity(args.cpu, args.memory, args.max_pods),
        node_labels=parse_labels(args.node_labels),
        taints=parse_taints(args.register_with_taints),
        node_lease_duration=args.node_lease_duration,
        node_lease_renew_interval=args.node_lease_renew_interval,
        node_status_update_frequency=args.node_status_update_frequency,
        backoff_base=args.backoff_base,
        backoff_cap=args.backoff_cap,
        backoff_reset=args.backoff_reset,
        pleg_relist_period=args.pleg_relist_period,
        sync_frequency=args.sync_frequency,
        orphan_grace=args.orphan_grace,
        probe_period_scale=args.probe_period_scale,
        kill_pods_on_exit=args.kill_pods_on_exit,
        stats_period=args.stats_period,
        docker_host=args.docker_host,
        docker_network=args.docker_network,
        pod_infra_image=args.pod_infra_image,
        cluster_dns=tuple(s.strip() for s in args.cluster_dns.split(",") if s.strip()),
        cluster_domain=args.cluster_domain.strip("."),
        resolv_conf=args.resolv_conf,
        allow_privileged=args.allow_privileged,
        allow_host_path=args.allow_host_path,
    )

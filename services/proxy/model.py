"""What a proxy routes: one `ServicePort` per port of a Service, with its Ready endpoints.

Both modes work from the same flat records, built by one pure function from a
Service and its Endpoints. Endpoints ports are matched to Service ports by
*name* (and protocol), as kube-proxy matches them; only `addresses` count,
never `notReadyAddresses`. Endpoints are sorted, so that an Endpoints object
that merely reorders its addresses changes nothing downstream.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

DEFAULT_AFFINITY_TIMEOUT = 10800  # seconds, Kubernetes' default for ClientIP affinity


@dataclass(frozen=True, order=True)
class Endpoint:
    ip: str
    port: int
    node_name: str = ""

    @property
    def address(self) -> str:
        """`ip:port`, as kube-proxy spells an endpoint."""
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class ServicePort:
    namespace: str
    name: str
    port_name: str
    protocol: str  # TCP, UDP or SCTP
    cluster_ip: str
    port: int
    node_port: int = 0
    #: ClientIP affinity timeout in seconds, or None without session affinity.
    affinity_timeout: int | None = None
    endpoints: tuple[Endpoint, ...] = ()

    @property
    def key(self) -> str:
        """`namespace/name`, the Service's key."""
        return f"{self.namespace}/{self.name}"

    @property
    def port_name_string(self) -> str:
        """kube-proxy's ServicePortName: `namespace/name:port`, or `namespace/name` unnamed."""
        suffix = f":{self.port_name}" if self.port_name else ""
        return f"{self.namespace}/{self.name}{suffix}"


def _ip_sort_key(ep: Endpoint) -> tuple[int, int, str]:
    try:
        return int(ipaddress.ip_address(ep.ip)), ep.port, ep.node_name
    except ValueError:
        return -1, ep.port, ep.ip


def ready_endpoints(endpoints: dict[str, Any] | None, port_name: str,
                    protocol: str) -> tuple[Endpoint, ...]:
    """The Ready endpoints for the Service port named port_name, sorted, without repeats."""
    found: set[Endpoint] = set()
    for subset in (endpoints or {}).get("subsets") or []:
        ports = [p for p in subset.get("ports") or []
                 if (p.get("name") or "") == port_name
                 and (p.get("protocol") or "TCP") == protocol and p.get("port")]
        for port in ports:
            for address in subset.get("addresses") or []:
                if address.get("ip"):
                    found.add(Endpoint(address["ip"], int(port["port"]),
                                       address.get("nodeName") or ""))
    # One address may be listed under two node names by a confused writer; keep one.
    unique: dict[tuple[str, int], Endpoint] = {}
    for ep in sorted(found, key=_ip_sort_key):
        unique.setdefault((ep.ip, ep.port), ep)
    return tuple(unique.values())


def affinity_timeout(spec: dict[str, Any]) -> int | None:
    if spec.get("sessionAffinity") != "ClientIP":
        return None
    config = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
    timeout = config.get("timeoutSeconds")
    return int(timeout) if timeout else DEFAULT_AFFINITY_TIMEOUT


def has_cluster_ip(service: dict[str, Any]) -> bool:
    spec = service.get("spec") or {}
    ip = spec.get("clusterIP") or ""
    return spec.get("type", "ClusterIP") != "ExternalName" and ip not in ("", "None")


def service_ports(service: dict[str, Any],
                  endpoints: dict[str, Any] | None) -> list[ServicePort]:
    """The ServicePorts of a Service: none for headless and ExternalName services."""
    if not has_cluster_ip(service):
        return []
    meta = service.get("metadata") or {}
    spec = service.get("spec") or {}
    timeout = affinity_timeout(spec)
    wants_node_ports = spec.get("type") in ("NodePort", "LoadBalancer")
    out = []
    for port in spec.get("ports") or []:
        name = port.get("name") or ""
        protocol = port.get("protocol") or "TCP"
        out.append(ServicePort(
            namespace=meta.get("namespace") or "default",
            name=meta.get("name") or "",
            port_name=name,
            protocol=protocol,
            cluster_ip=spec["clusterIP"],
            port=int(port["port"]),
            node_port=int(port.get("nodePort") or 0) if wants_node_ports else 0,
            affinity_timeout=timeout,
            endpoints=ready_endpoints(endpoints, name, protocol),
        ))
    return out

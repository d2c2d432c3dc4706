"""ClusterIPs and NodePorts for Services, allocated atomically in Redis.

An allocation is a claim: a field of an allocator hash (`kl:alloc:clusterip`,
`kl:alloc:nodeport`) naming the Service that holds it. Claims are written by
the same Lua script that writes the Service, and released by the one that
deletes it, so there are never duplicates, even across apiserver replicas,
and nothing leaks when a write fails. This module only plans: which values a
Service needs, chosen at random when the user left them unset.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass
from typing import Any

from kubelite.errors import InvalidError, PreconditionFailedError

CLUSTER_IP = "clusterip"
NODE_PORT = "nodeport"


@dataclass
class Claim:
    allocator: str
    value: str
    user_specified: bool
    path: str  # where the value lives in the Service, for error messages

    @property
    def pair(self) -> tuple[str, str]:
        return self.allocator, self.value


class ServiceAllocator:
    def __init__(self, cidr: str, node_ports: tuple[int, int]) -> None:
        try:
            self.network = ipaddress.ip_network(cidr, strict=False)
        except ValueError as err:
            raise SystemExit(f"invalid service cluster IP range {cidr!r}: {err}") from None
        if self.network.num_addresses < 8:
            raise SystemExit(f"service cluster IP range {cidr} is too small")
        self.node_ports = node_ports

    # -- choosing --------------------------------------------------------------

    def random_ip(self, taken: set[str] | None = None) -> str:
        # The network address and .1 (Kubernetes' own `kubernetes` service) are reserved.
        first, last = 2, self.network.num_addresses - 2
        if taken is None:
            return str(self.network[random.randint(first, last)])
        free = [str(self.network[i]) for i in range(first, last + 1)
                if str(self.network[i]) not in taken]
        if not free:
            raise PreconditionFailedError(f"no ClusterIPs left in the range {self.network}")
        return random.choice(free)

    def random_port(self, taken: set[str] | None = None) -> str:
        low, high = self.node_ports
        if taken is None:
            return str(random.randint(low, high))
        free = [str(p) for p in range(low, high + 1) if str(p) not in taken]
        if not free:
            raise PreconditionFailedError(f"no NodePorts left in the range {low}-{high}")
        return random.choice(free)

    def repick(self, svc: dict[str, Any], claim: Claim, taken: set[str] | None) -> None:
        """Replaces a randomly chosen value that turned out to be taken."""
        spec = svc["spec"]
        if claim.allocator == CLUSTER_IP:
            ip = self.random_ip(taken)
            spec["clusterIP"], spec["clusterIPs"] = ip, [ip]
            claim.value = ip
        else:
            index = int(claim.path.split("[")[1].split("]")[0])
            port = self.random_port(taken)
            spec["ports"][index]["nodePort"] = int(port)
            claim.value = port

    # -- planning --------------------------------------------------------------

    def _check_ip(self, ip: str, path: str) -> None:
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            raise InvalidError(f'{path}: Invalid value: "{ip}": must be a valid IP address') \
                from None
        if address not in self.network:
            raise InvalidError(f'{path}: Invalid value: "{ip}": provided IP is not in the valid '
                               f"range. The range of valid IPs is {self.network}")

    def _check_port(self, port: Any, path: str) -> None:
        low, high = self.node_ports
        if not isinstance(port, int) or not low <= port <= high:
            raise InvalidError(f"{path}: Invalid value: {port}: provided port is not in the "
                               f"valid range. The range of valid ports is {low}-{high}")

    def plan_create(self, svc: dict[str, Any]) -> list[Claim]:
        """Fills in clusterIP and nodePorts and returns the claims the Service needs."""
        spec = svc.setdefault("spec", {})
        claims: list[Claim] = []
        kind = spec.get("type", "ClusterIP")
        if kind == "ExternalName":
            return claims
        ip = spec.get("clusterIP") or ((spec.get("clusterIPs") or [None])[0])
        if ip == "None":
            spec["clusterIP"], spec["clusterIPs"] = "None", ["None"]
        elif ip:
            self._check_ip(ip, "spec.clusterIPs[0]")
            spec["clusterIP"], spec["clusterIPs"] = ip, [ip]
            claims.append(Claim(CLUSTER_IP, ip, True, "spec.clusterIPs[0]"))
        else:
            ip = self.random_ip()
            spec["clusterIP"], spec["clusterIPs"] = ip, [ip]
            claims.append(Claim(CLUSTER_IP, ip, False, "spec.clusterIPs[0]"))
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        claims += self._node_port_claims(spec, {})
        return claims

    def _node_port_claims(self, spec: dict[str, Any], keep: dict[tuple, int]) -> list[Claim]:
        claims: list[Claim] = []
        wants = spec.get("type") in ("NodePort", "LoadBalancer")
        seen: set[int] = set()
        for i, port in enumerate(spec.get("ports") or []):
            path = f"spec.ports[{i}].nodePort"
            if not wants:
                if port.get("nodePort"):
                    raise InvalidError(f"{path}: Forbidden: may not be used when `type` is "
                                       f"'{spec.get('type', 'ClusterIP')}'")
                continue
            given = port.get("nodePort")
            if given:
                self._check_port(given, path)
                if given in seen:
                    raise InvalidError(f"{path}: Duplicate value: {given}")
                claims.append(Claim(NODE_PORT, str(given), True, path))
            else:
                kept = keep.get((port.get("port"), port.get("protocol", "TCP")))
                value = str(kept) if kept else self.random_port()
                port["nodePort"] = int(value)
                claims.append(Claim(NODE_PORT, value, bool(kept), path))
            seen.add(int(port["nodePort"]))
        return claims

    def plan_update(self, old: dict[str, Any], new: dict[str, Any]
                    ) -> tuple[list[Claim], list[tuple[str, str]]]:
        """Keeps the ClusterIP (immutable), re-plans nodePorts: (claims, releases)."""
        old_spec, spec = old.get("spec") or {}, new.setdefault("spec", {})
        old_ip = old_spec.get("clusterIP")
        wanted = spec.get("clusterIP") or ((spec.get("clusterIPs") or [None])[0])
        if wanted and old_ip and wanted != old_ip:
            raise InvalidError(f'Service "{new["metadata"]["name"]}" is invalid: '
                               "spec.clusterIPs[0]: Invalid value: field is immutable")
        if old_ip:
            spec["clusterIP"], spec["clusterIPs"] = old_ip, list(old_spec.get("clusterIPs")
                                                               or [old_ip])
        for key in ("ipFamilies", "ipFamilyPolicy"):
            if key in old_spec:
                spec.setdefault(key, old_spec[key])
        keep = {(p.get("port"), p.get("protocol", "TCP")): p["nodePort"]
                for p in old_spec.get("ports") or [] if p.get("nodePort")}
        claims = self._node_port_claims(spec, keep)
        # Claims re-asserted by the same Service are no-ops in the script.
        if old_ip and old_ip != "None":
            claims.append(Claim(CLUSTER_IP, old_ip, True, "spec.clusterIPs[0]"))
        now = {c.value for c in claims if c.allocator == NODE_PORT}
        releases = [(NODE_PORT, str(v)) for v in keep.values() if str(v) not in now]
        return claims, releases

    @staticmethod
    def releases_for(svc: dict[str, Any]) -> list[tuple[str, str]]:
        spec = svc.get("spec") or {}
        out: list[tuple[str, str]] = []
        if spec.get("clusterIP") and spec["clusterIP"] != "None":
            out.append((CLUSTER_IP, spec["clusterIP"]))
        out += [(NODE_PORT, str(p["nodePort"])) for p in spec.get("ports") or []
                if p.get("nodePort")]
        return out

"""The cluster's DNS records: a pure function of one Service and its Endpoints,
kept in a table that answers lookups by name.

Kubernetes' DNS specification (and CoreDNS's kubernetes plugin) decide what a
Service publishes, under the cluster domain (cluster.local):

- `<svc>.<ns>.svc` → A/AAAA of the ClusterIP; a headless Service (clusterIP
  None) answers with the ready endpoints' addresses instead (and the not-ready
  ones too if it publishes them); an ExternalName Service is a CNAME.
- `_<port>._<proto>.<svc>.<ns>.svc` → SRV for each named port: the Service's
  own name as target, or one target per endpoint for a headless Service.
- `<hostname>.<svc>.<ns>.svc` → A/AAAA of each headless endpoint: its
  `hostname` (a pod's hostname/subdomain) or its IP with dashes.
- PTR for ClusterIPs and headless endpoint IPs.

Each Service owns the records it built (`ServiceRecords`), so an update
replaces exactly its own and several owners may share a name (one IP behind
two Services has two PTRs). Pod names `<a-b-c-d>.<ns>.pod` are not stored:
like CoreDNS's `pods insecure` (its default), the address is read from the name.
Every name the table holds, and each of its ancestors below the zone, exists,
so a query for another type there is NODATA and only other names are NXDOMAIN.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

A, AAAA, CNAME, SRV, PTR = "A", "AAAA", "CNAME", "SRV", "PTR"


@dataclass(frozen=True)
class Record:
    rdtype: str
    value: str  # the rdata in presentation format: "10.0.0.1", "0 100 80 web.ns.svc.zone."


@dataclass
class ServiceRecords:
    """Every (name → records) one Service publishes; names are absolute and lower-case."""

    names: dict[str, list[Record]] = field(default_factory=lambda: defaultdict(list))

    def add(self, name: str, rdtype: str, value: str) -> None:
        self.names[name].append(Record(rdtype, value))


def address_record(ip: str) -> Record:
    return Record(AAAA if ":" in ip else A, ip)


def dashed(ip: str) -> str:
    """The IP as one DNS label: 10.0.0.1 → 10-0-0-1, fd00::1 → fd00--1."""
    return ip.replace(".", "-").replace(":", "-")


def reverse_name(ip: str) -> str:
    return ipaddress.ip_address(ip).reverse_pointer + "."


def _valid_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def service_records(service: Obj, endpoints: Obj | None, zone: str) -> ServiceRecords:
    """What one Service publishes, given its Endpoints (None: none yet). zone ends in '.'."""
    meta = service.get("metadata") or {}
    spec = service.get("spec") or {}
    base = f"{meta['name']}.{meta.get('namespace') or 'default'}.svc.{zone}".lower()
    out = ServiceRecords()
    out.names[base]  # the Service's name exists even with nothing to answer
    if spec.get("type") == "ExternalName":
        if spec.get("externalName"):
            out.add(base, CNAME, spec["externalName"].rstrip(".").lower() + ".")
        return out
    cluster_ips = [ip for ip in (spec.get("clusterIPs") or [spec.get("clusterIP")])
                   if ip and ip != "None" and _valid_ip(ip)]
    if cluster_ips:
        for ip in cluster_ips:
            out.names[base].append(address_record(ip))
            out.add(reverse_name(ip), PTR, base)
        for port in spec.get("ports") or []:
            if port.get("name"):
                srv = f"_{port['name']}._{(port.get('protocol') or 'TCP').lower()}.{base}"
                out.add(srv.lower(), SRV, f"0 100 {port['port']} {base}")
        return out
    publish_not_ready = bool(spec.get("publishNotReadyAddresses"))
    for subset in (endpoints or {}).get("subsets") or []:
        addresses = list(subset.get("addresses") or [])
        if publish_not_ready:
            addresses += subset.get("notReadyAddresses") or []
        for address in addresses:
            ip = address.get("ip") or ""
            if not _valid_ip(ip):
                continue
            host = f"{(address.get('hostname') or dashed(ip)).lower()}.{base}"
            out.names[base].append(address_record(ip))
            out.names[host].append(address_record(ip))
            out.add(reverse_name(ip), PTR, host)
            for port in subset.get("ports") or []:
                if port.get("name"):
                    srv = f"_{port['name']}._{(port.get('protocol') or 'TCP').lower()}.{base}"
                    out.add(srv.lower(), SRV, f"0 100 {port['port']} {host}")
    return out


def pod_address(name: str, zone: str) -> tuple[str, str] | None:
    """`1-2-3-4.<ns>.pod.<zone>` → ("1.2.3.4", ns); None for any other name."""
    suffix = f".pod.{zone}"
    if not name.endswith(suffix):
        return None
    labels = name[: -len(suffix)].split(".")
    if len(labels) != 2 or not labels[0] or not labels[1]:
        return None
    text = labels[0]
    for candidate in (text.replace("-", "."), text.replace("-", ":")):
        try:
            return str(ipaddress.ip_address(candidate)), labels[1]
        except ValueError:
            continue
    return None


class RecordTable:
    """Names → records, owned by Service keys; updated by `set`/`remove`, read by `lookup`."""

    def __init__(self, zone: str) -> None:
        self.zone = zone.rstrip(".").lower() + "."
        self._owned: dict[str, ServiceRecords] = {}
        self._names: dict[str, dict[str, list[Record]]] = defaultdict(dict)
        # Ancestors (below the zone) of every stored name, with how many names need them.
        self._ancestors: dict[str, int] = defaultdict(int)
        #: Bumped by every change, so that answers cached from an older table are dropped.
        self.generation = 0

    def set(self, key: str, records: ServiceRecords | None) -> None:
        """Replaces the records `key` owns (None: it owns none any more)."""
        self.generation += 1
        old = self._owned.pop(key, None)
        if old is not None:
            for name in old.names:
                owners = self._names[name]
                owners.pop(key, None)
                if not owners:
                    del self._names[name]
                self._count_ancestors(name, -1)
        if records is not None:
            self._owned[key] = records
            for name, rrs in records.names.items():
                self._names[name][key] = rrs
                self._count_ancestors(name, +1)

    def remove(self, key: str) -> None:
        self.set(key, None)

    def _count_ancestors(self, name: str, delta: int) -> None:
        if not name.endswith("." + self.zone):
            return  # reverse names: their tree is not ours to claim
        labels = name[: -len(self.zone) - 1].split(".")
        for i in range(1, len(labels)):
            ancestor = ".".join(labels[i:]) + "." + self.zone
            self._ancestors[ancestor] += delta
            if self._ancestors[ancestor] <= 0:
                del self._ancestors[ancestor]

    def in_zone(self, name: str) -> bool:
        return name == self.zone or name.endswith("." + self.zone)

    def lookup(self, name: str) -> tuple[bool, list[Record]]:
        """(the name exists, its records): name is absolute and lower-case."""
        owners = self._names.get(name)
        if owners:
            return True, [r for rrs in owners.values() for r in rrs]
        pod = pod_address(name, self.zone)
        if pod is not None:
            return True, [address_record(pod[0])]
        if name == self.zone or name in self._ancestors:
            return True, []
        if name in (f"svc.{self.zone}", f"pod.{self.zone}"):
            return True, []
        return False, []

    def __len__(self) -> int:
        return len(self._names)

"""A pod's resolver settings and /etc/hosts additions, as the kubelet's DNS
configurer (pkg/kubelet/network/dns) computes them.

`DnsConfigurer.pod_dns(pod)` turns dnsPolicy and dnsConfig into the CRI's
DNSConfig (nameservers, search domains, options) that the runtime writes into
the pod's resolv.conf:

- ClusterFirst (the default): the cluster DNS (--cluster-dns), the search list
  `<ns>.svc.<domain> svc.<domain> <domain>` followed by the node's own search
  domains, and `ndots:5`. A hostNetwork pod, or a kubelet without
  --cluster-dns, gets Default instead (ClusterFirstWithHostNet keeps the
  cluster DNS for hostNetwork pods);
- Default: the node's resolv.conf (--resolv-conf);
- None: nothing but dnsConfig.

dnsConfig is then merged in: nameservers and searches appended without
duplicates, options replacing those of the same name. Kubernetes' limits hold:
3 nameservers, 32 search domains.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("kubelite.kubelet.dns")

CLUSTER_FIRST = "ClusterFirst"
CLUSTER_FIRST_WITH_HOST_NET = "ClusterFirstWithHostNet"
DEFAULT = "Default"
NONE = "None"

MAX_NAMESERVERS = 3
MAX_SEARCHES = 32
MAX_SEARCH_CHARS = 2048
NDOTS = "ndots:5"


@dataclass(frozen=True)
class PodDns:
    """CRI's DNSConfig: what goes into the pod's resolv.conf."""

    servers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class ResolvConf:
    servers: tuple[str, ...] = ()
    searches: tuple[str, ...] = ()
    options: tuple[str, ...] = field(default=())


def parse_resolv_conf(text: str) -> ResolvConf:
    """nameserver, search/domain (the last one wins, as in glibc) and options lines."""
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if not fields:
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            servers.append(fields[1])
        elif fields[0] in ("search", "domain"):
            searches = fields[1:]
        elif fields[0] == "options":
            options.extend(fields[1:])
    return ResolvConf(tuple(servers), tuple(searches), tuple(options))


def render_resolv_conf(dns: PodDns) -> str:
    lines = [f"nameserver {s}" for s in dns.servers]
    if dns.searches:
        lines.append("search " + " ".join(dns.searches))
    if dns.options:
        lines.append("options " + " ".join(dns.options))
    return "\n".join(lines) + "\n"


def _dedup(items: Sequence[str]) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        if item and item not in seen:
            seen[item] = None
    return list(seen)


def merge_options(base: Sequence[str], extra: Sequence[Mapping[str, Any]]) -> list[str]:
    """Options by name; a dnsConfig option replaces the one of the same name."""
    merged: dict[str, str] = {}
    for option in base:
        name, _, _ = option.partition(":")
        merged[name] = option
    for option in extra:
        name = option.get("name") or ""
        if not name:
            continue
        value = option.get("value")
        merged[name] = f"{name}:{value}" if value not in (None, "") else name
    return list(merged.values())


def _limit_searches(searches: list[str]) -> list[str]:
    out: list[str] = []
    length = 0
    for search in searches[:MAX_SEARCHES]:
        length += len(search) + 1
        if length > MAX_SEARCH_CHARS:
            break
        out.append(search)
    return out


def effective_policy(spec: Mapping[str, Any], *, cluster_dns: Sequence[str]) -> str:
    policy = spec.get("dnsPolicy") or CLUSTER_FIRST
    if policy == CLUSTER_FIRST and spec.get("hostNetwork"):
        return DEFAULT
    if policy == CLUSTER_FIRST_WITH_HOST_NET:
        policy = CLUSTER_FIRST
    if policy == CLUSTER_FIRST and not cluster_dns:
        return DEFAULT
    return policy


def pod_dns(pod: Mapping[str, Any], *, cluster_dns: Sequence[str], cluster_domain: str,
            node: ResolvConf) -> PodDns:
    """The pod's DNSConfig (a pure function of the pod and the kubelet's settings)."""
    spec = pod.get("spec") or {}
    namespace = (pod.get("metadata") or {}).get("namespace") or "default"
    policy = effective_policy(spec, cluster_dns=cluster_dns)
    servers: list[str]
    searches: list[str]
    options: list[str]
    if policy == NONE:
        servers, searches, options = [], [], []
    elif policy == CLUSTER_FIRST:
        domain = cluster_domain.strip(".")
        servers = list(cluster_dns)
        searches = [f"{namespace}.svc.{domain}", f"svc.{domain}", domain, *node.searches]
        options = [NDOTS]
    else:
        servers, searches, options = list(node.servers), list(node.searches), list(node.options)
    extra = spec.get("dnsConfig") or {}
    servers = _dedup([*servers, *(extra.get("nameservers") or [])])[:MAX_NAMESERVERS]
    searches = _limit_searches(_dedup([*searches, *(extra.get("searches") or [])]))
    options = merge_options(options, extra.get("options") or [])
    return PodDns(tuple(servers), tuple(searches), tuple(options))


def host_aliases(pod: Mapping[str, Any]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """spec.hostAliases as (ip, hostnames) pairs, for the pod's /etc/hosts."""
    out = []
    for alias in (pod.get("spec") or {}).get("hostAliases") or []:
        names = tuple(h for h in alias.get("hostnames") or [] if h)
        if alias.get("ip") and names:
            out.append((alias["ip"], names))
    return tuple(out)


class DnsConfigurer:
    """The kubelet's view of DNS: its flags and the node's resolv.conf, read once."""

    def __init__(self, *, cluster_dns: Sequence[str], cluster_domain: str,
                 resolv_conf: str = "/etc/resolv.conf") -> None:
        self.cluster_dns = tuple(cluster_dns)
        self.cluster_domain = cluster_domain
        try:
            with open(resolv_conf) as f:
                self.node = parse_resolv_conf(f.read())
        except OSError:
            log.warning("cannot read the node's resolv.conf; pods with dnsPolicy Default get "
                        "an empty one", extra={"kv": {"path": resolv_conf}})
            self.node = ResolvConf()

    def pod_dns(self, pod: Mapping[str, Any]) -> PodDns:
        return pod_dns(pod, cluster_dns=self.cluster_dns, cluster_domain=self.cluster_domain,
                       node=self.node)


# -- the docker runtime ----------------------------------------------------------------


def docker_host_config(dns: PodDns | None,
                       aliases: Sequence[tuple[str, Sequence[str]]]) -> dict[str, Any]:
    """HostConfig settings of a pod's holder container; its containers share its
    /etc/resolv.conf and /etc/hosts (they join its network namespace).

    Docker's embedded resolver (127.0.0.11 on a user-defined network) forwards to
    `dns`, so even an infra image that cannot have its resolv.conf rewritten (see
    `resolv_conf_command`) resolves through the cluster DNS. Loopback servers are
    left out: in the pod they would be the pod itself.
    """
    out: dict[str, Any] = {}
    if dns is not None:
        servers = [s for s in dns.servers if not _loopback(s)]
        out.update(dns=servers or None, dns_search=list(dns.searches) or None,
                   dns_opt=list(dns.options) or None)
    if aliases:
        out["extra_hosts"] = [f"{name}:{ip}" for ip, names in aliases for name in names]
    return out


def _loopback(server: str) -> bool:
    return server.startswith("127.") or server == "::1"


def rewrites_resolv_conf(dns: PodDns | None) -> bool:
    """Whether the holder's resolv.conf is rewritten: not when there is no nameserver
    or one is a loopback address (a node's 127.0.0.53 is not the pod's), where
    Docker's file, with its embedded resolver, is what works."""
    return dns is not None and bool(dns.servers) and not any(map(_loopback, dns.servers))


def resolv_conf_command(dns: PodDns) -> list[str]:
    """A command that writes the pod's resolv.conf as Kubernetes renders it, run in the
    holder: Docker's own file names its embedded resolver, not the cluster DNS."""
    return ["sh", "-c", 'printf "%s" "$1" > /etc/resolv.conf', "sh", render_resolv_conf(dns)]

"""The iptables rule set for a set of ServicePorts, rendered as kube-proxy renders it.

One pure function, `render_rules(ports, options) -> RuleSet`, whose `.text()` is
`iptables-restore` input for the `filter` and `nat` tables. It declares (and so,
under `--noflush`, flushes) only kube-proxy's chains; the jumps into them from the
built-in chains (`JUMP_RULES`) are ensured one by one by the caller, as
kube-proxy does, so that no other chain is ever rewritten.

Layout of the nat table (see docs/proxy.md):

    PREROUTING, OUTPUT -> KUBE-SERVICES
    KUBE-SERVICES  -d ClusterIP --dport port        -> KUBE-SVC-<hash>
                   (last) --dst-type LOCAL          -> KUBE-NODEPORTS
    KUBE-NODEPORTS --dport nodePort                 -> KUBE-EXT-<hash>
    KUBE-EXT-<hash>  mark for masquerade, then      -> KUBE-SVC-<hash>
    KUBE-SVC-<hash>  session affinity (-m recent), then
                     -m statistic --probability 1/(n-i) -> KUBE-SEP-<hash>
    KUBE-SEP-<hash>  hairpin mark, DNAT to the endpoint
    POSTROUTING -> KUBE-POSTROUTING: MASQUERADE what KUBE-MARK-MASQ marked

A ClusterIP without endpoints gets a REJECT in the filter table instead, as
kube-proxy's does. Chains are emitted in kube-proxy's canonical (sorted) order,
so the text is stable and golden files compare byte for byte.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from .model import ServicePort

KUBE_SERVICES = "KUBE-SERVICES"
KUBE_NODEPORTS = "KUBE-NODEPORTS"
KUBE_EXTERNAL_SERVICES = "KUBE-EXTERNAL-SERVICES"
KUBE_FORWARD = "KUBE-FORWARD"
KUBE_POSTROUTING = "KUBE-POSTROUTING"
KUBE_MARK_MASQ = "KUBE-MARK-MASQ"

SVC_PREFIX = "KUBE-SVC-"
SEP_PREFIX = "KUBE-SEP-"
EXT_PREFIX = "KUBE-EXT-"
#: Per-service chains: created and deleted as services come and go.
DYNAMIC_PREFIXES = (SVC_PREFIX, SEP_PREFIX, EXT_PREFIX)

_CT_NEW = ("-m", "conntrack", "--ctstate", "NEW")


@dataclass(frozen=True)
class JumpRule:
    """A rule in a built-in chain that jumps into one of ours (kube-proxy's iptablesJumpChains)."""

    table: str
    source: str
    target: str
    comment: str
    extra: tuple[str, ...] = ()

    def args(self) -> list[str]:
        return ["-m", "comment", "--comment", self.comment, *self.extra, "-j", self.target]


JUMP_RULES: tuple[JumpRule, ...] = (
    JumpRule("filter", "INPUT", KUBE_EXTERNAL_SERVICES,
             "kubernetes externally-visible service portals", _CT_NEW),
    JumpRule("filter", "FORWARD", KUBE_EXTERNAL_SERVICES,
             "kubernetes externally-visible service portals", _CT_NEW),
    JumpRule("filter", "FORWARD", KUBE_SERVICES, "kubernetes service portals", _CT_NEW),
    JumpRule("filter", "OUTPUT", KUBE_SERVICES, "kubernetes service portals", _CT_NEW),
    JumpRule("filter", "FORWARD", KUBE_FORWARD, "kubernetes forwarding rules"),
    JumpRule("nat", "OUTPUT", KUBE_SERVICES, "kubernetes service portals"),
    JumpRule("nat", "PREROUTING", KUBE_SERVICES, "kubernetes service portals"),
    JumpRule("nat", "POSTROUTING", KUBE_POSTROUTING, "kubernetes postrouting rules"),
)


@dataclass(frozen=True)
class RenderOptions:
    #: The fwmark bit KUBE-MARK-MASQ sets (kube-proxy's --iptables-masquerade-bit, 14).
    masquerade_bit: int = 14
    #: Masquerade all traffic to ClusterIPs (kube-proxy's --masquerade-all).
    masquerade_all: bool = False
    #: Traffic to a ClusterIP from outside this CIDR is masqueraded ("" for none).
    cluster_cidr: str = ""
    #: Add --random-fully to the MASQUERADE rule (when iptables supports it).
    random_fully: bool = False

    @property
    def mark(self) -> str:
        return f"{1 << self.masquerade_bit:#x}"


# -- names and numbers --------------------------------------------------------------


def _hash16(text: str) -> str:
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:16]


def port_proto_hash(port_name: str, protocol: str) -> str:
    """kube-proxy's portProtoHash: base32(sha256(`ns/name:port` + protocol))[:16]."""
    return _hash16(port_name + protocol.lower())


def service_chain(port_name: str, protocol: str) -> str:
    return SVC_PREFIX + port_proto_hash(port_name, protocol)


def external_chain(port_name: str, protocol: str) -> str:
    return EXT_PREFIX + port_proto_hash(port_name, protocol)


def endpoint_chain(port_name: str, protocol: str, endpoint: str) -> str:
    """kube-proxy's servicePortEndpointChainName; endpoint is `ip:port`."""
    return SEP_PREFIX + _hash16(port_name + protocol.lower() + endpoint)


def probability(n: int) -> str:
    """The chance that rule i of n takes a packet that reached it: 1/(n-i), as kube-proxy
    prints it; with n-i remaining endpoints each one ends up with exactly 1/n."""
    return f"{1.0 / n:.10f}"


def _comment(text: str) -> str:
    # kube-proxy quotes only the comments that need it.
    return f'"{text}"' if " " in text else text


# -- the rule set -------------------------------------------------------------------


@dataclass
class Table:
    name: str
    #: Chains declared (and so flushed) by this table's restore input.
    chains: list[str]
    rules: list[str] = field(default_factory=list)
    #: Chains to flush and delete (stale per-service chains).
    deleted: list[str] = field(default_factory=list)

    def add(self, *args: str) -> None:
        self.rules.append(" ".join(args))

    def lines(self) -> list[str]:
        return [f"*{self.name}",
                *(f":{chain} - [0:0]" for chain in [*self.chains, *self.deleted]),
                *self.rules,
                *(f"-X {chain}" for chain in self.deleted),
                "COMMIT"]

    def rule_count(self) -> int:
        return len(self.rules)


@dataclass
class RuleSet:
    filter: Table
    nat: Table

    @property
    def tables(self) -> tuple[Table, Table]:
        return self.filter, self.nat

    def text(self) -> str:
        return "\n".join(line for table in self.tables for line in table.lines()) + "\n"

    def dynamic_chains(self) -> set[str]:
        """The per-service chains this rule set uses (all in the nat table)."""
        return {c for c in self.nat.chains if c.startswith(DYNAMIC_PREFIXES)}

    def deleting(self, stale: Iterable[str]) -> RuleSet:
        """This rule set, plus flushing and deleting the stale per-service chains given
        (those still in use, and chains that are not kube-proxy's, are kept)."""
        keep = set(self.nat.chains)
        gone = sorted({c for c in stale if c.startswith(DYNAMIC_PREFIXES) and c not in keep})
        return RuleSet(self.filter, replace(self.nat, rules=list(self.nat.rules), deleted=gone))


def _chain_order(chains: Iterable[str], first: Iterable[str]) -> list[str]:
    """kube-proxy's canonical order: the entry chains first, then the rest sorted."""
    first = list(first)
    return first + sorted(set(chains) - set(first))


def render_rules(ports: Iterable[ServicePort], options: RenderOptions | None = None) -> RuleSet:
    """The complete filter and nat rules for these service ports (a pure function)."""
    opts = options or RenderOptions()
    mark = opts.mark
    # Rules per chain, in emission order; chains are laid out sorted at the end.
    nat: dict[str, list[str]] = {KUBE_NODEPORTS: [], KUBE_SERVICES: [], KUBE_MARK_MASQ: [],
                                 KUBE_POSTROUTING: []}
    flt: dict[str, list[str]] = {KUBE_SERVICES: [], KUBE_EXTERNAL_SERVICES: [],
                                 KUBE_FORWARD: []}

    def rule(table: dict[str, list[str]], chain: str, *args: str) -> None:
        table.setdefault(chain, []).append(" ".join(["-A", chain, *args]))

    masq = "MASQUERADE --random-fully" if opts.random_fully else "MASQUERADE"
    rule(nat, KUBE_POSTROUTING, "-m", "mark", "!", "--mark", f"{mark}/{mark}", "-j", "RETURN")
    rule(nat, KUBE_POSTROUTING, "-j", "MARK", "--xor-mark", mark)
    rule(nat, KUBE_POSTROUTING, "-m", "comment", "--comment",
         _comment("kubernetes service traffic requiring SNAT"), "-j", masq)
    rule(nat, KUBE_MARK_MASQ, "-j", "MARK", "--or-mark", mark)

    rule(flt, KUBE_FORWARD, "-m", "conntrack", "--ctstate", "INVALID", "-j", "DROP")
    rule(flt, KUBE_FORWARD, "-m", "comment", "--comment", _comment("kubernetes forwarding rules"),
         "-m", "mark", "--mark", f"{mark}/{mark}", "-j", "ACCEPT")
    rule(flt, KUBE_FORWARD, "-m", "comment", "--comment",
         _comment("kubernetes forwarding conntrack rule"),
         "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT")

    for sp in sorted(ports, key=lambda p: (p.port_name_string, p.protocol)):
        name = sp.port_name_string
        proto = sp.protocol.lower()
        match = ("-m", proto, "-p", proto)
        cluster = ("-d", sp.cluster_ip, "--dport", str(sp.port))
        if not sp.endpoints:
            rule(flt, KUBE_SERVICES, "-m", "comment", "--comment",
                 _comment(f"{name} has no endpoints"), *match, *cluster, "-j", "REJECT")
            if sp.node_port:
                rule(flt, KUBE_EXTERNAL_SERVICES, "-m", "comment", "--comment",
                     _comment(f"{name} has no endpoints"), "-m", "addrtype", "--dst-type",
                     "LOCAL", *match, "--dport", str(sp.node_port), "-j", "REJECT")
            continue

        svc = service_chain(name, sp.protocol)
        nat[svc] = []
        cluster_comment = _comment(f"{name} cluster IP")
        rule(nat, KUBE_SERVICES, "-m", "comment", "--comment", cluster_comment, *match, *cluster,
             "-j", svc)
        if opts.masquerade_all:
            rule(nat, svc, "-m", "comment", "--comment", cluster_comment, *match, *cluster,
                 "-j", KUBE_MARK_MASQ)
        elif opts.cluster_cidr:
            rule(nat, svc, "-m", "comment", "--comment", cluster_comment, *match, *cluster,
                 "!", "-s", opts.cluster_cidr, "-j", KUBE_MARK_MASQ)

        if sp.node_port:
            ext = external_chain(name, sp.protocol)
            rule(nat, KUBE_NODEPORTS, "-m", "comment", "--comment", _comment(name), *match,
                 "--dport", str(sp.node_port), "-j", ext)
            rule(nat, ext, "-m", "comment", "--comment",
                 _comment(f"masquerade traffic for {name} external destinations"),
                 "-j", KUBE_MARK_MASQ)
            rule(nat, ext, "-j", svc)

        seps = [(ep, endpoint_chain(name, sp.protocol, ep.address)) for ep in sp.endpoints]
        if sp.affinity_timeout is not None:
            for ep, sep in seps:
                rule(nat, svc, "-m", "comment", "--comment", _comment(f"{name} -> {ep.address}"),
                     "-m", "recent", "--name", sep, "--rcheck", "--seconds",
                     str(sp.affinity_timeout), "--reap", "-j", sep)
        n = len(seps)
        for i, (ep, sep) in enumerate(seps):
            stat = ("-m", "statistic", "--mode", "random", "--probability",
                    probability(n - i)) if i < n - 1 else ()
            rule(nat, svc, "-m", "comment", "--comment", _comment(f"{name} -> {ep.address}"),
                 *stat, "-j", sep)
        for ep, sep in seps:
            comment = ("-m", "comment", "--comment", _comment(name))
            rule(nat, sep, *comment, "-s", ep.ip, "-j", KUBE_MARK_MASQ)
            recent = ("-m", "recent", "--name", sep, "--set") \
                if sp.affinity_timeout is not None else ()
            rule(nat, sep, *comment, *recent, *match, "-j", "DNAT", "--to-destination",
                 ep.address)

    rule(nat, KUBE_SERVICES, "-m", "comment", "--comment",
         _comment("kubernetes service nodeports; NOTE: this must be the last rule in this chain"),
         "-m", "addrtype", "--dst-type", "LOCAL", "-j", KUBE_NODEPORTS)

    tables = []
    for table_name, chains, first in (("filter", flt, [KUBE_SERVICES]),
                                      ("nat", nat, [KUBE_NODEPORTS, KUBE_SERVICES])):
        order = _chain_order(chains, first)
        tables.append(Table(table_name, order,
                            [line for chain in order for line in chains[chain]]))
    return RuleSet(filter=tables[0], nat=tables[1])


def chains_in_save(text: str, table: str) -> set[str]:
    """The chains of one table in `iptables-save` output."""
    out: set[str] = set()
    current = ""
    for line in text.splitlines():
        if line.startswith("*"):
            current = line[1:].strip()
        elif line.startswith(":") and current == table:
            out.add(line[1:].split()[0])
    return out

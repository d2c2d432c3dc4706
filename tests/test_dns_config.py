"""The kubelet's pod DNS settings (services/kubelet/dnsconfig.py): pure logic, as
Kubernetes' DNS configurer computes them for each dnsPolicy and dnsConfig."""

from __future__ import annotations

from pathlib import Path

from services.kubelet.dnsconfig import (
    DnsConfigurer,
    PodDns,
    ResolvConf,
    docker_host_config,
    host_aliases,
    parse_resolv_conf,
    pod_dns,
    render_resolv_conf,
    rewrites_resolv_conf,
)

NODE = ResolvConf(servers=("10.0.0.2",), searches=("corp.example",), options=("timeout:2",))


def pod(namespace: str = "shop", **spec) -> dict:
    return {"metadata": {"name": "p", "namespace": namespace}, "spec": spec}


def dns_of(p: dict, cluster_dns: tuple[str, ...] = ("10.96.0.10",)) -> PodDns:
    return pod_dns(p, cluster_dns=cluster_dns, cluster_domain="cluster.local", node=NODE)


def test_cluster_first_is_the_default() -> None:
    dns = dns_of(pod())
    assert dns == PodDns(("10.96.0.10",),
                         ("shop.svc.cluster.local", "svc.cluster.local", "cluster.local",
                          "corp.example"), ("ndots:5",))
    assert render_resolv_conf(dns) == (
        "nameserver 10.96.0.10\n"
        "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\n"
        "options ndots:5\n")


def test_default_is_the_nodes_resolv_conf() -> None:
    assert dns_of(pod(dnsPolicy="Default")) == PodDns(NODE.servers, NODE.searches, NODE.options)


def test_cluster_first_without_cluster_dns_or_on_host_network_falls_back_to_default() -> None:
    assert dns_of(pod(), cluster_dns=()).servers == NODE.servers
    assert dns_of(pod(hostNetwork=True)).servers == NODE.servers
    assert dns_of(pod(hostNetwork=True,
                      dnsPolicy="ClusterFirstWithHostNet")).servers == ("10.96.0.10",)


def test_none_takes_only_dns_config() -> None:
    dns = dns_of(pod(dnsPolicy="None", dnsConfig={
        "nameservers": ["1.2.3.4"], "searches": ["ns1.svc.cluster-domain.example"],
        "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}))
    assert dns == PodDns(("1.2.3.4",), ("ns1.svc.cluster-domain.example",),
                         ("ndots:2", "edns0"))


def test_dns_config_merges_into_cluster_first() -> None:
    dns = dns_of(pod(dnsConfig={
        "nameservers": ["10.96.0.10", "8.8.8.8", "9.9.9.9", "1.1.1.1"],
        "searches": ["cluster.local", "extra.example"],
        "options": [{"name": "ndots", "value": "1"}, {"name": "single-request-reopen"}]}))
    assert dns.servers == ("10.96.0.10", "8.8.8.8", "9.9.9.9")  # at most 3, no duplicate
    assert dns.searches[-1] == "extra.example" and dns.searches.count("cluster.local") == 1
    assert dns.options == ("ndots:1", "single-request-reopen")


def test_search_list_is_limited_to_32() -> None:
    dns = dns_of(pod(dnsConfig={"searches": [f"s{i}.example" for i in range(40)]}))
    assert len(dns.searches) == 32


def test_resolv_conf_parsing(tmp_path: Path) -> None:
    text = ("# generated\nnameserver 127.0.0.11\nsearch a.example b.example\n"
            "domain ignored.example\nsearch c.example ; comment\noptions ndots:0 edns0\n")
    assert parse_resolv_conf(text) == ResolvConf(("127.0.0.11",), ("c.example",),
                                                 ("ndots:0", "edns0"))
    conf = tmp_path / "resolv.conf"
    conf.write_text(text)
    configurer = DnsConfigurer(cluster_dns=(), cluster_domain="cluster.local",
                               resolv_conf=str(conf))
    assert configurer.pod_dns(pod()).servers == ("127.0.0.11",)
    missing = DnsConfigurer(cluster_dns=(), cluster_domain="cluster.local",
                            resolv_conf=str(tmp_path / "none"))
    assert missing.pod_dns(pod()) == PodDns()


def test_host_aliases_and_docker_settings() -> None:
    p = pod(hostAliases=[{"ip": "10.1.2.3", "hostnames": ["foo.local", "bar.local"]},
                         {"ip": "10.1.2.4", "hostnames": []}])
    aliases = host_aliases(p)
    assert aliases == (("10.1.2.3", ("foo.local", "bar.local")),)
    settings = docker_host_config(PodDns(("127.0.0.11", "10.96.0.10"), ("a",), ("ndots:5",)),
                                  aliases)
    assert settings == {"dns": ["10.96.0.10"], "dns_search": ["a"], "dns_opt": ["ndots:5"],
                        "extra_hosts": ["foo.local:10.1.2.3", "bar.local:10.1.2.3"]}
    assert docker_host_config(None, ()) == {}


def test_resolv_conf_is_rewritten_only_with_reachable_nameservers() -> None:
    assert rewrites_resolv_conf(PodDns(("10.96.0.10",)))
    assert not rewrites_resolv_conf(PodDns(("127.0.0.53",)))
    assert not rewrites_resolv_conf(PodDns((), ("a",), ("ndots:5",)))
    assert not rewrites_resolv_conf(None)

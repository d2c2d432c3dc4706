"""The iptables renderer (services/proxy/rules.py), against golden files.

The golden files under tests/golden/proxy/ are the complete `iptables-restore`
input for a fixed set of Services and Endpoints. After an intended change to
the rules, regenerate them and review the diff:

    KUBELITE_UPDATE_GOLDEN=1 python -m pytest tests/test_proxy_rules.py
"""

from __future__ import annotations

import os
import random
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from services.proxy.model import ServicePort, service_ports
from services.proxy.rules import (
    RenderOptions,
    chains_in_save,
    endpoint_chain,
    external_chain,
    probability,
    render_rules,
    service_chain,
)

GOLDEN = Path(__file__).parent / "golden" / "proxy"
UPDATE = os.environ.get("KUBELITE_UPDATE_GOLDEN") == "1"


def svc(namespace: str, name: str, cluster_ip: str, *ports: dict[str, Any],
        type_: str = "ClusterIP", affinity: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": type_, "clusterIP": cluster_ip, "ports": list(ports)}
    if affinity is not None:
        spec["sessionAffinity"] = "ClientIP"
        spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": affinity}}
    return {"metadata": {"namespace": namespace, "name": name}, "spec": spec}


def port(port: int, name: str = "", protocol: str = "TCP", node_port: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {"port": port, "protocol": protocol}
    if name:
        out["name"] = name
    if node_port:
        out["nodePort"] = node_port
    return out


def subset(ips: list[str], ports: dict[str, int], not_ready: list[str] = (),
           protocol: str = "TCP") -> dict[str, Any]:
    return {"addresses": [{"ip": ip} for ip in ips],
            "notReadyAddresses": [{"ip": ip} for ip in not_ready],
            "ports": [{"name": n, "port": p, "protocol": protocol} for n, p in ports.items()]}


#: (Service, Endpoints subsets) pairs covering every shape of rule the renderer writes.
FIXTURE: list[tuple[dict[str, Any], list[dict[str, Any]]]] = [
    # Three endpoints: probabilities 1/3, 1/2, then the rest.
    (svc("ns1", "web", "10.96.0.10", port(80, "http")),
     [subset(["10.244.1.3", "10.244.1.2", "10.244.2.7"], {"http": 8080})]),
    # Two named ports; one address not ready; the metrics port has its own target.
    (svc("ns1", "multi", "10.96.0.11", port(80, "http"), port(9100, "metrics")),
     [subset(["10.244.1.4", "10.244.2.4"], {"http": 8080, "metrics": 9102},
             not_ready=["10.244.3.4"])]),
    # An unnamed single port: the chain comment is just namespace/name.
    (svc("ns1", "plain", "10.96.0.12", port(443)),
     [subset(["10.244.1.5"], {"": 8443})]),
    # NodePort: KUBE-NODEPORTS -> KUBE-EXT (masquerade) -> KUBE-SVC.
    (svc("ns2", "np", "10.96.0.20", port(80, "http", node_port=30080), type_="NodePort"),
     [subset(["10.244.1.6", "10.244.2.6"], {"http": 8080})]),
    # ClientIP session affinity: -m recent in KUBE-SVC and KUBE-SEP.
    (svc("ns2", "sticky", "10.96.0.21", port(80, "http"), affinity=300),
     [subset(["10.244.1.7", "10.244.2.7"], {"http": 8080})]),
    # UDP and TCP on one port number.
    (svc("ns2", "dns", "10.96.0.22", port(53, "dns", "UDP"), port(53, "dns-tcp", "TCP")),
     [subset(["10.244.1.8"], {"dns": 53}, protocol="UDP"),
      subset(["10.244.1.8"], {"dns-tcp": 53})]),
    # No endpoints (and only unready ones): REJECT in the filter table, no nat rules.
    (svc("ns3", "empty", "10.96.0.30", port(80, "http")), []),
    (svc("ns3", "unready", "10.96.0.31", port(80, "http", node_port=30031), type_="NodePort"),
     [subset([], {"http": 8080}, not_ready=["10.244.1.9"])]),
    # Headless: no rules at all.
    (svc("ns3", "headless", "None", port(80, "http")), [subset(["10.244.1.10"], {"http": 80})]),
]


def fixture_ports(shuffle: random.Random | None = None) -> list[ServicePort]:
    out: list[ServicePort] = []
    for service, subsets in FIXTURE:
        subsets = [dict(s, addresses=list(s["addresses"])) for s in subsets]
        if shuffle is not None:
            for s in subsets:
                shuffle.shuffle(s["addresses"])
            shuffle.shuffle(subsets)
        out += service_ports(service, {"subsets": subsets})
    if shuffle is not None:
        shuffle.shuffle(out)
    return out


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"{path} is missing: run with KUBELITE_UPDATE_GOLDEN=1"
    assert text == path.read_text(), \
        f"rules differ from {path}; if intended, regenerate with KUBELITE_UPDATE_GOLDEN=1"


def test_rules_match_golden_file() -> None:
    """The full rule set for the fixture services is exactly the golden file."""
    check_golden("iptables.rules", render_rules(fixture_ports()).text())


def test_rules_with_masquerade_options_match_golden_file() -> None:
    """--cluster-cidr, --random-fully and another mark bit show up where kube-proxy puts them."""
    options = RenderOptions(cluster_cidr="10.244.0.0/16", random_fully=True, masquerade_bit=5)
    check_golden("iptables-cluster-cidr.rules", render_rules(fixture_ports(), options).text())
    everything = render_rules(fixture_ports(), RenderOptions(masquerade_all=True)).text()
    web = service_chain("ns1/web:http", "TCP")
    assert (f'-A {web} -m comment --comment "ns1/web:http cluster IP" '
            "-m tcp -p tcp -d 10.96.0.10 --dport 80 -j KUBE-MARK-MASQ") in everything.splitlines()


def test_rules_do_not_depend_on_the_order_of_objects_or_addresses() -> None:
    """Endpoints that only reorder their addresses render the same text (no needless sync)."""
    expected = render_rules(fixture_ports()).text()
    for seed in range(5):
        assert render_rules(fixture_ports(random.Random(seed))).text() == expected


def test_chain_names_are_kube_proxys_hashes() -> None:
    """KUBE-SVC/EXT/SEP names: base32(sha256(name + protocol [+ endpoint]))[:16], as in
    kube-proxy's own tests."""
    assert service_chain("ns1/svc1:p80", "TCP") == "KUBE-SVC-XPGD46QRK7WJZT7O"
    assert endpoint_chain("ns1/svc1:p80", "TCP", "10.180.0.1:80") == "KUBE-SEP-SXIVWICOYRO3J4NJ"
    assert service_chain("ns3/svc3:p80", "TCP") == "KUBE-SVC-X27LE4BHSL4DOUIK"
    assert external_chain("ns3/svc3:p80", "TCP") == "KUBE-EXT-X27LE4BHSL4DOUIK"
    assert endpoint_chain("ns3/svc3:p80", "TCP", "10.180.0.3:80") == "KUBE-SEP-OYPFS5VJICHGATKP"
    # The same endpoint under another service gets another chain.
    assert endpoint_chain("ns5/svc5:p80", "TCP", "10.180.0.3:80") == "KUBE-SEP-I77PXRDZVX7PMWMN"
    assert service_chain("ns1/svc1:p80", "UDP") != service_chain("ns1/svc1:p80", "TCP")
    text = render_rules(fixture_ports()).text()
    for line in text.splitlines():
        if line.startswith(":"):
            assert len(line.split()[0]) - 1 <= 28  # iptables' chain name limit


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7, 10, 33])
def test_probabilities_spread_evenly(n: int) -> None:
    """Rule i of n matches with 1/(n-i), printed with 10 decimals; each endpoint gets 1/n."""
    printed = [probability(n - i) for i in range(n - 1)]
    assert all(len(p.split(".")[1]) == 10 for p in printed)
    reach = Fraction(1)
    for i in range(n):
        take = Fraction(printed[i]) if i < n - 1 else Fraction(1)
        assert abs(float(reach * take) - 1 / n) < 1e-9
        reach *= 1 - take
    assert probability(3) == "0.3333333333" and probability(2) == "0.5000000000"


def test_rule_text_uses_the_probability_formula() -> None:
    """Three endpoints: the first two rules carry 1/3 and 1/2, the last none."""
    text = render_rules(fixture_ports()).text()
    web = [line for line in text.splitlines()
           if line.startswith("-A KUBE-SVC-") and "ns1/web:http ->" in line]
    assert len(web) == 3
    assert "--probability 0.3333333333" in web[0] and "--probability 0.5000000000" in web[1]
    assert "statistic" not in web[2]


def test_stale_chains_are_flushed_and_deleted_in_the_same_restore() -> None:
    """Chains of services that are gone are declared and -X'd; other chains are not touched."""
    ruleset = render_rules(fixture_ports())
    in_use = sorted(ruleset.dynamic_chains())[0]
    stale = {"KUBE-SVC-AAAAAAAAAAAAAAAA", "KUBE-SEP-BBBBBBBBBBBBBBBB", in_use,
             "KUBE-SERVICES", "DOCKER", "MY-CHAIN"}
    text = ruleset.deleting(stale).text()
    nat = text[text.index("*nat"):]
    lines = nat.splitlines()
    assert ":KUBE-SVC-AAAAAAAAAAAAAAAA - [0:0]" in lines
    assert lines[-3:] == ["-X KUBE-SEP-BBBBBBBBBBBBBBBB", "-X KUBE-SVC-AAAAAAAAAAAAAAAA",
                          "COMMIT"]
    assert f"-X {in_use}" not in lines
    assert "DOCKER" not in text and "MY-CHAIN" not in text
    assert ruleset.text() == render_rules(fixture_ports()).text()  # deleting() is pure


def test_only_our_chains_are_declared() -> None:
    """The restore input declares KUBE-* chains only, never a built-in chain."""
    for line in render_rules(fixture_ports()).text().splitlines():
        if line.startswith(":"):
            assert line.startswith(":KUBE-"), line
        if line.startswith("-A"):
            assert line.split()[1].startswith("KUBE-"), line


def test_chains_in_save_reads_one_table() -> None:
    saved = ("*filter\n:INPUT ACCEPT [0:0]\n:KUBE-SERVICES - [0:0]\nCOMMIT\n"
             "*nat\n:PREROUTING ACCEPT [3:180]\n:KUBE-SVC-X - [0:0]\n-A KUBE-SVC-X -j RETURN\n"
             "COMMIT\n")
    assert chains_in_save(saved, "nat") == {"PREROUTING", "KUBE-SVC-X"}
    assert chains_in_save(saved, "filter") == {"INPUT", "KUBE-SERVICES"}

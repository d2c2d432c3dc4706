"""ClusterIP and NodePort allocation in the apiserver, against real processes."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from kubelite.client import Client
from kubelite.errors import InvalidError


def service(name: str, namespace: str = "default", *, port: int = 80, type_: str = "ClusterIP",
            cluster_ip: str | None = None, node_port: int | None = None) -> dict:
    spec: dict = {"type": type_, "selector": {"app": name},
                  "ports": [{"port": port, "targetPort": 8080}]}
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
    if node_port:
        spec["ports"][0]["nodePort"] = node_port
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


async def test_cluster_ips_are_distinct_in_range_and_released(client: Client,
                                                              namespace: str) -> None:
    """Every Service gets its own ClusterIP from the range; deleting one frees it."""
    created = [await client.create("services", service(f"s{i}", namespace)) for i in range(20)]
    ips = [s["spec"]["clusterIP"] for s in created]
    assert len(set(ips)) == 20
    assert all(ipaddress.ip_address(ip) in ipaddress.ip_network("127.96.0.0/16") for ip in ips)
    assert all(s["spec"]["clusterIPs"] == [s["spec"]["clusterIP"]] for s in created)
    with pytest.raises(InvalidError) as err:
        await client.create("services", service("dup", namespace, cluster_ip=ips[0]))
    assert "already allocated" in str(err.value)
    await client.delete("services", "s0", namespace=namespace)
    again = await client.create("services", service("dup", namespace, cluster_ip=ips[0]))
    assert again["spec"]["clusterIP"] == ips[0]


async def test_bad_cluster_ips_and_ports_are_invalid(client: Client, namespace: str) -> None:
    """Out-of-range or malformed clusterIPs and out-of-range ports are INVALID_ARGUMENT."""
    for bad in (service("a", namespace, cluster_ip="10.0.0.5"),
                service("b", namespace, cluster_ip="not-an-ip"),
                service("c", namespace, port=70000),
                service("d", namespace, type_="NodePort", node_port=1234),
                service("e", namespace, node_port=30001)):
        with pytest.raises(InvalidError):
            await client.create("services", bad)
    assert (await client.list("services", namespace=namespace)).items == []


async def test_headless_service_gets_no_ip(client: Client, namespace: str) -> None:
    """clusterIP: None stays None (headless)."""
    svc = await client.create("services", service("h", namespace, cluster_ip="None"))
    assert svc["spec"]["clusterIP"] == "None"


async def test_node_ports_are_allocated_kept_and_released(client: Client, namespace: str) -> None:
    """NodePort services get a port from 30000-32767, kept on update, freed on delete."""
    svc = await client.create("services", service("np", namespace, type_="NodePort"))
    port = svc["spec"]["ports"][0]["nodePort"]
    assert 30000 <= port <= 32767
    with pytest.raises(InvalidError) as err:
        await client.create("services", service("np2", namespace, type_="NodePort",
                                                 node_port=port))
    assert "already allocated" in str(err.value)
    # An update that omits clusterIP and nodePort keeps both.
    update = service("np", namespace, type_="NodePort")
    update["metadata"]["labels"] = {"changed": "yes"}
    after = await client.update("services", update)
    assert after["spec"]["clusterIP"] == svc["spec"]["clusterIP"]
    assert after["spec"]["ports"][0]["nodePort"] == port
    # Turning it into a ClusterIP service gives the port back.
    after = await client.update("services", service("np", namespace))
    assert "nodePort" not in after["spec"]["ports"][0]
    taken = await client.create("services", service("np2", namespace, type_="NodePort",
                                                     node_port=port))
    assert taken["spec"]["ports"][0]["nodePort"] == port


async def test_cluster_ip_is_immutable(client: Client, namespace: str) -> None:
    """Changing a Service's clusterIP is rejected."""
    svc = await client.create("services", service("imm", namespace))
    ip = ipaddress.ip_address(svc["spec"]["clusterIP"])
    other = str(ip + 1 if ip + 1 in ipaddress.ip_network("127.96.0.0/16") else ip - 1)
    with pytest.raises(InvalidError) as err:
        await client.update("services", service("imm", namespace, cluster_ip=other))
    assert "immutable" in str(err.value)


async def test_no_duplicates_across_two_apiservers(apiserver_factory) -> None:
    """Two apiserver replicas allocating from a nearly full range never hand out one IP twice."""
    flags = ("--service-cluster-ip-range", "127.97.0.0/26")  # 61 usable addresses
    first, second = apiserver_factory(*flags), apiserver_factory(*flags)
    async with Client(first.target) as a, Client(second.target) as b:
        results = await asyncio.gather(*(
            (a if i % 2 else b).create("services", service(f"r{i}")) for i in range(61)))
        ips = [s["spec"]["clusterIP"] for s in results]
        assert len(set(ips)) == 61
        with pytest.raises(Exception) as err:
            await a.create("services", service("one-too-many"))
        assert "no ClusterIPs left" in str(err.value)

"""Cluster DNS from inside a pod on the docker runtime: a real apiserver, a real
services/dns process and a docker-runtime kubelet on the host, with its pods on a
network of this module's own.

The DNS listens on that network's gateway (the host's address on the bridge),
port 53, and the kubelet hands it to pods with --cluster-dns, so the pod's own
libc resolver (`getent`) goes through it. Names outside the cluster are
forwarded to a fake upstream on loopback (tests/test_dns.py's): the world
outside the cluster, which this machine cannot reach. Run it alone:
`python -m pytest -q tests/test_dns_docker.py`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

import tests.test_kubelet_docker as kd
from kubelite.client import Client
from kubelite.localcluster import ManagedProcess, free_port, python_module_argv, wait_healthy
from services.kubelet.runtime import LABEL_CONTAINER_NAME, LABEL_POD_UID
from tests.test_dns import EXTERNAL_IP, EXTERNAL_NAME, FakeUpstream, endpoints, service
from tests.test_kubelet import KubeletProcess, eventually, make_pod, wait_running_ready
from tests.test_kubelet_docker import DEMO, INFRA, NODES

# The docker tests' fixtures: the engine, a network of this module's own (removed with
# every container of ours on it) and a namespace whose pods are deleted afterwards.
docker_api = kd.docker_api
network = kd.network
ns = kd.ns


@pytest.fixture(scope="module")
def gateway(docker_api: Any, network: str) -> str:
    """The host's address on the module's network: where pods reach the DNS."""
    config = docker_api.inspect_network(network)["IPAM"]["Config"]
    return config[0]["Gateway"]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    fake = FakeUpstream().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def cluster_dns(shared_apiserver, gateway: str, upstream: FakeUpstream,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    health = f"127.0.0.1:{free_port()}"
    argv = python_module_argv(
        "services.dns", "--server", shared_apiserver.target, "--listen", f"{gateway}:53",
        "--upstream", f"127.0.0.1:{upstream.port}", "--health-listen", health,
        "--metrics-port", "0", "--log-level", "debug")
    proc = ManagedProcess("dns", argv, tmp_path_factory.mktemp("dns") / "dns.log").start()
    try:
        wait_healthy(health, 30, proc.proc)
    except Exception:
        print(proc.tail())
        proc.kill()
        raise
    yield gateway
    proc.stop()


@pytest.fixture(scope="module")
def kubelet(shared_apiserver, network: str, cluster_dns: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeletProcess]:
    k = KubeletProcess(shared_apiserver.target, tmp_path_factory.mktemp("dkubelet"),
                       "--runtime", "docker", "--docker-network", network,
                       "--pod-infra-image", INFRA, "--cluster-dns", cluster_dns)
    NODES.append(k.node)  # removed by the network fixture's cleanup
    k.start()
    yield k
    k.stop()


def exec_in(api: Any, container_id: str, *command: str) -> tuple[int, str]:
    exec_id = api.exec_create(container_id, list(command))["Id"]
    output = api.exec_start(exec_id).decode()
    return api.exec_inspect(exec_id)["ExitCode"], output


async def test_pod_resolves_services_by_name_through_the_cluster_dns(
        docker_api: Any, kubelet: KubeletProcess, cluster_dns: str, client: Client,
        ns: str) -> None:
    """resolv.conf as Kubernetes writes it; `getent` finds Services, headless endpoints,
    forwarded names and hostAliases; an endpoint that turns unready leaves within 2 s."""
    web = await client.create("services", service("web", ns))
    await client.create("services", service("db", ns, headless=True))
    pod = make_pod("client", ns, kubelet.node,
                   {"name": "c", "image": DEMO, "imagePullPolicy": "IfNotPresent",
                    "command": ["sleep", "3600"]})
    pod["spec"]["hostAliases"] = [{"ip": "10.9.8.7", "hostnames": ["legacy.internal"]}]
    pod = await client.create("pods", pod)
    running = await wait_running_ready(client, "client", ns, within=60)
    pod_ip = running["status"]["podIP"]
    await client.create("endpoints", endpoints("db", ns, [pod_ip, "10.1.0.9"]))
    rows = await asyncio.to_thread(docker_api.containers, filters={"label": [
        f"{LABEL_POD_UID}={pod['metadata']['uid']}", f"{LABEL_CONTAINER_NAME}=c"]})
    assert len(rows) == 1
    cid = rows[0]["Id"]

    async def run(*command: str) -> tuple[int, str]:
        return await asyncio.to_thread(exec_in, docker_api, cid, *command)

    code, resolv = await run("cat", "/etc/resolv.conf")
    lines = resolv.splitlines()
    assert lines[0] == f"nameserver {cluster_dns}", resolv
    assert lines[1].startswith(f"search {ns}.svc.cluster.local svc.cluster.local "
                               "cluster.local"), resolv
    assert lines[2] == "options ndots:5", resolv

    cluster_ip = web["spec"]["clusterIP"]

    async def hosts(name: str) -> str | None:
        code, out = await run("getent", "hosts", name)
        return out if code == 0 else None

    out = await eventually(lambda: hosts("web"), within=10, what="web resolving")
    assert out.split()[0] == cluster_ip and f"web.{ns}.svc.cluster.local" in out
    out = await hosts(f"web.{ns}.svc.cluster.local")
    assert out is not None and out.split()[0] == cluster_ip
    out = await hosts(EXTERNAL_NAME.rstrip("."))
    assert out is not None and out.split()[0] == EXTERNAL_IP
    out = await hosts("legacy.internal")
    assert out is not None and out.split()[0] == "10.9.8.7"
    assert await hosts(f"nothing.{ns}.svc.cluster.local") is None

    async def headless() -> set[str]:
        code, out = await run("getent", "ahostsv4", "db")
        return {line.split()[0] for line in out.splitlines()} if code == 0 else set()

    async def both() -> set[str] | None:
        found = await headless()
        return found if found == {pod_ip, "10.1.0.9"} else None

    await eventually(both, within=10, what="db answering with both endpoints")
    current = await client.get("endpoints", "db", namespace=ns)
    current["subsets"] = endpoints("db", ns, [pod_ip], ["10.1.0.9"])["subsets"]
    start = time.monotonic()
    await client.update("endpoints", current)

    async def only_ready() -> set[str] | None:
        found = await headless()
        return found if found == {pod_ip} else None

    await eventually(only_ready, within=2, what="the unready endpoint leaving")
    assert time.monotonic() - start < 2.0


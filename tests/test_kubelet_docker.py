"""Component tests of the docker runtime: a real kubelet process on the host with
`--runtime docker`, against a real apiserver and the machine's real Docker engine,
with pods bound to its node directly (no scheduler).

The pods run on a user-defined network of this module's own (`kl-test-<random>`),
which the host reaches, so the tests talk to pod IPs directly. Everything the
module creates is labelled and removed at the end, even when a test fails: the
kubelets' containers by their node label, the rest by `io.kubelite.test`.
Containers that are not this module's are never touched.

No registry is needed: the images are the local ones scripts/build-images makes.
Docker must be running (CI starts dockerd); if it is not, the tests fail, saying so.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from kubelite.client import Client
from kubelite.errors import NotFoundError
from kubelite.localcluster import free_port
from services.kubelet.runtime import (
    LABEL_CONTAINER_NAME,
    LABEL_POD_UID,
    ContainerConfig,
    ContainerState,
    ImageService,
    PodSandboxConfig,
    Runtime,
)
from services.kubelet.runtime_docker import (
    LABEL_MANAGED_BY,
    LABEL_NODE,
    LABEL_RESTART_COUNT,
    LABEL_SANDBOX_ID,
    LABEL_TYPE,
    MANAGED_BY,
    Demuxer,
    DockerRuntime,
    container_from_inspect,
    cpu_shares,
    parse_time,
)
from tests.test_kubelet import (
    KubeletProcess,
    condition,
    events_for,
    eventually,
    get_pod,
    make_pod,
    status_of,
    wait_running_ready,
)

Obj = dict[str, Any]
DEMO = "kubelite/demo:latest"
BASE = "kubelite/base:bookworm"
INFRA = "kubelite:latest"
RUN = uuid.uuid4().hex[:8]
TEST_LABEL = "io.kubelite.test"



# -- pure logic: Docker's answers read as the runtime's ------------------------------------


def inspect_data(status: str, **state: Any) -> Obj:
    return {"Id": "abc", "Created": "2026-11-27T00:00:00.5Z",
            "Config": {"Image": BASE, "Labels": {LABEL_POD_UID: "u", LABEL_CONTAINER_NAME: "c",
                                                LABEL_RESTART_COUNT: "3"}},
            "State": {"Status": status, "ExitCode": 0, "OOMKilled": False, "Error": "",
                      "StartedAt": "0001-01-01T00:00:00Z",
                      "FinishedAt": "0001-01-01T00:00:00Z", **state}}


def test_docker_times_parse_with_nanoseconds_and_the_zero_time_is_none() -> None:
    """RFC 3339 with nanoseconds or offsets; Docker's zero time means "never"."""
    assert parse_time("2026-11-27T00:12:25.982315061Z") == pytest.approx(1795738345.982315)
    assert parse_time("2026-11-27T01:12:25+01:00") == pytest.approx(1795738345.0)
    assert parse_time("0001-01-01T00:00:00Z") is None and parse_time("") is None


def test_inspect_of_an_oom_killed_container_reads_as_oom_killed() -> None:
    """State.OOMKilled becomes reason OOMKilled with Docker's exit code and restart count."""
    c = container_from_inspect(inspect_data(
        "exited", ExitCode=137, OOMKilled=True, StartedAt="2026-11-27T00:00:01Z",
        FinishedAt="2026-11-27T00:00:02Z"))
    assert c.state is ContainerState.EXITED and c.reason == "OOMKilled"
    assert c.exit_code == 137 and c.restart_count == 3 and c.pod_uid == "u"
    assert c.finished_at - c.started_at == pytest.approx(1.0)


def test_a_container_docker_could_not_start_reads_as_a_start_error_exit() -> None:
    """Docker leaves it "created" with State.Error; it is an exit that has a finish time."""
    c = container_from_inspect(inspect_data("created", ExitCode=127, Error="exec: no such"))
    assert c.state is ContainerState.EXITED and c.reason == "StartError"
    assert c.exit_code == 127 and c.message == "exec: no such" and c.finished_at


def test_a_container_created_but_never_started_is_replaced_after_a_while() -> None:
    """Created moments ago (or being started) it is CREATED; left behind, a StartError."""
    data = inspect_data("created")
    created = parse_time(data["Created"])
    assert container_from_inspect(data, now=created + 1).state is ContainerState.CREATED
    old = container_from_inspect(data, now=created + 60)
    assert old.state is ContainerState.EXITED and old.reason == "StartError"
    assert container_from_inspect(data, starting=True, now=created + 60).state is \
        ContainerState.CREATED


def test_exec_output_is_demultiplexed_across_reads_and_bounded() -> None:
    """Frames split across reads are joined; only the last bytes are kept."""
    frame = lambda kind, data: bytes([kind, 0, 0, 0]) + len(data).to_bytes(4, "big") + data  # noqa: E731
    raw = frame(1, b"out ") + frame(2, b"err ") + frame(1, b"end")
    d = Demuxer(limit=100)
    for i in range(0, len(raw), 5):
        d.feed(raw[i:i + 5])
    assert bytes(d.output) == b"out err end"
    small = Demuxer(limit=4)
    small.feed(raw)
    assert bytes(small.output) == b" end"


def test_cpu_requests_become_cpu_shares_as_the_kubelet_computes_them() -> None:
    assert cpu_shares(250) == 256 and cpu_shares(1000) == 1024 and cpu_shares(1) == 2


# -- Docker plumbing (blocking: tests call it through asyncio.to_thread) ---------------


@pytest.fixture(scope="module")
def docker_api() -> Iterator[Any]:
    """The Docker engine; the module fails (not skips) when it cannot be reached."""
    try:
        api = docker.APIClient(version="auto", timeout=30)
        api.ping()
    except Exception as err:  # noqa: BLE001 - any failure means the same thing here
        pytest.fail(f"the Docker engine is unreachable ({err}); these tests need a running "
                    "dockerd (CI starts one; locally: sudo dockerd &)", pytrace=False)
    missing = []
    for image in (DEMO, BASE, INFRA):
        try:
            api.inspect_image(image)
        except docker.errors.ImageNotFound:
            missing.append(image)
    if missing:
        pytest.fail(f"images missing: {', '.join(missing)}; run scripts/build-images",
                    pytrace=False)
    yield api
    api.close()


@pytest.fixture(scope="module")
def network(docker_api: Any) -> Iterator[str]:
    """A user-defined bridge of this module's own, removed with everything on it."""
    name = f"kl-test-{RUN}"
    docker_api.create_network(name, driver="bridge", labels={TEST_LABEL: RUN})
    try:
        yield name
    finally:
        remove_by_label(docker_api, f"{TEST_LABEL}={RUN}")
        for node in NODES:
            remove_by_label(docker_api, f"{LABEL_NODE}={node}")
        try:
            docker_api.remove_network(name)
        except docker.errors.APIError as err:
            print(f"cannot remove network {name}: {err}")


NODES: list[str] = []  # every node name a kubelet of this module ran as


def remove_by_label(api: Any, label: str) -> None:
    for row in api.containers(all=True, filters={"label": label}):
        try:
            api.remove_container(row["Id"], force=True, v=True)
        except docker.errors.NotFound:
            pass


def containers_of(api: Any, **labels: str) -> list[Obj]:
    """`docker ps -a` rows with these labels."""
    return api.containers(all=True, filters={"label": [f"{k}={v}" for k, v in labels.items()]})


def docker_kubelet(server: str, workdir: Path, network_name: str) -> KubeletProcess:
    kubelet = KubeletProcess(server, workdir, "--runtime", "docker", "--docker-network",
                             network_name, "--pod-infra-image", INFRA)
    NODES.append(kubelet.node)
    return kubelet


@pytest.fixture(scope="module")
def kubelet(shared_apiserver, network: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeletProcess]:
    """One docker kubelet for the module, on a node of its own."""
    k = docker_kubelet(shared_apiserver.target, tmp_path_factory.mktemp("dkubelet"), network)
    k.start()
    yield k
    k.stop()


@pytest.fixture
async def ns(client: Client, namespace: str) -> AsyncIterator[str]:
    """A namespace whose pods are force-deleted afterwards (the kubelet then removes them)."""
    yield namespace
    for pod in (await client.list("pods", namespace=namespace)).items:
        try:
            await client.delete("pods", pod["metadata"]["name"], namespace=namespace,
                                grace_period_seconds=0)
        except NotFoundError:
            pass


def demo(name: str = "web", **extra: Any) -> Obj:
    return {"name": name, "image": DEMO, "imagePullPolicy": "IfNotPresent",
            "ports": [{"name": "http", "containerPort": 8080}], **extra}


def python(name: str, script: str, **extra: Any) -> Obj:
    return {"name": name, "image": BASE, "command": ["python3", "-u", "-c", script], **extra}


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read().decode()


async def answers(url: str) -> str:
    """The body of GET url, once the server there listens."""
    async def get() -> str | None:
        try:
            return await asyncio.to_thread(http_get, url)
        except OSError:
            return None
    return await eventually(get, within=10, what=f"an answer from {url}")


async def pod_logs(client: Client, name: str, ns: str, **kw: Any) -> bytes:
    return b"".join([c async for c in client.logs(name, namespace=ns, **kw)])


def _id(container_id: str) -> str:
    assert container_id.startswith("docker://"), container_id
    return container_id.removeprefix("docker://")


# -- the runtime in this process ---------------------------------------------------------


async def test_runtime_calls_never_block_the_event_loop(
        docker_api: Any, network: str, caplog: pytest.LogCaptureFixture) -> None:
    """A pod's whole life through the runtime, with asyncio's debug mode reporting any
    callback that holds the loop for 50 ms: there is none."""
    node = f"kl-inproc-{RUN}"
    NODES.append(node)
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    loop.slow_callback_duration = 0.05
    caplog.set_level("WARNING", logger="asyncio")
    runtime = await DockerRuntime.connect(node_name=node, network=network,
                                          pod_infra_image=INFRA)
    assert isinstance(runtime, Runtime) and isinstance(runtime, ImageService)
    try:
        await runtime.start()
        sandbox = await runtime.run_pod_sandbox(PodSandboxConfig(uid="u1", namespace="ns",
                                                                 name="p"))
        started = await runtime.start_container(sandbox, ContainerConfig(
            pod_uid="u1", pod_namespace="ns", pod_name="p", name="main", image=BASE,
            command=["sh", "-c", "echo hello; exec sleep 60"], args=[], env=[]))
        assert started.running
        result = await runtime.exec(started.id, ["sh", "-c", "echo $((6 * 7))"], time_limit=5)
        assert (result.exit_code, result.output) == (0, b"42\n")
        timed_out = await runtime.exec(started.id, ["sleep", "5"], time_limit=0.3)
        assert timed_out.timed_out
        usage = await runtime.container_stats(started.id)
        assert usage is not None and usage.cpu_seconds > 0 and usage.memory_bytes > 0

        async def said_hello() -> bool:
            return b"hello" in b"".join([c async for c in runtime.logs(started.id)])
        await eventually(said_hello, what="the container's output")
        await runtime.stop_container(started.id, grace=0.5)
        stopped = await runtime.container_status(started.id)
        assert stopped is not None and stopped.exited and stopped.exit_code == 137
        await runtime.remove_container(started.id)
        await runtime.remove_pod_sandbox("u1")
        assert await runtime.list_containers() == []
        assert await runtime.list_pod_sandboxes() == []
    finally:
        await runtime.close()
        loop.set_debug(False)
    slow = [r.getMessage() for r in caplog.records if "took" in r.getMessage()]
    assert not slow, slow


# -- running pods ------------------------------------------------------------------------


async def test_demo_pod_runs_ready_on_the_cluster_network_and_answers_http(
        client: Client, kubelet: KubeletProcess, ns: str, docker_api: Any,
        network: str) -> None:
    """The demo image's own CMD runs; the pod's IP is on the network and answers HTTP there,
    and its containers carry the labels and limits the kubelet gave them."""
    created = await client.create("pods", make_pod("web", ns, kubelet.node, demo(
        readinessProbe={"httpGet": {"port": "http", "path": "/"}, "periodSeconds": 1},
        resources={"limits": {"memory": "128Mi", "cpu": "500m"},
                   "requests": {"memory": "64Mi", "cpu": "250m"}})))
    uid = created["metadata"]["uid"]
    pod = await wait_running_ready(client, "web", ns, within=30)
    ip = pod["status"]["podIP"]
    subnet = (await asyncio.to_thread(docker_api.inspect_network, network))["IPAM"]["Config"][0]
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(subnet["Subnet"])
    assert pod["status"]["podIPs"] == [{"ip": ip}]
    cs = status_of(pod)
    assert cs["ready"] and cs["restartCount"] == 0 and cs["image"] == DEMO
    assert await answers(f"http://{ip}:8080/") == "web\n"

    data = await asyncio.to_thread(docker_api.inspect_container, _id(cs["containerID"]))
    labels = data["Config"]["Labels"]
    assert labels[LABEL_POD_UID] == uid and labels[LABEL_CONTAINER_NAME] == "web"
    assert labels["io.kubernetes.pod.name"] == "web"
    assert labels["io.kubernetes.pod.namespace"] == ns
    assert labels[LABEL_NODE] == kubelet.node and labels[LABEL_MANAGED_BY] == MANAGED_BY
    assert labels[LABEL_RESTART_COUNT] == "0" and labels[LABEL_TYPE] == "container"
    assert labels["io.kubelite.resources.requests.cpu"] == "250m"
    assert labels["io.kubelite.resources.requests.memory"] == str(64 * 2**20)
    host = data["HostConfig"]
    assert host["Memory"] == 128 * 2**20 and host["NanoCpus"] == 500_000_000
    assert host["CpuShares"] == 256
    assert host["RestartPolicy"]["Name"] in ("no", "")
    assert host["NetworkMode"] == f"container:{labels[LABEL_SANDBOX_ID]}"
    holder = await asyncio.to_thread(docker_api.inspect_container, labels[LABEL_SANDBOX_ID])
    assert holder["NetworkSettings"]["Networks"][network]["IPAddress"] == ip
    assert holder["Config"]["Labels"][LABEL_TYPE] == "podsandbox"

    node = await client.get("nodes", kubelet.node)
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("docker://")
    assert b"listening on 0.0.0.0:8080" in await pod_logs(client, "web", ns)

    followed = bytearray()

    async def follow() -> None:
        async for chunk in client.logs("web", namespace=ns, follow=True):
            followed.extend(chunk)
    reader = asyncio.create_task(follow())
    try:
        await asyncio.sleep(0.5)
        await answers(f"http://{ip}:8080/follow-marker")

        async def streamed() -> bool:
            return b"GET /follow-marker" in followed
        await eventually(streamed, what="the new line in the followed log")
        assert not reader.done()
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    pulled = await events_for(client, ns, "web", "Pulled")
    assert any("already present on machine" in e["message"] for e in pulled)


async def test_containers_of_a_pod_share_localhost_and_exec_probes_run_inside(
        client: Client, kubelet: KubeletProcess, ns: str) -> None:
    """A second container reaches the first on localhost; its exec readiness probe sees a
    file that exists only inside its own filesystem."""
    peer = ("import socket, time\n"
            "while True:\n"
            "    try:\n"
            "        socket.create_connection(('localhost', 8080), 1).close(); break\n"
            "    except OSError: time.sleep(0.1)\n"
            "open('/tmp/peer', 'w').close()\n"
            "print('peer reachable on localhost', flush=True); time.sleep(1000)")
    await client.create("pods", make_pod("pair", ns, kubelet.node, demo("server"), python(
        "client", peer, readinessProbe={"exec": {"command": ["test", "-f", "/tmp/peer"]},
                                        "periodSeconds": 1})))

    async def both_ready() -> Obj | None:
        pod = await get_pod(client, "pair", ns)
        return pod if condition(pod, "Ready") == "True" else None
    await eventually(both_ready, within=30, what="both containers ready")
    assert b"peer reachable on localhost" in await pod_logs(client, "pair", ns,
                                                            container="client")


async def test_command_args_env_and_working_dir_reach_the_container(
        client: Client, kubelet: KubeletProcess, ns: str) -> None:
    """command replaces the entrypoint, args follow it, env and workingDir apply."""
    script = ("import json, os, sys\n"
              "print(json.dumps({'argv': sys.argv[1:], 'cwd': os.getcwd(), 'env': {k: "
              "os.environ.get(k) for k in ('GREETING', 'POD_NAME', 'POD_IP')}}), flush=True)\n"
              "import time; time.sleep(1000)")
    await client.create("pods", make_pod("envy", ns, kubelet.node, python(
        "main", script, args=["one", "$(POD_NAME)"], workingDir="/tmp",
        env=[{"name": "GREETING", "value": "hi $(POD_NAME)"}])))
    pod = await wait_running_ready(client, "envy", ns, within=30)

    async def output() -> Obj | None:
        data = await pod_logs(client, "envy", ns)
        return json.loads(data) if data.strip() else None
    got = await eventually(output, what="the env dump")
    assert got == {"argv": ["one", "envy"], "cwd": "/tmp",
                   "env": {"GREETING": "hi envy", "POD_NAME": "envy",
                           "POD_IP": pod["status"]["podIP"]}}


# -- failures ------------------------------------------------------------------------------


async def test_docker_kill_brings_the_container_back_with_restart_count_plus_one(
        client: Client, kubelet: KubeletProcess, ns: str, docker_api: Any) -> None:
    """The kubelet, not Docker, restarts a killed container; the pod keeps its IP, and the
    previous instance stays (exited) for `logs --previous`."""
    await client.create("pods", make_pod("phoenix", ns, kubelet.node, demo()))
    pod = await wait_running_ready(client, "phoenix", ns, within=30)
    first = _id(status_of(pod)["containerID"])

    async def serving() -> bool:
        return b"listening" in await pod_logs(client, "phoenix", ns)
    await eventually(serving, what="the first instance's output")
    await asyncio.to_thread(docker_api.kill, first)

    async def restarted() -> Obj | None:
        pod = await get_pod(client, "phoenix", ns)
        cs = status_of(pod)
        return pod if cs.get("restartCount") == 1 and "running" in cs["state"] else None
    pod = await eventually(restarted, within=30, what="the restart")
    cs = status_of(pod)
    assert _id(cs["containerID"]) != first
    last = cs["lastState"]["terminated"]
    assert last["exitCode"] == 137 and _id(last["containerID"]) == first
    assert pod["status"]["podIP"] == pod["status"]["podIPs"][0]["ip"]
    labels = (await asyncio.to_thread(docker_api.inspect_container,
                                      _id(cs["containerID"])))["Config"]["Labels"]
    assert labels[LABEL_RESTART_COUNT] == "1"
    assert (await asyncio.to_thread(docker_api.inspect_container,
                                    first))["State"]["Status"] == "exited"
    assert b"listening" in await pod_logs(client, "phoenix", ns, previous=True)
    assert await answers(f"http://{pod['status']['podIP']}:8080/") == "phoenix\n"


async def test_image_that_cannot_be_pulled_shows_err_image_pull_then_image_pull_back_off(
        client: Client, kubelet: KubeletProcess, ns: str) -> None:
    """No registry here: the pull fails with Docker's message, then backs off."""
    await client.create("pods", make_pod("nope", ns, kubelet.node, {
        "name": "main", "image": "kubelite/does-not-exist:1"}))
    seen: dict[str, str] = {}

    async def both() -> bool:
        waiting = status_of(await get_pod(client, "nope", ns)).get("state", {}).get("waiting")
        if waiting and waiting["reason"] in ("ErrImagePull", "ImagePullBackOff"):
            seen.setdefault(waiting["reason"], waiting.get("message", ""))
        return len(seen) == 2
    await eventually(both, within=30, interval=0.02, what="ErrImagePull and ImagePullBackOff")
    assert "Error response from daemon" in seen["ErrImagePull"]
    assert seen["ImagePullBackOff"].startswith(
        'Back-off pulling image "kubelite/does-not-exist:1": ErrImagePull: Error response')
    pod = await get_pod(client, "nope", ns)
    assert pod["status"]["phase"] == "Pending"
    assert await events_for(client, ns, "nope", "Pulling")
    failed = [e["message"] for e in await events_for(client, ns, "nope", "Failed")]
    assert any(m.startswith('Failed to pull image "kubelite/does-not-exist:1"') for m in failed)
    assert await events_for(client, ns, "nope", "BackOff")


async def test_pull_policy_never_with_a_missing_image_waits_with_err_image_never_pull(
        client: Client, kubelet: KubeletProcess, ns: str) -> None:
    """Never never pulls: a missing image is ErrImageNeverPull."""
    await client.create("pods", make_pod("never", ns, kubelet.node, {
        "name": "main", "image": "kubelite/does-not-exist:2", "imagePullPolicy": "Never"}))

    async def waiting() -> Obj | None:
        state = status_of(await get_pod(client, "never", ns)).get("state", {})
        return state.get("waiting") if (state.get("waiting") or {}).get("reason") == \
            "ErrImageNeverPull" else None
    got = await eventually(waiting, within=20, what="ErrImageNeverPull")
    assert "is not present with pull policy of Never" in got["message"]


async def test_always_runs_the_local_image_when_the_pull_fails(
        client: Client, kubelet: KubeletProcess, ns: str) -> None:
    """imagePullPolicy Always on an air-gapped node: the pull fails, the node's copy runs,
    and a Warning says so."""
    await client.create("pods", make_pod("always", ns, kubelet.node, demo(
        imagePullPolicy="Always")))
    await wait_running_ready(client, "always", ns, within=30)
    failed = [e for e in await events_for(client, ns, "always", "Failed")]
    assert any("running the image present on the node" in e["message"] and
               e["type"] == "Warning" for e in failed)


async def test_host_port_is_published_on_the_node(
        client: Client, kubelet: KubeletProcess, ns: str) -> None:
    """A container port with hostPort is reachable on the node's address."""
    port = free_port()
    await client.create("pods", make_pod("hosted", ns, kubelet.node, demo(ports=[
        {"name": "http", "containerPort": 8080, "hostPort": port}])))
    await wait_running_ready(client, "hosted", ns, within=30)
    assert await answers(f"http://127.0.0.1:{port}/") == "hosted\n"


async def test_container_over_its_memory_limit_is_oom_killed(
        client: Client, kubelet: KubeletProcess, ns: str) -> None:
    """Docker's cgroup limit kills it and the status says OOMKilled."""
    hog = "x = []\nwhile True: x.append(bytearray(8 << 20))"
    await client.create("pods", make_pod("hog", ns, kubelet.node, python(
        "main", hog, resources={"limits": {"memory": "48Mi"}}), restart_policy="Never"))

    async def terminated() -> Obj | None:
        state = status_of(await get_pod(client, "hog", ns)).get("state", {})
        return state.get("terminated")
    got = await eventually(terminated, within=30, what="the OOM kill")
    assert got["reason"] == "OOMKilled" and got["exitCode"] == 137
    assert (await get_pod(client, "hog", ns))["status"]["phase"] == "Failed"


async def test_container_whose_command_does_not_exist_fails_to_start(
        client: Client, kubelet: KubeletProcess, ns: str) -> None:
    """Docker's start error reaches the status as a StartError exit, then back-off."""
    await client.create("pods", make_pod("noexec", ns, kubelet.node, {
        "name": "main", "image": BASE, "command": ["/no/such/binary"]}))

    async def failed() -> Obj | None:
        cs = status_of(await get_pod(client, "noexec", ns))
        term = cs.get("state", {}).get("terminated") or cs.get("lastState", {}).get("terminated")
        return term if term and term["reason"] == "StartError" else None
    got = await eventually(failed, within=20, what="StartError")
    assert "no such file or directory" in got["message"]


# -- ownership -----------------------------------------------------------------------------


async def test_deleting_the_pod_removes_its_containers_and_sandbox(
        client: Client, kubelet: KubeletProcess, ns: str, docker_api: Any) -> None:
    """After a graceful delete nothing of the pod is left on Docker."""
    created = await client.create("pods", make_pod("gone", ns, kubelet.node, demo(),
                                                   grace=1))
    uid = created["metadata"]["uid"]
    await wait_running_ready(client, "gone", ns, within=30)
    assert len(await asyncio.to_thread(containers_of, docker_api, **{LABEL_POD_UID: uid})) == 2
    await client.delete("pods", "gone", namespace=ns)

    async def removed() -> bool:
        return not await asyncio.to_thread(containers_of, docker_api, **{LABEL_POD_UID: uid})
    await eventually(removed, within=30, what="the pod's containers removed")
    with pytest.raises(NotFoundError):
        await get_pod(client, "gone", ns)


async def test_containers_that_are_not_this_kubelets_are_never_touched(
        client: Client, kubelet: KubeletProcess, ns: str, docker_api: Any,
        network: str) -> None:
    """A label-less container, and one labelled as another node's pod, keep running while
    this kubelet cleans up orphans."""
    def run_foreign() -> tuple[str, str]:
        plain = docker_api.create_container(BASE, command=["sleep", "60"],
                                            labels={TEST_LABEL: RUN})
        other = docker_api.create_container(BASE, command=["sleep", "60"], labels={
            TEST_LABEL: RUN, LABEL_MANAGED_BY: MANAGED_BY, LABEL_NODE: "some-other-node",
            LABEL_TYPE: "container", LABEL_POD_UID: str(uuid.uuid4()),
            LABEL_CONTAINER_NAME: "main"})
        for c in (plain, other):
            docker_api.start(c["Id"])
        return plain["Id"], other["Id"]
    ids = await asyncio.to_thread(run_foreign)
    # A pod's whole life meanwhile, so that the orphan clean-up runs on this node.
    await client.create("pods", make_pod("brief", ns, kubelet.node, demo(), grace=0))
    await wait_running_ready(client, "brief", ns, within=30)
    await client.delete("pods", "brief", namespace=ns)
    await asyncio.sleep(3)
    for cid in ids:
        state = (await asyncio.to_thread(docker_api.inspect_container, cid))["State"]
        assert state["Running"], cid


async def test_restarted_kubelet_adopts_its_containers_without_duplicates(
        client: Client, shared_apiserver, ns: str, docker_api: Any, network: str,
        tmp_path: Path) -> None:
    """A kubelet killed and started again keeps the same containers (same ids) running."""
    k = docker_kubelet(shared_apiserver.target, tmp_path, network)
    k.start()
    try:
        created = await client.create("pods", make_pod("stay", ns, k.node, demo()))
        uid = created["metadata"]["uid"]
        pod = await wait_running_ready(client, "stay", ns, within=30)
        before = {r["Id"] for r in await asyncio.to_thread(
            containers_of, docker_api, **{LABEL_POD_UID: uid})}
        assert len(before) == 2  # the holder and the demo container
        k.kill()
        k.start()
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            rows = await asyncio.to_thread(containers_of, docker_api, **{LABEL_POD_UID: uid})
            assert {r["Id"] for r in rows} == before
            assert all(r["State"] == "running" for r in rows)
            await asyncio.sleep(0.3)
        after = await get_pod(client, "stay", ns)
        assert status_of(after)["containerID"] == status_of(pod)["containerID"]
        assert status_of(after)["restartCount"] == 0
        assert after["status"]["podIP"] == pod["status"]["podIP"]
        assert condition(after, "Ready") == "True"
    finally:
        k.stop()


# -- an engine that stops answering ---------------------------------------------------------


class StallingDockerSocket:
    """A unix socket in front of the real engine's that forwards everything until it is
    told to stall: then it holds every byte, as a hung dockerd does."""

    def __init__(self, path: Path, target: str = "/var/run/docker.sock") -> None:
        import socket
        import threading

        self.path, self.target = path, target
        self.flowing = threading.Event()
        self.flowing.set()
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(str(path))
        self._server.listen(64)
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._spawn(self._accept)

    def _spawn(self, fn: Any, *args: Any) -> None:
        import threading

        thread = threading.Thread(target=fn, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept(self) -> None:
        import socket

        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.target)
            self._spawn(self._pipe, client, upstream)
            self._spawn(self._pipe, upstream, client)

    def _pipe(self, src: Any, dst: Any) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                self.flowing.wait()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(2)
                except OSError:
                    pass

    def close(self) -> None:
        self._closed = True
        self.flowing.set()
        self._server.close()


async def test_node_is_not_ready_while_the_docker_engine_does_not_answer(
        shared_apiserver, network: str, client: Client, tmp_path: Path) -> None:
    """The kubelet reports Ready False while its runtime's health check (/_ping) fails,
    and Ready again once the engine answers."""
    engine = StallingDockerSocket(tmp_path / "docker.sock")
    kubelet = KubeletProcess(shared_apiserver.target, tmp_path, "--runtime", "docker",
                             "--docker-network", network, "--pod-infra-image", INFRA,
                             "--docker-host", f"unix://{engine.path}")
    NODES.append(kubelet.node)
    try:
        await asyncio.to_thread(kubelet.start)

        async def ready() -> str:
            node = await client.get("nodes", kubelet.node)
            found = [c for c in node["status"].get("conditions") or [] if c["type"] == "Ready"]
            return found[0]["status"] if found else ""

        await eventually(lambda: _is(ready(), "True"), within=20)
        engine.flowing.clear()
        await eventually(lambda: _is(ready(), "False"), within=20)
        engine.flowing.set()
        await eventually(lambda: _is(ready(), "True"), within=30)
    finally:
        engine.flowing.set()
        await asyncio.to_thread(kubelet.stop)
        engine.close()


async def _is(value: Any, expected: Any) -> bool:
    return (await value) == expected

"""Component tests of the kubelet: a real kubelet process (process runtime) against
a real apiserver, with pods bound to its node directly (no scheduler)."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from kubelite import testing
from kubelite.client import Client
from kubelite.errors import InvalidError, NotFoundError
from kubelite.localcluster import ManagedProcess, free_port, python_module_argv, wait_healthy

T = TypeVar("T")
Obj = dict[str, Any]

FAST_FLAGS = (
    "--backoff-base", "0.2", "--backoff-cap", "5", "--pleg-relist-period", "0.05",
    "--node-lease-renew-interval", "1", "--node-status-update-frequency", "1",
    "--probe-period-scale", "0.2", "--sync-frequency", "5", "--orphan-grace", "0.5",
)


class KubeletProcess:
    """A kubelet child process with its own node name, root dir and pod CIDR."""

    def __init__(self, server: str, workdir: Path, *extra: str) -> None:
        self.server = server
        self.node = f"kl-{uuid.uuid4().hex[:8]}"
        self.root = workdir / self.node
        self.cidr = f"127.{random.randint(100, 250)}.{random.randint(0, 255)}.0/24"
        self.port = free_port()
        self.metrics_port = free_port()
        self.extra = extra
        self.process: ManagedProcess | None = None

    def start(self) -> KubeletProcess:
        argv = python_module_argv(
            "services.kubelet", "--server", self.server, "--node-name", self.node,
            "--listen", f"127.0.0.1:{self.port}", "--root-dir", str(self.root),
            "--pod-cidr", self.cidr, "--metrics-port", str(self.metrics_port),
            "--cpu", "2", "--memory", "4Gi", "--max-pods", "20", "--kill-pods-on-exit", "true",
            *FAST_FLAGS, *self.extra)
        self.process = ManagedProcess(self.node, argv, self.root.parent / f"{self.node}.log")
        self.process.start()
        try:
            wait_healthy(f"127.0.0.1:{self.port}", 30, self.process.proc)
        except Exception:
            print(self.process.tail())
            raise
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(grace=10)

    def states(self) -> dict[str, Obj]:
        """Container id -> state.json, for every instance on disk."""
        out = {}
        for path in (self.root / "containers").glob("*/state.json"):
            try:
                out[path.parent.name] = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
        return out

    def configs(self) -> dict[str, Obj]:
        out = {}
        for path in (self.root / "containers").glob("*/config.json"):
            out[path.parent.name] = json.loads(path.read_text())
        return out

    def pid_of(self, container_id: str) -> int:
        return int(self.states()[container_id.partition("://")[2]]["pid"])

    def kill_leftovers(self) -> None:
        """The safety net: no process of a test outlives it."""
        for state in self.states().values():
            if "exitCode" in state:
                continue
            for key in ("pid", "shimPid"):
                pid = int(state.get(key) or 0)
                if pid and alive(pid):
                    try:
                        os.killpg(pid, signal.SIGKILL)
                    except OSError:
                        pass

    def tail(self) -> str:
        return self.process.tail(60) if self.process else ""


def alive(pid: int) -> bool:
    """True if pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return False
    return data[data.rfind(b")") + 2:].split()[0] not in (b"Z", b"X")


@pytest.fixture(scope="module")
def kubelet(shared_apiserver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeletProcess]:
    """One kubelet for the module, on a node of its own."""
    k = KubeletProcess(shared_apiserver.target, tmp_path_factory.mktemp("kubelet"),
                       "--node-labels", "tier=test,zone=a",
                       "--register-with-taints", "dedicated=test:NoSchedule").start()
    yield k
    k.stop()
    k.kill_leftovers()


@pytest.fixture
async def ns(client: Client, namespace: str) -> Any:
    """A namespace whose pods are force-deleted afterwards (the kubelet then kills them)."""
    yield namespace
    for pod in (await client.list("pods", namespace=namespace)).items:
        try:
            await client.delete("pods", pod["metadata"]["name"], namespace=namespace,
                                grace_period_seconds=0)
        except NotFoundError:
            pass


async def eventually(fn: Callable[[], Awaitable[T]], *, within: float = 15.0,
                     interval: float = 0.05, what: str = "condition") -> T:
    """The kit's eventually, where NotFoundError (the object is not there yet) means
    "not yet"."""
    return await testing.eventually(fn, within, interval=interval, what=what,
                                    ignore=(NotFoundError,))


def make_pod(name: str, namespace: str, node: str, *containers: Obj,
             restart_policy: str = "Always", grace: int | None = None) -> Obj:
    spec: Obj = {"nodeName": node, "restartPolicy": restart_policy,
                 "containers": list(containers)}
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def container(name: str, script: str, **extra: Any) -> Obj:
    """A container running a Python script (python3 on PATH)."""
    return {"name": name, "image": "python:3.11-slim", "command": ["python3", "-u", "-c", script],
            **extra}


def sh(name: str, script: str, **extra: Any) -> Obj:
    return {"name": name, "image": "busybox:1.36", "command": ["sh", "-c", script], **extra}


HTTP_SERVER = """
import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("hello from " + os.environ["POD_NAME"]).encode()
        self.send_response(200); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
print("serving on", os.environ["POD_IP"], flush=True)
http.server.HTTPServer((os.environ["POD_IP"], 8080), H).serve_forever()
"""


async def get_pod(client: Client, name: str, ns: str) -> Obj:
    return await client.get("pods", name, namespace=ns)


def status_of(pod: Obj, container_name: str | None = None) -> Obj:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    if container_name is None:
        return statuses[0] if statuses else {}
    return next((s for s in statuses if s["name"] == container_name), {})


def condition(pod: Obj, type_: str) -> str:
    for c in pod.get("status", {}).get("conditions") or []:
        if c["type"] == type_:
            return c["status"]
    return ""


async def wait_running_ready(client: Client, name: str, ns: str, *, ready: bool = True,
                             within: float = 15.0) -> Obj:
    async def check() -> Obj | None:
        pod = await get_pod(client, name, ns)
        cs = status_of(pod)
        if pod["status"].get("phase") == "Running" and "running" in cs.get("state", {}) and \
                (condition(pod, "Ready") == "True") == ready:
            return pod
        return None
    return await eventually(check, within=within, what=f"pod {name} running")


async def events_for(client: Client, ns: str, name: str, reason: str) -> list[Obj]:
    items = (await client.list("events", namespace=ns)).items
    return [e for e in items if e["involvedObject"].get("name") == name and
            e.get("reason") == reason]


# -- the node ----------------------------------------------------------------------------


async def test_node_registers_with_capacity_and_ready_and_renews_its_lease(
        client: Client, kubelet: KubeletProcess) -> None:
    """The Node has capacity, labels, taints, addresses, endpoint and Ready; the Lease renews."""
    node = await eventually(lambda: client.get("nodes", kubelet.node), what="the Node")
    status = node["status"]
    assert status["capacity"] == {"cpu": "2", "memory": "4Gi", "pods": "20"}
    assert status["allocatable"] == status["capacity"]
    labels = node["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == kubelet.node
    assert labels["kubernetes.io/os"] == "linux"
    assert labels["tier"] == "test" and labels["zone"] == "a"
    assert node["spec"]["taints"] == [{"key": "dedicated", "value": "test",
                                       "effect": "NoSchedule"}]
    assert {"type": "InternalIP", "address": "127.0.0.1"} in status["addresses"]
    assert any(a["type"] == "Hostname" for a in status["addresses"])
    assert status["daemonEndpoints"]["kubeletEndpoint"]["Port"] == kubelet.port
    assert status["nodeInfo"]["kubeletVersion"].startswith("v")
    assert status["nodeInfo"]["operatingSystem"] == "linux"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["reason"] == "KubeletReady"
    assert ready["lastHeartbeatTime"]

    lease = await eventually(lambda: client.get("leases", kubelet.node,
                                                namespace="kube-node-lease"), what="lease")
    assert lease["spec"]["holderIdentity"] == kubelet.node
    assert lease["spec"]["leaseDurationSeconds"] == 40
    assert lease["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"]
    first = lease["spec"]["renewTime"]

    async def renewed() -> bool:
        lease = await client.get("leases", kubelet.node, namespace="kube-node-lease")
        return lease["spec"]["renewTime"] != first
    await eventually(renewed, within=5, what="lease renewal")

    async def heartbeat() -> bool:
        node = await client.get("nodes", kubelet.node)
        cond = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        return cond["lastHeartbeatTime"] != ready["lastHeartbeatTime"]
    await eventually(heartbeat, within=5, what="Ready heartbeat")


def test_metrics_are_exported(kubelet: KubeletProcess) -> None:
    """The metrics endpoint serves the kubelet's metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{kubelet.metrics_port}/metrics",
                                  timeout=5).read().decode()
    for name in ("kubelet_running_pods", "kubelet_running_containers",
                 "kubelet_pod_start_duration_seconds", "kubelet_container_restarts_total",
                 "prober_probe_total", "kubelet_runtime_operations_duration_seconds"):
        assert name in text


# -- running pods ------------------------------------------------------------------------


async def test_http_pod_runs_ready_and_answers_on_its_pod_ip(
        client: Client, kubelet: KubeletProcess, ns: str) -> None:
    """A server bound to $POD_IP goes Running and Ready and answers HTTP at status.podIP."""
    await client.create("pods", make_pod("web", ns, kubelet.node, container(
        "web", HTTP_SERVER, ports=[{"name": "http", "containerPort": 8080}],
        readinessProbe={"httpGet": {"port": "http", "path": "/"}, "periodSeconds": 1})))
    pod = await wait_running_ready(client, "web", ns)
    status = pod["status"]
    ip = status["podIP"]
    assert ip.startswith(kubelet.cidr.rsplit(".", 1)[0] + ".")
    assert status["podIPs"] == [{"ip": ip}] and status["hostIP"] == "127.0.0.1"
    assert status["startTime"] and status["qosClass"] == "BestEffort"
    conditions = {c["type"]: c for c in status["conditions"]}
    for type_ in ("PodScheduled", "Initialized", "ContainersReady", "Ready"):
        assert conditions[type_]["status"] == "True"
        assert conditions[type_]["lastTransitionTime"]
    cs = status_of(pod)
    assert cs["image"] == "python:3.11-slim" and cs["imageID"] == ""
    assert cs["containerID"].startswith("process://")
    assert cs["ready"] and cs["started"] and cs["restartCount"] == 0

    def fetch() -> str:
        with urllib.request.urlopen(f"http://{ip}:8080/", timeout=5) as resp:
            return resp.read().decode()
    assert await asyncio.to_thread(fetch) == "hello from web"
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", 8080), timeout=0.5).close()
    started = await events_for(client, ns, "web", "Started")
    created = await events_for(client, ns, "web", "Created")
    assert started and created
    # Status is written only when it changes: probes that keep passing write nothing.
    rv = (await get_pod(client, "web", ns))["metadata"]["resourceVersion"]
    await asyncio.sleep(1.0)
    assert (await get_pod(client, "web", ns))["metadata"]["resourceVersion"] == rv


async def test_pods_get_distinct_ips_and_share_one_between_their_containers(
        client: Client, kubelet: KubeletProcess, ns: str) -> None:
    """Each pod has its own IP; a second container reaches the first on the pod's IP."""
    probe = ("import os, socket, time\n"
             "while True:\n"
             "    try:\n"
             "        socket.create_connection((os.environ['POD_IP'], 8080), 1).close(); break\n"
             "    except OSError: time.sleep(0.1)\n"
             "print('peer reachable', flush=True); time.sleep(1000)")
    await client.create("pods", make_pod("pair", ns, kubelet.node,
                                         container("server", HTTP_SERVER),
                                         container("client", probe)))
    await client.create("pods", make_pod("other", ns, kubelet.node,
                                         sh("main", "sleep 1000")))
    pair = await wait_running_ready(client, "pair", ns)
    other = await wait_running_ready(client, "other", ns)
    assert pair["status"]["podIP"] != other["status"]["podIP"]

    async def client_saw_peer() -> bool:
        chunks = [c async for c in client.logs("pair", namespace=ns, container="client")]
        return b"peer reachable" in b"".join(chunks)
    await eventually(client_saw_peer, what="the second container reaching the first")


async def test_env_carries_pod_identity_field_refs_and_working_dir(
        client: Client, kubelet: KubeletProcess, ns: str, tmp_path: Path) -> None:
    """POD_IP, POD_NAME, POD_NAMESPACE, NODE_NAME, fieldRefs and workingDir reach the process."""
    await client.create("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                       "metadata": {"name": "cfg", "namespace": ns},
                                       "data": {"color": "blue"}})
    script = ("import json, os\n"
              "keys = ['POD_IP', 'POD_NAME', 'POD_NAMESPACE', 'NODE_NAME', 'MY_UID', 'MY_HOST',"
              " 'MY_NODE', 'GREETING', 'COLOR']\n"
              "print(json.dumps({'env': {k: os.environ.get(k) for k in keys},"
              " 'cwd': os.getcwd(), 'argv': os.sys.argv[1:]}), flush=True)\n"
              "import time; time.sleep(1000)")
    c = container("main", script, workingDir=str(tmp_path), args=["$(POD_NAME)"], env=[
        {"name": "MY_UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
        {"name": "MY_HOST", "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}},
        {"name": "MY_NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "GREETING", "value": "hi $(POD_NAME)"},
        {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "color"}}},
    ])
    created = await client.create("pods", make_pod("envy", ns, kubelet.node, c))
    pod = await wait_running_ready(client, "envy", ns)

    async def output() -> Obj | None:
        data = b"".join([c async for c in client.logs("envy", namespace=ns)])
        return json.loads(data) if data.strip() else None
    got = await eventually(output, what="the env dump")
    assert got["env"] == {
        "POD_IP": pod["status"]["podIP"], "POD_NAME": "envy", "POD_NAMESPACE": ns,
        "NODE_NAME": kubelet.node, "MY_UID": created["metadata"]["uid"], "MY_HOST": "127.0.0.1",
        "MY_NODE": kubelet.node, "GREETING": "hi envy", "COLOR": "blue"}
    assert got["cwd"] == str(tmp_path) and got["argv"] == ["envy"]


async def test_container_without_command_waits_with_create_container_config_error(
        client: Client, kubelet: KubeletProcess, ns: str) -> None:
    """The process runtime cannot run an image's entrypoint, and says so."""
    await client.create("pods", make_pod("nocmd", ns, kubelet.node,
                                         {"name": "main", "image": "nginx:1.27"}))

    async def waiting() -> Obj | None:
        cs = status_of(await get_pod(client, "nocmd", ns))
        return cs if "waiting" in cs.get("state", {}) and \
            cs["state"]["waiting"]["reason"] == "CreateContainerConfigError" else None
    cs = await eventually(waiting, what="CreateContainerConfigError")
    assert "no command" in cs["state"]["waiting"]["message"]
    assert cs["image"] == "nginx:1.27"
    assert (await get_pod(client, "nocmd", ns))["status"]["phase"] == "Pending"


async def test_pod_that_does_not_fit_the_node_is_rejected(
        client: Client, kubelet: KubeletProcess, ns: str) -> None:
    """A pod bound directly (no scheduler) that asks for more cpu than the node has fails."""
    greedy = sh("main", "sleep 1000", resources={"requests": {"cpu": "3"}})
    await client.create("pods", make_pod("greedy", ns, kubelet.node, greedy))

    async def rejected() -> Obj | None:
        pod = await get_pod(client, "greedy", ns)
        return pod if pod["status"].get("phase") == "Failed" else None
    pod = await eventually(rejected, what="the rejection")
    assert pod["status"]["reason"] == "OutOfcpu"
    assert "requested: 3000" in pod["status"]["message"]
    assert not any(c["podUid"] == pod["metadata"]["uid"] for c in kubelet.configs().values())


# -- restarts ----------------------------------------------------------------------------


async def test_killed_container_comes_back_with_restart_count_plus_one(
        client: Client, kubelet: KubeletProcess, ns: str) -> None:
    """SIGKILL of the container's process restarts it; lastState records exit code 137."""
    await client.create("pods", make_pod("victim", ns, kubelet.node, sh("main", "sleep 1000")))
    pod = await wait_running_ready(client, "victim", ns)
    first_id = status_of(pod)["containerID"]
    pid = kubelet.pid_of(first_id)
    os.kill(pid, signal.SIGKILL)

    async def restarted() -> Obj | None:
        pod = await get_pod(client, "victim", ns)
        cs = status_of(pod)
        return pod if cs.get("restartCount") == 1 and "running" in cs["state"] else None
    pod = await eventually(restarted, what="a restart")
    cs = status_of(pod)
    assert cs["containerID"] != first_id
    assert cs["lastState"]["terminated"]["exitCode"] == 137
    assert cs["lastState"]["terminated"]["reason"] == "Error"
    assert cs["lastState"]["terminated"]["containerID"] == first_id
    assert alive(kubelet.pid_of(cs["containerID"])) and not alive(pid)


async def test_crashing_container_backs_off_with_growing_delays(
        client: Client, kubelet: KubeletProcess, ns: str) -> None:
    """Restarts of a container that keeps failing come ever later: CrashLoopBackOff."""
    created = await client.create("pods", make_pod("crash", ns, kubelet.node,
                                                   sh("main", "exit 1")))
    uid = created["metadata"]["uid"]
    # The shim's own start and finish times, per restart count: the API's view would add
    # its latency (and this machine's load) to every gap.
    runs: dict[int, tuple[float, float]] = {}
    waiting_messages: set[str] = set()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(runs) < 6:
        configs, states = kubelet.configs(), kubelet.states()
        for cid, config in configs.items():
            state = states.get(cid) or {}
            if config["podUid"] == uid and "finishedAt" in state:
                runs[config["restartCount"]] = (state["startedAt"], state["finishedAt"])
        cs = status_of(await get_pod(client, "crash", ns))
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") == "CrashLoopBackOff":
            waiting_messages.add(waiting["message"])
        await asyncio.sleep(0.02)
    assert set(range(6)) <= set(runs), runs
    waits = [runs[i + 1][0] - runs[i][1] for i in range(5)]
    # The first restart comes at once, then after 0.2, 0.4, 0.8 and 1.6 s (base 0.2 s).
    for wait, backoff in zip(waits, [0, 0.2, 0.4, 0.8, 1.6], strict=True):
        assert backoff - 0.02 <= wait <= backoff + 1.5, waits
    assert waits[1] < waits[2] < waits[3] < waits[4], waits
    prefix = "back-off "
    suffix = f" restarting failed container=main pod=crash_{ns}({uid})"
    assert waiting_messages and all(m.startswith(prefix) and m.endswith(suffix)
                                    for m in waiting_messages), waiting_messages
    assert {m[len(prefix):-len(suffix)] for m in waiting_messages} <= {
        "200ms", "400ms", "800ms", "1.6s", "3.2s"}
    pod = await get_pod(client, "crash", ns)
    assert pod["status"]["phase"] == "Running"
    backoffs = await events_for(client, ns, "crash", "BackOff")
    assert backoffs and backoffs[0]["type"] == "Warning"
    assert backoffs[0]["message"] == f"Back-off restarting failed container main in pod " \
        f"crash_{ns}({uid})"


@pytest.mark.parametrize(("policy", "phase", "restarts"), [
    ("Never", "Failed", 0), ("OnFailure", "Succeeded", 1)])
async def test_restart_policy_decides_whether_a_failed_container_runs_again(
        client: Client, kubelet: KubeletProcess, ns: str, policy: str, phase: str,
        restarts: int) -> None:
    """Never leaves a failure failed; OnFailure retries until the container succeeds."""
    script = "if [ -f done ]; then exit 0; fi; touch done; exit 3"
    await client.create("pods", make_pod("once", ns, kubelet.node, sh("main", script),
                                         restart_policy=policy))

    async def finished() -> Obj | None:
        pod = await get_pod(client, "once", ns)
        return pod if pod["status"].get("phase") in ("Succeeded", "Failed") else None
    pod = await eventually(finished, what=f"the pod to finish under {policy}")
    assert pod["status"]["phase"] == phase
    cs = status_of(pod)
    assert cs["restartCount"] == restarts
    term = cs["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == ((3, "Error") if policy == "Never"
                                                  else (0, "Completed"))
    assert condition(pod, "Ready") == "False"
    await asyncio.sleep(0.5)
    assert status_of(await get_pod(client, "once", ns))["restartCount"] == restarts


async def test_succeeded_pod_with_restart_policy_never(
        client: Client, kubelet: KubeletProcess, ns: str) -> None:
    await client.create("pods", make_pod("ok", ns, kubelet.node, sh("main", "echo done"),
                                         restart_policy="Never"))

    async def succeeded() -> bool:
        return (await get_pod(client, "ok", ns))["status"].get("phase") == "Succeeded"
    await eventually(succeeded, what="Succeeded")
    assert b"".join([c async for c in client.logs("ok", namespace=ns)]) == b"done\n"


# -- probes ------------------------------------------------------------------------------


async def test_failing_liveness_probe_restarts_the_container(
        client: Client, kubelet: KubeletProcess, ns: str) -> None:
    """A liveness probe that fails failureThreshold times kills and restarts the container."""
    c = sh("main", "touch alive; sleep 0.6; rm alive; sleep 1000",
           livenessProbe={"exec": {"command": ["cat", "alive"]}, "periodSeconds": 1,
                          "failureThreshold": 2})
    await client.create("pods", make_pod("sick", ns, kubelet.node, c, grace=1))

    async def restarted() -> Obj | None:
        pod = await get_pod(client, "sick", ns)
        cs = status_of(pod)
        return pod if cs.get("restartCount", 0) >= 1 and "running" in cs["state"] else None
    pod = await eventually(restarted, what="a liveness restart")
    assert status_of(pod)["lastState"]["terminated"]["exitCode"] == 143  # SIGTERM
    unhealthy = await eventually(lambda: events_for(client, ns, "sick", "Unhealthy"),
                                 what="Unhealthy event")
    assert unhealthy[0]["message"].startswith("Liveness probe failed:")
    killing = await events_for(client, ns, "sick", "Killing")
    assert any("failed liveness probe" in e["message"] for e in killing)


async def test_failing_readiness_probe_flips_ready_without_a_restart(
        client: Client, kubelet: KubeletProcess, ns: str, tmp_path: Path) -> None:
    """Readiness drives Ready both ways and never restarts the container."""
    (tmp_path / "ready").touch()
    c = sh("main", "sleep 1000", workingDir=str(tmp_path),
           readinessProbe={"exec": {"command": ["test", "-f", "ready"]}, "periodSeconds": 1,
                           "failureThreshold": 1})
    await client.create("pods", make_pod("flaky", ns, kubelet.node, c))
    pod = await wait_running_ready(client, "flaky", ns)
    container_id = status_of(pod)["containerID"]

    (tmp_path / "ready").unlink()
    pod = await wait_running_ready(client, "flaky", ns, ready=False)
    assert condition(pod, "ContainersReady") == "False"
    assert not status_of(pod)["ready"]

    (tmp_path / "ready").touch()
    pod = await wait_running_ready(client, "flaky", ns)
    cs = status_of(pod)
    assert cs["ready"] and cs["restartCount"] == 0 and cs["containerID"] == container_id


async def test_tcp_and_startup_probes_gate_readiness(
        client: Client, kubelet: KubeletProcess, ns: str) -> None:
    """Readiness waits for the startup probe; tcpSocket probes the pod IP."""
    c = container("web", "import time; time.sleep(2)\n" + HTTP_SERVER,
                  startupProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 1,
                                "failureThreshold": 30},
                  readinessProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 1})
    await client.create("pods", make_pod("slow", ns, kubelet.node, c))
    pod = await wait_running_ready(client, "slow", ns, ready=False)
    assert not status_of(pod)["started"]
    pod = await wait_running_ready(client, "slow", ns)
    assert status_of(pod)["started"] and status_of(pod)["restartCount"] == 0


# -- deletion ----------------------------------------------------------------------------


TERM_HANDLER = """
import signal, sys, time
def bye(*_):
    print("got SIGTERM", flush=True)
    open("terminated", "w").write("yes")
    sys.exit(0)
signal.signal(signal.SIGTERM, bye)
print("up", flush=True)
time.sleep(1000)
"""
TERM_IGNORER = "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n" \
               "print('up', flush=True)\ntime.sleep(1000)"


async def test_graceful_deletion_sigterms_then_sigkills_and_removes_the_pod(
        client: Client, kubelet: KubeletProcess, ns: str, tmp_path: Path) -> None:
    """SIGTERM reaches the processes; one that ignores it dies at the grace period's end."""
    await client.create("pods", make_pod(
        "bye", ns, kubelet.node, container("polite", TERM_HANDLER, workingDir=str(tmp_path)),
        container("stubborn", TERM_IGNORER), grace=1))
    pod = await wait_running_ready(client, "bye", ns)
    await asyncio.sleep(0.3)  # let the Python processes install their handlers
    pids = [kubelet.pid_of(cs["containerID"]) for cs in pod["status"]["containerStatuses"]]
    assert all(alive(p) for p in pids)
    started = time.monotonic()
    await client.delete("pods", "bye", namespace=ns)

    async def gone() -> bool:
        try:
            await get_pod(client, "bye", ns)
        except NotFoundError:
            return True
        return False
    await eventually(gone, within=10, what="the pod object to go")
    elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 5, elapsed  # the stubborn one used up its 1 s grace
    assert (tmp_path / "terminated").read_text() == "yes"
    assert not any(alive(p) for p in pids)
    assert await events_for(client, ns, "bye", "Killing")


async def test_force_delete_cuts_a_long_graceful_termination_short(
        client: Client, kubelet: KubeletProcess, ns: str) -> None:
    """A pod stopping within 30 s is killed at once when it is then deleted with grace 0."""
    await client.create("pods", make_pod("slowpoke", ns, kubelet.node,
                                         container("main", TERM_IGNORER), grace=30))
    pod = await wait_running_ready(client, "slowpoke", ns)
    await asyncio.sleep(0.3)  # let Python install its handler
    pid = kubelet.pid_of(status_of(pod)["containerID"])
    await client.delete("pods", "slowpoke", namespace=ns)
    await asyncio.sleep(0.5)
    assert alive(pid)  # it ignores SIGTERM and has 30 s
    started = time.monotonic()
    await client.delete("pods", "slowpoke", namespace=ns, grace_period_seconds=0)

    async def dead() -> bool:
        return not alive(pid)
    await eventually(dead, within=10, what="the process to be killed")
    assert time.monotonic() - started < 5


async def test_force_deleted_pod_is_killed_and_cleaned_up(
        client: Client, kubelet: KubeletProcess, ns: str) -> None:
    """A pod whose object vanished at once (grace 0) has its processes killed anyway."""
    created = await client.create("pods", make_pod("gone", ns, kubelet.node,
                                                   sh("main", "sleep 1000")))
    pod = await wait_running_ready(client, "gone", ns)
    pid = kubelet.pid_of(status_of(pod)["containerID"])
    await client.delete("pods", "gone", namespace=ns, grace_period_seconds=0)

    async def dead() -> bool:
        return not alive(pid)
    await eventually(dead, within=10, what="the orphan's process to die")
    uid = created["metadata"]["uid"]

    async def cleaned() -> bool:
        return not any(c["podUid"] == uid for c in kubelet.configs().values())
    await eventually(cleaned, within=5, what="the orphan's state to be removed")


# -- logs --------------------------------------------------------------------------------


async def test_logs_previous_tail_and_follow(
        client: Client, kubelet: KubeletProcess, ns: str) -> None:
    """logs returns the output; previous reads the instance before a restart; follow streams."""
    script = ("n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; "
              "echo \"run $n\"; echo second line; "
              "if [ $n -ge 2 ]; then i=0; while true; do i=$((i+1)); echo tick $i; "
              "sleep 0.1; done; fi; exit 1")
    await client.create("pods", make_pod("chatty", ns, kubelet.node, sh("main", script)))

    async def restarted_once() -> Obj | None:
        pod = await get_pod(client, "chatty", ns)
        cs = status_of(pod)
        return pod if cs.get("restartCount") == 1 and "running" in cs["state"] else None
    await eventually(restarted_once, what="one restart")

    previous = b"".join([c async for c in client.logs("chatty", namespace=ns, previous=True)])
    assert previous == b"run 1\nsecond line\n"
    current = b"".join([c async for c in client.logs("chatty", namespace=ns)])
    assert current.startswith(b"run 2\nsecond line\n")
    tail = b"".join([c async for c in client.logs("chatty", namespace=ns, tail_lines=1)])
    assert tail.count(b"\n") == 1 and tail.startswith(b"tick ")

    stream = client.logs("chatty", namespace=ns, follow=True, tail_lines=0)
    seen = b""
    start = time.monotonic()
    async for chunk in stream:
        seen += chunk
        if seen.count(b"tick") >= 3:
            break
        assert time.monotonic() - start < 10
    await stream.aclose()
    ticks = [int(line.split()[1]) for line in seen.decode().splitlines() if line.startswith("tick")]
    assert ticks == list(range(ticks[0], ticks[0] + len(ticks)))  # new lines, in order

    with pytest.raises(InvalidError):
        _ = [c async for c in client.logs("chatty", namespace=ns, container="nope")]
    with pytest.raises(InvalidError, match="timestamps"):
        _ = [c async for c in client.logs("chatty", namespace=ns, timestamps=True)]


async def test_follow_ends_when_the_container_ends(
        client: Client, kubelet: KubeletProcess, ns: str) -> None:
    await client.create("pods", make_pod("brief", ns, kubelet.node,
                                         sh("main", "echo a; sleep 0.5; echo b; sleep 1000")))
    await wait_running_ready(client, "brief", ns)
    got = b""

    async def follow() -> None:
        nonlocal got
        async for chunk in client.logs("brief", namespace=ns, follow=True):
            got += chunk
    task = asyncio.create_task(follow())
    await eventually(lambda: asyncio.sleep(0, b"b\n" in got), what="the second line")
    await client.delete("pods", "brief", namespace=ns, grace_period_seconds=1)
    await asyncio.wait_for(task, 10)
    assert got == b"a\nb\n"


# -- kubelet restarts --------------------------------------------------------------------


async def test_restarted_kubelet_adopts_running_pods_and_kills_deleted_ones(
        client: Client, shared_apiserver, ns: str, tmp_path: Path) -> None:
    """After SIGKILL and restart: same pids, same restart counts, no duplicates, same IPs."""
    k = KubeletProcess(shared_apiserver.target, tmp_path).start()
    try:
        web = container("web", HTTP_SERVER, readinessProbe={"httpGet": {"port": 8080},
                                                             "periodSeconds": 1})
        await client.create("pods", make_pod("keep", ns, k.node, sh("main", "sleep 1000"),
                                             web))
        await client.create("pods", make_pod("drop", ns, k.node, sh("main", "sleep 1000")))
        keep = await wait_running_ready(client, "keep", ns)
        drop = await wait_running_ready(client, "drop", ns)
        ready_since = next(c["lastTransitionTime"] for c in keep["status"]["conditions"]
                           if c["type"] == "Ready")
        ids = {cs["name"]: cs["containerID"] for cs in keep["status"]["containerStatuses"]}
        pids = {name: k.pid_of(cid) for name, cid in ids.items()}
        drop_pid = k.pid_of(status_of(drop)["containerID"])
        instances = len(k.configs())

        k.kill()
        assert all(alive(p) for p in pids.values()) and alive(drop_pid)
        await client.delete("pods", "drop", namespace=ns, grace_period_seconds=0)
        k.start()

        async def orphan_killed() -> bool:
            return not alive(drop_pid)
        await eventually(orphan_killed, what="the deleted pod's process to be killed")
        await asyncio.sleep(1.0)  # many relists and syncs
        keep = await wait_running_ready(client, "keep", ns)
        now_ids = {cs["name"]: cs["containerID"] for cs in keep["status"]["containerStatuses"]}
        assert now_ids == ids
        assert all(cs["restartCount"] == 0 for cs in keep["status"]["containerStatuses"])
        assert next(c["lastTransitionTime"] for c in keep["status"]["conditions"]
                    if c["type"] == "Ready") == ready_since  # it never turned unready
        assert {name: k.pid_of(cid) for name, cid in now_ids.items()} == pids
        assert all(alive(p) for p in pids.values())
        assert len(k.configs()) == instances - 1  # drop's instance is gone, none added
        ip = keep["status"]["podIP"]

        def fetch() -> str:
            with urllib.request.urlopen(f"http://{ip}:8080/", timeout=5) as resp:
                return resp.read().decode()
        assert await asyncio.to_thread(fetch) == "hello from keep"
        await client.create("pods", make_pod("fresh", ns, k.node, sh("main", "sleep 1000")))
        fresh = await wait_running_ready(client, "fresh", ns)
        assert fresh["status"]["podIP"] not in (ip, drop["status"]["podIP"])
    finally:
        k.stop()
        k.kill_leftovers()

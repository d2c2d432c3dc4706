"""Stock kubectl against `kubelite up`, with nothing but the kubeconfig `up` writes.

kubectl is the pinned binary scripts/install-kubectl puts in /usr/local/bin
(/usr/bin/kubectl on some machines is something else). Every command's output
is checked, not only its exit code.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from kubelite.client import Client

from .e2e import REPO, Cluster, echo_container, eventually, start_cluster, wait_nodes_ready

KUBECTL = "/usr/local/bin/kubectl"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    if not Path(KUBECTL).exists():
        raise AssertionError(f"{KUBECTL} is missing: run scripts/install-kubectl")
    c = start_cluster(tmp_path_factory.mktemp("rest"), nodes=1)
    asyncio.run(_wait_ready(c))
    yield c
    c.stop()


async def _wait_ready(c: Cluster) -> None:
    async with Client(c.target) as client:
        await wait_nodes_ready(client, 1)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("home")  # kubectl's discovery cache stays out of ~


def kubectl_env(cluster: Cluster, home: Path) -> dict[str, str]:
    return {"KUBECONFIG": str(cluster.data_dir / "kubeconfig"), "HOME": str(home),
            "PATH": "/usr/bin:/bin"}


@pytest.fixture
def kubectl(cluster: Cluster, home: Path):
    def run(*args: str, input: str | None = None, check: bool = True,
            timeout: float = 60) -> subprocess.CompletedProcess:
        proc = subprocess.run([KUBECTL, *args], input=input, capture_output=True, text=True,
                              env=kubectl_env(cluster, home), timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    return run


@pytest.fixture
def ns(kubectl) -> Iterator[str]:
    name = f"k-{uuid.uuid4().hex[:8]}"
    out = kubectl("create", "namespace", name).stdout  # a protobuf body (typed client)
    assert out.strip() == f"namespace/{name} created"
    yield name


def deployment(name: str, *, replicas: int = 1, marker: str = "") -> dict:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [echo_container(marker=marker or name)],
                                       "terminationGracePeriodSeconds": 1}}},
    }


def counting_pod(name: str) -> dict:
    script = "import time\nfor i in range(100000):\n    print('line', i, flush=True)\n" \
             "    time.sleep(0.2)\n"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [
                {"name": "count", "image": "kubelite/demo:latest",
                 "command": [sys.executable, "-c", script]}]}}


def test_apply_the_readme_example_twice_then_edited(kubectl, ns: str, tmp_path: Path) -> None:
    example = str(REPO / "examples" / "echo.yaml")
    out = kubectl("apply", "-n", ns, "-f", example).stdout.splitlines()
    assert out == ["deployment.apps/echo created", "service/echo created"]
    out = kubectl("apply", "-n", ns, "-f", example).stdout.splitlines()
    assert out == ["deployment.apps/echo unchanged", "service/echo unchanged"]
    before = json.loads(kubectl("get", "-n", ns, "deploy", "echo", "-o", "json").stdout)
    edited = tmp_path / "echo.yaml"
    docs = list(yaml.safe_load_all(Path(example).read_text()))
    docs[0]["spec"]["replicas"] = 1
    edited.write_text(yaml.safe_dump_all(docs))
    out = kubectl("apply", "-n", ns, "-f", str(edited)).stdout.splitlines()
    assert out == ["deployment.apps/echo configured", "service/echo unchanged"]
    after = json.loads(kubectl("get", "-n", ns, "deploy", "echo", "-o", "json").stdout)
    assert after["spec"]["replicas"] == 1
    # Only what changed changed: the template (and so the generation's spec) is the same.
    assert after["spec"]["template"] == before["spec"]["template"]
    assert after["metadata"]["uid"] == before["metadata"]["uid"]


def test_strategic_merge_of_a_container_list_keeps_the_other_containers(
        kubectl, ns: str, tmp_path: Path) -> None:
    manifest = deployment("duo")
    path = tmp_path / "duo.yaml"
    path.write_text(yaml.safe_dump(manifest))
    assert kubectl("apply", "-n", ns, "-f", str(path)).stdout.strip() == \
        "deployment.apps/duo created"
    # Someone else adds a sidecar; it is not in the applied file.
    sidecar = {"name": "sidecar", "image": "kubelite/demo:latest",
               "command": [sys.executable, "-c", "import time; time.sleep(3600)"]}
    patch = {"spec": {"template": {"spec": {"containers": [sidecar]}}}}
    out = kubectl("patch", "-n", ns, "deploy", "duo", "-p", json.dumps(patch)).stdout
    assert out.strip() == "deployment.apps/duo patched"
    # The file now changes the first container's env: a strategic patch keyed by name.
    manifest["spec"]["template"]["spec"]["containers"][0]["env"].append(
        {"name": "EXTRA", "value": "1"})
    path.write_text(yaml.safe_dump(manifest))
    assert kubectl("apply", "-n", ns, "-f", str(path)).stdout.strip() == \
        "deployment.apps/duo configured"
    live = json.loads(kubectl("get", "-n", ns, "deploy", "duo", "-o", "json").stdout)
    containers = live["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["web", "sidecar"]
    assert {"name": "EXTRA", "value": "1"} in containers[0]["env"]


def test_apply_a_multi_document_file_and_get_in_every_format(kubectl, ns: str,
                                                            tmp_path: Path) -> None:
    docs = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
         "data": {"mode": "fast"}},
        deployment("multi", replicas=2),
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "multi"},
         "spec": {"selector": {"app": "multi"}, "ports": [{"port": 80, "targetPort": 8080}]}},
    ]
    path = tmp_path / "multi.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    out = kubectl("apply", "-n", ns, "-f", str(path)).stdout.splitlines()
    assert out == ["configmap/settings created", "deployment.apps/multi created",
                   "service/multi created"]

    table = kubectl("get", "-n", ns, "configmaps").stdout.splitlines()
    assert table[0].split() == ["NAME", "DATA", "AGE"]
    assert any(line.split()[:2] == ["settings", "1"] for line in table[1:])

    svc = kubectl("get", "-n", ns, "svc", "multi", "-o", "wide").stdout.splitlines()
    assert svc[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE",
                              "SELECTOR"]
    assert svc[1].split()[1] == "ClusterIP" and svc[1].split()[-1] == "app=multi"

    def pods_listed() -> list[str]:
        lines = kubectl("get", "-n", ns, "pods", "-o", "wide").stdout.splitlines()
        return lines if len(lines) == 3 else []

    lines = asyncio.run(eventually(pods_listed, what="two pods"))
    assert lines[0].split()[:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
    assert all(line.startswith("multi-") for line in lines[1:])

    doc = yaml.safe_load(kubectl("get", "-n", ns, "deploy", "multi", "-o", "yaml").stdout)
    assert doc["kind"] == "Deployment" and doc["spec"]["replicas"] == 2
    out = kubectl("get", "-n", ns, "cm", "settings", "-o", "jsonpath={.data.mode}").stdout
    assert out == "fast"

    everything = kubectl("get", "-n", ns, "all").stdout
    assert "deployment.apps/multi" in everything and "service/multi" in everything
    assert "configmap" not in everything  # not in the "all" category

    unknown = kubectl("get", "-n", ns, "ingresses", check=False)
    assert unknown.returncode != 0
    assert 'the server doesn\'t have a resource type "ingresses"' in unknown.stderr


def test_get_watch_sees_a_later_change(kubectl, cluster: Cluster, home: Path, ns: str) -> None:
    out = kubectl("create", "-n", ns, "configmap", "watched", "--from-literal=v=one").stdout
    assert out.strip() == "configmap/watched created"
    proc = subprocess.Popen(
        [KUBECTL, "get", "-n", ns, "configmap", "watched", "-w", "-o",
         "jsonpath={.data.v}{\"\\n\"}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=kubectl_env(cluster, home))
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "one"
        kubectl("patch", "-n", ns, "configmap", "watched", "-p", '{"data":{"v":"two"}}')
        assert proc.stdout.readline().strip() == "two"
    finally:
        proc.kill()
        proc.wait()


def test_describe_scale_rollout_history_undo_and_status(kubectl, ns: str,
                                                        tmp_path: Path) -> None:
    manifest = deployment("roll", replicas=1)
    path = tmp_path / "roll.yaml"
    path.write_text(yaml.safe_dump(manifest))
    kubectl("apply", "-n", ns, "-f", str(path))
    out = kubectl("rollout", "status", "-n", ns, "deploy/roll", "--timeout=90s",
                  timeout=100).stdout
    assert 'deployment "roll" successfully rolled out' in out

    assert kubectl("scale", "-n", ns, "deploy/roll", "--replicas=2").stdout.strip() == \
        "deployment.apps/roll scaled"
    out = kubectl("rollout", "status", "-n", ns, "deploy/roll", "--timeout=90s",
                  timeout=100).stdout
    assert 'deployment "roll" successfully rolled out' in out
    described = kubectl("describe", "-n", ns, "deploy", "roll").stdout
    assert "Name:                   roll" in described
    assert "2 desired | 2 updated | 2 total | 2 available" in described

    manifest["spec"]["replicas"] = 2
    manifest["spec"]["template"]["spec"]["containers"][0]["env"].append(
        {"name": "VERSION", "value": "2"})
    path.write_text(yaml.safe_dump(manifest))
    kubectl("apply", "-n", ns, "-f", str(path))
    kubectl("rollout", "status", "-n", ns, "deploy/roll", "--timeout=90s", timeout=100)
    history = kubectl("rollout", "history", "-n", ns, "deploy/roll").stdout.splitlines()
    assert history[0] == "deployment.apps/roll "
    assert history[1].split() == ["REVISION", "CHANGE-CAUSE"]
    assert [line.split()[0] for line in history[2:] if line.strip()] == ["1", "2"]

    out = kubectl("rollout", "undo", "-n", ns, "deploy/roll").stdout
    assert out.strip() == "deployment.apps/roll rolled back"
    kubectl("rollout", "status", "-n", ns, "deploy/roll", "--timeout=90s", timeout=100)
    live = json.loads(kubectl("get", "-n", ns, "deploy", "roll", "-o", "json").stdout)
    env = live["spec"]["template"]["spec"]["containers"][0]["env"]
    assert all(e["name"] != "VERSION" for e in env)
    assert live["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"


def test_daemonset_get_describe_rollout_history_and_undo(kubectl, ns: str) -> None:
    """kubectl's DaemonSet printers, describer, status viewer, history viewer and
    rollbacker (a strategic merge of the revision's `$patch: replace` template)."""
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
          "spec": {"selector": {"matchLabels": {"app": "agent"}}, "template": {
              "metadata": {"labels": {"app": "agent"}},
              "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                  "name": "main", "image": "agent:1",
                  "command": [sys.executable, "-c", "import time; time.sleep(3600)"]}]}}}}
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(ds))
    out = kubectl("rollout", "status", "-n", ns, "ds/agent", "--timeout=60s",
                  timeout=70).stdout
    assert 'daemon set "agent" successfully rolled out' in out
    lines = kubectl("get", "-n", ns, "ds", "-o", "wide").stdout.splitlines()
    assert lines[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE",
                                "AVAILABLE", "NODE", "SELECTOR", "AGE", "CONTAINERS",
                                "IMAGES", "SELECTOR"]
    assert lines[1].split()[:7] == ["agent", "1", "1", "1", "1", "1", "<none>"]
    described = kubectl("describe", "-n", ns, "ds", "agent").stdout
    assert "Desired Number of Nodes Scheduled: 1" in described
    assert "Number of Nodes Scheduled with Up-to-date Pods: 1" in described

    out = kubectl("set", "image", "-n", ns, "ds/agent", "main=agent:2").stdout
    assert out.strip() == "daemonset.apps/agent image updated"
    kubectl("rollout", "status", "-n", ns, "ds/agent", "--timeout=60s", timeout=70)
    history = kubectl("rollout", "history", "-n", ns, "ds/agent").stdout.splitlines()
    assert history[0] == "daemonset.apps/agent "
    assert [line.split()[0] for line in history[2:] if line.strip()] == ["1", "2"]
    two = kubectl("rollout", "history", "-n", ns, "ds/agent", "--revision=2").stdout
    assert "agent:2" in two

    out = kubectl("rollout", "undo", "-n", ns, "ds/agent").stdout
    assert out.strip() == "daemonset.apps/agent rolled back"
    kubectl("rollout", "status", "-n", ns, "ds/agent", "--timeout=60s", timeout=70)
    live = json.loads(kubectl("get", "-n", ns, "ds", "agent", "-o", "json").stdout)
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "agent:1"
    assert live["status"]["updatedNumberScheduled"] == 1
    history = kubectl("rollout", "history", "-n", ns, "ds/agent").stdout.splitlines()
    assert [line.split()[0] for line in history[2:] if line.strip()] == ["2", "3"]


def test_logs_follow_and_top_pods(kubectl, cluster: Cluster, home: Path, ns: str) -> None:
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(counting_pod("counter")))
    kubectl("wait", "-n", ns, "--for=condition=Ready", "pod/counter", "--timeout=60s",
            timeout=70)
    proc = subprocess.Popen([KUBECTL, "logs", "-f", "-n", ns, "counter"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=kubectl_env(cluster, home))
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().strip() for _ in range(8)]
        numbers = [int(line.split()[1]) for line in lines]
        assert lines[0] == "line 0"
        assert numbers == list(range(numbers[0], numbers[0] + 8))  # and it keeps following
    finally:
        proc.kill()
        proc.wait()
    tail = kubectl("logs", "-n", ns, "counter", "--tail=2").stdout.splitlines()
    assert len(tail) == 2 and all(line.startswith("line ") for line in tail)
    since = kubectl("logs", "-n", ns, "counter", "--since=1h").stdout.splitlines()
    assert since[0] == "line 0" and len(since) >= 8

    def top() -> list[str]:
        proc = kubectl("top", "pods", "-n", ns, check=False)
        return proc.stdout.splitlines() if proc.returncode == 0 else []

    lines = asyncio.run(eventually(top, timeout=60, interval=1, what="kubectl top pods"))
    assert lines[0].split() == ["NAME", "CPU(cores)", "MEMORY(bytes)"]
    name, cpu, memory = lines[1].split()
    assert name == "counter" and cpu.endswith("m") and memory.endswith("Mi")
    nodes = kubectl("top", "nodes").stdout.splitlines()
    assert nodes[0].split()[:3] == ["NAME", "CPU(cores)", "CPU(%)"]
    assert nodes[1].startswith("node-0")


def test_explain_uses_the_served_schema(kubectl) -> None:
    out = kubectl("explain", "deployment.spec.strategy").stdout
    assert "KIND:       Deployment" in out
    assert "FIELD: strategy <DeploymentStrategy>" in out
    assert "rollingUpdate\t<RollingUpdateDeployment>" in out
    assert 'Can be "Recreate" or "RollingUpdate"' in out


def test_delete_waits_until_the_object_is_gone(kubectl, ns: str) -> None:
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(counting_pod("doomed")))
    kubectl("wait", "-n", ns, "--for=condition=Ready", "pod/doomed", "--timeout=60s",
            timeout=70)
    started = time.monotonic()
    out = kubectl("delete", "-n", ns, "pod", "doomed", "--wait=true", timeout=90).stdout
    assert out.strip() == f'pod "doomed" deleted from {ns} namespace'
    gone = kubectl("get", "-n", ns, "pod", "doomed", check=False)
    assert gone.returncode == 1
    assert 'pods "doomed" not found' in gone.stderr
    assert time.monotonic() - started < 60


async def test_kubectl_and_grpc_watches_from_one_revision_see_the_same_events(
        cluster: Cluster, home: Path, kubectl, ns: str) -> None:
    async with Client(cluster.target) as client:
        first = await client.create("configmaps", {"metadata": {"name": "w0"}, "data": {}},
                                    namespace=ns)
        start = first["metadata"]["resourceVersion"]
        path = (f"/api/v1/namespaces/{ns}/configmaps?watch=1&resourceVersion={start}"
                "&timeoutSeconds=8")
        proc = await asyncio.create_subprocess_exec(
            KUBECTL, "get", "--raw", path, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=kubectl_env(cluster, home))
        grpc_events: list[tuple[str, str, str]] = []

        async def follow() -> None:
            async for event in client.watch("configmaps", namespace=ns,
                                            resource_version=start, allow_bookmarks=False):
                meta = event.object["metadata"]
                grpc_events.append((event.type, meta["name"], meta["resourceVersion"]))
                if len(grpc_events) == 7:
                    return

        follower = asyncio.create_task(follow())
        for i in range(1, 4):
            await client.create("configmaps", {"metadata": {"name": f"w{i}"}}, namespace=ns)
            await client.patch("configmaps", f"w{i}", {"data": {"n": str(i)}}, namespace=ns)
        await client.delete("configmaps", "w1", namespace=ns)
        await asyncio.wait_for(follower, 30)
        out, _ = await proc.communicate()
    rest_events = []
    for line in out.decode().splitlines():
        event = json.loads(line)
        meta = event["object"]["metadata"]
        rest_events.append((event["type"], meta["name"], meta["resourceVersion"]))
    assert rest_events == grpc_events
    assert [e[0] for e in rest_events] == ["ADDED", "MODIFIED"] * 3 + ["DELETED"]


def test_cordon_and_drain_evict_the_pods_then_uncordon(kubectl, ns: str,
                                                      tmp_path: Path) -> None:
    path = tmp_path / "drained.yaml"
    path.write_text(yaml.safe_dump(deployment("drained", replicas=1)))
    kubectl("apply", "-n", ns, "-f", str(path))
    kubectl("rollout", "status", "-n", ns, "deploy/drained", "--timeout=90s", timeout=100)
    first = json.loads(kubectl("get", "-n", ns, "pods", "-l", "app=drained", "-o",
                               "json").stdout)["items"][0]["metadata"]["name"]
    try:
        assert kubectl("cordon", "node-0").stdout.strip() == "node/node-0 cordoned"
        nodes = kubectl("get", "nodes").stdout.splitlines()
        assert nodes[1].split()[1] == "Ready,SchedulingDisabled"
        out = kubectl("drain", "node-0", "--ignore-daemonsets", "--force",
                      "--delete-emptydir-data", "--timeout=60s", "--pod-selector=app=drained",
                      timeout=90).stdout
        assert f"evicting pod {ns}/{first}" in out
        assert f"pod/{first} evicted" in out
        assert out.strip().endswith("node/node-0 drained")
    finally:
        out = kubectl("uncordon", "node-0").stdout
    assert out.strip() == "node/node-0 uncordoned"
    assert kubectl("get", "nodes").stdout.splitlines()[1].split()[1] == "Ready"


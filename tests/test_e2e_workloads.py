"""Issue 3's acceptance, end to end: `kubelite up --nodes 2` with the process runtime,
real pods as real processes, driven only through the API and the CLI."""

from __future__ import annotations

import asyncio
import copy
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from kubelite.client import Client
from kubelite.errors import NotFoundError

from .e2e import (
    ECHO_PORT,
    REPO,
    Cluster,
    echo_container,
    eventually,
    http_get,
    is_ready,
    pids_with,
    start_cluster,
    wait_nodes_ready,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start_cluster(tmp_path_factory.mktemp("e2e"), nodes=2)
    yield c
    c.stop()
    assert c.process.returncode == 0, c.log("kubelet-0")[-2000:]


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[Client]:
    async with Client(cluster.target) as c:
        await wait_nodes_ready(c, 2)
        yield c


@pytest.fixture
async def ns(api: Client) -> str:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    await api.create("namespaces", {"metadata": {"name": name}})
    return name


def deployment(name: str, replicas: int, *, marker: str, strategy: dict | None = None) -> dict:
    container = echo_container(marker=marker)
    spec = {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [container],
                                  "terminationGracePeriodSeconds": 5}}}
    if strategy:
        spec["strategy"] = strategy
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": spec}


async def ready_pods(api: Client, ns: str, selector: str) -> list[dict]:
    pods = (await api.list("pods", namespace=ns, label_selector=selector)).items
    return [p for p in pods if is_ready(p) and not p["metadata"].get("deletionTimestamp")]


async def test_deployment_pods_spread_run_and_answer_http(api: Client, ns: str) -> None:
    """4 replicas on 2 nodes: 4 Running, Ready pods spread 2 and 2, each answering HTTP
    on its own pod IP."""
    marker = uuid.uuid4().hex
    await api.create("deployments", deployment("web", 4, marker=marker), namespace=ns)
    pods = await eventually(lambda: _n_ready(api, ns, "app=web", 4), timeout=60,
                            what="4 ready pods")
    assert Counter(p["spec"]["nodeName"] for p in pods) == {"node-0": 2, "node-1": 2}
    assert all(p["status"]["phase"] == "Running" for p in pods)
    ips = {p["status"]["podIP"] for p in pods}
    assert len(ips) == 4
    for p in pods:
        assert await http_get(p["status"]["podIP"], ECHO_PORT) == p["metadata"]["name"]
    assert len(pids_with(marker)) == 4


async def _n_ready(api: Client, ns: str, selector: str, n: int) -> list[dict]:
    pods = await ready_pods(api, ns, selector)
    return pods if len(pods) == n else []


async def test_killed_process_comes_back_and_crash_loops_back_off(api: Client, ns: str) -> None:
    """SIGKILL of a pod's process restarts it (restartCount +1); a container that keeps
    exiting shows CrashLoopBackOff with growing delays."""
    marker = uuid.uuid4().hex
    pod = {"metadata": {"name": "victim"},
           "spec": {"containers": [echo_container(marker=marker)]}}
    await api.create("pods", pod, namespace=ns)
    await eventually(lambda: _pod_ready(api, ns, "victim"), timeout=30, what="victim ready")
    [pid] = pids_with(marker)
    os.kill(pid, signal.SIGKILL)

    async def restarted() -> dict | None:
        p = await api.get("pods", "victim", namespace=ns)
        status = p["status"]["containerStatuses"][0]
        return p if status["restartCount"] == 1 and is_ready(p) else None

    after = await eventually(restarted, timeout=30, what="restart")
    assert after["status"]["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 137
    assert pids_with(marker) and pids_with(marker) != [pid]

    crash = {"metadata": {"name": "crasher"},
             "spec": {"containers": [{"name": "c", "image": "busybox",
                                      "command": ["sh", "-c", "echo boom; exit 3"]}]}}
    await api.create("pods", crash, namespace=ns)
    restarts: list[tuple[int, float]] = []
    saw_backoff = False
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline and len(restarts) < 5:
        p = await api.get("pods", "crasher", namespace=ns)
        for status in (p.get("status") or {}).get("containerStatuses") or []:
            waiting = status["state"].get("waiting") or {}
            saw_backoff |= waiting.get("reason") == "CrashLoopBackOff"
            if not restarts or restarts[-1][0] != status["restartCount"]:
                restarts.append((status["restartCount"], time.monotonic()))
        await asyncio.sleep(0.05)
    assert saw_backoff
    assert len(restarts) >= 4, restarts
    gaps = [b[1] - a[1] for a, b in zip(restarts[1:], restarts[2:], strict=False)]
    assert gaps[-1] > gaps[0] * 1.5, gaps  # base 0.5 s doubling


async def _pod_ready(api: Client, ns: str, name: str) -> dict | None:
    p = await api.get("pods", name, namespace=ns)
    return p if is_ready(p) else None


async def test_probes_restart_on_liveness_and_unready_on_readiness(api: Client, ns: str,
                                                                    tmp_path: Path) -> None:
    """A failing liveness probe restarts the container; a failing readiness probe flips
    Ready to false without a restart."""
    alive, ready = tmp_path / "alive", tmp_path / "ready"
    alive.touch()
    ready.touch()
    container = echo_container()
    container["livenessProbe"] = {"exec": {"command": ["test", "-f", str(alive)]},
                                  "periodSeconds": 1, "failureThreshold": 2}
    container["readinessProbe"] = {"exec": {"command": ["test", "-f", str(ready)]},
                                   "periodSeconds": 1, "failureThreshold": 1}
    await api.create("pods", {"metadata": {"name": "probed"}, "spec": {"containers": [container]}},
                     namespace=ns)
    await eventually(lambda: _pod_ready(api, ns, "probed"), timeout=30, what="ready")
    ready.unlink()

    async def unready() -> dict | None:
        p = await api.get("pods", "probed", namespace=ns)
        return None if is_ready(p) else p

    p = await eventually(unready, timeout=15, what="Ready=False")
    assert p["status"]["containerStatuses"][0]["restartCount"] == 0
    ready.touch()
    await eventually(lambda: _pod_ready(api, ns, "probed"), timeout=15, what="ready again")
    alive.unlink()

    async def restarted() -> dict | None:
        p = await api.get("pods", "probed", namespace=ns)
        return p if p["status"]["containerStatuses"][0]["restartCount"] >= 1 else None

    await eventually(restarted, timeout=20, what="liveness restart")


async def test_rolling_update_keeps_capacity_and_undo_restores(api: Client, ns: str,
                                                               cluster: Cluster) -> None:
    """maxUnavailable 0 / maxSurge 1: never fewer than `replicas` Ready pods during the
    rollout; the old ReplicaSet ends at 0; `rollout undo` brings the old template back."""
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}}
    d = deployment("roll", 3, marker=uuid.uuid4().hex, strategy=strategy)
    await api.create("deployments", d, namespace=ns)
    await eventually(lambda: _n_ready(api, ns, "app=roll", 3), timeout=60, what="3 ready")
    current = await api.get("deployments", "roll", namespace=ns)
    changed = copy.deepcopy(current)
    new_marker = uuid.uuid4().hex
    changed["spec"]["template"]["spec"]["containers"][0]["command"][-1] = f"--marker={new_marker}"
    await api.update("deployments", changed)

    low = 99
    samples = 0

    async def done() -> bool:
        nonlocal low, samples
        ready = await ready_pods(api, ns, "app=roll")
        low = min(low, len(ready))
        samples += 1
        dep = await api.get("deployments", "roll", namespace=ns)
        status = dep.get("status") or {}
        new_ready = [p for p in ready if new_marker in " ".join(
            p["spec"]["containers"][0]["command"])]
        return (len(new_ready) == 3 and status.get("updatedReplicas") == 3
                and status.get("replicas") == 3 and len(ready) == 3)

    await eventually(done, timeout=90, interval=0.05, what="rollout")
    assert low >= 3, f"only {low} ready pods at some point ({samples} samples)"
    rss = (await api.list("replicasets", namespace=ns)).items
    assert len(rss) == 2
    assert sorted(rs["spec"]["replicas"] for rs in rss) == [0, 3]

    kubelite = str(Path(sys.executable).parent / "kubelite")
    out = await asyncio.to_thread(
        subprocess.run, [kubelite, "--server", cluster.target, "rollout", "undo",
                         "deployment/roll", "-n", ns], capture_output=True, text=True,
        timeout=30)
    assert out.returncode == 0, out.stderr
    assert "rolled back" in out.stdout

    async def back() -> bool:
        ready = await ready_pods(api, ns, "app=roll")
        old = [p for p in ready if new_marker not in " ".join(
            p["spec"]["containers"][0]["command"])]
        return len(old) == 3 and len(ready) == 3

    await eventually(back, timeout=90, what="rollback")
    assert len((await api.list("replicasets", namespace=ns)).items) == 2


async def test_deleting_a_deployment_removes_everything(api: Client, ns: str) -> None:
    """Deleting the Deployment removes its ReplicaSets and pods, and no process is left."""
    marker = uuid.uuid4().hex
    await api.create("deployments", deployment("gone", 2, marker=marker), namespace=ns)
    await eventually(lambda: _n_ready(api, ns, "app=gone", 2), timeout=60, what="2 ready")
    assert len(pids_with(marker)) == 2
    await api.delete("deployments", "gone", namespace=ns)

    async def empty() -> bool:
        rss = (await api.list("replicasets", namespace=ns)).items
        pods = (await api.list("pods", namespace=ns, label_selector="app=gone")).items
        return not rss and not pods and not pids_with(marker)

    await eventually(empty, timeout=60, what="cascading deletion")
    with pytest.raises(NotFoundError):
        await api.get("deployments", "gone", namespace=ns)


async def test_logs_through_the_apiserver(api: Client, ns: str, cluster: Cluster) -> None:
    """`kubelite logs` shows a pod's output, fetched by the apiserver from its kubelet."""
    pod = {"metadata": {"name": "talker"},
           "spec": {"containers": [{"name": "c", "image": "busybox", "command": [
               "sh", "-c", "echo hello from kubelite; sleep 300"]}]}}
    await api.create("pods", pod, namespace=ns)
    await eventually(lambda: _pod_ready(api, ns, "talker"), timeout=30, what="talker ready")
    kubelite = str(Path(sys.executable).parent / "kubelite")

    def logs() -> str:
        out = subprocess.run([kubelite, "--server", cluster.target, "logs", "talker", "-n", ns],
                             capture_output=True, text=True, timeout=30)
        return out.stdout if out.returncode == 0 else ""

    assert "hello from kubelite" in await eventually(logs, timeout=10, what="logs")


async def test_readme_example_runs_and_answers_through_its_service(api: Client, ns: str,
                                                                   cluster: Cluster) -> None:
    """examples/echo.yaml, applied with the CLI as the README shows, serves through its
    ClusterIP from all three pods."""
    kubelite = str(Path(sys.executable).parent / "kubelite")
    example = REPO / "examples" / "echo.yaml"
    out = await asyncio.to_thread(
        subprocess.run, [kubelite, "--server", cluster.target, "apply", "-n", ns, "-f",
                         str(example)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["deployment.apps/echo created", "service/echo created"]
    pods = await eventually(lambda: _n_ready(api, ns, "app=echo", 3), timeout=60,
                            what="3 ready echo pods")
    svc = await api.get("services", "echo", namespace=ns)
    answered = set()
    for _ in range(60):
        answered.add(await http_get(svc["spec"]["clusterIP"], 8080))
        if len(answered) == 3:
            break
    assert answered == {p["metadata"]["name"] for p in pods}

"""Component tests: real scheduler processes against a real apiserver and Redis.

Nodes are plain API objects here (no kubelet runs): each test gets an apiserver
of its own, so no test sees another's nodes. A test creates its first nodes
before it starts the scheduler, which lists them before it schedules anything:
nodes and pods arrive on separate watches, so a pod created right after a node
could otherwise be tried before that node is known (a real, harmless race that
would only make the first failure message of a test vary).
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kubelite.client import Client
from kubelite.errors import NotFoundError
from kubelite.localcluster import ManagedProcess, free_port, python_module_argv, wait_healthy
from kubelite.testing import eventually
from tests.helpers import node

FAST_LEASE = ("--leader-elect-lease-duration", "1.0", "--leader-elect-renew-deadline", "0.7",
              "--leader-elect-retry-period", "0.2")


class SchedulerProcess:
    def __init__(self, process: ManagedProcess, identity: str, metrics_port: int) -> None:
        self.process = process
        self.identity = identity
        self.metrics_port = metrics_port

    async def metric(self, name: str, **labels: str) -> float:
        """One sample from the process's /metrics (0 when absent)."""
        def scrape() -> str:
            url = f"http://127.0.0.1:{self.metrics_port}/metrics"
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.read().decode()

        text = await asyncio.to_thread(scrape)
        want = ",".join(f'{k}="{v}"' for k, v in labels.items())
        sample = f"{name}{{{want}}}" if labels else name
        for line in text.splitlines():
            if line.startswith(sample + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0


StartScheduler = Callable[..., SchedulerProcess]


@pytest.fixture
def start_scheduler(apiserver, tmp_path: Path) -> Iterator[StartScheduler]:
    """Starts scheduler processes against this test's apiserver; stops them afterwards."""
    started: list[SchedulerProcess] = []

    def start(*extra: str, identity: str | None = None) -> SchedulerProcess:
        identity = identity or f"sched-{len(started)}"
        health = f"127.0.0.1:{free_port()}"
        metrics_port = free_port()
        argv = python_module_argv(
            "services.scheduler", "--server", apiserver.target, "--health-listen", health,
            "--metrics-port", str(metrics_port), "--identity", identity,
            "--pod-initial-backoff", "0.2", "--pod-max-backoff", "1.0", *FAST_LEASE, *extra)
        process = ManagedProcess(identity, argv, tmp_path / f"{identity}.log").start()
        scheduler = SchedulerProcess(process, identity, metrics_port)
        started.append(scheduler)
        wait_healthy(health, 20, process.proc)
        return scheduler

    yield start
    for scheduler in started:
        scheduler.process.stop(grace=5)
        print(f"--- {scheduler.identity} log ---\n{scheduler.process.tail(40)}")


@pytest.fixture
async def api(apiserver) -> Any:
    async with Client(apiserver.target) as client:
        yield client


@pytest.fixture
async def ns(api: Client) -> str:
    name = f"s-{uuid.uuid4().hex[:8]}"
    await api.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                    "metadata": {"name": name}})
    return name


def pod(name: str, namespace: str, *, cpu: str | None = None, memory: str | None = None,
        owner: str | None = None, **spec: Any) -> dict[str, Any]:
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    container: dict[str, Any] = {"name": "main", "image": "busybox:1.36",
                                 "command": ["sleep", "3600"]}
    if requests:
        container["resources"] = {"requests": requests}
    if "ports" in spec:
        container["ports"] = spec.pop("ports")
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                    "name": owner, "uid": f"{owner}-uid", "controller": True}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"containers": [container], **spec}}


async def node_of(api: Client, namespace: str, name: str) -> str:
    got = await api.get("pods", name, namespace=namespace)
    return got["spec"].get("nodeName") or ""


async def wait_bound(api: Client, namespace: str, *names: str, within: float = 10.0
                     ) -> dict[str, str]:
    async def check() -> dict[str, str] | None:
        nodes = {n: await node_of(api, namespace, n) for n in names}
        return nodes if all(nodes.values()) else None

    return await eventually(check, within, what=f"pods {names} to be bound")


async def events_for(api: Client, namespace: str, pod_name: str, reason: str) -> list[dict]:
    items = (await api.list("events", namespace=namespace)).items
    return [e for e in items
            if e["involvedObject"].get("name") == pod_name and e.get("reason") == reason]


def scheduled_condition(pod_obj: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in (pod_obj.get("status") or {}).get("conditions") or []
                 if c["type"] == "PodScheduled"), None)


async def lease_holder(api: Client) -> str:
    try:
        lease = await api.get("leases", "kube-scheduler", namespace="kube-system")
    except NotFoundError:
        return ""
    return (lease.get("spec") or {}).get("holderIdentity") or ""


# -- tests ------------------------------------------------------------------------------


async def test_pods_are_bound_and_spread_across_equal_nodes(api, ns, start_scheduler):
    """Four best-effort pods on two equal nodes land two and two, with Scheduled events."""
    for name in ("n1", "n2"):
        await api.create("nodes", node(name, cpu="2", memory="4Gi"))
    sched = start_scheduler()
    for i in range(4):
        await api.create("pods", pod(f"p{i}", ns))
    placed = await wait_bound(api, ns, *(f"p{i}" for i in range(4)))
    assert sorted(placed.values()) == ["n1", "n1", "n2", "n2"]

    got = await api.get("pods", "p0", namespace=ns)
    assert scheduled_condition(got)["status"] == "True"
    events = await eventually(lambda: events_for(api, ns, "p0", "Scheduled"), what="event")
    assert events[0]["message"] == f"Successfully assigned {ns}/p0 to {placed['p0']}"
    assert events[0]["type"] == "Normal"
    assert await sched.metric("scheduler_schedule_attempts_total", result="scheduled") == 4
    assert await sched.metric("scheduler_pod_scheduling_sli_duration_seconds_count",
                              attempts="1") == 4
    assert await sched.metric("scheduler_pending_pods", queue="active") == 0


async def test_pods_of_one_owner_spread_across_nodes(api, ns, start_scheduler):
    """On big nodes where allocation scores tie, same-owner pods still spread evenly."""
    for name in ("a", "b", "c"):
        await api.create("nodes", node(name, cpu="64", memory="256Gi"))
    start_scheduler()
    names = [f"web-{i}" for i in range(6)]
    for name in names:
        await api.create("pods", pod(name, ns, owner="web"))
    placed = await wait_bound(api, ns, *names)
    assert sorted(placed.values()) == ["a", "a", "b", "b", "c", "c"]


async def test_unschedulable_pod_reports_why_and_binds_when_a_bigger_node_joins(
        api, ns, start_scheduler):
    """Too much cpu: PodScheduled=False with Kubernetes' message, one FailedScheduling
    event, no retries while nothing changes, then bound soon after a big node appears."""
    await api.create("nodes", node("small-1", cpu="2"))
    await api.create("nodes", node("small-2", cpu="2"))
    await api.create("nodes", node("infra", cpu="8", taints=[
        {"key": "dedicated", "value": "infra", "effect": "NoSchedule"}]))
    sched = start_scheduler("--pod-initial-backoff", "1", "--pod-max-backoff", "10")
    await api.create("pods", pod("hungry", ns, cpu="4"))

    async def condition() -> dict[str, Any] | None:
        return scheduled_condition(await api.get("pods", "hungry", namespace=ns))

    cond = await eventually(condition, what="PodScheduled condition")
    assert cond["status"] == "False"
    assert cond["reason"] == "Unschedulable"
    assert cond["message"] == ("0/3 nodes are available: 2 Insufficient cpu, "
                               "1 node(s) had untolerated taint {dedicated: infra}.")
    events = await eventually(lambda: events_for(api, ns, "hungry", "FailedScheduling"),
                              what="FailedScheduling event")
    assert events[0]["type"] == "Warning"
    assert events[0]["message"] == cond["message"]

    await asyncio.sleep(1.5)  # longer than the backoff: no event, so no retry
    assert await sched.metric("scheduler_schedule_attempts_total", result="unschedulable") == 1
    assert await sched.metric("scheduler_pending_pods", queue="unschedulable") == 1
    written = await api.get("pods", "hungry", namespace=ns)
    assert written["status"]["conditions"] == [cond]

    # A node change that does not help retries the pod once; the unchanged condition is
    # not written again, and the repeated event only bumps its count.
    await api.patch("nodes", "small-1", {"metadata": {"labels": {"rack": "r1"}}})

    async def two_failures() -> bool:
        return (await events_for(api, ns, "hungry", "FailedScheduling"))[0]["count"] == 2

    await eventually(two_failures, what="a second FailedScheduling")
    await asyncio.sleep(0.3)
    again = await api.get("pods", "hungry", namespace=ns)
    assert again["metadata"]["resourceVersion"] == written["metadata"]["resourceVersion"]
    assert await sched.metric("scheduler_schedule_attempts_total", result="unschedulable") == 2

    started = time.monotonic()
    await api.create("nodes", node("big", cpu="8"))
    assert await wait_bound(api, ns, "hungry") == {"hungry": "big"}
    assert time.monotonic() - started < 3.0  # the node event woke it: no max backoff wait


async def test_deleting_a_pod_frees_room_for_a_waiting_one(api, ns, start_scheduler):
    """A pending pod is retried when an assigned pod goes away."""
    await api.create("nodes", node("only", cpu="2"))
    start_scheduler()
    await api.create("pods", pod("first", ns, cpu="1500m"))
    await wait_bound(api, ns, "first")
    await api.create("pods", pod("second", ns, cpu="1"))
    await eventually(lambda: events_for(api, ns, "second", "FailedScheduling"),
                     what="FailedScheduling event")
    await api.delete("pods", "first", namespace=ns, grace_period_seconds=0)
    assert await wait_bound(api, ns, "second", within=5) == {"second": "only"}


async def test_a_finished_pod_frees_room_for_a_waiting_one(api, ns, start_scheduler):
    """A pod that Succeeded holds no resources any more, though it still exists."""
    await api.create("nodes", node("only", cpu="2"))
    start_scheduler()
    await api.create("pods", pod("job", ns, cpu="2"))
    await wait_bound(api, ns, "job")
    await api.create("pods", pod("next", ns, cpu="1"))
    await eventually(lambda: events_for(api, ns, "next", "FailedScheduling"),
                     what="FailedScheduling event")
    job = await api.get("pods", "job", namespace=ns)
    await api.update_status("pods", {**job, "status": {**job["status"], "phase": "Succeeded"}})
    assert await wait_bound(api, ns, "next", within=5) == {"next": "only"}


async def test_pod_waits_for_a_node_to_become_ready(api, ns, start_scheduler):
    """A NotReady node takes nothing; when its Ready condition turns True the pod binds."""
    await api.create("nodes", node("booting", ready="False"))
    start_scheduler()
    await api.create("pods", pod("early", ns))

    async def condition() -> dict[str, Any] | None:
        return scheduled_condition(await api.get("pods", "early", namespace=ns))

    cond = await eventually(condition, what="PodScheduled condition")
    assert cond["message"] == "0/1 nodes are available: 1 node(s) were not ready."
    booting = await api.get("nodes", "booting")
    booting["status"]["conditions"][0]["status"] = "True"
    await api.update_status("nodes", booting)
    assert await wait_bound(api, ns, "early", within=5) == {"early": "booting"}


async def test_node_selector_and_taints_are_respected(api, ns, start_scheduler):
    """Pods go only where their selector points and never onto taints they do not tolerate."""
    await api.create("nodes", node("ssd", labels={"disk": "ssd"}))
    await api.create("nodes", node("hdd", labels={"disk": "hdd"}))
    await api.create("nodes", node("gpu", labels={"accel": "gpu"}, taints=[
        {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]))
    start_scheduler()
    await api.create("pods", pod("wants-ssd", ns, nodeSelector={"disk": "ssd"}))
    plain = [f"plain-{i}" for i in range(6)]
    for name in plain:
        await api.create("pods", pod(name, ns))
    await api.create("pods", pod(
        "trainer", ns, nodeSelector={"accel": "gpu"},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]))
    await api.create("pods", pod("no-toleration", ns, nodeSelector={"accel": "gpu"}))

    placed = await wait_bound(api, ns, "wants-ssd", "trainer", *plain)
    assert placed["wants-ssd"] == "ssd"
    assert placed["trainer"] == "gpu"
    assert {placed[name] for name in plain} <= {"ssd", "hdd"}

    async def condition() -> dict[str, Any] | None:
        return scheduled_condition(await api.get("pods", "no-toleration", namespace=ns))

    cond = await eventually(condition, what="PodScheduled condition")
    assert cond["message"] == (
        "0/3 nodes are available: 2 node(s) didn't match Pod's node affinity/selector, "
        "1 node(s) had untolerated taint {nvidia.com/gpu: true}.")


async def test_host_ports_conflict_across_pods_scheduled_in_a_burst(api, ns, start_scheduler):
    """Assumed pods count at once: two hostPort pods take both nodes, the third waits."""
    await api.create("nodes", node("h1"))
    await api.create("nodes", node("h2"))
    start_scheduler()
    port = [{"containerPort": 8080, "hostPort": 8080, "protocol": "TCP"}]
    for name in ("web-1", "web-2", "web-3"):
        await api.create("pods", pod(name, ns, ports=port))

    async def settled() -> dict[str, str] | None:
        nodes = {n: await node_of(api, ns, n) for n in ("web-1", "web-2", "web-3")}
        bound = [v for v in nodes.values() if v]
        return nodes if len(bound) == 2 else None

    nodes = await eventually(settled, what="two pods bound")
    assert sorted(v for v in nodes.values() if v) == ["h1", "h2"]
    waiting = next(name for name, v in nodes.items() if not v)
    events = await eventually(lambda: events_for(api, ns, waiting, "FailedScheduling"),
                              what="FailedScheduling event")
    assert events[0]["message"] == (
        "0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod "
        "ports.")


async def test_pods_for_other_schedulers_are_left_alone(api, ns, start_scheduler):
    """Only pods naming our scheduler (default-scheduler unless --scheduler-name) are bound."""
    await api.create("nodes", node("n1"))
    start_scheduler("--scheduler-name", "custom")
    await api.create("pods", pod("mine", ns, schedulerName="custom"))
    await api.create("pods", pod("default", ns))
    await wait_bound(api, ns, "mine")
    await asyncio.sleep(0.5)
    other = await api.get("pods", "default", namespace=ns)
    assert not other["spec"].get("nodeName")
    assert scheduled_condition(other) is None


async def test_leader_failover_to_the_standby_scheduler(api, ns, start_scheduler):
    """Two replicas: only the leader schedules; SIGKILL it and the other takes over fast."""
    await api.create("nodes", node("n1"))
    replicas = {s.identity: s for s in (start_scheduler(identity="sched-a"),
                                        start_scheduler(identity="sched-b"))}
    leader = await eventually(lambda: lease_holder(api), what="a leader")
    assert leader in replicas
    await api.create("pods", pod("before", ns))
    await wait_bound(api, ns, "before")
    assert await replicas[leader].metric("scheduler_schedule_attempts_total",
                                         result="scheduled") == 1
    standby = next(name for name in replicas if name != leader)
    assert await replicas[standby].metric("scheduler_schedule_attempts_total",
                                          result="scheduled") == 0

    replicas[leader].process.kill()
    killed = time.monotonic()

    async def new_leader() -> str:
        holder = await lease_holder(api)
        return holder if holder == standby else ""

    await eventually(new_leader, timeout=5, what="the standby to take the lease")
    assert time.monotonic() - killed < 1.0 + 2.0  # lease duration + margin
    await api.create("pods", pod("after", ns))
    await wait_bound(api, ns, "after", within=5)
    assert time.monotonic() - killed < 1.0 + 3.0
    assert await replicas[standby].metric("scheduler_schedule_attempts_total",
                                          result="scheduled") == 1


async def test_scheduler_recovers_from_an_apiserver_restart(api, ns, apiserver, start_scheduler):
    """After the apiserver is killed and restarted, the scheduler resumes binding by itself."""
    await api.create("nodes", node("n1"))
    start_scheduler()
    await api.create("pods", pod("before", ns))
    await wait_bound(api, ns, "before")
    await asyncio.to_thread(apiserver.restart)
    await api.create("pods", pod("after", ns))
    assert await wait_bound(api, ns, "after", within=10) == {"after": "n1"}

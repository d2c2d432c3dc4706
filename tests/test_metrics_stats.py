"""The kubelet's usage summary (services/kubelet/stats.py): /proc readings, the rate
between two samples, the summary's shape, and real containers of the process runtime."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kubelite.api.v1 import api_pb2
from services.kubelet.runtime import Container, ContainerConfig, ContainerState, PodSandboxConfig
from services.kubelet.runtime_process import ProcessRuntime
from services.kubelet.stats import (
    ContainerUsage,
    KubeletStatsService,
    NoUsage,
    ProcessGroupUsage,
    RuntimeUsage,
    StatsSampler,
    host_cpu_seconds,
    host_memory_working_set,
    process_groups,
    usage_source_for,
)

BUSY = "import time\nwhile True: pass"


def container(cid: str, pod: str = "p", *, pid: int | None = 1, name: str = "c",
              state: ContainerState = ContainerState.RUNNING) -> Container:
    return Container(id=cid, pod_uid=f"uid-{pod}", pod_namespace="ns", pod_name=pod,
                     name=name, image="x", restart_count=0, state=state, created_at=0.0,
                     pid=pid)


@dataclass
class FakeRuntime:
    containers: list[Container]
    name: str = "fake"

    async def list_containers(self) -> list[Container]:
        return self.containers


class ScriptedUsage:
    """Cumulative readings the test sets between samples."""

    def __init__(self) -> None:
        self.now: dict[str, ContainerUsage] = {}

    async def read(self, containers: Sequence[Container]) -> dict[str, ContainerUsage]:
        return {c.id: self.now[c.id] for c in containers if c.id in self.now}


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def sampler(runtime: FakeRuntime, usage: ScriptedUsage, clock: Clock,
            host: list[float]) -> StatsSampler:
    return StatsSampler(runtime, node_name="node-0", source=usage,
                        host_cpu=lambda: host[0], host_memory=lambda: 1 << 30,
                        clock=clock, wall=lambda: 1_800_000_000.0)


async def test_cpu_is_the_rate_between_two_samples_in_nanocores() -> None:
    runtime = FakeRuntime([container("a"), container("b", name="d")])
    usage, clock, host = ScriptedUsage(), Clock(), [10.0]
    stats = sampler(runtime, usage, clock, host)
    usage.now = {"a": ContainerUsage(1.0, 1000), "b": ContainerUsage(5.0, 2000)}
    first = await stats.sample()
    # One reading has no rate: the pod is left out, as metrics-server leaves it out.
    assert first["pods"] == [] and "cpu" not in first["node"]
    clock.t += 2.0
    host[0] = 13.0
    usage.now = {"a": ContainerUsage(1.5, 3000), "b": ContainerUsage(5.0, 2000)}
    summary = await stats.sample()
    assert summary["window"] == 2.0
    assert summary["timestamp"] == "2027-01-15T08:00:00Z"
    assert summary["node"] == {"name": "node-0", "cpu": {
        "usageNanoCores": 1_500_000_000, "usageCoreNanoSeconds": 13_000_000_000},
        "memory": {"workingSetBytes": 1 << 30}}
    [pod] = summary["pods"]
    assert (pod["uid"], pod["namespace"], pod["name"]) == ("uid-p", "ns", "p")
    by_name = {c["name"]: c for c in pod["containers"]}
    assert by_name["c"]["cpu"]["usageNanoCores"] == 250_000_000  # 0.5 s over 2 s
    assert by_name["c"]["memory"]["workingSetBytes"] == 3000
    assert by_name["d"]["cpu"]["usageNanoCores"] == 0


async def test_a_container_without_a_second_reading_hides_its_pod() -> None:
    runtime = FakeRuntime([container("a")])
    usage, clock = ScriptedUsage(), Clock()
    stats = sampler(runtime, usage, clock, [0.0])
    usage.now = {"a": ContainerUsage(1.0, 1)}
    await stats.sample()
    runtime.containers.append(container("new", name="late"))
    usage.now["new"] = ContainerUsage(0.0, 1)
    clock.t += 1
    assert (await stats.sample())["pods"] == []
    clock.t += 1
    assert len((await stats.sample())["pods"][0]["containers"]) == 2


async def test_exited_containers_are_not_sampled_and_are_forgotten() -> None:
    runtime = FakeRuntime([container("a")])
    usage, clock = ScriptedUsage(), Clock()
    stats = sampler(runtime, usage, clock, [0.0])
    usage.now = {"a": ContainerUsage(1.0, 1)}
    await stats.sample()
    runtime.containers = [container("a", state=ContainerState.EXITED)]
    clock.t += 1
    assert (await stats.sample())["pods"] == []
    runtime.containers = [container("a")]  # seen again: needs two readings again
    clock.t += 1
    assert (await stats.sample())["pods"] == []


async def test_runtimes_bring_their_own_stats_or_are_skipped() -> None:
    class WithStats(FakeRuntime):
        async def container_stats(self, container_id: str) -> ContainerUsage | None:
            if container_id == "boom":
                raise OSError("docker is away")
            return {"a": ContainerUsage(2.0, 5), "t": (1.5, 7)}.get(container_id)

    runtime = WithStats([container("a"), container("b"), container("boom"), container("t")])
    source = usage_source_for(runtime)
    assert isinstance(source, RuntimeUsage)
    assert await source.read(runtime.containers) == {"a": ContainerUsage(2.0, 5),
                                                     "t": ContainerUsage(1.5, 7)}

    class Wrapped:  # the kubelet's InstrumentedRuntime wraps the real one
        inner = runtime

    assert isinstance(usage_source_for(Wrapped()), RuntimeUsage)
    assert isinstance(usage_source_for(FakeRuntime([], name="process")), ProcessGroupUsage)
    assert isinstance(usage_source_for(FakeRuntime([], name="docker")), NoUsage)


async def test_stats_rpc_returns_the_latest_summary_as_json() -> None:
    runtime = FakeRuntime([])
    stats = sampler(runtime, ScriptedUsage(), Clock(), [0.0])
    await stats.sample()
    service = KubeletStatsService(runtime, lambda ns, name: None, stats)  # type: ignore[arg-type]
    reply = await service.Stats(api_pb2.StatsRequest(), None)  # type: ignore[arg-type]
    assert json.loads(reply.summary)["node"]["name"] == "node-0"


def test_process_groups_sum_cpu_and_memory_of_every_member() -> None:
    """A group of two busy processes accrues about two cores' time."""
    leader = subprocess.Popen([sys.executable, "-c",
                               "import subprocess, sys\n"
                               f"subprocess.Popen([sys.executable, '-c', {BUSY!r}])\n"
                               + BUSY], process_group=0)
    try:
        time.sleep(0.3)
        before = process_groups()[leader.pid]
        time.sleep(1.0)
        after = process_groups()[leader.pid]
        ticks = after[0] - before[0]
        hz = os.sysconf("SC_CLK_TCK")
        assert ticks / hz > 0.6, "two busy processes on a loaded host still burn > 0.6 s"
        assert after[1] > 0
    finally:
        os.killpg(leader.pid, signal.SIGKILL)
        leader.wait()


def test_host_readings_are_plausible() -> None:
    assert (host_cpu_seconds() or 0) > 0
    assert 0 < (host_memory_working_set() or 0) < 1 << 50
    assert host_cpu_seconds("/nonexistent") is None
    assert host_memory_working_set("/nonexistent") is None


async def test_real_process_runtime_containers_are_measured(tmp_path: Path) -> None:
    """A busy container reads close to a core; an idle one close to none."""
    runtime = ProcessRuntime(tmp_path, pod_cidr="127.201.0.0/16")
    await runtime.start()
    sandbox = await runtime.run_pod_sandbox(PodSandboxConfig(uid="u1", namespace="ns",
                                                             name="pod"))
    started = []
    try:
        for name, script in (("busy", BUSY), ("idle", "import time; time.sleep(60)")):
            started.append(await runtime.start_container(sandbox, ContainerConfig(
                pod_uid="u1", pod_namespace="ns", pod_name="pod", name=name, image="x",
                command=[sys.executable, "-c", script], args=[], env=[])))
        stats = StatsSampler(runtime, node_name="n", period=0.5)
        await stats.sample()
        await asyncio.sleep(1.0)
        summary = await stats.sample()
        [pod] = summary["pods"]
        usage = {c["name"]: c for c in pod["containers"]}
        assert usage["busy"]["cpu"]["usageNanoCores"] > 300_000_000, usage
        assert usage["idle"]["cpu"]["usageNanoCores"] < 100_000_000, usage
        assert usage["idle"]["memory"]["workingSetBytes"] > 1 << 20
        assert summary["node"]["cpu"]["usageNanoCores"] > 0
    finally:
        for c in started:
            await runtime.stop_container(c.id, grace=0)
        await runtime.close()

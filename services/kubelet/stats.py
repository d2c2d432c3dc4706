"""The kubelet's usage summary (the Kubelet.Stats RPC): what metrics-server would
scrape from a kubelet's Summary API, and what the apiserver's metrics API asks for.

The one idea: **usage is a rate, so the kubelet samples.** Every
`--stats-period` seconds a sampler reads each running container's cumulative
CPU time and its memory, and the host's; CPU usage is the CPU time consumed
between the last two samples divided by the time between them, in nanocores,
and `window` is that time. A container seen only once has no rate yet and is
left out, and so is its pod: metrics-server, too, drops a pod whose containers'
metrics are incomplete, and the HPA then treats the pod as missing its metrics.
Nothing is stored anywhere but in this process's memory.

Where the numbers come from:

- A runtime that has `async container_stats(container_id)` answers for its own
  containers (the docker runtime can read Docker's stats there): it returns
  None, or anything with `cpu_seconds` (cumulative) and `memory_bytes`
  attributes, such as ContainerUsage below, or a `(cpu_seconds, memory_bytes)`
  pair, so a runtime needs no import from here. Containers of a runtime that
  has no such method, and is not the process runtime, are skipped: the summary
  simply lacks them.
- The process runtime is read from /proc, in one pass over every process per
  sample: a container is its process group (the shim starts the command as a
  group leader, and `Container.pid` is that leader), its CPU time is the sum of
  utime+stime+cutime+cstime of the group's live processes (cutime/cstime keep
  the time of children that already exited and were reaped inside the group),
  and its memory is the sum of their resident sets. RSS stands in for the
  working set: there is no cgroup to tell page cache apart, and pages shared
  between the group's processes count once per process.
- The node is the host, as Kubernetes reads the node from the root cgroup: CPU
  is the busy time in /proc/stat (all but idle and iowait) and memory is
  MemTotal - MemAvailable from /proc/meminfo. The local nodes of `kubelite up`
  share one host, so each of them reports the whole host's usage.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import grpc

from kubelite.api.v1 import api_pb2
from services.kubelet.logs import KubeletService
from services.kubelet.runtime import Container, Runtime

log = logging.getLogger("kubelite.kubelet.stats")

Obj = dict[str, Any]

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
NANO = 1_000_000_000


@dataclass(frozen=True)
class ContainerUsage:
    """One reading of a container: cumulative CPU seconds and current memory bytes."""

    cpu_seconds: float
    memory_bytes: int


class ContainerStatsRuntime(Protocol):
    """The optional runtime method the sampler uses when a runtime has it."""

    async def container_stats(self, container_id: str) -> Any: ...


def as_usage(reading: Any) -> ContainerUsage | None:
    """A runtime's reading as ContainerUsage: one already, anything with the two
    attributes, or a (cpu_seconds, memory_bytes) pair; None for anything else."""
    if reading is None or isinstance(reading, ContainerUsage):
        return reading
    try:
        if isinstance(reading, tuple | list):
            cpu, memory = reading
        else:
            cpu, memory = reading.cpu_seconds, reading.memory_bytes
        return ContainerUsage(float(cpu), int(memory))
    except (AttributeError, TypeError, ValueError):
        return None


class UsageSource(Protocol):
    """Reads every given running container at once (None: the container is unknown)."""

    async def read(self, containers: Sequence[Container]) -> dict[str, ContainerUsage]: ...


# -- /proc readers -----------------------------------------------------------------


def _stat_fields(data: bytes) -> list[bytes]:
    # The command name (field 2) may hold spaces and parentheses: split after its end.
    return data[data.rfind(b")") + 2:].split()


def process_groups(proc: str = "/proc") -> dict[int, tuple[int, int]]:
    """{pgid: (cpu clock ticks, resident pages)} summed over every live process."""
    groups: dict[int, tuple[int, int]] = {}
    try:
        entries = os.listdir(proc)
    except OSError:
        return groups
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"{proc}/{entry}/stat", "rb") as f:
                fields = _stat_fields(f.read())
            # After the name: state(0) ppid(1) pgrp(2) ... utime(11) stime(12)
            # cutime(13) cstime(14) ... rss(21)
            if fields[0] in (b"Z", b"X"):
                continue
            pgid = int(fields[2])
            ticks = int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
            pages = int(fields[21])
        except (OSError, IndexError, ValueError):
            continue  # exited while we looked, or not ours to read
        cpu, rss = groups.get(pgid, (0, 0))
        groups[pgid] = (cpu + ticks, rss + pages)
    return groups


def host_cpu_seconds(path: str = "/proc/stat") -> float | None:
    """Busy CPU seconds of the whole host since boot (every state but idle and iowait)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("cpu "):
                    values = [int(v) for v in line.split()[1:]]
                    # user nice system idle iowait irq softirq steal (guest is in user)
                    busy = sum(values[:3]) + sum(values[5:8])
                    return busy / CLOCK_TICKS
    except (OSError, ValueError):
        pass
    return None


def host_memory_working_set(path: str = "/proc/meminfo") -> int | None:
    """MemTotal - MemAvailable, in bytes."""
    values: dict[str, int] = {}
    try:
        with open(path) as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("MemTotal", "MemAvailable"):
                    values[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    if len(values) < 2:
        return None
    return values["MemTotal"] - values["MemAvailable"]


class ProcessGroupUsage:
    """The process runtime's containers, read as process groups in one /proc pass."""

    def __init__(self, proc: str = "/proc") -> None:
        self.proc = proc

    async def read(self, containers: Sequence[Container]) -> dict[str, ContainerUsage]:
        wanted = {c.id: c.pid for c in containers if c.pid}
        if not wanted:
            return {}
        groups = await asyncio.to_thread(process_groups, self.proc)
        usage = {}
        for cid, pgid in wanted.items():
            found = groups.get(int(pgid))
            if found is not None:
                ticks, pages = found
                usage[cid] = ContainerUsage(ticks / CLOCK_TICKS, pages * PAGE_SIZE)
        return usage


class RuntimeUsage:
    """A runtime that reads its own containers (`container_stats`)."""

    def __init__(self, runtime: ContainerStatsRuntime) -> None:
        self.runtime = runtime

    async def read(self, containers: Sequence[Container]) -> dict[str, ContainerUsage]:
        async def one(c: Container) -> ContainerUsage | None:
            try:
                return as_usage(await self.runtime.container_stats(c.id))
            except Exception as err:  # noqa: BLE001 - a container's stats are optional
                log.debug("container stats unavailable",
                          extra={"kv": {"container": c.id, "error": str(err)[:200]}})
                return None

        results = await asyncio.gather(*(one(c) for c in containers))
        return {c.id: u for c, u in zip(containers, results, strict=True) if u is not None}


class NoUsage:
    """A runtime that cannot tell: every container is skipped."""

    async def read(self, containers: Sequence[Container]) -> dict[str, ContainerUsage]:
        return {}


def usage_source_for(runtime: Runtime | Any) -> UsageSource:
    """How to read the containers of this runtime (an instrumented wrapper is looked through)."""
    inner = getattr(runtime, "inner", runtime)
    if callable(getattr(inner, "container_stats", None)):
        return RuntimeUsage(inner)
    if getattr(inner, "name", "") == "process":
        return ProcessGroupUsage()
    log.info("this runtime reports no container usage; Stats leaves its containers out",
             extra={"kv": {"runtime": getattr(inner, "name", "?")}})
    return NoUsage()


# -- the sampler -------------------------------------------------------------------


@dataclass(frozen=True)
class _Reading:
    at: float  # monotonic seconds
    cpu_seconds: float
    memory_bytes: int


def _rate(prev: _Reading | None, cur: _Reading) -> int | None:
    """Nanocores between two readings (None without an earlier one)."""
    if prev is None or cur.at <= prev.at:
        return None
    return max(0, round((cur.cpu_seconds - prev.cpu_seconds) / (cur.at - prev.at) * NANO))


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class StatsSampler:
    """Samples usage every `period` seconds and keeps the latest summary (see the module
    docstring). `summary()` is what Kubelet.Stats returns."""

    def __init__(self, runtime: Runtime | Any, *, node_name: str, period: float = 10.0,
                 source: UsageSource | None = None,
                 host_cpu: Callable[[], float | None] = host_cpu_seconds,
                 host_memory: Callable[[], int | None] = host_memory_working_set,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.runtime = runtime
        self.node_name = node_name
        self.period = period
        self.source = source or usage_source_for(runtime)
        self.host_cpu = host_cpu
        self.host_memory = host_memory
        self.clock = clock
        self.wall = wall
        self._containers: dict[str, tuple[_Reading | None, _Reading]] = {}
        self._node: tuple[_Reading | None, _Reading] | None = None
        self._summary: Obj = {"node": {"name": node_name}, "pods": []}
        self.samples = 0

    async def run(self) -> None:
        """Samples until cancelled; a failed sample is logged and the next one comes."""
        while True:
            try:
                await self.sample()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - stats must never stop the kubelet
                log.exception("stats sample failed")
            await asyncio.sleep(self.period)

    async def sample(self) -> Obj:
        """Takes one sample now and returns the new summary."""
        containers = [c for c in await self.runtime.list_containers() if c.running]
        usage = await self.source.read(containers)
        now = self.clock()
        cpu, memory = await asyncio.to_thread(lambda: (self.host_cpu(), self.host_memory()))
        readings: dict[str, tuple[_Reading | None, _Reading]] = {}
        for cid, u in usage.items():
            before = self._containers.get(cid)
            readings[cid] = (before[1] if before else None,
                             _Reading(now, u.cpu_seconds, u.memory_bytes))
        self._containers = readings  # containers gone since are forgotten
        if cpu is not None:
            self._node = (self._node[1] if self._node else None, _Reading(now, cpu, memory or 0))
        self.samples += 1
        self._summary = self._build(containers, memory)
        return self._summary

    def _build(self, containers: Sequence[Container], host_memory: int | None) -> Obj:
        pods: dict[str, Obj] = {}
        incomplete: set[str] = set()
        windows: list[float] = []
        for c in containers:
            pod = pods.setdefault(c.pod_uid, {"uid": c.pod_uid, "namespace": c.pod_namespace,
                                              "name": c.pod_name, "containers": []})
            pair = self._containers.get(c.id)
            rate = _rate(*pair) if pair else None
            if pair is None or rate is None:
                incomplete.add(c.pod_uid)
                continue
            prev, cur = pair
            assert prev is not None
            windows.append(cur.at - prev.at)
            pod["containers"].append({
                "name": c.name,
                "cpu": {"usageNanoCores": rate,
                        "usageCoreNanoSeconds": round(cur.cpu_seconds * NANO)},
                "memory": {"workingSetBytes": cur.memory_bytes, "rssBytes": cur.memory_bytes},
            })
        node: Obj = {"name": self.node_name}
        if self._node is not None:
            prev, cur = self._node
            rate = _rate(prev, cur)
            if rate is not None:
                node["cpu"] = {"usageNanoCores": rate,
                               "usageCoreNanoSeconds": round(cur.cpu_seconds * NANO)}
                if prev is not None:
                    windows.append(cur.at - prev.at)
        if host_memory is not None:
            node["memory"] = {"workingSetBytes": host_memory}
        return {
            "node": node,
            "pods": [p for uid, p in pods.items() if uid not in incomplete],
            "timestamp": _rfc3339(self.wall()),
            "window": round(max(windows), 3) if windows else 0,
        }

    def summary(self) -> Obj:
        return self._summary


class KubeletStatsService(KubeletService):
    """The Kubelet gRPC service: Logs (logs.py) and Stats (the latest summary)."""

    def __init__(self, runtime: Runtime, get_pod: Callable[[str, str], Obj | None],
                 stats: StatsSampler) -> None:
        super().__init__(runtime, get_pod)
        self.stats = stats

    async def Stats(self, request: api_pb2.StatsRequest,  # noqa: N802 - the gRPC method name
                    context: grpc.aio.ServicerContext) -> api_pb2.StatsResponse:
        return api_pb2.StatsResponse(
            summary=json.dumps(self.stats.summary(), separators=(",", ":")).encode())


__all__ = [
    "ContainerUsage",
    "KubeletStatsService",
    "NoUsage",
    "ProcessGroupUsage",
    "RuntimeUsage",
    "StatsSampler",
    "host_cpu_seconds",
    "host_memory_working_set",
    "process_groups",
    "usage_source_for",
]

"""Benchmark of the kubelite API against a fresh local cluster of its own.

It starts a redis-server and an apiserver (as `kubelite up` does) in a temporary
directory, measures, prints a table and stops them. It measures:

- creates: creates/s and p50/p99 latency with 1, 8 and 32 concurrent callers
  (asyncio tasks in this process), sharing one gRPC channel, with a channel each,
  or with a TCP connection each (see bench/channels.py);
- watch delivery: with 1 and with 100 watchers in a separate process
  (bench/watchers.py), a paced writer creates objects; the latency of an event
  is the moment a watcher receives it minus the moment the writer had the
  create's acknowledgement, both on CLOCK_MONOTONIC (time.monotonic(), one clock
  for every process on a Linux machine), joined by resourceVersion;
- the floor: a do-nothing grpc.aio unary call (bench/echo.py, the health Check)
  with 8 callers, and the ratio of create throughput to it.

It samples the CPU time of every process, and of the rest of the machine
(`other`), so each row shows who was busy, what the apiserver spent per
operation (CPU µs/op, a figure that survives a busy machine better than
throughput does), and whether something else disturbed it. On a shared machine,
--repeat keeps the least disturbed of several runs of each row. With --profile
DIR it repeats the 8-caller creates and the 100-watcher watch with py-spy
attached to the apiserver and prints where the apiserver's time goes.

    python -m bench.api             # the full run, about two minutes
    python -m bench.api --quick     # a smoke run (CI), about 20 seconds
    python -m bench.api --repeat 3 --wait-quiet 60 --profile /tmp/prof
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.channels import MODES, channel_options, close_clients, open_clients
from kubelite.client import Client
from kubelite.errors import ApiError
from kubelite.localcluster import (
    ClusterError,
    ManagedProcess,
    RedisServer,
    apiserver_process,
    free_port,
    make_workdir,
    python_module_argv,
    wait_healthy,
)

CLK_TCK = os.sysconf("SC_CLK_TCK")
GOAL_CREATES_PER_S = 1000
GOAL_P99_S = 0.050

# -- measuring ---------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank percentile of values (q in 0..1); NaN when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, all of its threads."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def machine_busy_seconds() -> float:
    """CPU time all cores have spent busy since boot (user, system, irq, steal)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def us_per_op(cores: float, rate: float) -> float:
    """CPU microseconds a process spent per operation, from its cores and the rate."""
    return round(cores / rate * 1e6, 1) if rate > 0 else float("nan")


async def least_disturbed(repeat: int, measure: Callable[[int], Any]) -> dict[str, Any]:
    """Measures `repeat` times; keeps the row during which the rest of the machine was
    quietest (a benchmark on a shared machine is disturbed, never helped, by others)."""
    rows = [await measure(i) for i in range(max(repeat, 1))]
    return min(rows, key=lambda row: row["cpu"].get("other", 0.0))


class CpuMeter:
    """CPU used by named processes over a window, in cores (1.0 = one core busy).

    `other` is what the rest of the machine used meanwhile: anything well above
    zero means the figures of that window were taken on a shared, busy machine.
    """

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = dict(pids)
        self._start: dict[str, float] = {}
        self._machine = 0.0
        self._wall = 0.0

    def start(self) -> None:
        self._wall = time.monotonic()
        self._machine = machine_busy_seconds()
        self._start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self) -> dict[str, float]:
        wall = max(time.monotonic() - self._wall, 1e-9)
        used = {name: (cpu_seconds(pid) - self._start[name]) / wall
                for name, pid in self.pids.items()}
        machine = (machine_busy_seconds() - self._machine) / wall
        used["other"] = max(machine - sum(used.values()), 0.0)
        return {name: round(value, 2) for name, value in used.items()}


def wait_for_quiet(sample: float, seconds: float, threshold: float = 0.25) -> float:
    """Waits (at most `seconds`) until the rest of the machine uses under `threshold` cores.

    Returns the load last seen, in cores.
    """
    deadline = time.monotonic() + seconds
    while True:
        before, t0 = machine_busy_seconds(), time.monotonic()
        time.sleep(sample)
        load = (machine_busy_seconds() - before) / (time.monotonic() - t0)
        if load < threshold or time.monotonic() >= deadline:
            return load


@dataclass
class Latencies:
    """Completed operations over a window: the rate and the latency distribution."""

    count: int
    elapsed: float
    samples: list[float] = field(repr=False)
    errors: int = 0

    @property
    def rate(self) -> float:
        return self.count / self.elapsed if self.elapsed > 0 else 0.0

    def p(self, q: float) -> float:
        return percentile(self.samples, q)

    def summary(self) -> dict[str, float]:
        return {"count": self.count, "errors": self.errors, "seconds": round(self.elapsed, 3),
                "per_second": round(self.rate, 1), "p50_ms": round(self.p(0.50) * 1e3, 2),
                "p99_ms": round(self.p(0.99) * 1e3, 2), "max_ms": round(self.p(1.0) * 1e3, 2)}


async def closed_loop(callers: int, duration: float, max_calls: int,
                      call: Callable[[int, int], Any]) -> Latencies:
    """`callers` tasks, each calling `call(caller, n)` back to back until the deadline."""
    samples: list[float] = []
    errors = 0
    issued = 0
    deadline = time.perf_counter() + duration

    async def caller(i: int) -> None:
        nonlocal errors, issued
        n = 0
        while time.perf_counter() < deadline and issued < max_calls:
            issued += 1
            n += 1
            t0 = time.perf_counter()
            try:
                await call(i, n)
            except (ApiError, grpc.RpcError):
                errors += 1
                continue
            samples.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(caller(i) for i in range(callers)))
    return Latencies(len(samples), time.perf_counter() - started, samples, errors)


# -- the cluster ---------------------------------------------------------------


class Cluster:
    """A redis-server and apiservers of this run's own, stopped by PID at the end.

    With replicas > 1 each apiserver listens on an address of its own (as behind an
    L4 load balancer, which spreads connections, not calls); `targets` lists them.
    """

    def __init__(self, workdir: Path, apiserver_args: list[str], replicas: int = 1) -> None:
        self.workdir = workdir
        self.apiserver_args = apiserver_args
        self.replicas = replicas
        self.redis: RedisServer | None = None
        self.apiservers: list[ManagedProcess] = []
        self.targets: list[str] = []

    @property
    def apiserver(self) -> ManagedProcess:
        return self.apiservers[0]

    @property
    def target(self) -> str:
        return self.targets[0]

    def start(self) -> Cluster:
        self.redis = RedisServer(self.workdir / "redis").start()
        for n in range(self.replicas):
            name = "apiserver" if n == 0 else f"apiserver-{n + 1}"
            target = f"127.0.0.1:{free_port()}"
            proc = apiserver_process(self.workdir, listen=target, redis_url=self.redis.url,
                                     extra=self.apiserver_args, name=name).start()
            self.apiservers.append(proc)
            self.targets.append(target)
            try:
                wait_healthy(target, 60, proc.proc)
            except ClusterError:
                print(proc.tail(), file=sys.stderr)
                raise
        return self

    def stop(self) -> None:
        for proc in self.apiservers:
            proc.stop()
        if self.redis:
            self.redis.stop()

    def pids(self) -> dict[str, int]:
        assert self.redis and self.redis.process
        return {**{p.name: p.pid for p in self.apiservers}, "redis": self.redis.process.pid,
                "bench": os.getpid()}


def apiserver_cores(cpu: dict[str, float]) -> float:
    return sum(v for k, v in cpu.items() if k.startswith("apiserver"))


# -- creates -------------------------------------------------------------------


def make_object(kind: str, namespace: str, name: str, payload: str = "x" * 64) -> dict:
    meta = {"name": name, "namespace": namespace, "labels": {"app": "bench"}}
    if kind == "pods":
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                "spec": {"containers": [{"name": "app", "image": "busybox:1.36",
                                         "command": ["sleep", "3600"]}]}}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
            "data": {"payload": payload}}


async def create_namespace(client: Client, name: str) -> None:
    await client.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                       "metadata": {"name": name}})


async def bench_creates(cluster: Cluster, args: argparse.Namespace, namespace: str,
                        callers: int, mode: str, run: int) -> dict[str, Any]:
    clients = await open_clients(cluster.targets, callers, mode)
    meter = CpuMeter(cluster.pids())
    try:
        async def create(i: int, n: int, tag: str = "w") -> None:
            name = f"r{run}{tag}-{i}-{n}"
            await clients[i].create(args.kind, make_object(args.kind, namespace, name))

        await closed_loop(callers, args.warmup, args.max_calls, create)
        meter.start()
        result = await closed_loop(callers, args.duration, args.max_calls,
                                   lambda i, n: create(i, n, "m"))
        cpu = meter.stop()
    finally:
        await close_clients(clients)
    return {"callers": callers, "mode": mode, **result.summary(), "cpu": cpu,
            "server_us_per_op": us_per_op(apiserver_cores(cpu), result.rate)}


# -- the echo floor --------------------------------------------------------------


async def bench_echo(target: str, callers: int, mode: str, args: argparse.Namespace,
                     pids: dict[str, int]) -> dict[str, Any]:
    count = 1 if mode == "shared" else callers
    own = mode == "connections"
    channels = [grpc.aio.insecure_channel(target, options=channel_options(own))
                for _ in range(count)]
    stubs = [health_pb2_grpc.HealthStub(channels[i % count]) for i in range(callers)]
    request = health_pb2.HealthCheckRequest()
    meter = CpuMeter(pids)

    async def check(i: int, n: int) -> None:
        await stubs[i].Check(request, timeout=10)

    try:
        await closed_loop(callers, args.warmup, args.max_calls, check)
        meter.start()
        result = await closed_loop(callers, args.duration, args.max_calls, check)
        cpu = meter.stop()
    finally:
        for channel in channels:
            await channel.close()
    return {"callers": callers, "mode": mode, **result.summary(), "cpu": cpu,
            "server_us_per_op": us_per_op(cpu["echo"], result.rate)}


def start_echo_server(workdir: Path) -> tuple[ManagedProcess, str]:
    target = f"127.0.0.1:{free_port()}"
    proc = ManagedProcess("echo", python_module_argv("bench.echo", "--listen", target),
                          workdir / "echo.log").start()
    wait_healthy(target, 30, proc.proc)
    return proc, target


# -- watch delivery ----------------------------------------------------------------


async def bench_watch(cluster: Cluster, args: argparse.Namespace, watchers: int, rate: float,
                      workdir: Path, tag: str = "") -> dict[str, Any]:
    namespace = f"bench-watch-{watchers}-{int(rate)}{tag}"
    out = workdir / f"{namespace}.json"
    async with Client(cluster.target) as client:
        await create_namespace(client, namespace)
        await client.create("configmaps", make_object("configmaps", namespace, "sentinel"))
        proc = await asyncio.create_subprocess_exec(
            *python_module_argv("bench.watchers", "--target", ",".join(cluster.targets),
                                "--namespace", namespace, "--watchers", str(watchers),
                                "--connections", args.watch_connections, "--end", "end",
                                "--out", str(out), "--timeout", str(args.watch_timeout)),
            stdout=asyncio.subprocess.PIPE)
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            if line.strip() != b"READY":
                raise RuntimeError(f"the watchers process did not start: {line!r}")
            meter = CpuMeter({**cluster.pids(), "watchers": proc.pid})
            meter.start()
            acks, elapsed, errors = await paced_writes(client, namespace, args.watch_events,
                                                       rate)
            cpu = meter.stop()
            await client.create("configmaps", make_object("configmaps", namespace, "end"))
            line = await asyncio.wait_for(proc.stdout.readline(), args.watch_timeout + 30)
            await asyncio.wait_for(proc.wait(), 30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    result = json.loads(out.read_text())
    ack_lat, send_lat = [], []
    for record in result["watchers"]:
        for rv, received in record:
            if rv in acks:
                sent, acked = acks[rv]
                ack_lat.append(received - acked)
                send_lat.append(received - sent)
    expected = len(acks) * watchers
    ack = Latencies(len(ack_lat), elapsed, ack_lat)
    return {
        "watchers": watchers, "rate": rate, "writes": len(acks), "write_errors": errors,
        "writes_per_second": round(len(acks) / elapsed, 1),
        "events_delivered": len(ack_lat), "events_missing": expected - len(ack_lat),
        "events_per_second": round(ack.rate, 1),
        "ack_to_receive_p50_ms": round(ack.p(0.5) * 1e3, 2),
        "ack_to_receive_p99_ms": round(ack.p(0.99) * 1e3, 2),
        "ack_to_receive_max_ms": round(ack.p(1.0) * 1e3, 2),
        "send_to_receive_p50_ms": round(percentile(send_lat, 0.5) * 1e3, 2),
        "send_to_receive_p99_ms": round(percentile(send_lat, 0.99) * 1e3, 2),
        "watchers_timed_out": result["timed_out"], "watcher_errors": result["errors"],
        "cpu": cpu, "server_us_per_event": us_per_op(apiserver_cores(cpu), ack.rate),
    }


async def paced_writes(client: Client, namespace: str, count: int, rate: float,
                       in_flight: int = 64) -> tuple[dict[int, tuple[float, float]], float, int]:
    """Creates `count` ConfigMaps at `rate` per second (open loop, bounded in flight).

    Returns {resourceVersion: (sent, acknowledged)} on time.monotonic(), the
    seconds it took and the number of failed writes.
    """
    acks: dict[int, tuple[float, float]] = {}
    errors = 0
    slots = asyncio.Semaphore(in_flight)

    async def write(i: int) -> None:
        nonlocal errors
        try:
            sent = time.monotonic()
            obj = await client.create("configmaps", make_object("configmaps", namespace,
                                                                f"w-{i}"))
            acks[int(obj["metadata"]["resourceVersion"])] = (sent, time.monotonic())
        except ApiError:
            errors += 1
        finally:
            slots.release()

    tasks = []
    started = time.monotonic()
    for i in range(count):
        delay = started + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await slots.acquire()
        tasks.append(asyncio.create_task(write(i)))
    await asyncio.gather(*tasks)
    return acks, time.monotonic() - started, errors


# -- profiling -------------------------------------------------------------------


class Profiler:
    """py-spy attached to a process for one phase, writing collapsed stacks."""

    def __init__(self, pid: int, out: Path) -> None:
        self.pid, self.out = pid, out
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Profiler:
        binary = shutil.which("py-spy")
        if binary is None:
            raise SystemExit("--profile needs py-spy (pip install py-spy)")
        self.proc = subprocess.Popen(
            [binary, "record", "--pid", str(self.pid), "--format", "raw", "--rate", "200",
             "--nonblocking", "--output", str(self.out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # let it attach
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# Where a sample is attributed: the innermost frame whose file matches, in order.
AREAS = (
    ("jsonschema validation", ("jsonschema/", "referencing/", "rpds")),
    ("redis-py", ("redis/",)),
    ("prometheus metrics", ("prometheus_client/",)),
    ("json encode/decode", ("json/",)),
    ("logging", ("logging/",)),
    ("apiserver: watchcache", ("apiserver/watchcache.py",)),
    ("apiserver: service", ("apiserver/service.py",)),
    ("apiserver: registry", ("apiserver/registry.py", "apiserver/defaults.py",
                             "apiserver/strategies/")),
    ("apiserver: storage", ("apiserver/storage.py",)),
    ("kubelite library", ("kubelite/",)),
    ("grpc aio (Python part)", ("grpc/", "grpc_health")),
    ("asyncio event loop", ("asyncio/", "selectors.py")),
)
# A loop callback with no Python frame above it is C or Cython code: in the
# apiserver that is almost always grpc.aio's Cython (cygrpc), which py-spy cannot see.
CYTHON_CALLBACK = "Handle._run (asyncio/events.py"
# Frames worth listing by inclusive time: the apiserver's own and its libraries'.
INCLUSIVE_OF = ("apiserver/", "kubelite/", "redis/", "jsonschema/")


def summarize_profile(path: Path, top: int = 12) -> dict[str, Any]:
    """Where the apiserver's event-loop thread spent its on-CPU samples.

    Samples of other threads (grpc's poller thread) are counted apart. Shares are
    by area (innermost matching frame), by own time, and inclusive of callees.
    """
    areas: Counter[str] = Counter()
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = other_threads = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if any("threading.py" in f for f in frames):
            other_threads += count
            continue
        total += count
        if frames[-1].startswith(CYTHON_CALLBACK):
            area = "grpc aio (Cython callbacks)"
        else:
            area = next((name for frame in reversed(frames) for name, needles in AREAS
                         if any(n in frame for n in needles)), "other")
        areas[area] += count
        own[_short(frames[-1])] += count
        for name in {_short(f) for f in frames if any(n in f for n in INCLUSIVE_OF)}:
            inclusive[name] += count

    def share(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(k, round(100 * v / max(total, 1), 1)) for k, v in counter.most_common(top)]

    return {"samples": total, "other_thread_samples": other_threads, "areas": share(areas),
            "own": share(own), "inclusive": share(inclusive)}


def _short(frame: str) -> str:
    """'create (services/apiserver/registry.py:155)' -> 'create (apiserver/registry.py)'."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    parts = where.split("/")
    return f"{name} ({'/'.join(parts[-2:])})" if where else name


# -- the report --------------------------------------------------------------------


def print_table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    print(f"\n{title}")
    cells = [header] + [[_cell(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    for n, row in enumerate(cells):
        print("  " + "  ".join(c.rjust(w) if i else c.ljust(w)
                               for i, (c, w) in enumerate(zip(row, widths, strict=True))))
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if value >= 100 else f"{value:.2f}"
    return str(value)


def _cpu(cpu: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.2f}" for k, v in cpu.items())


def report(results: dict[str, Any]) -> None:
    print_table(
        f"Creates ({results['kind']}), closed loop, {results['duration']}s per row, "
        f"{results['apiservers']} apiserver process(es)",
        ["callers", "channels", "creates/s", "p50 ms", "p99 ms", "max ms", "errors",
         "apiserver CPU µs/create", "CPU (cores)"],
        [[r["callers"], r["mode"], r["per_second"], r["p50_ms"], r["p99_ms"], r["max_ms"],
          r["errors"], r["server_us_per_op"], _cpu(r["cpu"])] for r in results["creates"]])
    print_table(
        "gRPC unary echo (health Check on a do-nothing grpc.aio server)",
        ["callers", "channels", "calls/s", "p50 ms", "p99 ms", "server CPU µs/call",
         "CPU (cores)"],
        [[r["callers"], r["mode"], r["per_second"], r["p50_ms"], r["p99_ms"],
          r["server_us_per_op"], _cpu(r["cpu"])] for r in results["echo"]])
    ratios = results["ratios"]
    if ratios:
        print_table("Create throughput / echo throughput, 8 callers", ["channels", "ratio"],
                    [[mode, f"{value:.2f}"] for mode, value in ratios.items()])
    print_table(
        f"Watch delivery: paced writes, watchers in their own process "
        f"({results['watch_connections']} channels)",
        ["watchers", "writes/s", "writes", "events", "missing", "events/s",
         "ack→recv p50 ms", "p99 ms", "max ms", "send→recv p99 ms", "apiserver CPU µs/event",
         "CPU (cores)"],
        [[r["watchers"], r["writes_per_second"], r["writes"], r["events_delivered"],
          r["events_missing"], r["events_per_second"], r["ack_to_receive_p50_ms"],
          r["ack_to_receive_p99_ms"], r["ack_to_receive_max_ms"], r["send_to_receive_p99_ms"],
          r["server_us_per_event"], _cpu(r["cpu"])]
         for r in results["watch"]])
    busy = [r for key in ("creates", "echo", "watch") for r in results[key]
            if r["cpu"].get("other", 0) > 0.25]
    if busy:
        print(f"\nNote: during {len(busy)} row(s) other processes used more than 0.25 cores "
              "(CPU column, other=): those figures are low. Rerun on an idle machine, or with "
              "--wait-quiet 120.")
    goals = results["goals"]
    print("\nGoals (2-core machine)")
    for goal in goals:
        print(f"  [{'PASS' if goal['met'] else 'FAIL'}] {goal['goal']}: {goal['measured']}")
    for name, summary in results.get("profiles", {}).items():
        print(f"\nProfile of the apiserver's event loop during {name}: {summary['samples']} "
              f"on-CPU samples (+{summary['other_thread_samples']} in other threads); "
              "% of samples")
        for label in ("areas", "own", "inclusive"):
            print(f"  by {label}:")
            for key, pct in summary[label]:
                print(f"    {pct:5.1f}%  {key}")


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    at8 = [r for r in results["creates"] if r["callers"] == 8]
    if at8:
        best = max(at8, key=lambda r: r["per_second"])
        out.append({"goal": f">= {GOAL_CREATES_PER_S} creates/s at 8 callers",
                    "met": best["per_second"] >= GOAL_CREATES_PER_S,
                    "measured": f"{best['per_second']:.0f}/s ({best['mode']})"})
        out.append({"goal": "p99 create latency <= 50 ms at 8 callers",
                    "met": best["p99_ms"] <= GOAL_P99_S * 1e3,
                    "measured": f"{best['p99_ms']:.1f} ms ({best['mode']})"})
    at100 = [r for r in results["watch"] if r["watchers"] == 100]
    for r in at100:
        out.append({"goal": "p99 watch delivery <= 50 ms with 100 watchers",
                    "met": r["ack_to_receive_p99_ms"] <= GOAL_P99_S * 1e3
                    and r["events_missing"] == 0,
                    "measured": f"{r['ack_to_receive_p99_ms']:.1f} ms at "
                                f"{r['writes_per_second']:.0f} writes/s, "
                                f"{r['events_missing']} missing"})
    return out


# -- main ----------------------------------------------------------------------------


async def run(args: argparse.Namespace, cluster: Cluster, workdir: Path) -> dict[str, Any]:
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "cores": os.cpu_count(),
        "python": sys.version.split()[0], "grpc": grpc.__version__, "kind": args.kind,
        "duration": args.duration, "watch_rate": args.watch_rate, "apiservers": args.apiservers,
        "watch_connections": args.watch_connections,
        "creates": [], "echo": [], "watch": [], "ratios": {},
    }
    async with Client(cluster.target) as client:
        await create_namespace(client, "bench")
    run_no = 0

    async def creates(callers: int, mode: str) -> dict[str, Any]:
        nonlocal run_no
        run_no += 1
        await quiet(args)
        return await bench_creates(cluster, args, "bench", callers, mode, run_no)

    for callers in args.callers:
        for mode in (args.modes if callers > 1 else args.modes[:1]):
            row = await least_disturbed(args.repeat, lambda _, c=callers, m=mode: creates(c, m))
            print(f"  creates: {callers:>3} callers, {mode:<11} {row['per_second']:8.1f}/s "
                  f"p50 {row['p50_ms']:.2f} ms p99 {row['p99_ms']:.2f} ms", flush=True)
            results["creates"].append(row)

    echo, echo_target = start_echo_server(workdir)
    try:
        pids = {"echo": echo.pid, "bench": os.getpid()}
        async def echo_row(mode: str) -> dict[str, Any]:
            await quiet(args)
            return await bench_echo(echo_target, args.echo_callers, mode, args, pids)

        for mode in args.modes:
            row = await least_disturbed(args.repeat, lambda _, m=mode: echo_row(m))
            print(f"  echo:    {args.echo_callers:>3} callers, {mode:<11} "
                  f"{row['per_second']:8.1f}/s", flush=True)
            results["echo"].append(row)
    finally:
        echo.stop()
    for e in results["echo"]:
        match = [c for c in results["creates"]
                 if c["callers"] == e["callers"] and c["mode"] == e["mode"]]
        if match and e["per_second"]:
            results["ratios"][e["mode"]] = match[0]["per_second"] / e["per_second"]

    async def watch_row(watchers: int, rate: float, repeat: int) -> dict[str, Any]:
        await quiet(args)
        return await bench_watch(cluster, args, watchers, rate, workdir, tag=f"-{repeat}")

    for watchers, rate in [(w, r) for w in args.watchers for r in args.watch_rate]:
        row = await least_disturbed(args.repeat,
                                    lambda i, w=watchers, r=rate: watch_row(w, r, i))
        print(f"  watch:   {watchers:>3} watchers, {rate:.0f} writes/s: ack→recv p50 "
              f"{row['ack_to_receive_p50_ms']:.2f} ms p99 {row['ack_to_receive_p99_ms']:.2f} ms, "
              f"{row['events_missing']} missing", flush=True)
        results["watch"].append(row)
    results["goals"] = goals(results)

    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        results["profiles"] = {}
        callers = 8 if 8 in args.callers else args.callers[-1]
        out = args.profile / f"apiserver-creates-{callers}.txt"
        with Profiler(cluster.apiserver.pid, out):
            row = await bench_creates(cluster, args, "bench", callers, args.modes[0], 999)
        results["profiles"][f"creates, {callers} callers ({row['per_second']:.0f}/s under "
                            "py-spy)"] = summarize_profile(out)
        watchers = max(args.watchers)
        out = args.profile / f"apiserver-watch-{watchers}.txt"
        with Profiler(cluster.apiserver.pid, out):
            await bench_watch(cluster, args, watchers, args.watch_rate[0], workdir,
                              tag="-profiled")
        results["profiles"][f"watch, {watchers} watchers at {args.watch_rate[0]:.0f}/s "
                            "writes"] = summarize_profile(out)
    return results


async def quiet(args: argparse.Namespace) -> None:
    """Before a row: wait (up to --wait-quiet seconds) for other work on the machine to stop."""
    if args.wait_quiet > 0:
        load = await asyncio.to_thread(wait_for_quiet, 1.0, args.wait_quiet)
        if load >= 0.25:
            print(f"  (the machine is busy with other work: {load:.2f} cores; measuring anyway)",
                  flush=True)


def csv_ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def csv_floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="a short smoke run: 1 s per row, 100 watch events")
    p.add_argument("--duration", type=float, default=5.0, help="measured seconds per row")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each row")
    p.add_argument("--max-calls", type=int, default=200_000, help="cap on calls per row")
    p.add_argument("--callers", type=csv_ints, default=[1, 8, 32],
                   help="concurrent create callers, comma-separated")
    p.add_argument("--modes", default=",".join(MODES),
                   help=f"channel modes to compare, comma-separated from {','.join(MODES)}")
    p.add_argument("--kind", choices=("configmaps", "pods"), default="configmaps",
                   help="what the create rows create")
    p.add_argument("--echo-callers", type=int, default=8, help="concurrent echo callers")
    p.add_argument("--watchers", type=csv_ints, default=[1, 100],
                   help="watcher counts, comma-separated")
    p.add_argument("--watch-events", type=int, default=1000, help="writes per watch row")
    p.add_argument("--watch-rate", type=csv_floats, default=[100.0],
                   help="writes per second during the watch rows, comma-separated")
    p.add_argument("--watch-connections", choices=MODES, default="connections",
                   help="how the watchers share gRPC channels (default: a connection each)")
    p.add_argument("--watch-timeout", type=float, default=120.0,
                   help="seconds the watchers wait for all events")
    p.add_argument("--apiservers", type=int, default=1,
                   help="apiserver replicas, each on its own port; callers with a channel "
                        "of their own (modes channels, connections) are spread over them")
    p.add_argument("--apiserver-arg", action="append", default=[],
                   help="an extra apiserver flag (repeatable), e.g. --apiserver-arg=--history=9")
    p.add_argument("--profile", type=Path, default=None,
                   help="also profile the apiserver with py-spy, collapsed stacks into DIR")
    p.add_argument("--repeat", type=int, default=1,
                   help="measure each row this many times and keep the least disturbed one "
                        "(the one during which other processes used the least CPU)")
    p.add_argument("--wait-quiet", type=float, default=0.0,
                   help="before each row, wait up to this many seconds for the machine to be "
                        "idle (other processes under 0.25 cores)")
    p.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.watch_events = 1.0, 0.3, 100
        args.watch_timeout = min(args.watch_timeout, 60.0)
    args.modes = [m for m in args.modes.split(",") if m]
    for mode in args.modes:
        if mode not in MODES:
            p.error(f"unknown channel mode {mode!r}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    workdir = make_workdir("kubelite-bench-")
    cluster = Cluster(workdir, args.apiserver_arg, args.apiservers)
    print(f"kubelite API benchmark: {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
          f"grpcio {grpc.__version__}, work dir {workdir}", flush=True)
    try:
        cluster.start()
        print(f"  cluster: apiserver {' '.join(cluster.targets)} "
              f"(pids {' '.join(str(p.pid) for p in cluster.apiservers)}), "
              f"redis {cluster.redis.url if cluster.redis else ''}", flush=True)
        results = asyncio.run(run(args, cluster, workdir))
    finally:
        cluster.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    print()
    if args.keep:
        print(f"logs kept in {workdir}")


if __name__ == "__main__":
    main()

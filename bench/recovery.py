"""Recovery times under faults, and the write throughput cost of WAIT.

Every case starts the processes it needs (real redis-server, Sentinels,
apiservers, schedulers) with short timings in a temporary directory, injects
one fault, measures, and stops everything. Each is run --runs times (5 by
default) and printed as min / median / max seconds and as a ratio to the
timeout that governs it, so that what recovery costs on top of that timeout
is visible:

- leader failover: SIGKILL the scheduler that holds the Lease; the time until
  the standby holds it, against the lease duration;
- apiserver failover: SIGKILL one of two apiservers under a write load through a
  client given both addresses; the longest time without an acknowledged write,
  against the client's request timeout (what a call could otherwise wait);
- Redis failover: SIGKILL the Redis primary (2 replicas, 3 Sentinels) under a
  write load; the longest time without an acknowledged write, against
  Sentinel's down-after-milliseconds;
- WAIT cost: creates/s by 8 concurrent callers, against one Redis without
  replicas and against a primary whose writes wait for one replica, in
  alternating rounds of the same run.

A case is one async function returning Figures; CASES lists them in order, so
adding one (node loss, pod replacement) is a function and a line.

    python -m bench.recovery              # 5 runs of each case, about 3 minutes
    python -m bench.recovery --runs 1     # a smoke run
    python -m bench.recovery --case redis-failover
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from kubelite.client import Client
from kubelite.errors import ApiError, NotFoundError
from kubelite.localcluster import (
    ManagedProcess,
    RedisHA,
    RedisServer,
    SentinelTimings,
    apiserver_process,
    free_port,
    python_module_argv,
    wait_healthy,
)

LEASE_DURATION = 2.0
CLIENT_TIMEOUT = 3.0
DOWN_AFTER_MS = 1000
WAIT_CALLERS = 8
WAIT_SECONDS = 3.0  # per target, in WAIT_ROUNDS alternating rounds
WAIT_ROUNDS = 6


@dataclass(frozen=True)
class Figures:
    """One case's measurements: seconds per run (or a rate), and what they compare to."""

    name: str
    values: list[float]
    unit: str = "s"
    timeout: float | None = None  # the configured timeout the values are a ratio to
    note: str = ""


# -- processes -------------------------------------------------------------------------


def start_apiservers(workdir: Path, count: int, redis_url: str,
                     extra: tuple[str, ...] = ()) -> list[tuple[str, ManagedProcess]]:
    started = []
    for i in range(count):
        target = f"127.0.0.1:{free_port()}"
        process = apiserver_process(workdir, listen=target, redis_url=redis_url,
                                    name=f"apiserver-{i}",
                                    extra=("--storage-timeout", "2", *extra)).start()
        started.append((target, process))
    for target, process in started:
        wait_healthy(target, 30, process.proc)
    return started


def stop_all(processes: list[ManagedProcess]) -> None:
    for process in reversed(processes):
        process.stop(3)


class Load:
    """Creates ConfigMaps in a loop; records when each write was acknowledged."""

    def __init__(self, client: Client, namespace: str = "default", callers: int = 1) -> None:
        self.client = client
        self.namespace = namespace
        self.callers = callers
        self.acks: list[float] = []
        self._tasks: list[asyncio.Task] = []
        self.prefix = f"load-{uuid.uuid4().hex[:6]}"

    async def _caller(self, index: int) -> None:
        n = 0
        while True:
            n += 1
            try:
                await self.client.create("configmaps", {
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": f"{self.prefix}-{index}-{n}",
                                 "namespace": self.namespace}})
            except ApiError:
                await asyncio.sleep(0.02)
                continue
            self.acks.append(time.monotonic())

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._caller(i)) for i in range(self.callers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def wait_acks_after(self, moment: float, count: int, within: float) -> None:
        deadline = time.monotonic() + within
        while sum(t > moment for t in self.acks) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no {count} writes acknowledged within {within}s")
            await asyncio.sleep(0.05)

    def gap_after(self, moment: float) -> float:
        """The longest time without an acknowledgement from `moment` on (a write in
        flight at the fault may still be acknowledged at once)."""
        times = [moment, *sorted(t for t in self.acks if t > moment)]
        return max(b - a for a, b in zip(times, times[1:], strict=False))


# -- the cases -------------------------------------------------------------------------


async def leader_failover(workdir: Path) -> float:
    redis = RedisServer(workdir / "redis").start()
    assert redis.process is not None
    processes = [redis.process]
    try:
        [(target, apiserver)] = start_apiservers(workdir, 1, redis.url)
        processes.append(apiserver)
        schedulers = {}
        for identity in ("sched-a", "sched-b"):
            health = f"127.0.0.1:{free_port()}"
            argv = python_module_argv(
                "services.scheduler", "--server", target, "--health-listen", health,
                "--metrics-port", "0", "--identity", identity,
                "--leader-elect-lease-duration", str(LEASE_DURATION),
                "--leader-elect-renew-deadline", str(LEASE_DURATION * 0.75),
                "--leader-elect-retry-period", "0.2")
            schedulers[identity] = ManagedProcess(identity, argv,
                                                  workdir / f"{identity}.log").start()
            processes.append(schedulers[identity])
            wait_healthy(health, 30, schedulers[identity].proc)
        async with Client(target, timeout=CLIENT_TIMEOUT) as client:
            leader = await _until(lambda: _holder(client), 20)
            # Killed right after a renewal, the lease has its whole duration to run.
            await _until(lambda: _renewed_just_now(client), 10)
            schedulers[leader].kill()
            killed = time.monotonic()
            await _until(lambda: _holder(client, other_than=leader), 20)
            return time.monotonic() - killed
    finally:
        stop_all(processes)


async def apiserver_failover(workdir: Path) -> float:
    redis = RedisServer(workdir / "redis").start()
    assert redis.process is not None
    processes = [redis.process]
    try:
        servers = start_apiservers(workdir, 2, redis.url)
        processes += [p for _, p in servers]
        async with Client([t for t, _ in servers], timeout=CLIENT_TIMEOUT) as client:
            load = Load(client)
            load.start()
            await load.wait_acks_after(time.monotonic(), 20, 20)
            servers[0][1].kill()
            killed = time.monotonic()
            await load.wait_acks_after(killed, 5, 20)
            await load.stop()
            return load.gap_after(killed)
    finally:
        stop_all(processes)


async def redis_failover(workdir: Path) -> float:
    ha = RedisHA(workdir / "redis", replicas=2,
                 timings=SentinelTimings(down_after_ms=DOWN_AFTER_MS, failover_timeout_ms=3000))
    try:
        ha.start()
        servers = start_apiservers(workdir, 2, "redis://127.0.0.1:1/0", extra=(
            "--redis-sentinels", ha.sentinel_addresses, "--redis-min-replicas", "1",
            "--redis-wait-timeout", "0.5"))
        try:
            async with Client([t for t, _ in servers], timeout=CLIENT_TIMEOUT) as client:
                load = Load(client)
                load.start()
                await load.wait_acks_after(time.monotonic(), 20, 20)
                primary = ha.primary()
                assert primary is not None
                primary.kill()
                killed = time.monotonic()
                await load.wait_acks_after(killed, 5, 60)
                await load.stop()
                return load.gap_after(killed)
        finally:
            stop_all([p for _, p in servers])
    finally:
        ha.stop()


async def _throughputs(targets: list[str]) -> list[float]:
    """Creates/s through each target, measured in alternating rounds so that a busy
    moment of the (shared) machine does not favour one of them."""
    clients = [Client(target, timeout=CLIENT_TIMEOUT) for target in targets]
    counts, elapsed = [0] * len(targets), [0.0] * len(targets)
    try:
        for round_ in range(WAIT_ROUNDS + 1):
            for i, client in enumerate(clients):
                load = Load(client, callers=WAIT_CALLERS)
                load.start()
                await asyncio.sleep(0.2)  # every caller has a call in flight
                start, before = time.monotonic(), len(load.acks)
                await asyncio.sleep(WAIT_SECONDS / WAIT_ROUNDS)
                if round_ > 0:  # the first round warms up: connections, script cache
                    counts[i] += len(load.acks) - before
                    elapsed[i] += time.monotonic() - start
                await load.stop()
    finally:
        for client in clients:
            await client.close()
    return [c / e for c, e in zip(counts, elapsed, strict=True)]


async def wait_cost(workdir: Path) -> tuple[float, float]:
    """(creates/s without replicas, creates/s acknowledged after WAIT for one replica)."""
    plain = RedisServer(workdir / "plain").start()
    ha = RedisHA(workdir / "ha", replicas=1)
    processes: list[ManagedProcess] = []
    try:
        assert plain.process is not None
        processes.append(plain.process)
        ha.start()
        [(alone, p1)] = start_apiservers(workdir / "alone", 1, plain.url)
        [(waiting, p2)] = start_apiservers(workdir / "waiting", 1, "redis://127.0.0.1:1/0", extra=(
            "--redis-sentinels", ha.sentinel_addresses, "--redis-min-replicas", "1"))
        processes += [p1, p2]
        without, with_wait = await _throughputs([alone, waiting])
        return without, with_wait
    finally:
        stop_all(processes)
        ha.stop()


async def _holder(client: Client, other_than: str = "") -> str:
    try:
        lease = await client.get("leases", "kube-scheduler", namespace="kube-system")
    except (NotFoundError, ApiError):
        return ""
    holder = lease["spec"].get("holderIdentity") or ""
    return holder if holder and holder != other_than else ""


async def _renewed_just_now(client: Client) -> bool:
    from datetime import UTC, datetime

    from kubelite.leaderelection import parse_micro_time

    lease = await client.get("leases", "kube-scheduler", namespace="kube-system")
    renewed = parse_micro_time(lease["spec"].get("renewTime"))
    return renewed is not None and (datetime.now(UTC) - renewed).total_seconds() < 0.1


async def _until(check: Callable[[], Awaitable[object]], within: float) -> object:
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        await asyncio.sleep(0.02)


# -- running and printing --------------------------------------------------------------


async def run_repeated(fn: Callable[[Path], Awaitable[float]], runs: int) -> list[float]:
    values = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="kubelite-bench-") as tmp:
            values.append(await fn(Path(tmp)))
    return values


async def case_leader(runs: int) -> list[Figures]:
    return [Figures("leader failover", await run_repeated(leader_failover, runs),
                    timeout=LEASE_DURATION, note="lease duration")]


async def case_apiserver(runs: int) -> list[Figures]:
    return [Figures("apiserver failover", await run_repeated(apiserver_failover, runs),
                    timeout=CLIENT_TIMEOUT, note="client request timeout")]


async def case_redis(runs: int) -> list[Figures]:
    return [Figures("redis failover", await run_repeated(redis_failover, runs),
                    timeout=DOWN_AFTER_MS / 1000, note="sentinel down-after")]


async def case_wait(runs: int) -> list[Figures]:
    without, with_wait = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="kubelite-bench-") as tmp:
            a, b = await wait_cost(Path(tmp))
        without.append(a)
        with_wait.append(b)
    cost = [1 - b / a for a, b in zip(without, with_wait, strict=True)]
    return [Figures("creates/s, no replica", without, unit="/s"),
            Figures("creates/s, WAIT 1 replica", with_wait, unit="/s"),
            Figures("throughput lost to WAIT", [c * 100 for c in cost], unit="%")]


CASES: dict[str, Callable[[int], Awaitable[list[Figures]]]] = {
    "leader-failover": case_leader,
    "apiserver-failover": case_apiserver,
    "redis-failover": case_redis,
    "wait-cost": case_wait,
}


def print_figures(figures: Figures, runs: int) -> None:
    values = sorted(figures.values)
    median = statistics.median(values)
    line = (f"{figures.name:<28} {runs} runs  min {values[0]:9.3f}{figures.unit}  "
            f"median {median:9.3f}{figures.unit}  max {values[-1]:9.3f}{figures.unit}")
    if figures.timeout:
        line += (f"  ratio to {figures.note} ({figures.timeout:g}s): median "
                 f"{median / figures.timeout:.2f}, max {values[-1] / figures.timeout:.2f}")
    print(line, flush=True)


async def main_async(names: list[str], runs: int) -> None:
    for name in names:
        for figures in await CASES[name](runs):
            print_figures(figures, runs)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.recovery", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--case", action="append", choices=sorted(CASES),
                   help="run only this case (repeatable)")
    args = p.parse_args(argv)
    asyncio.run(main_async(args.case or list(CASES), args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())

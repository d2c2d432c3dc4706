"""What scraping the apiserver's /metrics costs its create throughput.

It starts a redis-server and an apiserver with a metrics port (as `kubelite up`
does), then measures closed-loop creates (ConfigMaps, N callers on one channel)
in alternating rounds: scraping off, scraping on, off, on, ... Alternating, in
one run, cancels the drift of a shared machine. While scraping is on, a
separate process (as Prometheus would be) GETs /metrics every --interval
seconds. Each row is the median of its rounds; the apiserver's CPU per create
(µs/op, from /proc) is the figure that survives a busy machine best, and
`others` is the CPU the rest of the machine used meanwhile (well above zero: a
shared, disturbed machine). The goal: scraped is less than 5% slower.

    python -m bench.metrics_overhead               # about a minute
    python -m bench.metrics_overhead --quick       # a smoke run, about 15 seconds
    python -m bench.metrics_overhead --interval 0.1   # a scrape storm, for contrast
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubelite.client import Client
from kubelite.errors import ApiError
from kubelite.localcluster import (
    ManagedProcess,
    RedisServer,
    apiserver_process,
    free_port,
    make_workdir,
    wait_healthy,
)

CLK_TCK = os.sysconf("SC_CLK_TCK")
GOAL_OVERHEAD = 0.05

# The scraper: a process of its own, GETting /metrics every interval until killed, and
# printing how many scrapes it made and their mean duration when it gets SIGTERM.
SCRAPER = """
import signal, sys, time, urllib.request
url, interval = sys.argv[1], float(sys.argv[2])
count, spent, size = 0, 0.0, 0
def report(*_):
    print(count, spent / max(count, 1), size, flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, report)
next_at = time.monotonic()
while True:
    t0 = time.monotonic()
    with urllib.request.urlopen(url, timeout=5) as resp:
        size = len(resp.read())
    spent += time.monotonic() - t0
    count += 1
    next_at += interval
    time.sleep(max(0.0, next_at - time.monotonic()))
"""


def cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy_seconds() -> float:
    """CPU time all cores have spent busy since boot (user, system, irq, steal)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return (sum(values[:3]) + sum(values[5:8])) / CLK_TCK


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))]


@dataclass
class Round:
    scraped: bool
    creates: int
    seconds: float
    latencies: list[float]
    errors: int
    apiserver_cpu: float
    other_cores: float  # what the rest of the machine used meanwhile (disturbance)
    scrapes: int = 0
    scrape_ms: float = 0.0
    page_bytes: int = 0

    @property
    def rate(self) -> float:
        return self.creates / self.seconds if self.seconds else 0.0

    @property
    def us_per_op(self) -> float:
        return self.apiserver_cpu / self.creates * 1e6 if self.creates else float("nan")


async def closed_loop(client: Client, namespace: str, callers: int, duration: float,
                      tag: str) -> tuple[int, float, list[float], int]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + duration

    async def caller(i: int) -> None:
        nonlocal errors
        n = 0
        while time.perf_counter() < deadline:
            n += 1
            obj = {"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": f"{tag}-{i}-{n}", "labels": {"app": "bench"}},
                   "data": {"payload": "x" * 64}}
            t0 = time.perf_counter()
            try:
                await client.create("configmaps", obj, namespace=namespace)
            except ApiError:
                errors += 1
                continue
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(caller(i) for i in range(callers)))
    return len(latencies), time.perf_counter() - started, latencies, errors


def start_scraper(url: str, interval: float) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", SCRAPER, url, str(interval)],
                            stdout=subprocess.PIPE, text=True)


def stop_scraper(proc: subprocess.Popen[str]) -> tuple[int, float, int]:
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    try:
        count, mean, size = out.split()
        return int(count), float(mean) * 1000, int(size)
    except ValueError:
        return 0, float("nan"), 0


async def measure(args: argparse.Namespace, target: str, metrics_url: str,
                  pids: dict[str, int]) -> list[Round]:
    """Alternating rounds; pids: the apiserver, redis (the bench itself is added)."""
    ours = [*pids.values(), os.getpid()]
    rounds: list[Round] = []
    async with Client(target) as client:
        namespace = f"bench-{os.getpid()}"
        await client.create("namespaces", {"metadata": {"name": namespace}})
        await closed_loop(client, namespace, args.callers, args.warmup, "warm")
        for i in range(args.rounds * 2):
            scraped = i % 2 == 1
            scraper = start_scraper(metrics_url, args.interval) if scraped else None
            if scraper is not None:
                await asyncio.sleep(0.2)  # let it make its first scrape
            cpu0 = cpu_seconds(pids["apiserver"])
            ours0, busy0 = sum(cpu_seconds(p) for p in ours), machine_busy_seconds()
            creates, seconds, latencies, errors = await closed_loop(
                client, namespace, args.callers, args.duration, f"r{i}")
            ours1, busy1 = sum(cpu_seconds(p) for p in ours), machine_busy_seconds()
            other = max(0.0, (busy1 - busy0) - (ours1 - ours0)) / seconds
            row = Round(scraped, creates, seconds, latencies, errors,
                        cpu_seconds(pids["apiserver"]) - cpu0, other)
            if scraper is not None:
                row.scrapes, row.scrape_ms, row.page_bytes = stop_scraper(scraper)
            rounds.append(row)
            print(f"  round {i + 1}/{args.rounds * 2}: scraping {'on ' if scraped else 'off'} "
                  f"{row.rate:7.0f} creates/s, {row.us_per_op:6.0f} µs apiserver CPU/op, "
                  f"others {row.other_cores:.2f} cores"
                  + (f", {row.scrapes} scrapes of {row.page_bytes} B, {row.scrape_ms:.1f} ms "
                     "each" if scraped else ""), flush=True)
    return rounds


def summarize(rounds: list[Round], scraped: bool) -> dict[str, Any]:
    mine = [r for r in rounds if r.scraped == scraped]
    latencies = [lat for r in mine for lat in r.latencies]
    out = {
        "rounds": len(mine),
        "creates_per_s": round(statistics.median(r.rate for r in mine), 1),
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 2),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "apiserver_us_per_op": round(statistics.median(r.us_per_op for r in mine), 1),
        "errors": sum(r.errors for r in mine),
        "other_cores": round(statistics.median(r.other_cores for r in mine), 2),
    }
    if scraped:
        out["scrapes"] = sum(r.scrapes for r in mine)
        out["scrape_ms"] = round(statistics.median(r.scrape_ms for r in mine), 2)
        out["page_bytes"] = max(r.page_bytes for r in mine)
    return out


def report(off: dict[str, Any], on: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    slower = (off["creates_per_s"] - on["creates_per_s"]) / off["creates_per_s"]
    cpu = (on["apiserver_us_per_op"] - off["apiserver_us_per_op"]) / off["apiserver_us_per_op"]
    header = ["scraping", "rounds", "creates/s", "p50 ms", "p99 ms", "apiserver µs/op",
              "others (cores)"]
    rows = [["off", off["rounds"], off["creates_per_s"], off["p50_ms"], off["p99_ms"],
             off["apiserver_us_per_op"], off["other_cores"]],
            [f"every {args.interval:g}s", on["rounds"], on["creates_per_s"], on["p50_ms"],
             on["p99_ms"], on["apiserver_us_per_op"], on["other_cores"]]]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print()
    for row in [header, *rows]:
        print("  ".join(str(c).rjust(w) for c, w in zip(row, widths, strict=True)))
    print(f"\n/metrics page: {on['page_bytes']} bytes, {on['scrape_ms']} ms per scrape "
          f"({on['scrapes']} scrapes)")
    verdict = "met" if slower < GOAL_OVERHEAD else "MISSED"
    print(f"throughput {slower * 100:+.1f}% slower with scraping; apiserver CPU per create "
          f"{cpu * 100:+.1f}% (goal: < {GOAL_OVERHEAD * 100:g}% slower: {verdict})")
    return {"off": off, "on": on, "slower": round(slower, 4), "cpu_per_op": round(cpu, 4),
            "goal_met": slower < GOAL_OVERHEAD}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=4, help="rounds of each mode (alternating)")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per round")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds before the first round")
    p.add_argument("--callers", type=int, default=8, help="concurrent create callers")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between scrapes")
    p.add_argument("--quick", action="store_true", help="2 rounds of 2 s each")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.duration, args.warmup = 2, 2.0, 1.0
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    workdir = make_workdir("kubelite-bench-metrics-")
    redis = RedisServer(workdir / "redis").start()
    metrics_port = free_port()
    target = f"127.0.0.1:{free_port()}"
    apiserver: ManagedProcess = apiserver_process(
        workdir, listen=target, redis_url=redis.url, metrics_port=metrics_port).start()
    try:
        wait_healthy(target, 60, apiserver.proc)
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5):
            pass
        print(f"apiserver {target} (metrics {url}), {args.callers} callers, "
              f"{args.rounds} rounds of {args.duration:g}s per mode, on {os.cpu_count()} CPUs")
        assert redis.process is not None
        rounds = asyncio.run(measure(args, target, url, {"apiserver": apiserver.pid,
                                                         "redis": redis.process.pid}))
        figures = report(summarize(rounds, False), summarize(rounds, True), args)
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2))
    finally:
        apiserver.stop()
        redis.stop()


if __name__ == "__main__":
    main()

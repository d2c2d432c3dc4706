"""REST against gRPC, in one run against one fresh apiserver of its own.

It starts a redis-server and an apiserver serving both faces, then measures,
for each face: creates/s and p50/p99 latency with 8 concurrent callers (the
gRPC callers share one channel, the REST callers one aiohttp connection pool),
the apiserver's CPU time per create (the goal: REST at most 1.5x gRPC), the
time to list 3,000 pods, and the delivery latency of events to 100 watchers
(receive time minus the writer's acknowledgement, one clock, one process).

    python -m bench.rest            # about a minute
    python -m bench.rest --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

from bench.api import cpu_seconds, percentile
from kubelite.client import Client
from kubelite.localcluster import (
    RedisServer,
    apiserver_process,
    free_port,
    make_workdir,
    wait_healthy,
    wait_port,
)


def pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"b": "1"}},
            "spec": {"containers": [{"name": "main", "image": "busybox:1.36",
                                     "command": ["sleep", "3600"]}]}}


async def creates(make, count: int, callers: int, pid: int) -> dict[str, float]:
    """Runs `count` creates from `callers` tasks; latencies in ms and CPU µs per create."""
    latencies: list[float] = []
    per = count // callers

    async def caller(index: int) -> None:
        for i in range(per):
            started = time.perf_counter()
            await make(f"c{index}-{i}-{uuid.uuid4().hex[:4]}")
            latencies.append((time.perf_counter() - started) * 1000)

    cpu0, wall0 = cpu_seconds(pid), time.perf_counter()
    await asyncio.gather(*(caller(i) for i in range(callers)))
    wall = time.perf_counter() - wall0
    cpu = cpu_seconds(pid) - cpu0
    done = per * callers
    return {"rate": done / wall, "p50": percentile(latencies, 0.5),
            "p99": percentile(latencies, 0.99), "cpu_us": cpu / done * 1e6}


async def watch_delivery(open_watch, write, watchers: int, events: int) -> dict[str, float]:
    """p50/p99 ms from a write's acknowledgement to each watcher's receipt of it."""
    acked: dict[str, float] = {}
    received: list[tuple[str, float]] = []
    ready, complete = asyncio.Event(), asyncio.Event()
    opened = 0

    async def watcher() -> None:
        nonlocal opened
        async with open_watch() as stream:
            opened += 1
            if opened == watchers:
                ready.set()
            async for name in stream:
                received.append((name, time.monotonic()))
                if len(received) >= watchers * events:
                    complete.set()

    tasks = [asyncio.create_task(watcher()) for _ in range(watchers)]
    await asyncio.wait_for(ready.wait(), 60)
    await asyncio.sleep(0.5)
    for i in range(events):
        name = f"w{i}-{uuid.uuid4().hex[:6]}"
        await write(name)
        acked[name] = time.monotonic()
        await asyncio.sleep(0.02)
    try:
        await asyncio.wait_for(complete.wait(), 30)
    except TimeoutError:
        pass  # reported as a delivered fraction below 100%
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    delays = [(when - acked[name]) * 1000 for name, when in received if name in acked]
    return {"p50": percentile(delays, 0.5), "p99": percentile(delays, 0.99),
            "delivered": len(delays) / max(watchers * events, 1)}


class GrpcWatch:
    def __init__(self, client: Client, ns: str) -> None:
        self.client, self.ns = client, ns

    async def __aenter__(self):
        self.gen = self.client.watch("configmaps", namespace=self.ns, resource_version="0",
                                     allow_bookmarks=False)
        return self._names()

    async def _names(self):
        async for event in self.gen:
            yield event.object["metadata"]["name"]

    async def __aexit__(self, *exc: object) -> None:
        await self.gen.aclose()


class RestWatch:
    def __init__(self, session: aiohttp.ClientSession, base: str, ns: str, rv: str) -> None:
        # From a revision, not "0": Kubernetes' "0" would replay the current state.
        self.session, self.url = session, (f"{base}/api/v1/namespaces/{ns}/configmaps?"
                                           f"watch=1&resourceVersion={rv}")

    async def __aenter__(self):
        self.resp = await self.session.get(self.url)
        return self._names()

    async def _names(self):
        async for line in self.resp.content:
            event = json.loads(line)
            yield event["object"]["metadata"]["name"]

    async def __aexit__(self, *exc: object) -> None:
        self.resp.close()


async def run(args: argparse.Namespace) -> None:
    workdir = make_workdir("kubelite-bench-rest-")
    redis = RedisServer(Path(workdir) / "redis").start()
    target, rest_port = f"127.0.0.1:{free_port()}", free_port()
    api = apiserver_process(Path(workdir), listen=target, redis_url=redis.url,
                            extra=("--rest-listen", f"127.0.0.1:{rest_port}")).start()
    try:
        wait_healthy(target, 60, api.proc)
        wait_port("127.0.0.1", rest_port, 30)
        base = f"http://127.0.0.1:{rest_port}"
        connector = aiohttp.TCPConnector(limit=0)
        async with Client(target) as client, aiohttp.ClientSession(connector=connector) as http:
            await client.create("namespaces", {"metadata": {"name": "bench"}})

            async def grpc_create(name: str) -> None:
                await client.create("pods", pod(name), namespace="bench")

            async def rest_create(name: str) -> None:
                async with http.post(f"{base}/api/v1/namespaces/bench/pods",
                                     data=json.dumps(pod(name)),
                                     headers={"Content-Type": "application/json"}) as resp:
                    await resp.read()
                    assert resp.status == 201, resp.status

            n = 400 if args.quick else 2000
            await creates(grpc_create, 80, 8, api.pid)  # warm both paths
            await creates(rest_create, 80, 8, api.pid)
            rows = {}
            for _ in range(args.repeat):
                for face, make in (("gRPC", grpc_create), ("REST", rest_create)):
                    result = await creates(make, n, 8, api.pid)
                    if face not in rows or result["cpu_us"] < rows[face]["cpu_us"]:
                        rows[face] = result
            print(f"creates, 8 callers, {n} each face (best of {args.repeat} by CPU):")
            print(f"  {'face':<6}{'creates/s':>11}{'p50 ms':>9}{'p99 ms':>9}"
                  f"{'apiserver CPU us/create':>26}")
            for face, r in rows.items():
                print(f"  {face:<6}{r['rate']:>11.0f}{r['p50']:>9.1f}{r['p99']:>9.1f}"
                      f"{r['cpu_us']:>26.0f}")
            print(f"  REST/gRPC apiserver CPU per create: "
                  f"{rows['REST']['cpu_us'] / rows['gRPC']['cpu_us']:.2f}x (goal <= 1.5x)")

            await client.create("namespaces", {"metadata": {"name": "list"}})
            want = 300 if args.quick else 3000

            async def list_create(name: str) -> None:
                await client.create("pods", pod(name), namespace="list")

            await creates(list_create, want, 8, api.pid)
            have = len((await client.list("pods", namespace="list")).items)
            timings: dict[str, list[float]] = {"gRPC": [], "REST": []}
            for _ in range(5):
                started = time.perf_counter()
                items = (await client.list("pods", namespace="list")).items
                timings["gRPC"].append(time.perf_counter() - started)
                started = time.perf_counter()
                async with http.get(f"{base}/api/v1/namespaces/list/pods") as resp:
                    body = json.loads(await resp.read())
                timings["REST"].append(time.perf_counter() - started)
                assert len(body["items"]) == len(items)
            print(f"list of {have} pods (median of 5, including the client's decoding):")
            for face, values in timings.items():
                print(f"  {face:<6}{statistics.median(values) * 1000:>8.0f} ms")

            await client.create("namespaces", {"metadata": {"name": "watch"}})
            events = 20 if args.quick else 50

            async def write(name: str) -> None:
                await client.create("configmaps", {"metadata": {"name": name}},
                                    namespace="watch")

            print(f"watch delivery, 100 watchers, {events} events (ms):")
            for face in ("gRPC", "REST"):
                rv = (await client.list("configmaps", namespace="watch")).resource_version
                opener = ((lambda: GrpcWatch(client, "watch")) if face == "gRPC"
                          else (lambda rv=rv: RestWatch(http, base, "watch", rv)))
                r = await watch_delivery(opener, write, 100, events)
                print(f"  {face:<6}p50 {r['p50']:>6.1f}  p99 {r['p99']:>6.1f}  "
                      f"delivered {r['delivered']:.0%}")
    finally:
        api.stop()
        redis.stop()


def main() -> None:
    p = argparse.ArgumentParser(prog="bench.rest", description=__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--repeat", type=int, default=2)
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()

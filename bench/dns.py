"""The cluster DNS against a bare UDP echo, in one run on one machine.

It starts a redis-server, an apiserver with 200 Services (100 with a ClusterIP,
100 headless with 3 ready endpoints each), a services/dns process forwarding to
a fake upstream, and two bare UDP servers as processes of their own: the echo
(sends every datagram back, no parsing: the floor) and the upstream (answers
every query with one A record, for forwarded names). Then, at 1, 8 and 64
concurrent resolvers (each one socket, one query in flight), for a fixed time
each, it measures queries/s and p50/p99 latency of:

- cluster names: A of `<svc>.<ns>.svc.cluster.local`, ClusterIP and headless mixed;
- forwarded names: A of names outside the cluster (DNS → upstream → DNS);
- the echo, with the same datagrams.

The figure is the ratio to the echo at the same concurrency. Nothing leaves
loopback.

    python -m bench.dns             # about half a minute
    python -m bench.dns --quick     # a smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import struct
import sys
import time

import dns.message

from bench.api import percentile
from kubelite.client import Client
from kubelite.localcluster import (
    ManagedProcess,
    RedisServer,
    apiserver_process,
    free_port,
    make_workdir,
    python_module_argv,
    wait_healthy,
)

NAMESPACE = "bench-dns"
SERVICES = 100

# The two bare servers: a loop of recvfrom/sendto in a process of its own.
ECHO = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
while True:
    data, addr = s.recvfrom(4096)
    s.sendto(data, addr)
"""

UPSTREAM = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
answer = bytes.fromhex("c00c000100010000003c0004c0000207")  # name ptr, A IN, ttl 60, 192.0.2.7
while True:
    data, addr = s.recvfrom(4096)
    # The query with QR|RA set, ANCOUNT 1 and the answer appended.
    flags = bytes([data[2] | 0x80, (data[3] | 0x80) & 0xF0])
    s.sendto(data[:2] + flags + data[4:6] + b"\\x00\\x01" + data[8:] + answer, addr)
"""


async def resolver(target: tuple[str, int], queries: list[bytes], until: float,
                   latencies: list[float], lost: list[int]) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.connect(target)
    try:
        while time.perf_counter() < until:
            query = random.choice(queries)
            qid = random.randrange(65536)
            wire = struct.pack("!H", qid) + query[2:]
            started = time.perf_counter()
            await loop.sock_sendall(sock, wire)
            try:
                while True:
                    reply = await asyncio.wait_for(loop.sock_recv(sock, 4096), 2.0)
                    if reply[:2] == wire[:2]:
                        break
            except TimeoutError:
                lost[0] += 1
                continue
            latencies.append((time.perf_counter() - started) * 1000)
    finally:
        sock.close()


async def measure(target: tuple[str, int], queries: list[bytes], concurrency: int,
                  seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    lost = [0]
    started = time.perf_counter()
    until = started + seconds
    await asyncio.gather(*(resolver(target, queries, until, latencies, lost)
                           for _ in range(concurrency)))
    wall = time.perf_counter() - started
    return {"qps": len(latencies) / wall, "p50": percentile(latencies, 0.5),
            "p99": percentile(latencies, 0.99), "lost": lost[0]}


def wires(names: list[str]) -> list[bytes]:
    return [dns.message.make_query(name, "A").to_wire() for name in names]


async def populate(client: Client) -> list[str]:
    await client.create("namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                       "metadata": {"name": NAMESPACE}})
    names = []
    for i in range(SERVICES):
        for kind in ("c", "h"):
            name = f"{kind}{i}"
            spec = {"selector": {"app": name}, "ports": [{"name": "http", "port": 80}]}
            if kind == "h":
                spec["clusterIP"] = "None"
            await client.create("services", {"apiVersion": "v1", "kind": "Service",
                                             "metadata": {"name": name}, "spec": spec},
                                namespace=NAMESPACE)
            if kind == "h":
                addresses = [{"ip": f"10.{i}.0.{j + 1}"} for j in range(3)]
                await client.create("endpoints", {
                    "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name},
                    "subsets": [{"addresses": addresses, "ports": [{"port": 8080}]}]},
                    namespace=NAMESPACE)
            names.append(f"{name}.{NAMESPACE}.svc.cluster.local.")
    return names


async def run(seconds: float, levels: list[int]) -> None:
    workdir = make_workdir("kubelite-bench-dns-")
    redis = RedisServer(workdir / "redis")
    redis.start()
    children: list[ManagedProcess] = []
    try:
        target = f"127.0.0.1:{free_port()}"
        api = apiserver_process(workdir, listen=target, redis_url=redis.url).start()
        children.append(api)
        wait_healthy(target, 30, api.proc)
        echo_port, upstream_port, dns_port = free_port(), free_port(), free_port()
        for name, script, port in (("echo", ECHO, echo_port),
                                   ("upstream", UPSTREAM, upstream_port)):
            children.append(ManagedProcess(name, [sys.executable, "-c", script, str(port)],
                                           workdir / f"{name}.log").start())
        health = f"127.0.0.1:{free_port()}"
        async with Client(target) as client:
            cluster_names = await populate(client)
        dns_proc = ManagedProcess("dns", python_module_argv(
            "services.dns", "--server", target, "--listen", f"127.0.0.1:{dns_port}",
            "--upstream", f"127.0.0.1:{upstream_port}", "--health-listen", health,
            "--metrics-port", "0", "--log-level", "warning"), workdir / "dns.log").start()
        children.append(dns_proc)
        wait_healthy(health, 30, dns_proc.proc)
        cluster = wires(cluster_names)
        forwarded = wires([f"host{i}.example.test." for i in range(50)])
        # Warm up every path once (the DNS's first answers fill its caches).
        for queries, port in ((cluster, dns_port), (forwarded, dns_port), (cluster, echo_port)):
            await measure(("127.0.0.1", port), queries, 4, 0.3)
        print(f"DNS benchmark: {seconds:g}s per cell, {len(cluster_names)} Services, "
              f"loopback, {len(levels)} concurrency levels")
        print(f"{'target':<12}{'resolvers':>10}{'queries/s':>12}{'p50 ms':>9}{'p99 ms':>9}"
              f"{'lost':>6}{'vs echo':>9}")
        for level in levels:
            echo = await measure(("127.0.0.1", echo_port), cluster, level, seconds)
            rows = [("echo", echo),
                    ("cluster", await measure(("127.0.0.1", dns_port), cluster, level, seconds)),
                    ("forwarded",
                     await measure(("127.0.0.1", dns_port), forwarded, level, seconds))]
            for name, r in rows:
                ratio = r["qps"] / echo["qps"] if echo["qps"] else float("nan")
                print(f"{name:<12}{level:>10}{r['qps']:>12.0f}{r['p50']:>9.3f}{r['p99']:>9.3f}"
                      f"{r['lost']:>6.0f}{ratio:>9.2f}")
    finally:
        for child in reversed(children):
            child.stop()
        redis.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dns", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="0.5 s per cell")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per cell")
    args = parser.parse_args()
    asyncio.run(run(0.5 if args.quick else args.seconds, [1, 8, 64]))


if __name__ == "__main__":
    main()

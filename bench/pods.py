"""Pod startup latency: creation to Running, through a watch.

It runs `kubelite up --nodes 2` in a temporary directory, creates N pods
(default 100, `sleep` processes) at a steady pace, and measures for each pod the
time from its create's acknowledgement to the watch event that shows it
Running (phase Running with its container started). It prints p50/p90/p99 and
the spread over nodes. Kubernetes' SLO is p99 <= 5 s; kubelite's goal is p99 <= 1 s.

    python -m bench.pods               # 100 pods on 2 nodes, process runtime
    python -m bench.pods --pods 20     # a quick run
    python -m bench.pods --runtime docker --pods 30
                                       # docker runtime (kubelets on the host, pods as
                                       # containers of kubelite/demo), beside the floor
                                       # of a bare `docker run --rm IMAGE true`
The goal for the docker runtime is p99 <= 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from kubelite.client import Client
from kubelite.localcluster import free_port, wait_healthy


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def measure(target: str, pods: int, interval: float,
                  image: str) -> tuple[list[float], Counter]:
    async with Client(target) as api:
        for _ in range(300):
            nodes = (await api.list("nodes")).items
            if len(nodes) >= 2:
                break
            await asyncio.sleep(0.2)
        await api.create("namespaces", {"metadata": {"name": "bench"}})
        start_rv = (await api.list("pods", namespace="bench")).resource_version
        acked: dict[str, float] = {}
        running: dict[str, float] = {}
        bound: dict[str, float] = {}
        placed: Counter = Counter()
        done = asyncio.Event()

        async def watch() -> None:
            async for event in api.watch("pods", namespace="bench", resource_version=start_rv):
                pod = event.object
                name = pod.get("metadata", {}).get("name")
                if event.type == "BOOKMARK" or name in running:
                    continue
                if pod["spec"].get("nodeName") and name not in bound:
                    bound[name] = time.monotonic()
                if (pod.get("status") or {}).get("phase") == "Running":
                    running[name] = time.monotonic()
                    placed[pod["spec"].get("nodeName")] += 1
                    if len(running) == pods:
                        done.set()
                        return

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.2)
        for i in range(pods):
            name = f"p{i:04d}"
            await api.create("pods", {"metadata": {"name": name}, "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "c", "image": image, "imagePullPolicy": "IfNotPresent",
                                "command": ["sleep", "600"]}]}}, namespace="bench")
            acked[name] = time.monotonic()
            await asyncio.sleep(interval)
        try:
            await asyncio.wait_for(done.wait(), 120)
        finally:
            watcher.cancel()
        scheduling = [bound[n] - acked[n] for n in acked if n in bound]
        print(f"  scheduling (create -> bound) p50 {percentile(scheduling, 0.5) * 1000:.1f} ms,"
              f" p99 {percentile(scheduling, 0.99) * 1000:.1f} ms")
        return [running[n] - acked[n] for n in acked if n in running], placed


def docker_run_floor(image: str, runs: int = 5) -> list[float]:
    """Seconds for a bare `docker run --rm IMAGE true`, the floor under a docker pod start."""
    times = []
    for _ in range(runs):
        started = time.monotonic()
        subprocess.run(["docker", "run", "--rm", image, "true"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        times.append(time.monotonic() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.05,
                        help="seconds between creates (default 0.05: 20 pods/s)")
    parser.add_argument("--runtime", choices=["process", "docker"], default="process")
    parser.add_argument("--image", default="kubelite/demo:latest",
                        help="the pods' image (docker runtime)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="kubelite-bench-pods-"))
    target = f"127.0.0.1:{free_port()}"
    kubelite = shutil.which("kubelite") or str(Path(sys.executable).parent / "kubelite")
    env = {**os.environ}
    network = ""
    if args.runtime == "docker":
        network = f"kl-bench-{os.getpid()}"
        subprocess.run(["docker", "network", "create", network], check=True,
                       stdout=subprocess.DEVNULL)
        env.update(KUBELITE_RUNTIME="docker", KUBELITE_DOCKER_NETWORK=network)
    up = subprocess.Popen([kubelite, "up", "--listen", target, "--data-dir", str(workdir),
                           "--nodes", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                          env=env)
    floor: list[float] = []
    try:
        wait_healthy(target, 60, up)
        latencies, placed = asyncio.run(measure(target, args.pods, args.interval, args.image))
        if args.runtime == "docker":
            floor = docker_run_floor(args.image)
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(120)
        if network:
            # The bench's pods, holders included, exited or not: namespace "bench".
            subprocess.run(["sh", "-c", "docker ps -aq --filter label=io.kubelite.managed-by "
                            "--filter label=io.kubernetes.pod.namespace=bench "
                            "| xargs -r docker rm -f"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            subprocess.run(["docker", "network", "rm", network], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        shutil.rmtree(workdir, ignore_errors=True)
    goal = 1000 if args.runtime == "process" else 2000
    print(f"pod startup latency, {args.runtime} runtime, {len(latencies)} pods on 2 nodes "
          f"(created every {args.interval * 1000:.0f} ms)")
    print(f"  p50 {percentile(latencies, 0.5) * 1000:7.1f} ms")
    print(f"  p90 {percentile(latencies, 0.9) * 1000:7.1f} ms")
    print(f"  p99 {percentile(latencies, 0.99) * 1000:7.1f} ms   (goal <= {goal} ms; "
          "Kubernetes SLO <= 5000 ms)")
    print(f"  max {max(latencies) * 1000:7.1f} ms")
    print(f"  spread: {dict(sorted(placed.items()))}")
    if floor:
        print(f"  floor: docker run --rm {args.image} true: p50 "
              f"{percentile(floor, 0.5) * 1000:.0f} ms, max {max(floor) * 1000:.0f} ms")


if __name__ == "__main__":
    main()

"""Node-loss recovery: how long until a lost node is noticed and its pods run elsewhere.

It runs `kubelite up --nodes 2` with short timings passed on under Kubernetes'
flag names (grace 3 s, tolerations 2 s, leases and status every second, one
eviction a second per zone), runs a
Deployment of 4 `sleep` pods, and then, RUNS times, partitions the node that
holds the pods (SIGSTOP of its kubelet), measures, and lets it come back
(SIGCONT) before the next run:

- **node-loss detection**: from the partition to the node's Ready condition
  Unknown; its timeout is --node-monitor-grace-period (the grace runs from the
  last renewal the controller saw, up to one renew interval before the fault,
  so a ratio a little under 1 is possible);
- **pod replacement**: from the partition to every replica Ready on the other
  node; its timeout is grace + --default-unreachable-toleration-seconds.

Each figure is printed as seconds and as a ratio to its timeout, so that the
overhead on top of the timeout is what stands out.

    python -m bench.recovery_nodes            # 5 runs
    python -m bench.recovery_nodes --runs 3 --grace 4 --toleration 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kubelite.client import Client
from kubelite.localcluster import free_port, wait_healthy

FAST_ENV = {"KUBELITE_BACKOFF_BASE": "0.5", "KUBELITE_PLEG_RELIST_PERIOD": "0.2",
            "KUBELITE_POD_INITIAL_BACKOFF": "0.2", "KUBELITE_POD_MAX_BACKOFF": "1",
            "KUBELITE_ORPHAN_GRACE": "0.5"}
REPLICAS = 4


def kubelet_pid(data_dir: Path, node: str) -> int:
    """The kubelet of `node` among this cluster's processes (its command line names it)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (b"services.kubelet" in argv and node.encode() in argv
                and any(str(data_dir).encode() in a for a in argv)
                and not argv[0].endswith(b"setpriv")):
            return int(entry.name)
    raise RuntimeError(f"no kubelet process for {node}")


async def poll(check: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(interval)


def _ready(obj: dict) -> str:
    return next((c["status"] for c in (obj.get("status") or {}).get("conditions") or []
                 if c["type"] == "Ready"), "")


async def ready_pods(client: Client) -> list[dict]:
    pods = (await client.list("pods", namespace="default", label_selector="app=bench")).items
    return [p for p in pods if _ready(p) == "True" and not p["metadata"].get("deletionTimestamp")]


async def one_run(client: Client, data_dir: Path) -> tuple[float, float]:
    pods = await poll(lambda: _n_ready(client), 60, "all replicas ready")
    nodes = [p["spec"]["nodeName"] for p in pods]
    victim = max(set(nodes), key=nodes.count)
    pid = kubelet_pid(data_dir, victim)
    lost = time.monotonic()
    os.kill(pid, signal.SIGSTOP)
    try:
        async def unknown() -> bool:
            return _ready(await client.get("nodes", victim)) == "Unknown"

        await poll(unknown, 60, f"{victim} Unknown")
        detected = time.monotonic() - lost

        async def replaced() -> bool:
            pods = await ready_pods(client)
            return len(pods) == REPLICAS and all(p["spec"]["nodeName"] != victim for p in pods)

        await poll(replaced, 60, "replicas replaced")
        replacement = time.monotonic() - lost
    finally:
        os.kill(pid, signal.SIGCONT)

    async def back() -> bool:
        node = await client.get("nodes", victim)
        pods = (await client.list("pods", namespace="default",
                                  label_selector="app=bench")).items
        return (_ready(node) == "True" and not (node.get("spec") or {}).get("taints")
                and all(p["spec"].get("nodeName") != victim for p in pods))

    await poll(back, 60, f"{victim} back, untainted, its evicted pods gone", interval=0.2)
    return detected, replacement


async def _n_ready(client: Client) -> list[dict]:
    pods = await ready_pods(client)
    return pods if len(pods) == REPLICAS else []


def summary(name: str, values: list[float], timeout: float) -> str:
    ratios = [v / timeout for v in values]
    return (f"{name:<22} timeout {timeout:>4.1f}s  mean {statistics.mean(values):5.2f}s "
            f"(x{statistics.mean(ratios):.2f})  min {min(values):5.2f}s (x{min(ratios):.2f})  "
            f"max {max(values):5.2f}s (x{max(ratios):.2f})")


async def bench(args: argparse.Namespace, target: str, data_dir: Path) -> None:
    async with Client(target) as client:
        await client.create("deployments", {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "bench"},
            "spec": {"replicas": REPLICAS, "selector": {"matchLabels": {"app": "bench"}},
                     "template": {"metadata": {"labels": {"app": "bench"}}, "spec": {
                         "terminationGracePeriodSeconds": 1,
                         "containers": [{"name": "sleep", "image": "busybox",
                                         "command": ["sleep", "3600"]}]}}}},
            namespace="default")
        detections, replacements = [], []
        for run in range(args.runs):
            detected, replaced = await one_run(client, data_dir)
            detections.append(detected)
            replacements.append(replaced)
            print(f"run {run + 1}: detection {detected:.2f}s (x{detected / args.grace:.2f}), "
                  f"replacement {replaced:.2f}s "
                  f"(x{replaced / (args.grace + args.toleration):.2f})", flush=True)
        print(summary("node-loss detection", detections, args.grace))
        print(summary("pod replacement", replacements, args.grace + args.toleration))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="bench.recovery_nodes", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--grace", type=float, default=3.0, help="--node-monitor-grace-period")
    p.add_argument("--toleration", type=int, default=2,
                   help="--default-unreachable-toleration-seconds")
    p.add_argument("--monitor-period", type=float, default=0.5, help="--node-monitor-period")
    p.add_argument("--eviction-rate", type=float, default=1.0,
                   help="--node-eviction-rate (Kubernetes' 0.1 makes a run that follows the "
                        "previous one within 10 s wait for the zone's token)")
    args = p.parse_args(argv)
    data_dir = Path(tempfile.mkdtemp(prefix="kubelite-bench-recovery-"))
    target = f"127.0.0.1:{free_port()}"
    flags = ["--node-monitor-grace-period", str(args.grace),
             "--node-monitor-period", str(args.monitor_period),
             "--default-unreachable-toleration-seconds", str(args.toleration),
             "--default-not-ready-toleration-seconds", str(args.toleration),
             "--node-lease-renew-interval", "1", "--node-status-update-frequency", "1",
             "--node-eviction-rate", str(args.eviction_rate)]
    print(f"kubelite up --nodes 2 {' '.join(flags)}  ({args.runs} runs, SIGSTOP of the "
          f"kubelet holding the pods)", flush=True)
    up = subprocess.Popen(
        [str(Path(sys.executable).parent / "kubelite"), "up", "--listen", target,
         "--data-dir", str(data_dir), "--nodes", "2", *flags],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        env={**os.environ, **FAST_ENV})
    try:
        wait_healthy(target, 60, up)
        asyncio.run(bench(args, target, data_dir))
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(timeout=40)
        except subprocess.TimeoutExpired:
            up.kill()


if __name__ == "__main__":
    main()

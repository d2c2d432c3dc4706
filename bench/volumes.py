"""Pod startup latency with volumes: creation to Running, beside pods with none.

It runs `kubelite up --nodes 2` (process runtime, kubelets with --allow-host-path)
in a temporary directory and creates, alternately, a pod with no volume and a
pod with two volumes of each type: emptyDir (one on disk, one medium Memory),
configMap, secret (when the apiserver serves Secrets), downwardAPI, projected,
hostPath (DirectoryOrCreate) and persistentVolumeClaim (two claims of the
default local-path class, WaitForFirstConsumer: the claims are provisioned and
bound while the pod is scheduled). For each it measures the time from the
create's acknowledgement to the watch event that shows the pod Running, and
prints p50/p99 of both kinds of pod and their ratio.

    python -m bench.volumes               # 40 pods of each kind
    python -m bench.volumes --pods 10     # a quick run
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
from pathlib import Path
from typing import Any

from bench.pods import percentile
from kubelite.client import Client
from kubelite.errors import ApiError
from kubelite.localcluster import free_port, wait_healthy

Obj = dict[str, Any]
NS = "bench-volumes"


def volumes_of(i: int, host_dir: Path, secrets: bool) -> tuple[list[Obj], list[str]]:
    """Two volumes of each type for pod i, and their names."""
    vols: list[Obj] = [
        {"name": "scratch", "emptyDir": {}},
        {"name": "mem", "emptyDir": {"medium": "Memory"}},
        {"name": "cm1", "configMap": {"name": "cfg"}},
        {"name": "cm2", "configMap": {"name": "cfg", "items": [{"key": "a", "path": "a"}]}},
        {"name": "info1", "downwardAPI": {"items": [
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
        {"name": "info2", "downwardAPI": {"items": [
            {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}}]}},
        {"name": "proj1", "projected": {"sources": [{"configMap": {"name": "cfg"}}]}},
        {"name": "proj2", "projected": {"sources": [{"downwardAPI": {"items": [
            {"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}},
        {"name": "host1", "hostPath": {"path": str(host_dir / f"p{i}-a"),
                                       "type": "DirectoryOrCreate"}},
        {"name": "host2", "hostPath": {"path": str(host_dir / f"p{i}-b"),
                                       "type": "DirectoryOrCreate"}},
        {"name": "pvc1", "persistentVolumeClaim": {"claimName": f"v{i:04d}-a"}},
        {"name": "pvc2", "persistentVolumeClaim": {"claimName": f"v{i:04d}-b"}},
    ]
    if secrets:
        vols += [{"name": "s1", "secret": {"secretName": "sec"}},
                 {"name": "s2", "secret": {"secretName": "sec", "defaultMode": 0o400}}]
    return vols, [v["name"] for v in vols]


def pod(name: str, volumes: list[Obj], names: list[str]) -> Obj:
    return {"metadata": {"name": name, "labels": {"app": "bench"}}, "spec": {
        "terminationGracePeriodSeconds": 1, "volumes": volumes,
        "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "600"],
                        "volumeMounts": [{"name": n, "mountPath": f"/v/{n}"} for n in names]}]}}


async def measure(target: str, pods: int, interval: float,
                  host_dir: Path) -> tuple[list[float], list[float], bool]:
    async with Client(target) as api:
        for _ in range(300):
            ready = [n for n in (await api.list("nodes")).items
                     if (n["metadata"].get("annotations") or {}).get(
                         "kubelite.io/local-path-root")]
            classes = (await api.list("storageclasses")).items
            if len(ready) >= 2 and classes:
                break
            await asyncio.sleep(0.2)
        await api.create("namespaces", {"metadata": {"name": NS}})
        await api.create("configmaps", {"metadata": {"name": "cfg"},
                                        "data": {"a": "1", "b": "2"}}, namespace=NS)
        try:
            await api.create("secrets", {"metadata": {"name": "sec"},
                                         "data": {"k": "dmFsdWU="}}, namespace=NS)
            secrets = True
        except ApiError:
            secrets = False  # Secrets not served by this apiserver (yet)
        start_rv = (await api.list("pods", namespace=NS)).resource_version
        acked: dict[str, float] = {}
        running: dict[str, float] = {}
        done = asyncio.Event()

        async def watch() -> None:
            async for event in api.watch("pods", namespace=NS, resource_version=start_rv):
                obj = event.object
                name = obj.get("metadata", {}).get("name")
                if event.type == "BOOKMARK" or name in running:
                    continue
                if (obj.get("status") or {}).get("phase") == "Running":
                    running[name] = time.monotonic()
                    if len(running) == 2 * pods:
                        done.set()
                        return

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.2)
        for i in range(pods):
            await api.create("pods", pod(f"plain-{i:04d}", [], []), namespace=NS)
            acked[f"plain-{i:04d}"] = time.monotonic()
            await asyncio.sleep(interval)
            for suffix in ("a", "b"):
                await api.create("persistentvolumeclaims", {
                    "metadata": {"name": f"v{i:04d}-{suffix}"},
                    "spec": {"accessModes": ["ReadWriteOnce"],
                             "resources": {"requests": {"storage": "1Mi"}}}}, namespace=NS)
            vols, names = volumes_of(i, host_dir, secrets)
            await api.create("pods", pod(f"vols-{i:04d}", vols, names), namespace=NS)
            acked[f"vols-{i:04d}"] = time.monotonic()
            await asyncio.sleep(interval)
        try:
            await asyncio.wait_for(done.wait(), 300)
        finally:
            watcher.cancel()

        # The kubelets remove the pods' volumes (memory-backed ones included) with them.
        await api.delete("namespaces", NS)
        for _ in range(300):
            if not (await api.list("pods", namespace=NS)).items:
                break
            await asyncio.sleep(0.2)

        def lat(prefix: str) -> list[float]:
            return [running[n] - acked[n] for n in acked if n.startswith(prefix) and n in running]
        return lat("plain-"), lat("vols-"), secrets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=40, help="pods of each kind")
    parser.add_argument("--interval", type=float, default=0.1,
                        help="seconds between creates (default 0.1)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="kubelite-bench-volumes-"))
    target = f"127.0.0.1:{free_port()}"
    kubelite = shutil.which("kubelite") or str(Path(sys.executable).parent / "kubelite")
    env = {**os.environ, "KUBELITE_ALLOW_HOST_PATH": "true"}
    up = subprocess.Popen([kubelite, "up", "--listen", target, "--data-dir", str(workdir),
                           "--nodes", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                          env=env)
    try:
        wait_healthy(target, 60, up)
        plain, vols, secrets = asyncio.run(measure(target, args.pods, args.interval,
                                                   workdir / "host"))
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(120)
        shutil.rmtree(workdir, ignore_errors=True)
    types = 7 if secrets else 6
    print(f"pod startup latency with volumes, process runtime, 2 nodes, {args.pods} pods "
          f"of each kind (created every {args.interval * 1000:.0f} ms)")
    print(f"  no volume:                        p50 {percentile(plain, 0.5) * 1000:7.1f} ms  "
          f"p99 {percentile(plain, 0.99) * 1000:7.1f} ms")
    print(f"  2 volumes of each of {types} types:     p50 {percentile(vols, 0.5) * 1000:7.1f} ms  "
          f"p99 {percentile(vols, 0.99) * 1000:7.1f} ms")
    print(f"  ratio (volumes / none):           p50 "
          f"{percentile(vols, 0.5) / percentile(plain, 0.5):6.2f}     p99 "
          f"{percentile(vols, 0.99) / percentile(plain, 0.99):6.2f}")
    if not secrets:
        print("  (no secret volumes: this apiserver does not serve Secrets)")


if __name__ == "__main__":
    main()

"""Issue 6's autoscaling and Events acceptance, end to end on `kubelite up --nodes 2`.

Real pods burn real CPU (a Python loop busy 20% of each 100 ms while a flag file
exists), the kubelets sample it every second, the apiserver serves it as the
metrics API, and the HPA controller scales the Deployment on it, synced every
2 s with a 12 s scale-down stabilisation window.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from kubelite.client import Client

from .e2e import Cluster, eventually, start_cluster, wait_nodes_ready

pytestmark = pytest.mark.slow

SYNC_PERIOD = 2.0
STABILIZATION = 12.0
MIN, MAX = 1, 3
TIMINGS = {
    "KUBELITE_STATS_PERIOD": "1",
    "KUBELITE_HORIZONTAL_POD_AUTOSCALER_SYNC_PERIOD": str(SYNC_PERIOD),
    "KUBELITE_HORIZONTAL_POD_AUTOSCALER_DOWNSCALE_STABILIZATION": str(STABILIZATION),
}

# Busy for `duty` of every 100 ms while the flag file exists; idle otherwise.
BURN = """
import os, sys, time
flag, duty = sys.argv[1], float(sys.argv[2])
while True:
    if os.path.exists(flag):
        end = time.monotonic() + 0.1 * duty
        while time.monotonic() < end:
            pass
        time.sleep(0.1 * (1 - duty))
    else:
        time.sleep(0.2)
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start_cluster(tmp_path_factory.mktemp("hpa"), nodes=2, env=TIMINGS)
    yield c
    c.stop()


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[Client]:
    async with Client(cluster.target) as c:
        await wait_nodes_ready(c, 2)
        yield c


@pytest.fixture
async def ns(api: Client) -> str:
    name = f"hpa-{uuid.uuid4().hex[:8]}"
    await api.create("namespaces", {"metadata": {"name": name}})
    return name


def kubelite(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    binary = str(Path(sys.executable).parent / "kubelite")
    return subprocess.run([binary, "--server", cluster.target, *args], capture_output=True,
                          text=True, timeout=30)


def burner(name: str, flag: Path) -> dict[str, Any]:
    container = {"name": "burn", "image": "python:3", "command": [
        sys.executable, "-c", BURN, str(flag), "0.2"],
        "resources": {"requests": {"cpu": "100m", "memory": "32Mi"}}}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [container],
                                           "terminationGracePeriodSeconds": 1}}}}


def autoscaler(name: str) -> dict[str, Any]:
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": name},
                     "minReplicas": MIN, "maxReplicas": MAX,
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                         "type": "Utilization", "averageUtilization": 50}}}]}}


class Sampler:
    """Samples spec.replicas and the live pods every 0.25 s, for the bounds check."""

    def __init__(self, api: Client, ns: str, name: str) -> None:
        self.api, self.ns, self.name = api, ns, name
        self.samples: list[tuple[float, int, int]] = []
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            d = await self.api.get("deployments", self.name, namespace=self.ns)
            pods = (await self.api.list("pods", namespace=self.ns,
                                        label_selector=f"app={self.name}")).items
            live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
            self.samples.append((time.monotonic(), d["spec"]["replicas"], len(live)))
            await asyncio.sleep(0.25)

    def __enter__(self) -> Sampler:
        self.task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()


async def hpa_status(api: Client, ns: str, name: str) -> dict[str, Any]:
    return (await api.get("horizontalpodautoscalers", name, namespace=ns)).get("status") or {}


async def replicas_are(api: Client, ns: str, name: str, n: int) -> bool:
    return (await api.get("deployments", name, namespace=ns))["spec"]["replicas"] == n


async def test_cpu_load_scales_up_then_down_after_the_window_within_bounds(
        api: Client, ns: str, cluster: Cluster, tmp_path: Path) -> None:
    """Load on: 1 -> 3 pods (maxReplicas) within a few syncs. Load off: back to 1 only
    after the stabilisation window. Replicas never leave [1, 3]."""
    flag = tmp_path / "load"
    await api.create("deployments", burner("burn", flag), namespace=ns)
    await api.create("horizontalpodautoscalers", autoscaler("burn"), namespace=ns)
    # Before the pod has two samples (a rate) no metric is known yet.
    shown = kubelite(cluster, "get", "hpa", "burn", "-n", ns)
    assert "<unknown>/50%" in shown.stdout, shown.stdout + shown.stderr
    with Sampler(api, ns, "burn") as sampler:
        # Idle, with metrics flowing: the HPA reports a utilization and stays at 1.
        idle = await eventually(lambda: _utilization(api, ns, "burn"), timeout=60,
                                what="a measured utilization")
        assert idle["currentReplicas"] == 1
        shown = kubelite(cluster, "get", "hpa", "burn", "-n", ns)
        assert shown.returncode == 0, shown.stderr
        header, row = shown.stdout.splitlines()
        assert header.split() == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS",
                                  "REPLICAS", "AGE"]
        assert "Deployment/burn" in row and "%/50%" in row, row
        print(f"\n{shown.stdout}")

        flag.touch()
        loaded = time.monotonic()
        await eventually(lambda: replicas_are(api, ns, "burn", MAX), timeout=60,
                         interval=0.25, what=f"{MAX} replicas")
        scale_up = time.monotonic() - loaded
        # Keep the load a few more syncs: the HPA wants more, maxReplicas holds it.
        await asyncio.sleep(3 * SYNC_PERIOD)
        status = await eventually(lambda: _limited(api, ns, "burn"), timeout=20,
                                  what="ScalingLimited TooManyReplicas")
        assert status["desiredReplicas"] == MAX

        flag.unlink()
        unloaded = time.monotonic()
        await eventually(lambda: replicas_are(api, ns, "burn", MIN),
                         timeout=STABILIZATION + 45, interval=0.25, what=f"{MIN} replica")
        scale_down = time.monotonic() - unloaded
        await asyncio.sleep(SYNC_PERIOD)

    print(f"\nscale-up to {MAX} took {scale_up:.1f}s (sync period {SYNC_PERIOD:g}s); "
          f"scale-down to {MIN} took {scale_down:.1f}s (window {STABILIZATION:g}s)")
    # A few sync periods, plus the two kubelet samples a new rate needs.
    assert scale_up <= 8 * SYNC_PERIOD + 4, scale_up
    # The last high recommendation came at most one sync before the load stopped.
    assert STABILIZATION - SYNC_PERIOD <= scale_down <= STABILIZATION + 40, scale_down
    wanted = [r for _, r, _ in sampler.samples]
    assert wanted and min(wanted) >= MIN and max(wanted) <= MAX, wanted
    assert max(n for _, _, n in sampler.samples) <= MAX
    events = [e for e in (await api.list("events", namespace=ns)).items
              if e["reason"] == "SuccessfulRescale"]
    messages = [e["message"] for e in events]
    assert any(m.startswith("New size: ") and m.endswith(
        "reason: cpu resource utilization (percentage of request) above target")
        for m in messages), messages
    assert f"New size: {MIN}; reason: All metrics below target" in messages, messages


async def test_crash_looping_pod_backoff_events_count_up_and_describe_shows_them(
        api: Client, ns: str, cluster: Cluster) -> None:
    """A container that exits at once: one BackOff Event whose count rises, shown by
    `kubelite describe pod` as `(xN over ...)`."""
    await api.create("pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "crash"},
        "spec": {"containers": [{"name": "c", "image": "python:3",
                                 "command": [sys.executable, "-c", "raise SystemExit(3)"]}]}},
        namespace=ns)

    async def backoff_count() -> int:
        items = (await api.list("events", namespace=ns)).items
        counts = [e.get("count") or 1 for e in items if e["reason"] == "BackOff"
                  and e["involvedObject"].get("name") == "crash"]
        return max(counts, default=0)

    first = await eventually(backoff_count, timeout=60, what="a BackOff event")
    later = await eventually(lambda: _above(backoff_count(), first), timeout=60,
                             what="the BackOff count to rise")
    assert later > first
    backoffs = [e for e in (await api.list("events", namespace=ns)).items
                if e["reason"] == "BackOff"]
    assert len(backoffs) == 1, "repeats are one Event with a count"
    assert backoffs[0]["type"] == "Warning"
    assert backoffs[0]["message"].startswith("Back-off restarting failed container c in pod")

    shown = kubelite(cluster, "describe", "pod", "crash", "-n", ns)
    assert shown.returncode == 0, shown.stderr
    events_part = shown.stdout.split("Events:", 1)[-1]
    lines = [line for line in events_part.splitlines() if "BackOff" in line]
    assert len(lines) == 1, shown.stdout
    assert lines[0].split()[:2] == ["Warning", "BackOff"], lines[0]
    assert "(x" in lines[0] and " over " in lines[0], lines[0]


async def _utilization(api: Client, ns: str, name: str) -> dict[str, Any] | None:
    status = await hpa_status(api, ns, name)
    for metric in status.get("currentMetrics") or []:
        if "averageUtilization" in ((metric.get("resource") or {}).get("current") or {}):
            return status
    return None


async def _limited(api: Client, ns: str, name: str) -> dict[str, Any] | None:
    status = await hpa_status(api, ns, name)
    for cond in status.get("conditions") or []:
        if (cond["type"] == "ScalingLimited" and cond["status"] == "True"
                and cond["reason"] == "TooManyReplicas"):
            return status
    return None


async def _above(value: Any, floor: int) -> int | None:
    got = await value
    return got if got > floor else None


"""Background tasks that raise are logged, counted and restarted with backoff.

First the helper itself (kubelite/supervise.py) in-process, then real
processes: a controller-manager loop and the apiserver's watch-cache reader
are each killed once with an injected exception (KUBELITE_FAIL_TASKS), come
back, keep working, and their /metrics count exactly one failure.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
import uuid

from kubelite import supervise as sup
from kubelite.client import Client
from kubelite.supervise import TASK_FAILURES, TASK_RESTARTS, spawn, supervise
from kubelite.testing import eventually

from .helpers import configmap, metric_value
from .test_controller import ControllerManager, wait_leader


def _value(counter, task: str) -> float:
    return counter.labels(task)._value.get()


async def test_a_task_that_raises_is_restarted_with_growing_backoff() -> None:
    task = f"unit-{uuid.uuid4().hex[:6]}"
    starts: list[float] = []

    async def flaky() -> None:
        starts.append(time.monotonic())
        if len(starts) <= 3:
            raise ValueError(f"failure {len(starts)}")
        await asyncio.sleep(3600)

    runner = spawn(task, flaky, initial_backoff=0.05, max_backoff=1.0)
    await eventually(lambda: len(starts) == 4, timeout=5, what="fourth start")
    assert _value(TASK_FAILURES, task) == 3
    assert _value(TASK_RESTARTS, task) == 3
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1 and gaps[2] >= 0.2  # doubling
    assert not runner.done()
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    assert runner.cancelled()
    assert _value(TASK_FAILURES, task) == 3  # cancellation is no failure


async def test_backoff_is_capped_and_reset_after_a_healthy_run() -> None:
    task = f"unit-{uuid.uuid4().hex[:6]}"
    starts: list[float] = []

    async def fails_after(run_for: float) -> None:
        await asyncio.sleep(run_for)
        raise RuntimeError("boom")

    async def loop() -> None:
        starts.append(time.monotonic())
        # Three quick failures (backoff 0.04, 0.08, capped at 0.1), then one after a
        # healthy 0.3 s run (backoff back to 0.04).
        await fails_after(0.3 if len(starts) == 4 else 0.0)

    runner = spawn(task, loop, initial_backoff=0.04, max_backoff=0.1, healthy_after=0.25)
    await eventually(lambda: len(starts) >= 5, timeout=5, what="fifth start")
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert 0.04 <= gaps[0] < 0.09
    assert 0.08 <= gaps[1] < 0.2
    assert 0.1 <= gaps[2] < 0.2  # the cap, not 0.16
    assert 0.34 <= gaps[3] < 0.45  # ran 0.3 s, then the reset backoff of 0.04


async def test_a_task_that_returns_is_done_and_not_restarted() -> None:
    task = f"unit-{uuid.uuid4().hex[:6]}"
    runs = 0

    async def once() -> None:
        nonlocal runs
        runs += 1

    await asyncio.wait_for(supervise(task, once), 1)
    assert runs == 1 and _value(TASK_FAILURES, task) == 0


async def test_injected_failure_kills_only_the_first_run(monkeypatch) -> None:
    task = f"unit-{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv(sup.FAIL_TASKS_ENV, f"other,{task}")
    monkeypatch.setenv(sup.FAIL_AFTER_ENV, "0.05")
    cancelled = 0
    runs = 0

    async def loop() -> None:
        nonlocal cancelled, runs
        runs += 1
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled += 1
            raise

    runner = spawn(task, loop, initial_backoff=0.01)
    await eventually(lambda: runs == 2, timeout=5, what="restart")
    await asyncio.sleep(0.2)
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    assert runs == 2 and cancelled == 2  # the injected kill, then our cancel
    assert _value(TASK_FAILURES, task) == 1


# -- real processes ---------------------------------------------------------------


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
        return resp.read().decode()


async def test_controller_manager_loop_killed_once_is_restarted_and_counted(
        shared_apiserver, client: Client, namespace: str, tmp_path) -> None:
    """The namespace controller's loop dies of an injected exception, comes back
    with backoff, and then deletes a namespace; its metric counts one failure."""
    lease = f"kcm-{uuid.uuid4().hex[:8]}"
    manager = ControllerManager(shared_apiserver.target, tmp_path, lease=lease,
                                identity="kcm-fail",
                                extra=("--controllers", "namespace,replicaset"))
    manager.process.env = {sup.FAIL_TASKS_ENV: "controller-namespace",
                           sup.FAIL_AFTER_ENV: "0.3"}
    manager.start()
    try:
        wait_leader(manager, lease)
        task = 'task="controller-namespace"'

        async def restarted() -> bool:
            return manager.metric("kubelite_background_task_restarts_total", task) == 1.0

        await eventually(restarted, what="the namespace loop restarted")
        assert manager.metric("kubelite_background_task_failures_total", task) == 1.0
        assert manager.metric("kubelite_background_task_running", task) == 1.0
        # Other loops were not touched, and are exposed with no failures.
        assert manager.metric("kubelite_background_task_failures_total",
                              'task="controller-replicaset"') == 0.0
        assert "failure injected into controller-namespace" in manager.process.tail()

        await client.create("configmaps", configmap("c", namespace))
        await client.delete("namespaces", namespace)

        async def namespace_gone() -> bool:
            return not (await client.list("namespaces",
                                          field_selector=f"metadata.name={namespace}")).items

        await eventually(namespace_gone, what="namespace deleted by the restarted loop")
        assert manager.metric("kubelite_background_task_failures_total", task) == 1.0
    finally:
        manager.stop()


async def test_apiserver_watch_cache_reader_killed_once_is_restarted(
        apiserver_factory, monkeypatch) -> None:
    """The apiserver's watch-cache reader dies once; watches work after its restart."""
    from kubelite.localcluster import free_port

    port = free_port()
    monkeypatch.setenv(sup.FAIL_TASKS_ENV, "watchcache-reader")
    monkeypatch.setenv(sup.FAIL_AFTER_ENV, "0.3")
    server = apiserver_factory("--metrics-port", str(port))
    monkeypatch.delenv(sup.FAIL_TASKS_ENV)

    async def restarted() -> bool:
        return metric_value(scrape(port), "kubelite_background_task_restarts_total",
                            task="watchcache-reader") == 1.0

    await eventually(restarted, what="the watch cache reader restarted")
    text = scrape(port)
    assert metric_value(text, "kubelite_background_task_failures_total",
                        task="watchcache-reader") == 1.0
    # Every supervised task is exposed from the start, failures or not.
    assert 'kubelite_background_task_failures_total{task="apiserver-storage-metrics"} 0.0' in text
    async with Client(server.target) as c:
        seen: list[str] = []

        async def follow() -> None:
            async for event in c.watch("configmaps", namespace="default"):
                if event.type == "ADDED":
                    seen.append(event.object["metadata"]["name"])
                    return

        watcher = asyncio.create_task(follow())
        await asyncio.sleep(0.3)
        await c.create("configmaps", configmap("after-restart", "default"))
        await asyncio.wait_for(watcher, 10)
        assert seen == ["after-restart"]
    assert metric_value(scrape(port), "kubelite_background_task_failures_total",
                        task="watchcache-reader") == 1.0  # exactly one, still

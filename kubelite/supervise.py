"""Long-lived background tasks that cannot die silently.

`supervise(name, factory)` runs the coroutine `factory()` makes, and when it
raises, logs the exception with the task's name, counts it in
`kubelite_background_task_failures_total{task=name}`, sleeps with capped
exponential backoff and runs a new one. A run that stayed up for
`healthy_after` seconds resets the backoff, so a loop that fails once a day
restarts at once and one that fails on every start backs off to `max_backoff`.
Cancellation ends the supervision quietly (that is how components stop), and
so does a normal return: a loop that returns was done by design.

`spawn(name, factory)` is `asyncio.create_task(supervise(...), name=name)`.

Tests kill a named task once through the environment variable
`KUBELITE_FAIL_TASKS` (comma-separated task names): the first run of each named
task is cancelled after `KUBELITE_FAIL_TASKS_AFTER` seconds (0.5) and reported
as an `InjectedFailure`, exactly as if the loop had raised it. Nothing sets it
outside tests.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import Counter, Gauge

log = logging.getLogger("kubelite.supervise")

TASK_FAILURES = Counter(
    "kubelite_background_task_failures_total",
    "Background task runs that ended with an exception, per task.", ["task"])
TASK_RESTARTS = Counter(
    "kubelite_background_task_restarts_total",
    "Background tasks started again after a failure, per task.", ["task"])
TASK_RUNNING = Gauge(
    "kubelite_background_task_running",
    "1 while the task runs, 0 while it waits to restart (or has ended).", ["task"])

FAIL_TASKS_ENV = "KUBELITE_FAIL_TASKS"
FAIL_AFTER_ENV = "KUBELITE_FAIL_TASKS_AFTER"
_injected: set[str] = set()  # tasks whose one injected failure has happened


class InjectedFailure(RuntimeError):
    """The failure a test asked for through KUBELITE_FAIL_TASKS."""


def _should_inject(name: str) -> bool:
    wanted = {n.strip() for n in os.environ.get(FAIL_TASKS_ENV, "").split(",") if n.strip()}
    return name in wanted and name not in _injected


async def _run_once(name: str, factory: Callable[[], Awaitable[Any]]) -> None:
    if not _should_inject(name):
        await factory()
        return
    _injected.add(name)
    run = asyncio.ensure_future(factory())
    delay = float(os.environ.get(FAIL_AFTER_ENV, "0.5"))
    done, _ = await asyncio.wait({run}, timeout=delay)
    if done:
        run.result()  # the run ended (or raised) on its own before the injection
        return
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)
    raise InjectedFailure(f"failure injected into {name} by {FAIL_TASKS_ENV}")


async def supervise(name: str, factory: Callable[[], Awaitable[Any]], *,
                    initial_backoff: float = 0.5, max_backoff: float = 30.0,
                    healthy_after: float = 60.0,
                    logger: logging.Logger | None = None) -> None:
    """Runs factory() until it returns or this is cancelled, restarting it when it raises."""
    logger = logger or log
    failures = TASK_FAILURES.labels(name)
    restarts = TASK_RESTARTS.labels(name)
    running = TASK_RUNNING.labels(name)
    backoff = initial_backoff
    try:
        while True:
            started = time.monotonic()
            running.set(1)
            try:
                await _run_once(name, factory)
                return
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - every failure is logged, counted, restarted
                failures.inc()
                running.set(0)
                if time.monotonic() - started >= healthy_after:
                    backoff = initial_backoff
                logger.exception("background task failed; restarting", extra={"kv": {
                    "task": name, "restart_in": round(backoff, 3)}})
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, max_backoff)
            restarts.inc()
    finally:
        running.set(0)


def spawn(name: str, factory: Callable[[], Awaitable[Any]], **kwargs: Any) -> asyncio.Task[None]:
    """A task running supervise(name, factory, ...), named name."""
    return asyncio.create_task(supervise(name, factory, **kwargs), name=name)


__all__ = ["FAIL_TASKS_ENV", "InjectedFailure", "TASK_FAILURES", "TASK_RESTARTS",
           "TASK_RUNNING", "spawn", "supervise"]

"""The plumbing every controller shares: informers → work queue → `sync(key)`.

The one idea, from Kubernetes' sample-controller: *an event is only a reason to
look again*. Informer handlers call `enqueue`, which files a key in the work
queue; `workers` tasks take keys one at a time and call `sync_handler(key)`,
which reads the current state from the informer caches and converges it. A
sync that raises is retried with rate-limited backoff; one that returns
resets the key's backoff. The queue never hands one key to two workers, so a
sync never races itself.

`sync_handler` is an attribute (it defaults to the bound `sync`) so that a
test can put its own function there, as Kubernetes' ReplicaSet controller
does with its `syncHandler` field.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

from prometheus_client import Counter

from kubelite.errors import ApiError, ConflictError, NotFoundError
from kubelite.informer import Informer, object_key
from kubelite.workqueue import QueueShutDown, RateLimiter, WorkQueue

K = TypeVar("K", bound=Hashable)
Obj = dict[str, Any]
SyncFunc = Callable[[Any], Awaitable[None]]

RECONCILE_ERRORS = Counter(
    "controller_reconcile_errors_total",
    "Syncs that failed and were requeued, per controller.",
    ["controller"],
)


class Controller(Generic[K]):
    """A named reconcile loop: a work queue, the informers it reads, and workers.

    Subclasses register handlers on their informers (which call `enqueue` or
    `queue.add`), list those informers in `informers` so that workers start
    only once every cache is filled, and implement `sync(key)`.
    """

    #: The controller's name: its queue's metric label and its `--controllers` entry.
    name = "controller"

    def __init__(self, *, informers: Sequence[Informer] = (),
                 rate_limiter: RateLimiter[K] | None = None) -> None:
        self.log = logging.getLogger(f"kubelite.controller.{self.name}")
        self.queue: WorkQueue[K] = WorkQueue(name=self.name, rate_limiter=rate_limiter)
        self.informers: list[Informer] = list(informers)
        self.sync_handler: SyncFunc = self.sync
        self._errors = RECONCILE_ERRORS.labels(self.name)

    async def sync(self, key: K) -> None:
        raise NotImplementedError

    def enqueue(self, obj: Obj) -> None:
        """Files the object's `namespace/name` key (the usual handler body)."""
        self.queue.add(object_key(obj))  # type: ignore[arg-type]

    def enqueue_after(self, obj: Obj, delay: float) -> None:
        self.queue.add_after(object_key(obj), delay)  # type: ignore[arg-type]

    async def run(self, workers: int) -> None:
        """Waits for the caches, then runs `workers` workers until cancelled."""
        try:
            await asyncio.gather(*(informer.wait_synced() for informer in self.informers))
            self.log.info("caches synced; starting workers",
                          extra={"kv": {"controller": self.name, "workers": workers}})
            tasks = [asyncio.create_task(self._worker(), name=f"{self.name}-worker-{i}")
                     for i in range(max(1, workers))]
            try:
                await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            self.queue.shut_down()

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except QueueShutDown:
                return
            try:
                await self.process(key)
            finally:
                self.queue.done(key)

    async def process(self, key: K) -> None:
        """One sync of key with the error handling of every controller."""
        try:
            await self.sync_handler(key)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - every failure is a retry
            self._errors.inc()
            self.queue.add_rate_limited(key)
            kv = {"controller": self.name, "key": str(key), "error": str(err) or repr(err),
                  "retries": self.queue.num_requeues(key)}
            if isinstance(err, ConflictError | NotFoundError):
                # Someone wrote first, or the cache lags: normal, the retry reads again.
                self.log.info("sync conflict; requeued", extra={"kv": kv})
            elif isinstance(err, ApiError):
                self.log.warning("sync failed; requeued", extra={"kv": kv})
            else:
                self.log.exception("sync failed; requeued", extra={"kv": kv})
        else:
            self.queue.forget(key)

    def shut_down(self) -> None:
        self.queue.shut_down()


async def cancel_and_wait(tasks: Sequence[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


__all__ = ["Controller", "RECONCILE_ERRORS", "SyncFunc", "cancel_and_wait"]

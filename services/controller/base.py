"""The plumbing every controller shares: informers → work queue → `sync(key)`.

The one idea, from Kubernetes' sample-controller: *an event is only a reason to
look again*. Informer handlers call `enqueue`, which files a key in the work
queue; `workers` tasks take keys one at a time and call `sync_handler(key)`,
which reads the current state from the informer caches and converges it. A
sync that returns resets the key's backoff. One that raises a retryable error
(the API unavailable or overloaded, a lost race) or a non-API exception is
retried with rate-limited backoff. One that raises a permanent API error (the
object is invalid, the namespace is terminating, ...) would fail the same way
forever, so the key is forgotten instead, a Warning Event `SyncFailed` is
recorded on the object, and the next change to it (its informer's update)
queues it again. The queue never hands one key to two workers, so a sync never
races itself.

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

from kubelite.errors import ApiError, ConflictError
from kubelite.events import WARNING, EventRecorder
from kubelite.informer import Informer, object_key
from kubelite.workqueue import QueueShutDown, RateLimiter, WorkQueue

K = TypeVar("K", bound=Hashable)
Obj = dict[str, Any]
SyncFunc = Callable[[Any], Awaitable[None]]

RECONCILE_ERRORS = Counter(
    "controller_reconcile_errors_total",
    "Syncs that failed (requeued or not), per controller.",
    ["controller"],
)
PERMANENT_ERRORS = Counter(
    "controller_reconcile_permanent_errors_total",
    "Syncs that failed with a permanent API error: not requeued until the object changes.",
    ["controller"],
)
SYNC_FAILED_REASON = "SyncFailed"


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
        self._permanent = PERMANENT_ERRORS.labels(self.name)
        #: Where permanent sync errors are reported; subclasses set their own.
        self.recorder: EventRecorder | None = None

    def object_for(self, key: K) -> Obj | None:
        """The cached object a key names (for the Warning Event of a permanent error).

        By default a `namespace/name` key of the first informer's resource.
        """
        if not self.informers or not isinstance(key, str):
            return None
        return self.informers[0].get(key)

    async def sync(self, key: K) -> None:
        raise NotImplementedError

    def enqueue(self, obj: Obj) -> None:
        """Files the object's `namespace/name` key (the usual handler body)."""
        self.queue.add(object_key(obj))  # type: ignore[arg-type]

    def enqueue_after(self, obj: Obj, delay: float) -> None:
        self.queue.add_after(object_key(obj), delay)  # type: ignore[arg-type]

    async def run(self, workers: int) -> None:
        """Waits for the caches, then runs `workers` workers until cancelled.

        The manager supervises this: if it raises, it is run again on the same
        queue, so it leaves the queue open (`shut_down` closes it at the end of
        the term) and a key whose worker was cancelled mid-sync is queued again.
        """
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

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except QueueShutDown:
                return
            try:
                await self.process(key)
            except asyncio.CancelledError:
                self.queue.add(key)  # a no-op once shut down; else done() requeues it
                raise
            finally:
                self.queue.done(key)

    async def process(self, key: K) -> None:
        """One sync of key with the error handling of every controller."""
        try:
            await self.sync_handler(key)
        except asyncio.CancelledError:
            raise
        except ApiError as err:
            self._errors.inc()
            if err.retryable:
                self._requeue(key, err)
            else:
                self._give_up(key, err)
        except Exception as err:  # noqa: BLE001 - a bug or a non-API failure: retry
            self._errors.inc()
            self._requeue(key, err)
        else:
            self.queue.forget(key)

    def _give_up(self, key: K, err: ApiError) -> None:
        """A permanent error: stop retrying and say so on the object, until it changes."""
        self._permanent.inc()
        self.queue.forget(key)
        self.log.warning("sync failed permanently; waiting for the object to change",
                         extra={"kv": {"controller": self.name, "key": str(key),
                                       "reason": err.reason, "error": str(err)}})
        obj = self.object_for(key)
        if obj is not None and self.recorder is not None:
            self.recorder.event(obj, WARNING, SYNC_FAILED_REASON, str(err))

    def _requeue(self, key: K, err: Exception) -> None:
        self.queue.add_rate_limited(key)
        kv = {"controller": self.name, "key": str(key), "error": str(err) or repr(err),
              "retries": self.queue.num_requeues(key)}
        if isinstance(err, ConflictError):
            # Someone wrote first: normal, the retry reads again.
            self.log.info("sync conflict; requeued", extra={"kv": kv})
        elif isinstance(err, ApiError):
            self.log.warning("sync failed; requeued", extra={"kv": kv})
        else:
            self.log.error("sync failed; requeued", exc_info=err, extra={"kv": kv})

    def shut_down(self) -> None:
        self.queue.shut_down()


async def cancel_and_wait(tasks: Sequence[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


__all__ = ["Controller", "PERMANENT_ERRORS", "RECONCILE_ERRORS", "SYNC_FAILED_REASON",
           "SyncFunc", "cancel_and_wait"]

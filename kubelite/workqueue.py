"""A work queue of object keys for level-triggered controllers, like client-go's.

The one idea: a key is a *reason to look at an object again*, not an event, so
the queue holds each key at most once and hands it to at most one worker.

Three sets carry that (as in client-go's `workqueue.Type`):

- `queue`: keys waiting for a worker, in FIFO order;
- `dirty`: keys that need processing (queued, or re-added while processing);
- `processing`: keys a worker holds between `get()` and `done()`.

`add` of a key that is already dirty is a no-op. `add` of a key that is being
processed only marks it dirty; `done` then puts it back in the queue, so a
change that arrives mid-sync is never lost and never handled concurrently.

On top of that sit delays and rate limiting:

- `add_after(key, delay)` arms a timer on the event loop. A key waiting with an
  earlier deadline keeps it, so the timers for one key never pile up.
- `add_rate_limited(key)` waits `max(per-key backoff, token bucket)`. The
  per-key backoff is `base * 2**failures`, capped (5 ms to 1000 s by default);
  the bucket (10 qps, burst 100 by default) bounds the retry rate of the whole
  queue, so a mass failure cannot turn into a hot loop. `forget(key)` resets the
  key's failures after a successful sync; `num_requeues(key)` reports them.

`shut_down()` stops accepting keys and cancels pending timers; `get()` keeps
handing out what is already queued and then raises `QueueShutDown`.

Everything runs on one event loop and nothing here blocks: `add*`, `done`,
`forget` and `shut_down` are plain methods, safe to call from informer
handlers, and only `get()` awaits.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from prometheus_client import Counter, Gauge, Histogram

K = TypeVar("K", bound=Hashable)

WORKQUEUE_DEPTH = Gauge("workqueue_depth", "Current depth of the workqueue.", ["name"])
WORKQUEUE_ADDS = Counter("workqueue_adds_total", "Total number of adds to the workqueue.", ["name"])
WORKQUEUE_RETRIES = Counter(
    "workqueue_retries_total", "Total number of rate-limited retries in the workqueue.", ["name"]
)
WORKQUEUE_QUEUE_DURATION = Histogram(
    "workqueue_queue_duration_seconds",
    "How long a key waits in the workqueue before a worker takes it.",
    ["name"],
    buckets=(1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0),
)
WORKQUEUE_WORK_DURATION = Histogram(
    "workqueue_work_duration_seconds",
    "How long a worker holds a key, from get() to done().",
    ["name"],
    buckets=(1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0),
)


class QueueShutDown(Exception):
    """The queue has been shut down and holds no more keys."""


class ExponentialBackoff(Generic[K]):
    """Per-key exponential backoff: base * 2**failures, capped."""

    def __init__(self, *, base: float = 0.005, cap: float = 1000.0) -> None:
        self.base = base
        self.cap = cap
        self._failures: dict[K, int] = {}

    def when(self, key: K) -> float:
        exp = self._failures.get(key, 0)
        self._failures[key] = exp + 1
        if exp >= 64:  # 2**64 * base is far past any cap; avoid float overflow
            return self.cap
        return min(self.base * (2**exp), self.cap)

    def num_requeues(self, key: K) -> int:
        return self._failures.get(key, 0)

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)


class TokenBucket:
    """An overall token bucket (like golang.org/x/time/rate's Reserve).

    Each call reserves one token and returns how long to wait for it; tokens may
    go negative, so concurrent reservations queue up behind each other.
    """

    def __init__(
        self, *, qps: float = 10.0, burst: int = 100, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError("qps must be positive and burst at least 1")
        self.qps = qps
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    def reserve(self) -> float:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
        self._last = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps


class RateLimiter(Generic[K]):
    """client-go's DefaultControllerRateLimiter: the max of per-key backoff and a bucket."""

    def __init__(
        self,
        *,
        base: float = 0.005,
        cap: float = 1000.0,
        qps: float = 10.0,
        burst: int = 100,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backoff: ExponentialBackoff[K] = ExponentialBackoff(base=base, cap=cap)
        self.bucket = TokenBucket(qps=qps, burst=burst, clock=clock)

    def when(self, key: K) -> float:
        return max(self.backoff.when(key), self.bucket.reserve())

    def num_requeues(self, key: K) -> int:
        return self.backoff.num_requeues(key)

    def forget(self, key: K) -> None:
        self.backoff.forget(key)


class WorkQueue(Generic[K]):
    """A deduplicating, delaying, rate-limited queue of keys (see module docstring).

    `name` labels the queue's Prometheus metrics (`workqueue_depth{name=...}`).
    """

    def __init__(
        self,
        *,
        name: str = "",
        rate_limiter: RateLimiter[K] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.rate_limiter: RateLimiter[K] = rate_limiter or RateLimiter()
        self._clock = clock
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: dict[K, float] = {}  # key -> when get() handed it out
        self._queued_at: dict[K, float] = {}
        self._waiting: dict[K, tuple[float, asyncio.TimerHandle]] = {}  # add_after timers
        self._not_empty = asyncio.Event()
        self._shutting_down = False
        self._depth = WORKQUEUE_DEPTH.labels(name)
        self._adds = WORKQUEUE_ADDS.labels(name)
        self._retries = WORKQUEUE_RETRIES.labels(name)
        self._queue_duration = WORKQUEUE_QUEUE_DURATION.labels(name)
        self._work_duration = WORKQUEUE_WORK_DURATION.labels(name)

    # -- the basic queue ------------------------------------------------------

    def add(self, key: K) -> None:
        """Marks key as needing processing; a no-op if it already does."""
        if self._shutting_down or key in self._dirty:
            return
        self._adds.inc()
        self._dirty.add(key)
        if key in self._processing:
            return  # done() will queue it again
        self._push(key)

    def _push(self, key: K) -> None:
        self._queue.append(key)
        self._queued_at[key] = self._clock()
        self._depth.set(len(self._queue))
        self._not_empty.set()

    async def get(self) -> K:
        """Waits for a key and hands it to the caller, who must call done(key).

        Raises QueueShutDown once the queue is shut down and empty.
        """
        while not self._queue:
            if self._shutting_down:
                raise QueueShutDown(f"workqueue {self.name!r} is shut down")
            self._not_empty.clear()
            await self._not_empty.wait()
        key = self._queue.popleft()
        if not self._queue:
            self._not_empty.clear()
        now = self._clock()
        self._queue_duration.observe(now - self._queued_at.pop(key, now))
        self._depth.set(len(self._queue))
        self._dirty.discard(key)
        self._processing[key] = now
        return key

    def done(self, key: K) -> None:
        """Ends processing of key; queues it again if it was re-added meanwhile."""
        started = self._processing.pop(key, None)
        if started is not None:
            self._work_duration.observe(self._clock() - started)
        if key in self._dirty:
            self._push(key)  # even when shutting down: it was added before, so drain it

    def shut_down(self) -> None:
        """Stops accepting keys and cancels timers; get() drains, then raises."""
        self._shutting_down = True
        for _, handle in self._waiting.values():
            handle.cancel()
        self._waiting.clear()
        self._not_empty.set()  # wake every getter so it can see the shutdown

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def len(self) -> int:
        """Keys waiting for a worker (not those being processed or delayed)."""
        return len(self._queue)

    def __len__(self) -> int:
        return len(self._queue)

    def is_processing(self, key: K) -> bool:
        return key in self._processing

    # -- delays ---------------------------------------------------------------

    def add_after(self, key: K, delay: float) -> None:
        """Adds key after delay seconds; an earlier pending deadline for it wins."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + delay
        pending = self._waiting.get(key)
        if pending is not None:
            if pending[0] <= deadline:
                return
            pending[1].cancel()
        handle = loop.call_at(deadline, self._fire, key)
        self._waiting[key] = (deadline, handle)

    def _fire(self, key: K) -> None:
        self._waiting.pop(key, None)
        self.add(key)

    def num_waiting(self) -> int:
        """Keys whose add_after timer has not fired yet."""
        return len(self._waiting)

    # -- rate limiting --------------------------------------------------------

    def add_rate_limited(self, key: K) -> None:
        """Adds key after its rate-limited backoff (call when a sync fails)."""
        if self._shutting_down:
            return
        self._retries.inc()
        self.add_after(key, self.rate_limiter.when(key))

    def forget(self, key: K) -> None:
        """Resets key's backoff (call when a sync succeeds)."""
        self.rate_limiter.forget(key)

    def num_requeues(self, key: K) -> int:
        return self.rate_limiter.num_requeues(key)


__all__ = [
    "ExponentialBackoff",
    "QueueShutDown",
    "RateLimiter",
    "TokenBucket",
    "WorkQueue",
]

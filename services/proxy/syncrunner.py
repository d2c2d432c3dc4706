"""Run a sync function often enough, but not too often (kube-proxy's BoundedFrequencyRunner).

`request()` asks for a sync. Syncs start at most once per `min_interval`
(requests that arrive meanwhile are coalesced into the next one) and at least
once per `max_interval`; the periodic one is marked `full`, so the caller can
repair state that someone else changed behind its back. The first sync is full.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger("kubelite.proxy")


class SyncRunner:
    def __init__(self, fn: Callable[[bool], Awaitable[bool]], *, min_interval: float,
                 max_interval: float, retry_cap: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """fn(full) returns True on success; a failure is retried with backoff from
        min_interval up to retry_cap (default max_interval)."""
        self.fn = fn
        self.min_interval = max(0.0, min_interval)
        self.max_interval = max_interval
        self.retry_cap = retry_cap if retry_cap is not None else max_interval
        self._clock = clock
        self._wake = asyncio.Event()
        self._retry: asyncio.TimerHandle | None = None
        self._failures = 0
        self.runs = 0

    def request(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        last = -float("inf")
        next_full = self._clock()  # the first sync is full
        while True:
            if not self._wake.is_set():
                # After a failure only the retry timer (or a new request) wakes us.
                timeout = None if self._failures else max(0.0, next_full - self._clock())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
            wait = last + self.min_interval - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)
            self._wake.clear()
            full = self._clock() >= next_full
            start = self._clock()
            try:
                ok = await self.fn(full)
            except Exception:
                log.exception("sync failed")
                ok = False
            self.runs += 1
            last = start
            if ok:
                self._failures = 0
                if full:
                    next_full = start + self.max_interval
            else:
                self._schedule_retry()

    def _schedule_retry(self) -> None:
        delay = min(self.retry_cap, max(self.min_interval, 0.1) * 2 ** min(self._failures, 16))
        self._failures += 1
        if self._retry is not None:
            self._retry.cancel()
        self._retry = asyncio.get_running_loop().call_later(delay, self._wake.set)

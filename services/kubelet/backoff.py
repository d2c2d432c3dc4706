"""CrashLoopBackOff: how long a failed container waits before its next start.

This is client-go's flowcontrol.Backoff as the kubelet uses it:

- The first restart after an exit happens at once, and arms the back-off at
  `base` (10 s).
- Each later exit that comes within the back-off keeps the container waiting
  until `finishedAt + backoff`; the restart after that doubles the back-off,
  up to `cap` (300 s).
- A container that ran for longer than `reset` (10 min) before it exited starts
  over at `base`.

The clock is injected so that the arithmetic is tested without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass


@dataclass
class _Entry:
    backoff: float
    last_update: float


class CrashLoopBackoff:
    def __init__(self, *, base: float = 10.0, cap: float = 300.0, reset: float = 600.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.base = base
        self.cap = cap
        self.reset = reset
        self._clock = clock
        self._entries: dict[Hashable, _Entry] = {}

    def _expired(self, entry: _Entry, event_time: float) -> bool:
        return event_time - entry.last_update > self.reset

    def remaining(self, key: Hashable, finished_at: float) -> float:
        """Seconds left to wait before restarting a container that exited at finished_at."""
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, finished_at):
            return 0.0
        return max(0.0, finished_at + entry.backoff - self._clock())

    def next(self, key: Hashable, finished_at: float) -> float:
        """Records a restart (call just before starting again); returns the new back-off."""
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, finished_at):
            entry = _Entry(self.base, 0.0)
            self._entries[key] = entry
        else:
            entry.backoff = min(entry.backoff * 2, self.cap)
        entry.last_update = self._clock()
        return entry.backoff

    def get(self, key: Hashable) -> float:
        """The current back-off of key (0 when it has none)."""
        entry = self._entries.get(key)
        return entry.backoff if entry else 0.0

    def forget(self, predicate: Callable[[Hashable], bool]) -> None:
        """Drops the entries whose key matches (a deleted pod's)."""
        for key in [k for k in self._entries if predicate(k)]:
            del self._entries[key]


def go_duration(seconds: float) -> str:
    """A duration as Go's time.Duration prints it: 200ms, 10s, 1m20s, 5m0s, 1.6s."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        ms = seconds * 1000
        return f"{ms:.0f}ms" if abs(ms - round(ms)) < 1e-6 else f"{_trim(ms)}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{_trim(secs)}s"
    if minutes or hours:
        text = f"{int(minutes)}m{text}"
    if hours:
        text = f"{int(hours)}h{text}"
    return text


def _trim(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return text or "0"

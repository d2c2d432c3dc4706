"""The scheduling queue: which pending pod to try next, and when to try again.

The one idea, from Kubernetes' PriorityQueue: *a pod that did not fit waits
for a reason to fit, not for a timer*. Three places hold pending pods:

- **active**: ready to be tried, highest spec.priority first, then oldest;
- **backoff**: failed recently and waiting out its backoff (`initial * 2**(attempts-1)`,
  capped at `max_backoff`); a timer moves it to active when the backoff ends;
- **unschedulable**: no node fitted; it stays here until the cluster changes
  (`move_all_to_active_or_backoff`: a node added or changed, an assigned pod
  deleted), then goes to backoff or, if its backoff is already over, to active.
  A pod left there for `max_unschedulable_duration` is moved anyway
  (`flush_unschedulable_leftover`), in case an event was missed.

A pod being tried is "in flight". If the cluster changes while it is in flight
(`move_request_cycle` has caught up with the cycle it was popped in), or the
pod itself changes, a failure sends it to backoff rather than unschedulable:
the change it missed might be the one that makes it fit, and no later event
would wake it. Changes to a pod's status alone (like the scheduler's own
PodScheduled condition) never move it, or the scheduler would wake itself.

Pods are keyed by uid. Nothing here blocks: only `pop()` awaits.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import metrics
from .framework import PodInfo

Obj = dict[str, Any]

ACTIVE = "active"
BACKOFF = "backoff"
UNSCHEDULABLE = "unschedulable"


class QueueClosed(Exception):
    """The queue was closed; pop() hands out nothing more."""


@dataclass
class QueuedPodInfo:
    pod: PodInfo
    #: When the pod last entered the queue (a failed attempt re-enters it).
    timestamp: float
    #: When the pod first entered the queue: the start of the scheduling SLI.
    first_queued: float
    attempts: int = 0
    #: The scheduling cycle of the pod's latest pop.
    cycle: int = 0
    #: The pod's spec or metadata changed while it was in flight.
    updated_in_flight: bool = False
    deleted: bool = False
    #: The last failure message, to tell whether the condition needs rewriting.
    last_failure: str = field(default="", repr=False)

    @property
    def uid(self) -> str:
        return self.pod.uid


def _strip(pod: Obj) -> Obj:
    meta = {k: v for k, v in (pod.get("metadata") or {}).items()
            if k not in ("resourceVersion", "generation", "managedFields")}
    return {**{k: v for k, v in pod.items() if k != "status"}, "metadata": meta}


def is_pod_updated(old: Obj, new: Obj) -> bool:
    """True when something other than status and bookkeeping metadata changed."""
    return _strip(old) != _strip(new)


class SchedulingQueue:
    def __init__(self, *, initial_backoff: float = 1.0, max_backoff: float = 10.0,
                 max_unschedulable_duration: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_unschedulable_duration = max_unschedulable_duration
        self._clock = clock
        self._active: dict[str, QueuedPodInfo] = {}
        self._active_heap: list[tuple[int, float, int, str]] = []
        self._backoff: dict[str, QueuedPodInfo] = {}
        self._backoff_heap: list[tuple[float, int, str]] = []
        self._unschedulable: dict[str, QueuedPodInfo] = {}
        self._in_flight: dict[str, QueuedPodInfo] = {}
        self._seq = itertools.count()
        self._not_empty = asyncio.Event()
        self._closed = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self.scheduling_cycle = 0
        self.move_request_cycle = -1
        self._report()

    # -- where a pod is -------------------------------------------------------

    def _find(self, uid: str) -> tuple[str, QueuedPodInfo] | None:
        for place, pods in ((ACTIVE, self._active), (BACKOFF, self._backoff),
                            (UNSCHEDULABLE, self._unschedulable), ("in-flight", self._in_flight)):
            qpi = pods.get(uid)
            if qpi is not None:
                return place, qpi
        return None

    def where(self, uid: str) -> str | None:
        """active, backoff, unschedulable, in-flight, or None (for tests and logs)."""
        found = self._find(uid)
        return found[0] if found else None

    def pending(self) -> dict[str, int]:
        return {ACTIVE: len(self._active), BACKOFF: len(self._backoff),
                UNSCHEDULABLE: len(self._unschedulable)}

    def __len__(self) -> int:
        return len(self._active) + len(self._backoff) + len(self._unschedulable)

    def _report(self) -> None:
        for queue, count in self.pending().items():
            metrics.PENDING_PODS.labels(queue).set(count)

    # -- moving between places ------------------------------------------------

    def _push_active(self, qpi: QueuedPodInfo) -> None:
        self._active[qpi.uid] = qpi
        heapq.heappush(self._active_heap,
                       (-qpi.pod.priority, qpi.timestamp, next(self._seq), qpi.uid))
        self._not_empty.set()

    def _push_backoff(self, qpi: QueuedPodInfo) -> None:
        self._backoff[qpi.uid] = qpi
        expiry = self.backoff_expiry(qpi)
        heapq.heappush(self._backoff_heap, (expiry, next(self._seq), qpi.uid))
        self._arm_timer(expiry)

    def backoff_duration(self, qpi: QueuedPodInfo) -> float:
        if qpi.attempts <= 0:
            return 0.0
        return min(self.max_backoff, self.initial_backoff * 2 ** min(qpi.attempts - 1, 64))

    def backoff_expiry(self, qpi: QueuedPodInfo) -> float:
        return qpi.timestamp + self.backoff_duration(qpi)

    def _backing_off(self, qpi: QueuedPodInfo) -> bool:
        return self.backoff_expiry(qpi) > self._clock()

    def _to_active_or_backoff(self, qpi: QueuedPodInfo) -> None:
        if self._backing_off(qpi):
            self._push_backoff(qpi)
        else:
            self._push_active(qpi)

    def _arm_timer(self, at: float) -> None:
        if at >= self._timer_at or self._closed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a synchronous unit test): flush_backoff is called by hand
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = loop.call_later(max(0.0, at - self._clock()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer, self._timer_at = None, float("inf")
        self.flush_backoff()

    # -- informer events ------------------------------------------------------

    def add(self, pod: Obj) -> None:
        """A new pending pod: it goes straight to active."""
        info = PodInfo(pod)
        if self._find(info.uid) is not None:
            self.update(pod, pod)
            return
        now = self._clock()
        self._push_active(QueuedPodInfo(info, timestamp=now, first_queued=now))
        self._report()

    def update(self, old: Obj, new: Obj) -> None:
        """A pending pod changed: keep the newest copy; a real change wakes it."""
        info = PodInfo(new)
        found = self._find(info.uid)
        if found is None:
            self.add(new)
            return
        place, qpi = found
        qpi.pod = info
        updated = is_pod_updated(old, new)
        if place == "in-flight":
            qpi.updated_in_flight = qpi.updated_in_flight or updated
        elif place == UNSCHEDULABLE and updated:
            del self._unschedulable[info.uid]
            self._to_active_or_backoff(qpi)
        elif place == ACTIVE:
            # The heap entry keeps the old priority; re-push so a priority change counts.
            self._push_active(qpi)
        self._report()

    def delete(self, pod: Obj) -> None:
        uid = PodInfo(pod).uid
        self._active.pop(uid, None)
        self._backoff.pop(uid, None)
        self._unschedulable.pop(uid, None)
        qpi = self._in_flight.get(uid)
        if qpi is not None:
            qpi.deleted = True
        self._report()

    def move_all_to_active_or_backoff(self, event: str = "") -> int:
        """The cluster changed: every unschedulable pod may fit now. Returns how many moved."""
        moved = list(self._unschedulable.values())
        self._unschedulable.clear()
        for qpi in moved:
            self._to_active_or_backoff(qpi)
        self.move_request_cycle = self.scheduling_cycle
        self._report()
        return len(moved)

    def flush_backoff(self) -> int:
        """Moves pods whose backoff is over to active; re-arms the timer for the rest."""
        now = self._clock()
        moved = 0
        while self._backoff_heap:
            expiry, _, uid = self._backoff_heap[0]
            qpi = self._backoff.get(uid)
            if qpi is None or self.backoff_expiry(qpi) != expiry:
                heapq.heappop(self._backoff_heap)  # stale: moved, deleted or re-pushed
                continue
            if expiry > now:
                self._arm_timer(expiry)
                break
            heapq.heappop(self._backoff_heap)
            del self._backoff[uid]
            self._push_active(qpi)
            moved += 1
        if moved:
            self._report()
        return moved

    def flush_unschedulable_leftover(self) -> int:
        """Moves pods that sat in unschedulable for max_unschedulable_duration."""
        now = self._clock()
        stale = [qpi for qpi in self._unschedulable.values()
                 if now - qpi.timestamp >= self.max_unschedulable_duration]
        for qpi in stale:
            del self._unschedulable[qpi.uid]
            self._to_active_or_backoff(qpi)
        if stale:
            self._report()
        return len(stale)

    # -- the scheduling loop's side --------------------------------------------

    async def pop(self) -> QueuedPodInfo:
        """Waits for the best active pod and marks it in flight; raises QueueClosed."""
        while True:
            if self._closed:
                raise QueueClosed("scheduling queue closed")
            while self._active_heap:
                _, timestamp, _, uid = heapq.heappop(self._active_heap)
                qpi = self._active.get(uid)
                if qpi is None or qpi.timestamp != timestamp:
                    continue  # stale heap entry
                del self._active[uid]
                self.scheduling_cycle += 1
                qpi.cycle = self.scheduling_cycle
                qpi.attempts += 1
                qpi.updated_in_flight = False
                self._in_flight[uid] = qpi
                self._report()
                return qpi
            self._not_empty.clear()
            await self._not_empty.wait()

    def done(self, uid: str) -> None:
        """The pod's attempt is over (bound, or dropped)."""
        self._in_flight.pop(uid, None)

    def add_unschedulable(self, qpi: QueuedPodInfo, *, error: bool = False) -> str | None:
        """Requeues a pod after a failed attempt; returns where it went (None: dropped)."""
        if self._in_flight.get(qpi.uid) is qpi:
            del self._in_flight[qpi.uid]
        if qpi.deleted or self._closed or self._find(qpi.uid) is not None:
            return None
        qpi.timestamp = self._clock()
        if error or qpi.updated_in_flight or self.move_request_cycle >= qpi.cycle:
            self._push_backoff(qpi)
            place = BACKOFF
        else:
            self._unschedulable[qpi.uid] = qpi
            place = UNSCHEDULABLE
        self._report()
        return place

    def requeue(self, qpi: QueuedPodInfo) -> None:
        """Puts an interrupted attempt (leadership lost) back in active, not counted."""
        if self._in_flight.get(qpi.uid) is qpi:
            del self._in_flight[qpi.uid]
        if qpi.deleted or self._find(qpi.uid) is not None:
            return
        qpi.attempts = max(0, qpi.attempts - 1)
        self._push_active(qpi)
        self._report()

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        self._not_empty.set()


__all__ = ["QueueClosed", "QueuedPodInfo", "SchedulingQueue", "is_pod_updated"]

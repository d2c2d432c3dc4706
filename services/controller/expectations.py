"""Expectations: what a controller is still waiting to see in its caches.

The one idea, from Kubernetes' `controller_utils.go`: after a controller asks
the API to create N pods, its cache shows them only when their watch events
arrive. A sync that ran before then would count too few pods and create them
again. So before writing, the controller records "I expect N additions (and
these deletions)" for the owner's key; watch events count them down; and
`satisfied(key)` tells the sync whether its cache can be trusted yet.

Deletions are tracked by pod key rather than counted, because one deletion may
be observed twice (the update that sets deletionTimestamp, then the delete).

An expectation that is never met (an event lost, a create that failed without
a clean error) must not wedge its owner forever: it expires after `ttl`
(5 minutes, as Kubernetes' ExpectationsTimeout).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

EXPECTATIONS_TIMEOUT = 300.0


@dataclass
class _Expectation:
    adds: int
    deletes: set[str] = field(default_factory=set)
    stamp: float = 0.0

    def fulfilled(self) -> bool:
        return self.adds <= 0 and not self.deletes


class Expectations:
    """Per-owner expected creations (a count) and deletions (a set of object keys)."""

    def __init__(self, *, ttl: float = EXPECTATIONS_TIMEOUT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._by_key: dict[str, _Expectation] = {}

    def satisfied(self, key: str) -> bool:
        """True when the owner may sync: nothing pending, or the wait expired."""
        exp = self._by_key.get(key)
        if exp is None:
            return True  # never set (new owner, or a restarted controller)
        if exp.fulfilled():
            return True
        return self._clock() - exp.stamp > self.ttl

    def expect_creations(self, key: str, count: int) -> None:
        """Replaces the owner's expectations with `count` pending creations."""
        self._by_key[key] = _Expectation(adds=count, stamp=self._clock())

    def expect_deletions(self, key: str, deleted: Iterable[str]) -> None:
        """Replaces the owner's expectations with these pending deletions."""
        self._by_key[key] = _Expectation(adds=0, deletes=set(deleted), stamp=self._clock())

    def expect(self, key: str, creations: int, deleted: Iterable[str]) -> None:
        """Replaces the owner's expectations with both (a DaemonSet's syncNodes does both)."""
        self._by_key[key] = _Expectation(adds=creations, deletes=set(deleted),
                                         stamp=self._clock())

    def creation_observed(self, key: str) -> None:
        exp = self._by_key.get(key)
        if exp is not None:
            exp.adds -= 1

    def deletion_observed(self, key: str, deleted: str) -> None:
        exp = self._by_key.get(key)
        if exp is not None:
            exp.deletes.discard(deleted)

    def pending(self, key: str) -> tuple[int, int]:
        """(creations, deletions) still expected, for logs and tests."""
        exp = self._by_key.get(key)
        if exp is None:
            return 0, 0
        return max(0, exp.adds), len(exp.deletes)

    def delete(self, key: str) -> None:
        """Forgets an owner (it is gone)."""
        self._by_key.pop(key, None)


__all__ = ["EXPECTATIONS_TIMEOUT", "Expectations"]

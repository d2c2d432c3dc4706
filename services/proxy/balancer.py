"""Choosing an endpoint for one userspace connection.

A `Balancer` belongs to one service port. It picks round-robin or at random
among the Ready endpoints, honours ClientIP session affinity (a client keeps
its endpoint until it has been idle for the timeout), and steers new
connections away from an endpoint that just refused one, for a short
quarantine, so that a dead endpoint costs one failed connect rather than one
per connection. If every endpoint is quarantined it still tries them: the
quarantine is a preference, never a reason to refuse a client.

Endpoint changes replace the list in place, so they apply to the very next
connection.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Collection, Sequence

from .model import Endpoint

ROUND_ROBIN = "round-robin"
RANDOM = "random"
MODES = (ROUND_ROBIN, RANDOM)

_PRUNE_EVERY = 1024  # picks between sweeps of expired affinity entries


class Balancer:
    def __init__(
        self,
        endpoints: Sequence[Endpoint] = (),
        *,
        mode: str = ROUND_ROBIN,
        affinity_timeout: float | None = None,
        quarantine: float = 2.0,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown balancing mode {mode!r} (want one of {MODES})")
        self.mode = mode
        self.quarantine = quarantine
        self._rng = rng or random.Random()
        self._clock = clock
        self._next = 0
        self._picks = 0
        self.endpoints: tuple[Endpoint, ...] = ()
        self.affinity_timeout: float | None = None
        #: client IP -> (endpoint, last used)
        self._affinity: dict[str, tuple[Endpoint, float]] = {}
        #: endpoint -> quarantined until
        self._failed: dict[Endpoint, float] = {}
        self.update(endpoints, affinity_timeout)

    def update(self, endpoints: Sequence[Endpoint], affinity_timeout: float | None) -> None:
        """Replaces the endpoints; affinity to an endpoint that left is forgotten."""
        self.endpoints = tuple(endpoints)
        current = set(self.endpoints)
        if affinity_timeout != self.affinity_timeout:
            self._affinity.clear()
        self.affinity_timeout = affinity_timeout
        self._affinity = {ip: v for ip, v in self._affinity.items() if v[0] in current}
        self._failed = {ep: t for ep, t in self._failed.items() if ep in current}

    def pick(self, client_ip: str, exclude: Collection[Endpoint] = ()) -> Endpoint | None:
        """The endpoint for a new connection from client_ip, or None if none is left."""
        now = self._clock()
        self._picks += 1
        if self._picks % _PRUNE_EVERY == 0:
            self._prune(now)
        if self.affinity_timeout is not None:
            held = self._affinity.get(client_ip)
            if held is not None:
                ep, last = held
                if now - last > self.affinity_timeout:
                    del self._affinity[client_ip]
                elif ep not in exclude and self._failed.get(ep, 0.0) <= now:
                    return ep
        candidates = [ep for ep in self.endpoints if ep not in exclude]
        if not candidates:
            return None
        healthy = [ep for ep in candidates if self._failed.get(ep, 0.0) <= now]
        pool = healthy or candidates
        if self.mode == RANDOM:
            return self._rng.choice(pool)
        # Round-robin over the full list, skipping what this connection cannot use,
        # so that exclusions do not skew the rotation of the others.
        allowed = set(pool)
        n = len(self.endpoints)
        for step in range(n):
            ep = self.endpoints[(self._next + step) % n]
            if ep in allowed:
                self._next = (self._next + step + 1) % n
                return ep
        return None  # unreachable: pool is a non-empty subset of endpoints

    def connected(self, client_ip: str, ep: Endpoint) -> None:
        """Records a successful connection (refreshes the client's affinity)."""
        self._failed.pop(ep, None)
        if self.affinity_timeout is not None:
            self._affinity[client_ip] = (ep, self._clock())

    def failed(self, client_ip: str, ep: Endpoint) -> None:
        """Records that ep refused or timed out: quarantine it, move the client off it."""
        self._failed[ep] = self._clock() + self.quarantine
        held = self._affinity.get(client_ip)
        if held is not None and held[0] == ep:
            del self._affinity[client_ip]

    def _prune(self, now: float) -> None:
        if self.affinity_timeout is not None:
            timeout = self.affinity_timeout
            self._affinity = {ip: v for ip, v in self._affinity.items()
                              if now - v[1] <= timeout}
        self._failed = {ep: t for ep, t in self._failed.items() if t > now}

    def affinity_size(self) -> int:
        return len(self._affinity)

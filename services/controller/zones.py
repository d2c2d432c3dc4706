"""Zone disruption: how fast the node lifecycle controller may start evicting.

Evicting the pods of a lost node is right when one node dies and wrong when a
network blip silences most of them at once: the pods would all be deleted for
nothing. So, as Kubernetes' node lifecycle controller does, the NoExecute
taints that start evictions are added through a rate-limited queue per zone
(a token bucket of burst 1), and each monitor pass looks at every zone's
Ready conditions to choose that zone's rate:

- **Normal**: `--node-eviction-rate` nodes per second (0.1);
- **PartialDisruption** (more than 2 nodes not Ready, and at least
  `--unhealthy-zone-threshold` of them, 0.55): `--secondary-node-eviction-rate`
  (0.01) if the zone has more than `--large-cluster-size-threshold` nodes (50),
  else 0: a small zone stops evicting;
- **FullDisruption** (no node Ready): the normal rate, since the zone may
  really be gone, *unless every zone is fully disrupted*: then the fault is
  most likely ours (the control plane's network), so every eviction stops and
  the NoExecute taints already added come off, until some node is Ready again.

A zone is the node's `topology.kubernetes.io/region` and `.../zone` labels (or
their failure-domain.beta predecessors); a node without them is in zone "".
Everything here is pure and takes its clock as an argument, so that tests can
drive it.
"""

from __future__ import annotations

import enum
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]
Clock = Callable[[], float]

ZONE_LABELS = ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")
REGION_LABELS = ("topology.kubernetes.io/region", "failure-domain.beta.kubernetes.io/region")
EXCLUDE_LABEL = "node.kubernetes.io/exclude-disruption"
EVICTION_BURST = 1
TAINTING_PERIOD = 0.1  # Kubernetes' NodeEvictionPeriod: how often the tainting queues run


class ZoneState(enum.StrEnum):
    INITIAL = "Initial"
    NORMAL = "Normal"
    PARTIAL_DISRUPTION = "PartialDisruption"
    FULL_DISRUPTION = "FullDisruption"


def zone_key(node: Obj) -> str:
    """Kubernetes' GetZoneKey: region and zone joined by ':\\x00:'; '' without labels."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    region = next((labels[k] for k in REGION_LABELS if labels.get(k)), "")
    zone = next((labels[k] for k in ZONE_LABELS if labels.get(k)), "")
    if not region and not zone:
        return ""
    return f"{region}:\x00:{zone}"


def excluded_from_disruption(node: Obj) -> bool:
    return EXCLUDE_LABEL in ((node.get("metadata") or {}).get("labels") or {})


def compute_zone_state(ready: Iterable[str | None], threshold: float) -> tuple[int, ZoneState]:
    """(not-Ready nodes, state) of a zone from its nodes' Ready statuses (None: none)."""
    statuses = list(ready)
    not_ready = sum(1 for s in statuses if s != "True")
    ready_count = len(statuses) - not_ready
    if ready_count == 0 and not_ready > 0:
        return not_ready, ZoneState.FULL_DISRUPTION
    if not_ready > 2 and not_ready / (not_ready + ready_count) >= threshold:
        return not_ready, ZoneState.PARTIAL_DISRUPTION
    return not_ready, ZoneState.NORMAL


@dataclass(frozen=True)
class EvictionRates:
    """The four flags, with Kubernetes' defaults."""

    eviction_rate: float = 0.1
    secondary_eviction_rate: float = 0.01
    unhealthy_zone_threshold: float = 0.55
    large_cluster_threshold: int = 50

    def for_state(self, state: ZoneState, zone_size: int) -> float:
        """Nodes per second a zone in this state may have NoExecute-tainted."""
        if state == ZoneState.PARTIAL_DISRUPTION:
            return (self.secondary_eviction_rate if zone_size > self.large_cluster_threshold
                    else 0.0)
        return self.eviction_rate  # Normal, and FullDisruption of some zones only


class TokenBucket:
    """client-go's token bucket: qps tokens a second, at most burst stored; qps 0 never."""

    def __init__(self, qps: float, burst: int = EVICTION_BURST, *,
                 clock: Clock = time.monotonic) -> None:
        self.qps = qps
        self.burst = burst
        self.clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def try_accept(self) -> bool:
        if self.qps <= 0:
            return False
        now = self.clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.qps)
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


@dataclass
class _Timed:
    value: str
    uid: str
    process_at: float


@dataclass
class RateLimitedTimedQueue:
    """Kubernetes' RateLimitedTimedQueue: unique node names, each tried at most once per token.

    `try_(fn)` calls fn(name, uid) on queued names in order while the limiter
    accepts; fn returns (done, retry_after): done names leave the queue, others
    are tried again after retry_after.
    """

    limiter: TokenBucket
    clock: Clock = time.monotonic
    _items: OrderedDict[str, _Timed] = field(default_factory=OrderedDict)

    def add(self, name: str, uid: str) -> bool:
        if name in self._items:
            return False
        self._items[name] = _Timed(name, uid, self.clock())
        return True

    def remove(self, name: str) -> bool:
        return self._items.pop(name, None) is not None

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __len__(self) -> int:
        return len(self._items)

    def head(self) -> _Timed | None:
        due = sorted(self._items.values(), key=lambda t: t.process_at)
        return due[0] if due else None

    def swap_limiter(self, qps: float) -> None:
        """A new rate; with burst 1, a limiter that was empty leaves the new one empty too."""
        if self.limiter.qps == qps:
            return
        new = TokenBucket(qps, self.limiter.burst, clock=self.limiter.clock)
        if qps > 0 and not self.limiter.try_accept():
            new.try_accept()
        self.limiter = new

    def names(self) -> list[str]:
        return list(self._items)

    async def try_(self, fn: Callable[[str, str], Awaitable[tuple[bool, float]]]) -> None:
        """Tries the due names, oldest first, one token each (a token is spent even
        when the head is not due yet, as Kubernetes' queue does)."""
        item = self.head()
        while item is not None:
            if not self.limiter.try_accept():
                return
            now = self.clock()
            if now < item.process_at:
                return
            done, wait = await fn(item.value, item.uid)
            if done:
                self._items.pop(item.value, None)
            elif item.value in self._items:
                item.process_at = now + wait
            item = self.head()


def apply_disruption(states: dict[str, ZoneState], conditions: Mapping[str, list[str | None]],
                     rates: EvictionRates) -> tuple[dict[str, float], str]:
    """One monitor pass's handleDisruption, on the zones' previous states (updated in place).

    Returns the rate each zone's tainting queue must now use (only zones whose rate
    may have changed) and what happened to the cluster as a whole: "enter-full"
    (every zone just became fully disrupted: stop all evictions and take the
    NoExecute taints off every node), "exit-full" (some node is Ready again after
    that: give every node a fresh grace period) or "".
    """
    new_states: dict[str, ZoneState] = {}
    all_full = True
    for zone, ready in conditions.items():
        _, state = compute_zone_state(ready, rates.unhealthy_zone_threshold)
        if state != ZoneState.FULL_DISRUPTION:
            all_full = False
        new_states[zone] = state
        states.setdefault(zone, ZoneState.INITIAL)
    for zone in [z for z in states if z not in conditions]:
        del states[zone]
    all_were_full = all(s == ZoneState.FULL_DISRUPTION for s in states.values())
    if all_full and all_were_full:
        return {}, ""  # still all down: nothing changes (rates stay 0)
    if all_full:
        for zone in states:
            states[zone] = ZoneState.FULL_DISRUPTION
        return {zone: 0.0 for zone in states}, "enter-full"
    changed: dict[str, float] = {}
    for zone, old in states.items():
        new = new_states[zone]
        if old == new and not all_were_full:
            continue
        changed[zone] = rates.for_state(new, len(conditions[zone]))
        states[zone] = new
    return changed, "exit-full" if all_were_full else ""


__all__ = ["EXCLUDE_LABEL", "EvictionRates", "RateLimitedTimedQueue", "TAINTING_PERIOD",
           "TokenBucket", "ZoneState", "apply_disruption", "compute_zone_state",
           "excluded_from_disruption", "zone_key"]

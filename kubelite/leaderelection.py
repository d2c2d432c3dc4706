"""Leader election on coordination.k8s.io/v1 Lease objects, as in client-go.

The one idea: *the lease is a lock that expires*. A candidate takes the lease
when nobody holds it or the holder stopped renewing it (`renewTime +
leaseDurationSeconds` is in the past), and every write carries the
resourceVersion it read, so of two candidates racing for one lease exactly one
write succeeds (the loser gets ConflictError or AlreadyExistsError).

The leader renews every `retry_period`. If it cannot renew for `renew_deadline`
it stops leading on its own; because `renew_deadline < lease_duration`, it has
stopped before anybody else may take the lease. On cancellation the leader
stops its work first and then releases the lease (clears holderIdentity) so a
successor takes over at its next retry instead of after a full lease duration.

Expiry is judged from renewTime against this machine's wall clock, so the
candidates' clocks must agree to well within lease_duration - renew_deadline
(true for processes on one host, or hosts running NTP).

Lease fields: spec.holderIdentity, leaseDurationSeconds (an integer: shorter
durations round up to 1 s in the object, while this process keeps its own
float durations), acquireTime and renewTime (RFC 3339 with microseconds) and
leaseTransitions (incremented whenever the holder changes).
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from kubelite.errors import AlreadyExistsError, ApiError, ConflictError, NotFoundError
from kubelite.supervise import spawn

log = logging.getLogger("kubelite.leaderelection")

LEASES = "leases"
LEASE_API_VERSION = "coordination.k8s.io/v1"

Obj = dict[str, Any]
Callback = Callable[[], Awaitable[None] | None]


class LeaseClient(Protocol):
    """The calls leader election needs (kubelite.client.Client has them)."""

    async def get(self, resource: str, name: str, *, namespace: str | None = None) -> Obj: ...

    async def create(self, resource: str, obj: Obj, *, namespace: str | None = None) -> Obj: ...

    async def update(self, resource: str, obj: Obj, *, namespace: str | None = None) -> Obj: ...


def format_micro_time(moment: datetime) -> str:
    """RFC 3339 with microseconds in UTC, as Kubernetes' MicroTime: 2026-01-02T03:04:05.000000Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_micro_time(text: str | None) -> datetime | None:
    """Parses an RFC 3339 time (with or without fraction); None if absent or malformed."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def lease_duration_seconds(duration: float) -> int:
    """The integer leaseDurationSeconds for a float duration, rounded up, at least 1."""
    return max(1, math.ceil(duration))


def lease_is_held(spec: Obj | None, now: datetime) -> bool:
    """True when spec names a holder whose renewTime + leaseDurationSeconds is still ahead."""
    spec = spec or {}
    if not spec.get("holderIdentity"):
        return False
    renewed = parse_micro_time(spec.get("renewTime") or spec.get("acquireTime"))
    if renewed is None:
        return False
    duration = spec.get("leaseDurationSeconds") or 0
    return renewed + timedelta(seconds=float(duration)) > now


class Attempt(enum.Enum):
    """The outcome of one try to acquire or renew the lease."""

    ACQUIRED = "acquired"  # we hold the lease now (new or renewed)
    HELD_BY_OTHER = "held by other"  # somebody else holds a valid lease
    LOST_RACE = "lost race"  # a concurrent write won (conflict or already exists)


class LeaderElector:
    """Campaigns for one Lease and runs callbacks while this process leads.

    `on_started_leading` is called each time leadership is gained; if it returns
    an awaitable, that runs as a task which is cancelled when leadership ends.
    `on_stopped_leading` (sync or async) is called each time it ends. `run()`
    keeps campaigning after a loss until it is cancelled.
    """

    def __init__(
        self,
        client: LeaseClient,
        *,
        name: str,
        namespace: str,
        identity: str,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        on_started_leading: Callback | None = None,
        on_stopped_leading: Callback | None = None,
        release_on_cancel: bool = True,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not identity:
            raise ValueError("identity must not be empty")
        if not lease_duration > renew_deadline > retry_period > 0:
            raise ValueError("need lease_duration > renew_deadline > retry_period > 0")
        self.client = client
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.on_started_leading = on_started_leading
        self.on_stopped_leading = on_stopped_leading
        self.release_on_cancel = release_on_cancel
        self._clock = clock
        self._leading = False
        self._last_renew = 0.0  # time.monotonic() when the last successful attempt began
        self._lease: Obj | None = None  # the lease as last read or written
        self._work: asyncio.Task[Any] | None = None
        #: How many times this elector has become leader.
        self.terms = 0

    # -- state ----------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        """True while this process holds the lease and renewed it within renew_deadline."""
        return self._leading and time.monotonic() - self._last_renew < self.renew_deadline

    @property
    def leader_identity(self) -> str:
        """The holder named by the lease as last observed ("" if none)."""
        return ((self._lease or {}).get("spec") or {}).get("holderIdentity") or ""

    # -- the election ---------------------------------------------------------

    async def run(self) -> None:
        """Campaigns, leads, and campaigns again after a loss, until cancelled."""
        try:
            while True:
                await self._acquire()
                await self._start_leading()
                await self._renew_until_lost()
                log.warning(
                    "leader election %s/%s: %s lost the lease",
                    self.namespace,
                    self.name,
                    self.identity,
                )
                await self._stop_leading()
        finally:
            if self._leading:
                await self._stop_leading()
                if self.release_on_cancel:
                    await self._release()

    async def _acquire(self) -> None:
        while True:
            started = time.monotonic()
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
                # cancellation that races with completion, and run() must stop.
                async with asyncio.timeout(self.renew_deadline):
                    outcome = await self._try_acquire_or_renew()
            except (ApiError, TimeoutError) as err:
                log.info(
                    "leader election %s/%s: cannot reach the lease: %s",
                    self.namespace,
                    self.name,
                    err,
                )
                outcome = None
            if outcome is Attempt.ACQUIRED:
                self._last_renew = started
                return
            # Jitter so that candidates freed at the same moment do not collide forever.
            await asyncio.sleep(self.retry_period * (1.0 + 0.2 * random.random()))

    async def _renew_until_lost(self) -> None:
        while True:
            await asyncio.sleep(self.retry_period)
            deadline = self._last_renew + self.renew_deadline
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                started = time.monotonic()
                try:
                    async with asyncio.timeout(remaining):
                        outcome = await self._try_acquire_or_renew()
                except TimeoutError:
                    return
                except ApiError as err:
                    log.info(
                        "leader election %s/%s: renew failed: %s", self.namespace, self.name, err
                    )
                    outcome = None
                if outcome is Attempt.ACQUIRED:
                    self._last_renew = started
                    break
                if outcome is Attempt.HELD_BY_OTHER:
                    return
                await asyncio.sleep(
                    min(self.retry_period / 2, max(0.0, deadline - time.monotonic()))
                )

    async def _try_acquire_or_renew(self) -> Attempt:
        now = self._clock()
        stamp = format_micro_time(now)
        try:
            lease = await self.client.get(LEASES, self.name, namespace=self.namespace)
        except NotFoundError:
            lease = None
        if lease is None:
            new = {
                "apiVersion": LEASE_API_VERSION,
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self._spec(acquire_time=stamp, renew_time=stamp, transitions=0),
            }
            try:
                self._lease = await self.client.create(LEASES, new, namespace=self.namespace)
            except AlreadyExistsError:
                return Attempt.LOST_RACE
            return Attempt.ACQUIRED

        self._lease = lease
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        if holder != self.identity and lease_is_held(spec, now):
            return Attempt.HELD_BY_OTHER
        transitions = int(spec.get("leaseTransitions") or 0)
        if holder == self.identity and self._leading:
            acquire_time = spec.get("acquireTime") or stamp
        else:
            acquire_time = stamp
            if holder != self.identity:
                transitions += 1
        updated = {
            **lease,
            "spec": {
                **spec,
                **self._spec(acquire_time=acquire_time, renew_time=stamp, transitions=transitions),
            },
        }
        try:
            self._lease = await self.client.update(LEASES, updated, namespace=self.namespace)
        except (ConflictError, NotFoundError):
            return Attempt.LOST_RACE
        return Attempt.ACQUIRED

    def _spec(self, *, acquire_time: str, renew_time: str, transitions: int) -> Obj:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": lease_duration_seconds(self.lease_duration),
            "acquireTime": acquire_time,
            "renewTime": renew_time,
            "leaseTransitions": transitions,
        }

    async def _release(self) -> None:
        """Clears holderIdentity on the lease we last wrote, if it is still ours."""
        lease = self._lease
        if lease is None or self.leader_identity != self.identity:
            return
        stamp = format_micro_time(self._clock())
        spec = {
            **(lease.get("spec") or {}),
            "holderIdentity": "",
            "leaseDurationSeconds": 1,
            "acquireTime": stamp,
            "renewTime": stamp,
        }
        try:
            async with asyncio.timeout(self.renew_deadline):
                self._lease = await self.client.update(
                    LEASES, {**lease, "spec": spec}, namespace=self.namespace
                )
        except Exception as err:
            # Someone else wrote it (then it is theirs), the API is down or the
            # client is already closed: the lease simply expires.
            log.info("leader election %s/%s: release failed: %s", self.namespace, self.name, err)

    # -- callbacks ------------------------------------------------------------

    async def _start_leading(self) -> None:
        self._leading = True
        self.terms += 1
        log.info(
            "leader election %s/%s: %s became leader", self.namespace, self.name, self.identity
        )
        if self.on_started_leading is None:
            return
        result = self.on_started_leading()
        if not inspect.isawaitable(result):
            return
        first: list[Any] = [result]

        def work() -> Any:
            # The first run is the awaitable already made; a restart asks for a new one.
            return first.pop() if first else self.on_started_leading()  # type: ignore[misc]

        # Supervised: leading work that raised would otherwise leave a leader that
        # holds the lease and does nothing until it loses it.
        self._work = spawn(f"leader-{self.name}", work, logger=log)

    async def _stop_leading(self) -> None:
        self._leading = False
        work, self._work = self._work, None
        if work is not None and not work.done():
            work.cancel()
            await asyncio.wait([work])  # never raises the work's own error or cancellation
        if self.on_stopped_leading is not None:
            try:
                result = self.on_stopped_leading()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception(
                    "leader election %s/%s: on_stopped_leading failed", self.namespace, self.name
                )


__all__ = [
    "Attempt",
    "LeaderElector",
    "LeaseClient",
    "format_micro_time",
    "lease_duration_seconds",
    "lease_is_held",
    "parse_micro_time",
]

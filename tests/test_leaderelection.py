"""Leader election: lease arithmetic (unit) and elections on a real apiserver."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest

from kubelite import testing
from kubelite.client import Client
from kubelite.leaderelection import (
    LeaderElector,
    format_micro_time,
    lease_duration_seconds,
    lease_is_held,
    parse_micro_time,
)

# Elections run on 0.2 s retry periods and the tests time them: poll finer than the kit.
eventually = partial(testing.eventually, interval=0.01)

# Short timings: lease 1 s, renew deadline 0.7 s, retry 0.2 s.
TIMINGS = {"lease_duration": 1.0, "renew_deadline": 0.7, "retry_period": 0.2}


class Campaign:
    """Runs electors as tasks and records their callbacks."""

    def __init__(self) -> None:
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.electors: dict[str, LeaderElector] = {}
        self.log: list[tuple[float, str, str]] = []

    def start(self, client: Client, namespace: str, identity: str, **kwargs) -> LeaderElector:
        settings = {**TIMINGS, **kwargs}
        elector = LeaderElector(
            client,
            name="lock",
            namespace=namespace,
            identity=identity,
            on_started_leading=lambda: self.log.append((time.monotonic(), identity, "start")),
            on_stopped_leading=lambda: self.log.append((time.monotonic(), identity, "stop")),
            **settings,
        )
        self.electors[identity] = elector
        self.tasks[identity] = asyncio.create_task(elector.run())
        return elector

    def leaders(self) -> list[str]:
        return [i for i, e in self.electors.items() if e.is_leader]

    async def cancel(self, identity: str) -> None:
        task = self.tasks[identity]
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def cancel_all(self) -> None:
        for identity in list(self.tasks):
            await self.cancel(identity)


@pytest.fixture
async def campaign():
    c = Campaign()
    yield c
    await c.cancel_all()


# ---------------------------------------------------------------- unit


def test_micro_time_round_trips_with_microseconds():
    """Times are written as RFC 3339 UTC with six fractional digits, and parse back."""
    moment = datetime(2026, 1, 2, 3, 4, 5, 7, tzinfo=UTC)
    assert format_micro_time(moment) == "2026-01-02T03:04:05.000007Z"
    assert parse_micro_time("2026-01-02T03:04:05.000007Z") == moment
    assert parse_micro_time("2026-01-02T03:04:05Z") == moment.replace(microsecond=0)
    assert parse_micro_time("2026-01-02T04:04:05+01:00") == moment.replace(microsecond=0)
    assert parse_micro_time("garbage") is None
    assert parse_micro_time(None) is None


def test_sub_second_durations_round_up_to_whole_seconds():
    """leaseDurationSeconds is an integer: 0.3 s becomes 1 s and 1.2 s becomes 2 s."""
    assert lease_duration_seconds(0.3) == 1
    assert lease_duration_seconds(1.0) == 1
    assert lease_duration_seconds(1.2) == 2
    assert lease_duration_seconds(15) == 15


def test_lease_is_held_until_renew_time_plus_duration():
    """A lease is held while renewTime + leaseDurationSeconds is ahead, and free if no holder."""
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    spec = {
        "holderIdentity": "a",
        "leaseDurationSeconds": 10,
        "renewTime": format_micro_time(now - timedelta(seconds=9)),
    }
    assert lease_is_held(spec, now)
    assert not lease_is_held(spec, now + timedelta(seconds=2))
    assert not lease_is_held({**spec, "holderIdentity": ""}, now)
    assert not lease_is_held({**spec, "renewTime": None}, now)
    assert not lease_is_held(None, now)


def test_elector_rejects_inconsistent_timings():
    """lease_duration > renew_deadline > retry_period is required, as in client-go."""
    with pytest.raises(ValueError):
        LeaderElector(
            None,
            name="l",
            namespace="n",
            identity="a",  # type: ignore[arg-type]
            lease_duration=1,
            renew_deadline=1,
            retry_period=0.2,
        )
    with pytest.raises(ValueError):
        LeaderElector(
            None,
            name="l",
            namespace="n",
            identity="",  # type: ignore[arg-type]
            lease_duration=1,
            renew_deadline=0.7,
            retry_period=0.2,
        )


# ---------------------------------------------------------------- against the apiserver


async def test_exactly_one_of_two_candidates_leads(client, namespace, campaign):
    """Two electors on one lease: one leads, the lease names it, and it keeps renewing."""
    campaign.start(client, namespace, "a")
    campaign.start(client, namespace, "b")
    await eventually(lambda: len(campaign.leaders()) == 1, what="a leader")
    leader = campaign.leaders()[0]
    lease = await client.get("leases", "lock", namespace=namespace)
    assert lease["spec"]["holderIdentity"] == leader
    assert lease["spec"]["leaseDurationSeconds"] == 1
    first_renew = parse_micro_time(lease["spec"]["renewTime"])

    for _ in range(10):  # over two lease durations of renewals
        await asyncio.sleep(0.2)
        assert campaign.leaders() == [leader]
    lease = await client.get("leases", "lock", namespace=namespace)
    assert lease["spec"]["holderIdentity"] == leader
    assert parse_micro_time(lease["spec"]["renewTime"]) > first_renew
    assert [entry[1:] for entry in campaign.log] == [(leader, "start")]


async def test_successor_takes_over_within_the_lease_duration_when_leader_is_cancelled(
    client, namespace, campaign
):
    """Cancelling the leader releases the lease; the other candidate leads within 1 s."""
    campaign.start(client, namespace, "a")
    await eventually(lambda: campaign.leaders() == ["a"], what="a to lead")
    campaign.start(client, namespace, "b")
    await asyncio.sleep(0.3)
    assert campaign.leaders() == ["a"]
    before = await client.get("leases", "lock", namespace=namespace)

    cancelled_at = time.monotonic()
    await campaign.cancel("a")
    assert ("a", "stop") in [entry[1:] for entry in campaign.log]
    await eventually(
        lambda: campaign.leaders() == ["b"], timeout=TIMINGS["lease_duration"],
        what="b to take over",
    )
    took = time.monotonic() - cancelled_at
    assert took < TIMINGS["lease_duration"]
    after = await client.get("leases", "lock", namespace=namespace)
    assert after["spec"]["holderIdentity"] == "b"
    assert after["spec"]["leaseTransitions"] == before["spec"]["leaseTransitions"] + 1
    stop_a = next(t for t, who, what in campaign.log if (who, what) == ("a", "stop"))
    start_b = next(t for t, who, what in campaign.log if (who, what) == ("b", "start"))
    assert stop_a <= start_b  # never two leaders at once


async def test_crashed_leader_is_replaced_only_after_its_lease_expires(client, namespace, campaign):
    """Without a release, a successor waits for renewTime + leaseDurationSeconds."""
    campaign.start(client, namespace, "a", release_on_cancel=False)
    await eventually(lambda: campaign.leaders() == ["a"], what="a to lead")
    campaign.start(client, namespace, "b")
    await campaign.cancel("a")  # like a crash: the lease is left as it was
    lease = await client.get("leases", "lock", namespace=namespace)
    assert lease["spec"]["holderIdentity"] == "a"
    expires = parse_micro_time(lease["spec"]["renewTime"]) + timedelta(seconds=1)

    await eventually(lambda: campaign.leaders() == ["b"], timeout=3, what="b to take over")
    taken = await client.get("leases", "lock", namespace=namespace)
    assert taken["spec"]["holderIdentity"] == "b"
    assert parse_micro_time(taken["spec"]["acquireTime"]) >= expires


async def test_leader_that_cannot_renew_stops_within_the_renew_deadline(apiserver, campaign):
    """With the apiserver gone, the leader gives up after renew_deadline, before the
    lease could expire for anybody else."""
    async with Client(apiserver.target) as client:
        elector = campaign.start(client, "kube-system", "a")
        await eventually(lambda: elector.is_leader, what="a to lead")
        await asyncio.to_thread(apiserver.stop)
        stopped_at = time.monotonic()
        await eventually(
            lambda: ("a", "stop") in [e[1:] for e in campaign.log],
            timeout=2,
            what="a to stop leading",
        )
        stop_time = next(t for t, who, what in campaign.log if what == "stop")
        # The last renew happened up to one retry period before the stop.
        assert stop_time - stopped_at < TIMINGS["renew_deadline"] + 0.2
        assert stop_time - stopped_at < TIMINGS["lease_duration"]
        assert not elector.is_leader
        await campaign.cancel_all()


async def test_elector_leads_again_after_the_api_comes_back(apiserver, campaign):
    """After losing the lease to an outage, run() campaigns again and regains it."""
    async with Client(apiserver.target) as client:
        elector = campaign.start(client, "kube-system", "a")
        await eventually(lambda: elector.is_leader, what="a to lead")
        await asyncio.to_thread(apiserver.stop)
        await eventually(lambda: not elector.is_leader, timeout=2, what="a to stop leading")
        await asyncio.to_thread(apiserver.restart)
        await eventually(lambda: elector.is_leader, timeout=10, what="a to lead again")
        assert elector.terms == 2
        assert [e[1:] for e in campaign.log] == [("a", "start"), ("a", "stop"), ("a", "start")]
        await campaign.cancel_all()


async def test_async_leader_work_is_cancelled_when_leadership_ends(client, namespace):
    """An async on_started_leading runs while leading and is cancelled on stop."""
    running = asyncio.Event()
    cancelled = asyncio.Event()

    async def lead() -> None:
        running.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    elector = LeaderElector(
        client, name="lock", namespace=namespace, identity="a", on_started_leading=lead, **TIMINGS
    )
    task = asyncio.create_task(elector.run())
    await asyncio.wait_for(running.wait(), 5)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert cancelled.is_set()
    lease = await client.get("leases", "lock", namespace=namespace)
    assert lease["spec"]["holderIdentity"] == ""  # released on cancel


async def test_many_candidates_never_overlap(client, namespace, campaign):
    """Five candidates racing and handing over: at most one believes it leads at any time."""
    for i in range(5):
        campaign.start(client, namespace, f"c{i}")
    overlaps = 0
    for _ in range(3):
        await eventually(lambda: len(campaign.leaders()) == 1, what="a leader")
        for _ in range(20):
            overlaps += len(campaign.leaders()) > 1
            await asyncio.sleep(0.02)
        await campaign.cancel(campaign.leaders()[0])
        del campaign.electors[
            next(i for i, t in campaign.tasks.items() if t.done() and i in campaign.electors)
        ]
    assert overlaps == 0
    await eventually(lambda: len(campaign.leaders()) == 1, what="a fourth leader")
    lease = await client.get("leases", "lock", namespace=namespace)
    assert lease["spec"]["holderIdentity"] == campaign.leaders()[0]
    assert lease["spec"]["leaseTransitions"] == 3

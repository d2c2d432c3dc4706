"""Unit tests of the work queue: dedup, one worker per key, delays, rate limits."""

from __future__ import annotations

import asyncio

import pytest

from kubelite.workqueue import (
    ExponentialBackoff,
    QueueShutDown,
    RateLimiter,
    TokenBucket,
    WorkQueue,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_duplicate_adds_collapse_into_one_key():
    """Adding a queued key again does not queue it twice."""
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    q.add("a")
    q.add("b")
    assert len(q) == 2 and q.len() == 2
    assert await q.get() == "a"
    assert await q.get() == "b"
    assert len(q) == 0


async def test_keys_come_out_in_fifo_order():
    """Keys are handed out in the order they were first added."""
    q: WorkQueue[str] = WorkQueue()
    for key in ["c", "a", "b", "a"]:
        q.add(key)
    assert [await q.get() for _ in range(3)] == ["c", "a", "b"]


async def test_key_being_processed_is_not_handed_to_a_second_worker():
    """A key re-added while a worker holds it waits until done()."""
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    assert await q.get() == "a"
    q.add("a")
    assert len(q) == 0
    second = asyncio.create_task(q.get())
    await asyncio.sleep(0.01)
    assert not second.done()
    q.done("a")
    assert await asyncio.wait_for(second, 1) == "a"


async def test_done_without_readd_does_not_requeue():
    """A key processed once and not re-added is gone after done()."""
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    await q.get()
    q.done("a")
    assert len(q) == 0
    assert not q.is_processing("a")


async def test_get_waits_for_an_add():
    """get() blocks until a key arrives, without busy-waiting."""
    q: WorkQueue[str] = WorkQueue()
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0.01)
    assert not getter.done()
    q.add("x")
    assert await asyncio.wait_for(getter, 1) == "x"


async def test_concurrent_workers_never_share_a_key_and_lose_no_readd():
    """With many workers and re-adds, each key is processed by one worker at a time,
    and every key is picked up again after its last add."""
    q: WorkQueue[int] = WorkQueue()
    in_flight: set[int] = set()
    tick = 0
    last_add: dict[int, int] = {}
    last_get: dict[int, int] = {}
    overlaps = 0

    async def worker() -> None:
        nonlocal overlaps, tick
        while True:
            try:
                key = await q.get()
            except QueueShutDown:
                return
            tick += 1
            last_get[key] = tick
            if key in in_flight:
                overlaps += 1
            in_flight.add(key)
            await asyncio.sleep(0.001)
            in_flight.discard(key)
            q.done(key)

    workers = [asyncio.create_task(worker()) for _ in range(8)]
    for _ in range(20):
        for key in range(10):
            tick += 1
            last_add[key] = tick
            q.add(key)
        await asyncio.sleep(0.0005)
    q.shut_down()  # workers drain everything that was added, then stop
    await asyncio.wait_for(asyncio.gather(*workers), 2)
    assert overlaps == 0
    assert all(last_get[key] > last_add[key] for key in range(10))


async def test_add_after_delays_the_key():
    """add_after makes the key available only once the delay has passed."""
    q: WorkQueue[str] = WorkQueue()
    q.add_after("a", 0.05)
    assert len(q) == 0 and q.num_waiting() == 1
    await asyncio.sleep(0.02)
    assert len(q) == 0
    assert await asyncio.wait_for(q.get(), 1) == "a"
    assert q.num_waiting() == 0


async def test_add_after_keeps_the_earliest_deadline_per_key():
    """A later add_after of a waiting key does not postpone it; an earlier one advances it."""
    q: WorkQueue[str] = WorkQueue()
    loop = asyncio.get_running_loop()
    q.add_after("a", 0.3)
    q.add_after("a", 0.02)
    q.add_after("a", 5.0)
    assert q.num_waiting() == 1
    start = loop.time()
    assert await asyncio.wait_for(q.get(), 1) == "a"
    assert loop.time() - start < 0.2


async def test_add_after_with_no_delay_adds_now():
    """A zero or negative delay is a plain add."""
    q: WorkQueue[str] = WorkQueue()
    q.add_after("a", 0)
    assert len(q) == 1


def test_exponential_backoff_doubles_and_caps():
    """Per-key backoff is base*2**n, capped, per key, and reset by forget."""
    b: ExponentialBackoff[str] = ExponentialBackoff(base=0.005, cap=0.03)
    assert [b.when("a") for _ in range(5)] == [0.005, 0.01, 0.02, 0.03, 0.03]
    assert b.when("b") == 0.005
    assert b.num_requeues("a") == 5
    b.forget("a")
    assert b.num_requeues("a") == 0
    assert b.when("a") == 0.005


def test_exponential_backoff_survives_many_failures():
    """Hundreds of failures neither overflow nor exceed the cap."""
    b: ExponentialBackoff[str] = ExponentialBackoff()
    for _ in range(2000):
        delay = b.when("a")
    assert delay == 1000.0


def test_token_bucket_allows_a_burst_then_paces_at_qps():
    """The bucket lets `burst` calls through, then spaces them 1/qps apart."""
    clock = FakeClock()
    bucket = TokenBucket(qps=10, burst=3, clock=clock)
    assert [bucket.reserve() for _ in range(3)] == [0, 0, 0]
    assert bucket.reserve() == pytest.approx(0.1)
    assert bucket.reserve() == pytest.approx(0.2)
    clock.now += 1.0  # refills, but never above burst
    assert bucket.reserve() == 0
    assert bucket.reserve() == 0


def test_rate_limiter_takes_the_larger_of_backoff_and_bucket():
    """A key's delay is the max of its own backoff and the overall bucket."""
    clock = FakeClock()
    limiter: RateLimiter[str] = RateLimiter(base=0.001, cap=10, qps=1, burst=1, clock=clock)
    assert limiter.when("a") == 0.001  # token available, backoff wins
    assert limiter.when("b") == pytest.approx(1.0)  # bucket empty, bucket wins
    clock.now += 100
    for _ in range(14):
        delay = limiter.when("a")
        clock.now += 100
    assert delay == 10  # backoff cap exceeds the bucket's wait


async def test_add_rate_limited_requeues_with_backoff_and_forget_resets():
    """Failed keys come back after growing delays; forget clears the count."""
    q: WorkQueue[str] = WorkQueue(rate_limiter=RateLimiter(base=0.01, cap=1.0))
    loop = asyncio.get_running_loop()
    q.add_rate_limited("a")
    q.add_rate_limited("a")  # waiting key: the earlier deadline stays
    assert q.num_requeues("a") == 2
    start = loop.time()
    assert await asyncio.wait_for(q.get(), 1) == "a"
    assert 0.005 <= loop.time() - start < 0.2
    q.done("a")
    q.add_rate_limited("a")  # third failure: 0.04 s
    start = loop.time()
    assert await asyncio.wait_for(q.get(), 1) == "a"
    assert loop.time() - start >= 0.035
    q.forget("a")
    assert q.num_requeues("a") == 0


async def test_shut_down_drains_then_raises():
    """After shut_down, queued keys are still handed out, then get() raises."""
    q: WorkQueue[str] = WorkQueue()
    q.add("a")
    q.shut_down()
    q.add("b")  # ignored
    assert await q.get() == "a"
    with pytest.raises(QueueShutDown):
        await q.get()


async def test_shut_down_wakes_waiting_workers_and_cancels_timers():
    """Idle getters raise QueueShutDown and delayed keys never arrive."""
    q: WorkQueue[str] = WorkQueue()
    getters = [asyncio.create_task(q.get()) for _ in range(3)]
    q.add_after("late", 0.01)
    await asyncio.sleep(0)
    q.shut_down()
    results = await asyncio.wait_for(asyncio.gather(*getters, return_exceptions=True), 1)
    assert all(isinstance(r, QueueShutDown) for r in results)
    await asyncio.sleep(0.03)
    assert len(q) == 0 and q.num_waiting() == 0


async def test_cancelled_get_does_not_lose_a_key():
    """A worker cancelled while waiting leaves the next key for another worker."""
    q: WorkQueue[str] = WorkQueue()
    getter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    getter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await getter
    q.add("a")
    assert await asyncio.wait_for(q.get(), 1) == "a"

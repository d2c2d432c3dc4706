"""Unit tests of the scheduler's queue (backoff, unschedulable pool, moves) and cache (assume)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from services.scheduler.cache import SchedulerCache
from services.scheduler.framework import PodInfo
from services.scheduler.queue import QueueClosed, SchedulingQueue, is_pod_updated
from tests.helpers import node


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pending(name: str, *, priority: int = 0, cpu: str | None = None,
            node_name: str = "") -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "busybox"}
    if cpu:
        container["resources"] = {"requests": {"cpu": cpu}}
    spec: dict[str, Any] = {"containers": [container], "priority": priority}
    if node_name:
        spec["nodeName"] = node_name
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}",
                         "resourceVersion": "1"},
            "spec": spec, "status": {"phase": "Pending"}}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue(clock: Clock) -> SchedulingQueue:
    return SchedulingQueue(initial_backoff=1.0, max_backoff=4.0, max_unschedulable_duration=60.0,
                           clock=clock)


async def test_pop_hands_out_higher_priority_first_then_oldest(queue, clock):
    """spec.priority orders the active queue, then arrival time."""
    queue.add(pending("old"))
    clock.now += 1
    queue.add(pending("young"))
    queue.add(pending("important", priority=10))
    assert [(await queue.pop()).pod.name for _ in range(3)] == ["important", "old", "young"]


async def test_unschedulable_pod_waits_for_a_cluster_event(queue, clock):
    """A pod that fit nowhere stays parked, however long, until something changes."""
    queue.add(pending("p"))
    qpi = await queue.pop()
    assert queue.add_unschedulable(qpi) == "unschedulable"
    clock.now += 30
    assert queue.flush_backoff() == 0
    assert queue.pending() == {"active": 0, "backoff": 0, "unschedulable": 1}
    assert queue.move_all_to_active_or_backoff("NodeAdd") == 1
    assert queue.where("uid-p") == "active"  # its 1 s backoff is long over


async def test_moved_pod_waits_out_its_backoff(queue, clock):
    """An event right after a failure sends the pod to backoff until 2**(n-1) s have passed."""
    queue.add(pending("p"))
    for attempt, backoff in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 4.0)):  # capped at 4 s
        qpi = await queue.pop()
        assert qpi.attempts == attempt
        queue.add_unschedulable(qpi)
        queue.move_all_to_active_or_backoff("NodeUpdate")
        assert queue.where("uid-p") == "backoff"
        clock.now += backoff - 0.01
        assert queue.flush_backoff() == 0
        clock.now += 0.01
        assert queue.flush_backoff() == 1
        assert queue.where("uid-p") == "active"


async def test_event_during_an_attempt_sends_the_failure_to_backoff(queue):
    """A node added while a pod is in flight must not leave that pod parked forever."""
    queue.add(pending("p"))
    qpi = await queue.pop()
    queue.move_all_to_active_or_backoff("NodeAdd")  # nothing to move, but it is recorded
    assert queue.add_unschedulable(qpi) == "backoff"


async def test_status_only_updates_do_not_wake_a_parked_pod(queue):
    """The scheduler's own PodScheduled condition must not retry the pod (no hot loop)."""
    old = pending("p")
    queue.add(old)
    queue.add_unschedulable(await queue.pop())
    new = {**old, "metadata": {**old["metadata"], "resourceVersion": "2"},
           "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled",
                                                          "status": "False"}]}}
    assert not is_pod_updated(old, new)
    queue.update(old, new)
    assert queue.where("uid-p") == "unschedulable"
    relabeled = {**new, "metadata": {**new["metadata"], "labels": {"a": "b"}}}
    queue.update(new, relabeled)
    assert queue.where("uid-p") in ("active", "backoff")


async def test_deleted_pods_leave_the_queue_even_in_flight(queue):
    """A pod deleted during its attempt is not requeued when the attempt fails."""
    queue.add(pending("p"))
    qpi = await queue.pop()
    queue.delete(qpi.pod.pod)
    assert queue.add_unschedulable(qpi) is None
    assert len(queue) == 0


async def test_leftover_unschedulable_pods_are_flushed(queue, clock):
    """A parked pod is retried after max_unschedulable_duration even without events."""
    queue.add(pending("p"))
    queue.add_unschedulable(await queue.pop())
    clock.now += 59
    assert queue.flush_unschedulable_leftover() == 0
    clock.now += 1
    assert queue.flush_unschedulable_leftover() == 1


async def test_backoff_timer_moves_pods_without_polling():
    """With the real clock, a backed-off pod pops by itself once its backoff ends."""
    queue = SchedulingQueue(initial_backoff=0.05, max_backoff=0.1)
    queue.add(pending("p"))
    queue.add_unschedulable(await queue.pop(), error=True)
    assert queue.where("uid-p") == "backoff"
    qpi = await asyncio.wait_for(queue.pop(), 1.0)
    assert qpi.attempts == 2


async def test_close_wakes_pop():
    """Closing the queue ends a waiting pop() with QueueClosed."""
    queue = SchedulingQueue()
    waiter = asyncio.ensure_future(queue.pop())
    await asyncio.sleep(0)
    queue.close()
    with pytest.raises(QueueClosed):
        await waiter


# -- the cache ------------------------------------------------------------------------


def test_assumed_pod_counts_at_once_and_is_confirmed_by_the_watch(clock):
    """An assumed pod's requests count before the bind; the watch's copy confirms it."""
    cache = SchedulerCache(assumed_ttl=30, clock=clock)
    cache.add_node(node("n1", cpu="2"))
    pod = pending("p", cpu="1500m")
    cache.assume_pod(PodInfo(pod), "n1")
    assert cache.node_info("n1").requested["cpu"] == 1500
    assert cache.is_assumed("uid-p")
    cache.finish_binding("uid-p")
    cache.add_pod({**pod, "spec": {**pod["spec"], "nodeName": "n1"}})  # the watch echoes it
    assert not cache.is_assumed("uid-p")
    clock.now += 60
    assert cache.cleanup_expired() == []
    assert cache.node_info("n1").requested["cpu"] == 1500


def test_forgotten_and_expired_assumptions_free_the_node(clock):
    """A failed bind (forget) or an unconfirmed one (TTL) gives the resources back."""
    cache = SchedulerCache(assumed_ttl=30, clock=clock)
    cache.add_node(node("n1", cpu="2"))
    cache.assume_pod(PodInfo(pending("a", cpu="1")), "n1")
    cache.assume_pod(PodInfo(pending("b", cpu="1")), "n1")
    cache.forget_pod("uid-a")  # the bind failed
    assert cache.node_info("n1").requested["cpu"] == 1000
    cache.finish_binding("uid-b")
    clock.now += 29
    assert cache.cleanup_expired() == []
    clock.now += 1
    assert [p.name for p in cache.cleanup_expired()] == ["b"]
    assert cache.node_info("n1").requested["cpu"] == 0


def test_cache_keeps_pods_of_nodes_it_has_not_seen(clock):
    """A pod may be watched before its node; its requests count once the node arrives."""
    cache = SchedulerCache(clock=clock)
    cache.add_pod(pending("p", cpu="1", node_name="late"))
    assert cache.node_infos() == []
    cache.add_node(node("late"))
    assert cache.node_infos()[0].requested["cpu"] == 1000
    cache.remove_node(node("late"))
    assert cache.node_infos() == []
    cache.remove_pod(pending("p", node_name="late"))
    assert cache.node_info("late") is None

"""Pure logic of eviction: zone states and rates, the tainting queue, toleration expiry,
the DefaultTolerationSeconds additions, the taints a node's conditions call for."""

from __future__ import annotations

import asyncio

import pytest

from kubelite.taints import (
    TAINT_NOT_READY,
    TAINT_UNREACHABLE,
    default_tolerations,
    toleration_deadline,
)
from services.controller.nodelifecycle import no_schedule_taints
from services.controller.zones import (
    EvictionRates,
    RateLimitedTimedQueue,
    TokenBucket,
    ZoneState,
    apply_disruption,
    compute_zone_state,
    zone_key,
)

UNREACHABLE = {"key": TAINT_UNREACHABLE, "effect": "NoExecute"}
NOT_READY = {"key": TAINT_NOT_READY, "effect": "NoExecute"}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# -- zones ------------------------------------------------------------------------------


@pytest.mark.parametrize(("ready", "state"), [
    (["True"] * 4, ZoneState.NORMAL),
    (["True", "True", "True", "Unknown"], ZoneState.NORMAL),
    (["True", "Unknown", "Unknown"], ZoneState.NORMAL),  # 2 not ready: never partial
    (["True", "Unknown", "Unknown", "False"], ZoneState.PARTIAL_DISRUPTION),  # 3/4 >= 0.55
    (["True", "True", "Unknown", "Unknown", "False"], ZoneState.PARTIAL_DISRUPTION),  # 0.6
    (["True"] * 3 + ["Unknown"] * 3, ZoneState.NORMAL),  # 0.5 < 0.55
    (["Unknown", None], ZoneState.FULL_DISRUPTION),  # no Ready condition counts as not ready
    (["False"], ZoneState.FULL_DISRUPTION),
])
def test_zone_state(ready, state):
    assert compute_zone_state(ready, 0.55)[1] == state


def test_zone_key_is_region_and_zone():
    def node(**labels):
        return {"metadata": {"labels": labels}}

    assert zone_key(node()) == ""
    assert zone_key(node(**{"topology.kubernetes.io/zone": "a"})) == ":\x00:a"
    assert zone_key(node(**{"topology.kubernetes.io/region": "r",
                            "topology.kubernetes.io/zone": "a"})) == "r:\x00:a"
    assert zone_key(node(**{"failure-domain.beta.kubernetes.io/zone": "b"})) == ":\x00:b"


def test_rates_per_state():
    rates = EvictionRates()
    assert rates.for_state(ZoneState.NORMAL, 3) == 0.1
    assert rates.for_state(ZoneState.PARTIAL_DISRUPTION, 50) == 0.0  # small: stop
    assert rates.for_state(ZoneState.PARTIAL_DISRUPTION, 51) == 0.01  # large: slow down
    assert rates.for_state(ZoneState.FULL_DISRUPTION, 10) == 0.1


def test_disruption_partial_zone_stops_while_the_other_goes_on():
    states: dict[str, ZoneState] = {}
    rates = EvictionRates()
    changed, verdict = apply_disruption(states, {"a": ["True"] * 4, "b": ["True"] * 4}, rates)
    assert verdict == "" and changed == {"a": 0.1, "b": 0.1}  # Initial -> Normal
    changed, verdict = apply_disruption(
        states, {"a": ["True", "Unknown", "Unknown", "Unknown"], "b": ["True"] * 3 + ["False"]},
        rates)
    assert changed == {"a": 0.0} and verdict == ""
    assert states == {"a": ZoneState.PARTIAL_DISRUPTION, "b": ZoneState.NORMAL}


def test_disruption_all_zones_down_stops_everything_until_one_node_is_back():
    states: dict[str, ZoneState] = {}
    rates = EvictionRates()
    apply_disruption(states, {"a": ["True"] * 2, "b": ["True"] * 2}, rates)
    # One zone fully down while another is fine: that zone may be really gone.
    changed, verdict = apply_disruption(states, {"a": ["Unknown"] * 2, "b": ["True"] * 2},
                                        rates)
    assert changed == {"a": 0.1} and verdict == ""
    assert states["a"] == ZoneState.FULL_DISRUPTION
    changed, verdict = apply_disruption(states, {"a": ["Unknown"] * 2, "b": ["Unknown"] * 2},
                                        rates)
    assert verdict == "enter-full" and changed == {"a": 0.0, "b": 0.0}
    assert apply_disruption(states, {"a": ["Unknown"] * 2, "b": ["Unknown"] * 2},
                            rates) == ({}, "")
    changed, verdict = apply_disruption(states, {"a": ["Unknown"] * 2, "b": ["True", "Unknown"]},
                                        rates)
    assert verdict == "exit-full" and changed == {"a": 0.1, "b": 0.1}
    assert states == {"a": ZoneState.FULL_DISRUPTION, "b": ZoneState.NORMAL}


def test_disruption_forgets_zones_without_nodes():
    states: dict[str, ZoneState] = {}
    apply_disruption(states, {"a": ["True"], "b": ["True"]}, EvictionRates())
    apply_disruption(states, {"a": ["True"]}, EvictionRates())
    assert list(states) == ["a"]


# -- the rate-limited queue ----------------------------------------------------------------


def test_token_bucket_burst_one_then_rate():
    clock = Clock()
    bucket = TokenBucket(0.5, clock=clock)
    assert bucket.try_accept()
    assert not bucket.try_accept()
    clock.now += 1.0
    assert not bucket.try_accept()
    clock.now += 1.0
    assert bucket.try_accept()
    assert not TokenBucket(0.0, clock=clock).try_accept()


def test_queue_takes_one_node_per_token_and_swapping_to_zero_stops_it():
    clock = Clock()
    queue = RateLimitedTimedQueue(TokenBucket(1.0, clock=clock), clock=clock)
    done: list[str] = []

    async def taint(name: str, uid: str) -> tuple[bool, float]:
        done.append(name)
        return True, 0.0

    for name in ("n1", "n2", "n3"):
        assert queue.add(name, "")
    assert not queue.add("n1", "")
    asyncio.run(queue.try_(taint))
    assert done == ["n1"]
    clock.now += 1.0
    asyncio.run(queue.try_(taint))
    assert done == ["n1", "n2"]
    queue.swap_limiter(0.0)
    clock.now += 10.0
    asyncio.run(queue.try_(taint))
    assert done == ["n1", "n2"]
    queue.swap_limiter(1.0)  # the old limiter never accepts: the new one starts empty
    asyncio.run(queue.try_(taint))
    assert done == ["n1", "n2"]
    clock.now += 1.0
    asyncio.run(queue.try_(taint))
    assert done == ["n1", "n2", "n3"] and len(queue) == 0


def test_queue_retries_a_failed_node_later():
    clock = Clock()
    queue = RateLimitedTimedQueue(TokenBucket(100.0, clock=clock), clock=clock)
    calls: list[str] = []

    async def fail(name: str, uid: str) -> tuple[bool, float]:
        calls.append(name)
        return False, 5.0

    queue.add("n1", "")
    asyncio.run(queue.try_(fail))
    clock.now += 1.0
    asyncio.run(queue.try_(fail))
    assert calls == ["n1"]  # not due again yet
    clock.now += 5.0
    asyncio.run(queue.try_(fail))
    assert calls == ["n1", "n1"] and "n1" in queue


# -- tolerations ---------------------------------------------------------------------------


def test_toleration_deadline():
    limited = [{"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
                "tolerationSeconds": 300}]
    assert toleration_deadline([UNREACHABLE], limited) == 300
    assert toleration_deadline([UNREACHABLE], []) == 0  # not tolerated: at once
    assert toleration_deadline([NOT_READY], limited) == 0
    forever = [{"operator": "Exists"}]
    assert toleration_deadline([UNREACHABLE, NOT_READY], forever) is None
    both = limited + [{"key": TAINT_UNREACHABLE, "operator": "Exists",
                       "tolerationSeconds": 20}]
    assert toleration_deadline([UNREACHABLE], both) == 20  # the shortest matching one
    negative = [{"key": TAINT_UNREACHABLE, "operator": "Exists", "tolerationSeconds": -5}]
    assert toleration_deadline([UNREACHABLE], negative) == 0
    # A forever toleration of one taint does not save the pod from another untolerated one.
    assert toleration_deadline([UNREACHABLE, {"key": "x", "effect": "NoExecute"}],
                               [{"key": TAINT_UNREACHABLE, "operator": "Exists"}]) == 0


def test_default_tolerations_added_unless_the_pod_has_its_own():
    added = default_tolerations([], not_ready_seconds=300, unreachable_seconds=30)
    assert added == [
        {"key": TAINT_NOT_READY, "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 300},
        {"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
         "tolerationSeconds": 30}]
    own = [{"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
            "tolerationSeconds": 5}]
    result = default_tolerations(own, not_ready_seconds=300, unreachable_seconds=300)
    assert result[0] == own[0] and len(result) == 2 and result[1]["key"] == TAINT_NOT_READY
    wildcard = [{"operator": "Exists"}]  # tolerates everything: nothing to add
    assert default_tolerations(wildcard, not_ready_seconds=1, unreachable_seconds=1) == wildcard
    no_schedule_only = [{"key": TAINT_UNREACHABLE, "operator": "Exists", "effect": "NoSchedule"}]
    assert len(default_tolerations(no_schedule_only, not_ready_seconds=1,
                                   unreachable_seconds=1)) == 3


# -- condition taints -------------------------------------------------------------------------


def test_no_schedule_taints_follow_conditions_and_cordon():
    def node(ready: str, unschedulable: bool = False, **extra: str):
        conditions = [{"type": "Ready", "status": ready}]
        conditions += [{"type": t, "status": s} for t, s in extra.items()]
        return {"metadata": {"name": "n"}, "spec": {"unschedulable": unschedulable},
                "status": {"conditions": conditions}}

    assert no_schedule_taints(node("True")) == set()
    assert no_schedule_taints(node("False")) == {(TAINT_NOT_READY, "NoSchedule")}
    assert no_schedule_taints(node("Unknown")) == {(TAINT_UNREACHABLE, "NoSchedule")}
    assert no_schedule_taints(node("True", unschedulable=True)) == {
        ("node.kubernetes.io/unschedulable", "NoSchedule")}
    assert no_schedule_taints(node("True", MemoryPressure="True")) == {
        ("node.kubernetes.io/memory-pressure", "NoSchedule")}

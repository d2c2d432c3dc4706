"""Unit tests of the controllers' pure logic: no processes, no API."""

from __future__ import annotations

import asyncio
import copy
import os
import time
from typing import Any

import pytest

from kubelite.errors import InvalidError, UnavailableError
from kubelite.workqueue import WORKQUEUE_RETRIES
from services.controller import rollout as ro
from services.controller.base import PERMANENT_ERRORS, RECONCILE_ERRORS, Controller
from services.controller.config import gc_resources, parse_args, select_controllers
from services.controller.endpoints import endpoint_subsets, find_port
from services.controller.expectations import Expectations
from services.controller.pods import pods_to_delete
from services.controller.replicaset import (
    calculate_status,
    pod_from_template,
    slow_start_batch,
    slow_start_batch_sizes,
)
from services.controller.templatehash import (
    compute_hash,
    equal_ignore_hash,
    fnv32a,
    safe_encode,
    without_hash_label,
)

Obj = dict[str, Any]


# -- surge and unavailability ----------------------------------------------------------


@pytest.mark.parametrize(("surge", "unavailable", "desired", "expected"), [
    ("25%", "25%", 10, (3, 2)),  # surge rounds up, unavailable down
    ("25%", "25%", 1, (1, 0)),
    ("50%", "50%", 3, (2, 1)),
    (1, 0, 5, (1, 0)),
    (0, 2, 5, (0, 2)),
    (0, 0, 5, (0, 1)),  # both zero: one may be unavailable
    ("0%", "0%", 10, (0, 1)),
    (0, "10%", 5, (0, 1)),  # 0.5 rounds down to 0, so unavailable becomes 1
    ("100%", 0, 4, (4, 0)),
    (None, None, 3, (0, 1)),
])
def test_resolve_fenceposts_rounds_as_kubernetes(surge, unavailable, desired, expected):
    """Surge rounds up, unavailability down, and both zero means one unavailable."""
    assert ro.resolve_fenceposts(surge, unavailable, desired) == expected


def test_scaled_value_rejects_a_string_that_is_not_a_percentage():
    """An int-or-string must be an int or 'N%'."""
    with pytest.raises(ValueError):
        ro.scaled_value("5", 10, True)


def _deployment(replicas: int = 3, surge: Any = 1, unavailable: Any = 0,
                strategy: str = "RollingUpdate", **spec: Any) -> Obj:
    strat: Obj = {"type": strategy}
    if strategy == "RollingUpdate":
        strat["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    return {"metadata": {"name": "d", "namespace": "ns", "uid": "d-uid", "generation": 1},
            "spec": {"replicas": replicas, "strategy": strat,
                     "template": {"metadata": {"labels": {"app": "d"}},
                                  "spec": {"containers": [{"name": "c", "image": "i"}]}},
                     **spec},
            "status": {}}


_CREATED = iter(range(10**6))


def _rs(name: str, replicas: int, available: int | None = None, *, created: float | None = None,
        revision: int | None = None, max_replicas: int | None = None, **status: Any) -> Obj:
    meta: Obj = {"name": name, "uid": f"{name}-uid", "generation": 1,
                 "creationTimestamp": ro.format_time(created if created is not None
                                                     else 1_700_000_000 + next(_CREATED)),
                 "annotations": {}}
    if revision is not None:
        meta["annotations"][ro.REVISION_ANNOTATION] = str(revision)
    if max_replicas is not None:
        meta["annotations"][ro.MAX_REPLICAS_ANNOTATION] = str(max_replicas)
    return {"metadata": meta, "spec": {"replicas": replicas},
            "status": {"replicas": replicas, "availableReplicas":
                       replicas if available is None else available,
                       "observedGeneration": 1, **status}}


def test_max_unavailable_is_capped_by_replicas_and_zero_for_recreate():
    """maxUnavailable never exceeds replicas; Recreate and zero replicas have none."""
    assert ro.max_unavailable(_deployment(2, 0, 5)) == 2
    assert ro.max_unavailable(_deployment(0, 1, 1)) == 0
    assert ro.max_unavailable(_deployment(3, strategy="Recreate")) == 0
    assert ro.max_surge(_deployment(3, strategy="Recreate")) == 0


# -- rolling update steps ----------------------------------------------------------------


def test_new_replica_set_grows_within_max_surge():
    """The new ReplicaSet may grow until the total reaches replicas + maxSurge."""
    d = _deployment(10, "30%", 0)  # surge 3
    old, new = _rs("old", 10), _rs("new", 0)
    assert ro.new_rs_new_replicas(d, [old, new], new) == 3
    new = _rs("new", 3)
    assert ro.new_rs_new_replicas(d, [old, new], new) == 3  # at the ceiling already
    old = _rs("old", 8)
    assert ro.new_rs_new_replicas(d, [old, new], new) == 5
    assert ro.new_rs_new_replicas(_deployment(10, strategy="Recreate"), [new], new) == 10


def test_old_replica_sets_shrink_only_as_availability_allows():
    """With maxUnavailable 0, old pods go only once new ones are available."""
    d = _deployment(3, 1, 0)
    old, new = _rs("old", 3), _rs("new", 1, available=0)
    assert ro.max_scaled_down(d, [old, new], new) == 0  # the new pod is not available yet
    new = _rs("new", 1, available=1)
    assert ro.max_scaled_down(d, [old, new], new) == 1
    assert [(rs["metadata"]["name"], size)
            for rs, size in ro.scale_down_old_plan(d, [old, new], [old])] == [("old", 2)]


def test_scale_down_distrusts_available_counts_above_the_spec():
    """An old ReplicaSet just shrunk still reports its old availability: count it as its spec."""
    d = _deployment(3, 1, 0)
    old = _rs("old", 2, available=3)  # status not caught up with the scale-down to 2
    new = _rs("new", 2, available=2)
    plan = ro.scale_down_old_plan(d, [old, new], [old])
    assert [(rs["metadata"]["name"], size) for rs, size in plan] == [("old", 1)]


def test_unhealthy_old_replicas_are_cleaned_up_first_oldest_first():
    """Unavailable replicas of old ReplicaSets are removed before healthy ones."""
    oldest = _rs("oldest", 3, available=1)
    older = _rs("older", 2, available=0)
    plan = ro.cleanup_unhealthy_plan([older, oldest], 3)
    assert [(rs["metadata"]["name"], size) for rs, size in plan] == [("oldest", 1),
                                                                      ("older", 1)]


def test_scaling_a_deployment_mid_rollout_scales_replica_sets_in_proportion():
    """From 6 to 12 replicas with two ReplicaSets of 3: each doubles."""
    d = _deployment(12, 0, 1)
    old = _rs("old", 3, max_replicas=6)
    new = _rs("new", 3, max_replicas=6)
    sizes = {rs["metadata"]["name"]: size for rs, size in ro.proportional_sizes(d, [old, new])}
    assert sizes == {"old": 6, "new": 6}
    # Down to 3: each loses round(1.5) - 3 = -1, and the rounding leftover comes off the
    # first in order: the largest, older first when scaling down.
    d = _deployment(3, 0, 1)
    sizes = {rs["metadata"]["name"]: size for rs, size in ro.proportional_sizes(d, [old, new])}
    assert sizes == {"old": 1, "new": 2}


def test_scaling_event_is_a_replicas_change_against_the_annotation():
    d = _deployment(5)
    rs = _rs("rs", 3)
    rs["metadata"]["annotations"][ro.DESIRED_REPLICAS_ANNOTATION] = "3"
    assert ro.is_scaling_event(d, [rs])
    rs["metadata"]["annotations"][ro.DESIRED_REPLICAS_ANNOTATION] = "5"
    assert not ro.is_scaling_event(d, [rs])


def test_find_active_or_latest():
    """The single active ReplicaSet; the newest when none is active; None when several are."""
    old, new = _rs("old", 0), _rs("new", 0)
    assert ro.find_active_or_latest(new, [old]) is new
    assert ro.find_active_or_latest(None, [old]) is old
    busy = _rs("busy", 2)
    assert ro.find_active_or_latest(new, [busy]) is busy
    assert ro.find_active_or_latest(_rs("n2", 1), [busy]) is None


# -- revisions and history ------------------------------------------------------------------


def test_find_new_replica_set_ignores_the_hash_label():
    """A ReplicaSet whose template is the Deployment's plus pod-template-hash is the new one."""
    d = _deployment()
    template = copy.deepcopy(d["spec"]["template"])
    template["metadata"]["labels"]["pod-template-hash"] = "abc"
    rs = _rs("d-abc", 3)
    rs["spec"]["template"] = template
    other = _rs("d-xyz", 0)
    other["spec"]["template"] = {"metadata": {"labels": {"app": "other"}}}
    assert ro.find_new_replica_set(d, [other, rs]) is rs
    assert ro.find_old_replica_sets([other, rs], rs) == ([], [other])


def test_a_replica_set_made_new_again_gets_the_next_revision_and_keeps_its_history():
    """Rolling back to revision 1 when 2 is the latest makes it revision 3, history '1'."""
    d = _deployment()
    d["metadata"]["annotations"] = {"team": "web", ro.REVISION_ANNOTATION: "2"}
    rs = _rs("d-abc", 0, revision=1)
    assert ro.set_new_replica_set_annotations(d, rs, 3, exists=True)
    annotations = rs["metadata"]["annotations"]
    assert annotations[ro.REVISION_ANNOTATION] == "3"
    assert annotations[ro.REVISION_HISTORY_ANNOTATION] == "1"
    assert annotations["team"] == "web"  # the Deployment's own annotations are copied
    assert not ro.set_new_replica_set_annotations(d, rs, 3, exists=True)  # idempotent
    fresh = _rs("d-new", 0)
    ro.set_new_replica_set_annotations(_deployment(4, 1, 0), fresh, 1, exists=False)
    assert fresh["metadata"]["annotations"][ro.DESIRED_REPLICAS_ANNOTATION] == "4"
    assert fresh["metadata"]["annotations"][ro.MAX_REPLICAS_ANNOTATION] == "5"


def test_history_beyond_the_limit_is_pruned_lowest_revision_first_when_empty():
    d = _deployment(revisionHistoryLimit=1)
    r1, r2, r3 = _rs("r1", 0, revision=1), _rs("r2", 0, revision=2), _rs("r3", 0, revision=3)
    assert ro.replica_sets_to_prune(d, [r3, r1, r2]) == [r1, r2]
    busy = _rs("r1", 1, revision=1)  # still has pods: kept
    assert ro.replica_sets_to_prune(d, [busy, r2]) == []
    assert ro.replica_sets_to_prune(_deployment(revisionHistoryLimit=5), [r1, r2]) == []


# -- conditions --------------------------------------------------------------------------


def test_rollout_status_reports_progress_completion_and_timeout():
    now = 1_800_000_000.0
    d = _deployment(2, 1, 0, progressDeadlineSeconds=10)
    new = _rs("new", 2, available=1, readyReplicas=1)
    progressing = ro.rollout_status(d, [new], new, now)
    cond = ro.get_condition(progressing, ro.PROGRESSING)
    assert (cond["status"], cond["reason"]) == ("True", ro.RS_UPDATED_REASON)
    assert ro.get_condition(progressing, ro.AVAILABLE)["status"] == "False"
    assert progressing["unavailableReplicas"] == 1

    # No progress since then, and the deadline passed.
    d["status"] = progressing
    stuck = ro.rollout_status(d, [new], new, now + 11)
    cond = ro.get_condition(stuck, ro.PROGRESSING)
    assert (cond["status"], cond["reason"]) == ("False", ro.TIMED_OUT_REASON)
    assert ro.requeue_after_for_deadline(d, progressing, now + 3) == pytest.approx(8.0)

    new = _rs("new", 2, available=2, readyReplicas=2)
    done = ro.rollout_status(d, [new], new, now + 12)
    cond = ro.get_condition(done, ro.PROGRESSING)
    assert (cond["status"], cond["reason"]) == ("True", ro.NEW_RS_AVAILABLE_REASON)
    available = ro.get_condition(done, ro.AVAILABLE)
    assert (available["status"], available["reason"]) == ("True", ro.MIN_AVAILABLE_REASON)
    assert ro.deployment_complete(d, done)


def test_set_condition_keeps_transition_time_when_status_is_unchanged():
    status: Obj = {}
    ro.set_condition(status, ro.new_condition("Progressing", "True", "A", "a", 1000.0))
    ro.set_condition(status, ro.new_condition("Progressing", "True", "B", "b", 2000.0))
    cond = ro.get_condition(status, "Progressing")
    assert cond["reason"] == "B"
    assert cond["lastTransitionTime"] == ro.format_time(1000.0)
    assert cond["lastUpdateTime"] == ro.format_time(2000.0)


# -- template hashing ---------------------------------------------------------------------


def test_fnv32a_matches_the_reference_vectors():
    assert fnv32a(b"") == 0x811C9DC5
    assert fnv32a(b"a") == 0xE40C292C
    assert fnv32a(b"foobar") == 0xBF9CF968


def test_template_hash_is_stable_and_safe():
    """The same template hashes the same in any key order; the hash never spells words."""
    a = {"metadata": {"labels": {"app": "x", "tier": "web"}},
         "spec": {"containers": [{"name": "c", "image": "i:1"}]}}
    b = {"spec": {"containers": [{"image": "i:1", "name": "c"}]},
         "metadata": {"labels": {"tier": "web", "app": "x"}}}
    assert compute_hash(a) == compute_hash(b)
    assert set(compute_hash(a)) <= set("bcdfghjklmnpqrstvwxz2456789")
    changed = copy.deepcopy(a)
    changed["spec"]["containers"][0]["image"] = "i:2"
    assert compute_hash(changed) != compute_hash(a)
    assert compute_hash(a, 1) != compute_hash(a) != compute_hash(a, 2)
    assert safe_encode("0123") == "4567"  # each byte modulo the 27-letter alphabet


def test_equal_ignore_hash():
    t = {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": []}}
    hashed = copy.deepcopy(t)
    hashed["metadata"]["labels"]["pod-template-hash"] = "abc"
    assert equal_ignore_hash(t, hashed)
    assert without_hash_label(hashed) == t
    assert not equal_ignore_hash(t, {**t, "spec": {"containers": [{"name": "c"}]}})


# -- ReplicaSet ------------------------------------------------------------------------------


def test_slow_start_batches_double_up_to_what_is_left():
    assert list(slow_start_batch_sizes(20)) == [1, 2, 4, 8, 5]
    assert list(slow_start_batch_sizes(3)) == [1, 2]
    assert list(slow_start_batch_sizes(1)) == [1]
    assert list(slow_start_batch_sizes(0)) == []


async def test_slow_start_batch_stops_after_the_batch_with_a_failure():
    """A failure in the third batch ends the run: later batches never start."""
    calls = 0

    async def create() -> None:
        nonlocal calls
        calls += 1
        if calls == 5:
            raise RuntimeError("quota")

    successes, error = await slow_start_batch(20, 1, create)
    assert calls == 7  # batches 1, 2, 4
    assert successes == 6
    assert isinstance(error, RuntimeError)


def _pod(name: str, *, node: str = "", phase: str = "Pending", ready_since: float | None = None,
         restarts: int = 0, created: float = 1_700_000_000.0, cost: int | None = None) -> Obj:
    status: Obj = {"phase": phase,
                   "containerStatuses": [{"name": "c", "restartCount": restarts}]}
    if ready_since is not None:
        status["conditions"] = [{"type": "Ready", "status": "True",
                                 "lastTransitionTime": ro.format_time(ready_since)}]
    meta: Obj = {"name": name, "creationTimestamp": ro.format_time(created)}
    if cost is not None:
        meta["annotations"] = {"controller.kubernetes.io/pod-deletion-cost": str(cost)}
    return {"metadata": meta, "spec": {"nodeName": node}, "status": status}


def test_pods_are_deleted_cheapest_first():
    """Unscheduled < pending < not ready < ready; then restarts; then newer first."""
    ready_old = _pod("ready-old", node="n1", phase="Running", ready_since=1000.0)
    ready_new = _pod("ready-new", node="n2", phase="Running", ready_since=2000.0)
    not_ready = _pod("not-ready", node="n3", phase="Running")
    pending = _pod("pending", node="n4", phase="Pending")
    unscheduled = _pod("unscheduled")
    crashy = _pod("crashy", node="n5", phase="Running", restarts=5)
    every = [ready_old, ready_new, not_ready, pending, unscheduled, crashy]
    order = [p["metadata"]["name"] for p in pods_to_delete(every, every, 5)]
    assert order == ["unscheduled", "pending", "crashy", "not-ready", "ready-new"]
    older = _pod("older", node="n6", phase="Running", created=1000.0)
    newer = _pod("newer", node="n7", phase="Running", created=2000.0)
    assert pods_to_delete([older, newer], [older, newer], 1) == [newer]


def test_pods_doubled_up_on_a_node_and_cheap_pods_go_first():
    """More related pods on the same node, or a lower deletion cost, goes first."""
    a1 = _pod("a1", node="a", phase="Running", ready_since=1000.0)
    a2 = _pod("a2", node="a", phase="Running", ready_since=1000.0)
    b1 = _pod("b1", node="b", phase="Running", ready_since=1000.0)
    chosen = pods_to_delete([b1, a1, a2], [b1, a1, a2], 1)
    assert chosen[0]["metadata"]["name"] in ("a1", "a2")
    cheap = _pod("cheap", node="c", phase="Running", ready_since=1000.0, cost=-10)
    assert pods_to_delete([a1, a2, cheap], [a1, a2, cheap], 1) == [cheap]


def test_pod_from_template_carries_labels_and_a_controller_reference():
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": {"name": "web", "namespace": "ns", "uid": "u1"}}
    template = {"metadata": {"labels": {"app": "web"}, "annotations": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]}}
    pod = pod_from_template(rs, template)
    assert pod["metadata"]["generateName"] == "web-"
    assert pod["metadata"]["labels"] == {"app": "web"}
    assert pod["metadata"]["annotations"] == {"a": "b"}
    assert pod["metadata"]["ownerReferences"] == [{
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "u1",
        "controller": True, "blockOwnerDeletion": True}]
    pod["spec"]["containers"][0]["image"] = "changed"
    assert template["spec"]["containers"][0]["image"] == "i"  # a copy, not a share


def test_replica_set_status_counts_ready_available_and_fully_labeled():
    now = 1_800_000_000.0
    rs = {"metadata": {"generation": 4},
          "spec": {"minReadySeconds": 10, "template": {"metadata": {"labels": {"app": "x",
                                                                              "v": "1"}}}}}
    long_ready = _pod("a", ready_since=now - 60)
    just_ready = _pod("b", ready_since=now - 1)
    not_ready = _pod("c")
    for p in (long_ready, just_ready):
        p["metadata"]["labels"] = {"app": "x", "v": "1"}
    not_ready["metadata"]["labels"] = {"app": "x"}
    status = calculate_status(rs, [long_ready, just_ready, not_ready], None, now=now)
    assert status == {"replicas": 3, "fullyLabeledReplicas": 2, "readyReplicas": 2,
                      "availableReplicas": 1, "observedGeneration": 4}
    failed = calculate_status(rs, [], RuntimeError("quota"), diff=-1, now=now)
    assert failed["conditions"][0]["type"] == "ReplicaFailure"
    assert failed["conditions"][0]["reason"] == "FailedCreate"


# -- expectations --------------------------------------------------------------------------


def test_expectations_hold_a_sync_until_its_writes_are_observed():
    clock = [0.0]
    exp = Expectations(ttl=300, clock=lambda: clock[0])
    assert exp.satisfied("ns/rs")  # nothing expected yet
    exp.expect_creations("ns/rs", 2)
    assert not exp.satisfied("ns/rs")
    exp.creation_observed("ns/rs")
    assert not exp.satisfied("ns/rs")
    exp.creation_observed("ns/rs")
    assert exp.satisfied("ns/rs")

    exp.expect_deletions("ns/rs", ["ns/p1", "ns/p2"])
    exp.deletion_observed("ns/rs", "ns/p1")
    exp.deletion_observed("ns/rs", "ns/p1")  # seen twice (deletionTimestamp, then gone)
    assert exp.pending("ns/rs") == (0, 1)
    assert not exp.satisfied("ns/rs")
    clock[0] = 301.0  # an event that never came does not wedge the owner
    assert exp.satisfied("ns/rs")


# -- the base controller ------------------------------------------------------------------


class _Counting(Controller[str]):
    name = "unit-test"


async def test_an_injected_sync_that_fails_is_retried_and_counted():
    """sync_handler is replaceable; a failure is counted and the key comes back."""
    controller = _Counting()
    seen: list[str] = []
    done = asyncio.Event()

    async def flaky(key: str) -> None:
        seen.append(key)
        if len(seen) == 1:
            raise RuntimeError("first try fails")
        done.set()

    controller.sync_handler = flaky
    before = RECONCILE_ERRORS.labels("unit-test")._value.get()
    runner = asyncio.create_task(controller.run(workers=2))
    controller.queue.add("ns/a")
    await asyncio.wait_for(done.wait(), 5)
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    assert seen == ["ns/a", "ns/a"]
    assert RECONCILE_ERRORS.labels("unit-test")._value.get() == before + 1
    assert controller.queue.num_requeues("ns/a") == 0  # forgotten after success


class _Recorder:
    """Collects events (this unit test has no API to write them to)."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def event(self, obj: Any, type_: str, reason: str, message: str) -> None:
        self.events.append((obj["metadata"]["name"], type_, reason, message))


class _Cache:
    def __init__(self, objects: dict[str, Any]) -> None:
        self.objects = objects

    def get(self, key: str) -> Any:
        return self.objects.get(key)


async def _sync_once_with(error: Exception) -> tuple[_Counting, _Recorder, list[str]]:
    controller = _Counting()
    recorder = _Recorder()
    controller.recorder = recorder  # type: ignore[assignment]
    controller.informers = [_Cache({"ns/a": {"metadata": {"name": "a"}}})]  # type: ignore[list-item]
    seen: list[str] = []

    async def failing(key: str) -> None:
        seen.append(key)
        raise error

    controller.sync_handler = failing
    controller.queue.add("ns/a")
    key = await controller.queue.get()
    await controller.process(key)
    controller.queue.done(key)
    await asyncio.sleep(0.05)  # a requeue (5 ms base backoff) would have fired by now
    return controller, recorder, seen


async def test_a_permanent_api_error_is_reported_and_not_retried():
    before = PERMANENT_ERRORS.labels("unit-test")._value.get()
    retries = WORKQUEUE_RETRIES.labels("unit-test")._value.get()
    controller, recorder, _ = await _sync_once_with(
        InvalidError("Invalid value: -1", field="spec.replicas"))
    assert len(controller.queue) == 0 and controller.queue.num_waiting() == 0
    assert controller.queue.num_requeues("ns/a") == 0
    assert PERMANENT_ERRORS.labels("unit-test")._value.get() == before + 1
    assert WORKQUEUE_RETRIES.labels("unit-test")._value.get() == retries
    assert recorder.events == [("a", "Warning", "SyncFailed",
                                "spec.replicas: Invalid value: -1")]
    controller.queue.add("ns/a")  # the object changed: its informer queues it again
    assert len(controller.queue) == 1


@pytest.mark.parametrize("error", [UnavailableError("redis is down"), RuntimeError("bug")])
async def test_retryable_and_unexpected_errors_are_requeued(error):
    retries = WORKQUEUE_RETRIES.labels("unit-test")._value.get()
    controller, recorder, _ = await _sync_once_with(error)
    assert len(controller.queue) == 1  # back after its backoff
    assert controller.queue.num_requeues("ns/a") == 1
    assert WORKQUEUE_RETRIES.labels("unit-test")._value.get() == retries + 1
    assert recorder.events == []


async def test_one_key_is_never_synced_by_two_workers_at_once():
    controller = _Counting()
    running = 0
    most = 0
    calls = 0

    async def slow(key: str) -> None:
        nonlocal running, most, calls
        running += 1
        calls += 1
        most = max(most, running)
        await asyncio.sleep(0.02)
        running -= 1

    controller.sync_handler = slow
    runner = asyncio.create_task(controller.run(workers=4))
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        controller.queue.add("ns/same")
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.1)
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    assert most == 1
    assert 2 <= calls < 60  # adds during a sync collapse into one more sync


# -- flags ---------------------------------------------------------------------------------


def test_controllers_flag_enables_and_disables_by_name():
    assert select_controllers("*") == ("replicaset", "deployment", "daemonset", "endpoint",
                                       "garbagecollector", "nodelifecycle", "tainteviction",
                                       "horizontalpodautoscaling", "disruption", "namespace",
                                       "eventexpiry", "replicationcontroller", "job",
                                       "ttl-after-finished", "cronjob", "persistentvolume-binder",
                                       "local-path-provisioner", "statefulset")
    assert select_controllers("*,-daemonset,-statefulset,-nodelifecycle,-tainteviction,-endpoint,"
                              "-horizontalpodautoscaling,-disruption,-namespace,-eventexpiry,"
                              "-replicationcontroller,-job,-ttl-after-finished,-cronjob,"
                              "-persistentvolume-binder,-local-path-provisioner") == (
        "replicaset", "deployment", "garbagecollector")
    assert select_controllers("deployment,replicaset") == ("replicaset", "deployment")
    with pytest.raises(ValueError):
        select_controllers("replicaset,bogus")


def test_flags_become_a_frozen_config_with_kubernetes_defaults(monkeypatch):
    for name in [n for n in os.environ if n.startswith("KUBELITE_")]:
        monkeypatch.delenv(name)
    config = parse_args(["--server", "127.0.0.1:1", "--controllers", "replicaset",
                         "--gc-resources", "po,rs,deployments.apps"])
    assert config.common.server == "127.0.0.1:1"
    assert config.common.health_listen == "127.0.0.1:10257"
    assert config.common.metrics_port == 10252
    assert config.leader.lease_name == "kube-controller-manager"
    assert config.leader.lease_namespace == "kube-system"
    assert config.controllers == ("replicaset",)
    assert config.gc_resources == ("pods", "replicasets", "deployments")
    assert config.node_monitor_grace_period == 40.0
    with pytest.raises(AttributeError):
        config.concurrent_syncs = 1  # type: ignore[misc]
    with pytest.raises(ValueError):
        gc_resources("pods,widgets")


# -- endpoints --------------------------------------------------------------------------


def _svc_pod(name: str, ip: str, *, ready: bool, labels: dict[str, str] | None = None,
             named_port: bool = True) -> Obj:
    ports = [{"name": "http", "containerPort": 8080, "protocol": "TCP"}] if named_port else []
    status: Obj = {"phase": "Running", "podIP": ip}
    if ready:
        status["conditions"] = [{"type": "Ready", "status": "True"}]
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"{name}-uid",
                         "labels": labels if labels is not None else {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": ports}]},
            "status": status}


def test_endpoints_list_ready_and_not_ready_pods_by_resolved_port():
    """Ready pods are addresses, unready ones notReadyAddresses; named targetPorts resolve."""
    service = {"metadata": {"name": "web", "namespace": "ns"},
               "spec": {"selector": {"app": "web"}, "ports": [
                   {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}}
    pods = [_svc_pod("b", "10.0.0.12", ready=True), _svc_pod("a", "10.0.0.2", ready=True),
            _svc_pod("c", "10.0.0.3", ready=False),
            _svc_pod("other", "10.0.0.4", ready=True, labels={"app": "other"}),
            _svc_pod("noport", "10.0.0.5", ready=True, named_port=False),
            {**_svc_pod("noip", "", ready=True)}]
    subsets = endpoint_subsets(service, pods)
    assert len(subsets) == 1
    subset = subsets[0]
    assert [a["ip"] for a in subset["addresses"]] == ["10.0.0.2", "10.0.0.12"]  # numeric order
    assert [a["ip"] for a in subset["notReadyAddresses"]] == ["10.0.0.3"]
    assert subset["ports"] == [{"port": 8080, "protocol": "TCP", "name": "http"}]
    assert subset["addresses"][0]["targetRef"] == {"kind": "Pod", "namespace": "ns",
                                                   "name": "a", "uid": "a-uid"}
    assert subset["addresses"][0]["nodeName"] == "n1"
    service["spec"]["publishNotReadyAddresses"] = True
    assert "notReadyAddresses" not in endpoint_subsets(service, pods)[0]


def test_find_port_takes_numbers_as_they_are_and_names_from_the_pod():
    pod = _svc_pod("a", "10.0.0.1", ready=True)
    assert find_port(pod, {"port": 80, "targetPort": 9376}) == 9376
    assert find_port(pod, {"port": 80, "targetPort": "http"}) == 8080
    assert find_port(pod, {"port": 80, "targetPort": "http", "protocol": "UDP"}) is None
    assert find_port(pod, {"port": 80}) == 80

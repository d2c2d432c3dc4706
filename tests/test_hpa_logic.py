"""The HPA's arithmetic as pure functions, checked against cases from Kubernetes'
replica_calculator_test.go and horizontal_test.go."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.controller.config import duration
from services.controller.hpa import (
    History,
    MetricError,
    PodMetric,
    Readiness,
    ScaleEvent,
    format_milli,
    group_pods,
    normalize,
    normalize_with_behavior,
    pod_metrics,
    replicas_for_average_value,
    replicas_for_utilization,
    set_condition,
    store_scale_event,
)

NOW = 1_800_000_000.0
LONG_AGO = "2020-01-01T00:00:00Z"
Obj = dict[str, Any]


def pod(name: str, *, cpu: str = "1", memory: str = "", ready: bool = True,
        phase: str = "Running", deleting: bool = False, started: str = LONG_AGO,
        ready_since: str = LONG_AGO) -> Obj:
    requests = {"cpu": cpu}
    if memory:
        requests["memory"] = memory
    obj: Obj = {
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "resources": {"requests": requests}}]},
        "status": {"phase": phase, "startTime": started, "conditions": [
            {"type": "Ready", "status": "True" if ready else "False",
             "lastTransitionTime": ready_since}]},
    }
    if deleting:
        obj["metadata"]["deletionTimestamp"] = LONG_AGO
    return obj


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def metrics(**millis: int) -> dict[str, PodMetric]:
    return {name: PodMetric(value, NOW - 5, 1.0) for name, value in millis.items()}


def calc(current: int, target: int, pods: list[Obj], usage: dict[str, PodMetric],
         resource: str = "cpu"):
    return replicas_for_utilization(current, target, resource, pods, usage, tolerance=0.1,
                                    readiness=Readiness(), now=NOW)


def test_scale_up_is_ceil_of_current_times_ratio() -> None:
    """Three pods at 30/50/70% of a 1-core request, target 30%: 5 replicas, 50% shown."""
    pods = [pod("a"), pod("b"), pod("c")]
    got = calc(3, 30, pods, metrics(a=300, b=500, c=700))
    assert (got.replicas, got.utilization, got.average) == (5, 50, 500)


def test_scale_down_is_ceil_too() -> None:
    pods = [pod(n) for n in "abcde"]
    got = calc(5, 50, pods, metrics(a=100, b=300, c=500, d=250, e=250))
    assert (got.replicas, got.utilization) == (3, 28)


def test_within_tolerance_nothing_changes() -> None:
    pods = [pod("a"), pod("b")]
    assert calc(2, 50, pods, metrics(a=540, b=500)).replicas == 2  # 52%: ratio 1.04
    assert calc(2, 50, pods, metrics(a=600, b=600)).replicas == 3  # 60%: ratio 1.2


def test_unready_pods_count_as_zero_when_scaling_up() -> None:
    """Kubernetes' ScaleUpUnreadyLessScale: the unready pod at 0% makes it 4, not 6."""
    pods = [pod("a", ready=False), pod("b"), pod("c")]
    got = calc(3, 30, pods, metrics(a=300, b=500, c=700))
    assert (got.replicas, got.utilization) == (4, 60)


def test_unready_pods_that_flip_the_direction_keep_the_count() -> None:
    """Kubernetes' ScaleUpUnreadyNoScale: 40% of one ready pod, but 13% with the others."""
    pods = [pod("a"), pod("b", ready=False), pod("c", ready=False)]
    got = calc(3, 30, pods, metrics(a=400, b=500, c=700))
    assert (got.replicas, got.utilization) == (3, 40)


def test_pending_pods_are_unready_and_deleted_or_failed_pods_ignored() -> None:
    pods = [pod("a"), pod("b", phase="Pending"), pod("c", deleting=True),
            pod("d", phase="Failed")]
    groups = group_pods(pods, metrics(a=1, b=1, c=1, d=1), "cpu", readiness=Readiness(),
                        now=NOW)
    assert groups.ready == 1
    assert groups.unready == {"b"}
    assert groups.ignored == {"c", "d"}
    # Ignored pods' metrics are dropped: only a's 90% counts -> ceil(1.8 * 1) = 2.
    assert calc(4, 50, pods, metrics(a=900, c=5000, d=5000)).replicas == 4  # b unready: 0%


def test_a_pod_ready_too_recently_is_unready_for_cpu_within_its_initialization() -> None:
    """A cpu sample whose window began before the pod turned ready is not trusted."""
    fresh = pod("a", started=rfc3339(NOW - 10), ready_since=rfc3339(NOW - 1))
    long_window = {"a": PodMetric(500, NOW, 30.0)}
    short_window = {"a": PodMetric(500, NOW, 0.5)}
    assert group_pods([fresh], long_window, "cpu", readiness=Readiness(),
                      now=NOW).unready == {"a"}
    assert group_pods([fresh], short_window, "cpu", readiness=Readiness(), now=NOW).ready == 1
    # Memory does not care about readiness; after the initialization period, neither cpu.
    assert group_pods([fresh], long_window, "memory", readiness=Readiness(),
                      now=NOW).ready == 1
    assert group_pods([fresh], long_window, "cpu", readiness=Readiness(5, 30),
                      now=NOW).ready == 1


def test_missing_metrics_count_as_full_request_when_scaling_down() -> None:
    """3 pods at 10%, 1 without metrics: 4 x 100% would be assumed -> 32.5% -> 3 pods."""
    pods = [pod("a"), pod("b"), pod("c"), pod("d")]
    assert calc(4, 50, pods, metrics(a=100, b=100, c=100)).replicas == 3


def test_missing_metrics_count_as_zero_when_scaling_up() -> None:
    """2 pods at 100%, 2 without: with them at 0% it is 50% of 4 -> ratio 1.0 -> keep 4."""
    pods = [pod("a"), pod("b"), pod("c"), pod("d")]
    assert calc(4, 50, pods, metrics(a=1000, b=1000)).replicas == 4
    # 3 at 100%, 1 missing: 75% -> ceil(1.5 * 4) = 6.
    assert calc(4, 50, pods, metrics(a=1000, b=1000, c=1000)).replicas == 6


def test_no_usable_metrics_and_missing_requests_are_errors() -> None:
    with pytest.raises(MetricError, match="did not receive metrics"):
        calc(1, 50, [pod("a", ready=False)], metrics(a=100))
    with pytest.raises(MetricError, match="no pods returned"):
        calc(1, 50, [], metrics())
    no_request = pod("a")
    no_request["spec"]["containers"][0]["resources"] = {}
    with pytest.raises(MetricError, match="missing request for cpu in container c of Pod a"):
        calc(1, 50, [no_request], metrics(a=100))


def test_average_value_targets_compare_raw_usage() -> None:
    """Memory averageValue 100Mi, pods at 150Mi and 250Mi -> ceil(2 * 2) = 4."""
    mi = 1024 * 1024 * 1000  # milli-bytes per MiB
    pods = [pod("a", memory="1Gi"), pod("b", memory="1Gi")]
    got = replicas_for_average_value(2, 100 * mi, "memory", pods,
                                     metrics(a=150 * mi, b=250 * mi), tolerance=0.1,
                                     readiness=Readiness(), now=NOW)
    assert (got.replicas, got.average) == (4, 200 * mi)
    assert format_milli(got.average) == str(200 * 1024 * 1024)


def test_pod_metrics_sum_containers_and_drop_incomplete_pods() -> None:
    items = [
        {"metadata": {"name": "a"}, "timestamp": "2027-01-15T08:00:00Z", "window": "1.5s",
         "containers": [{"name": "x", "usage": {"cpu": "250000000n", "memory": "1Mi"}},
                        {"name": "y", "usage": {"cpu": "100m", "memory": "1Mi"}}]},
        {"metadata": {"name": "b"}, "containers": [{"name": "x", "usage": {"memory": "1Mi"}}]},
    ]
    got = pod_metrics(items, "cpu")
    assert list(got) == ["a"]
    assert got["a"].value == 350 and got["a"].window == 1.5
    assert pod_metrics(items, "cpu", container="y")["a"].value == 100


def test_format_milli_prints_canonical_quantities() -> None:
    assert [format_milli(v) for v in (250, 1000, 2500, 64_000_000, 0)] == \
        ["250m", "1", "2500m", "64k", "0"]


# -- normalization -----------------------------------------------------------------------


def norm(history: History, current: int, desired: int, *, lo: int = 1, hi: int = 10,
         window: float = 300.0, now: float = NOW):
    return normalize(history, current=current, desired=desired, min_replicas=lo,
                     max_replicas=hi, window=window, now=now)


def test_scale_down_takes_the_highest_recommendation_of_the_window() -> None:
    history = History()
    assert norm(history, 1, 5, now=NOW - 200)[0] == 4  # scale-up limit max(2x1, 4)
    got, limits = norm(history, 4, 2, now=NOW - 100)
    assert got == 5  # the 5 recommended 100 s earlier
    got, limits = norm(history, 4, 1, now=NOW)
    assert got == 5
    assert limits.able_reason == "ScaleDownStabilized"
    # Once the window has passed, the low recommendation wins.
    got, limits = norm(history, 4, 1, now=NOW + 301)
    assert (got, limits.able_reason) == (1, "ReadyForNewScale")


def test_min_and_max_limit_with_kubernetes_reasons() -> None:
    got, limits = norm(History(), 3, 20, hi=5)
    assert (got, limits.limited, limits.limited_reason) == (5, True, "TooManyReplicas")
    got, limits = norm(History(), 1, 20, hi=50)
    assert (got, limits.limited, limits.limited_reason) == (4, True, "ScaleUpLimit")
    got, limits = norm(History(), 3, 0, lo=2, window=0)
    assert (got, limits.limited, limits.limited_reason) == (2, True, "TooFewReplicas")
    got, limits = norm(History(), 3, 4)
    assert (got, limits.limited, limits.limited_reason) == (4, False, "DesiredWithinRange")


def behave(history: History, behavior: Obj, current: int, desired: int, *, now: float = NOW,
           lo: int = 1, hi: int = 100):
    return normalize_with_behavior(history, behavior, current=current, desired=desired,
                                   min_replicas=lo, max_replicas=hi, window=300.0, now=now)


def test_behavior_rate_policies_limit_each_period() -> None:
    behavior = {"scaleDown": {"stabilizationWindowSeconds": 0,
                              "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}
    history = History()
    got, limits = behave(history, behavior, 5, 1)
    assert (got, limits.limited_reason) == (4, "ScaleDownLimit")
    store_scale_event(history, behavior, before=5, after=4, window=300.0, now=NOW)
    got, _ = behave(history, behavior, 4, 1, now=NOW + 10)
    assert got == 4  # the period's one pod is spent
    got, _ = behave(history, behavior, 4, 1, now=NOW + 61)
    assert got == 3


def test_behavior_defaults_scale_up_by_four_pods_or_double() -> None:
    got, limits = behave(History(), {}, 2, 50)
    assert (got, limits.limited_reason) == (6, "ScaleUpLimit")  # max(2+4, 2*2)
    got, _ = behave(History(), {}, 10, 50)
    assert got == 20


def test_behavior_disabled_direction_never_moves() -> None:
    behavior = {"scaleDown": {"selectPolicy": "Disabled"}}
    assert behave(History(), behavior, 5, 1)[0] == 5


def test_behavior_scale_up_window_takes_the_lowest_recommendation() -> None:
    behavior = {"scaleUp": {"stabilizationWindowSeconds": 60}}
    history = History(recommendations=[(NOW - 30, 3)])
    got, limits = behave(history, behavior, 2, 8)
    assert (got, limits.able_reason) == (3, "ScaleUpStabilized")


def test_scale_events_are_only_kept_for_behavior() -> None:
    history = History()
    store_scale_event(history, None, before=1, after=3, window=300.0, now=NOW)
    assert history.up_events == []
    store_scale_event(history, {}, before=1, after=3, window=300.0, now=NOW)
    assert history.up_events == [ScaleEvent(2, NOW)]


def test_conditions_move_their_transition_time_only_on_a_status_change() -> None:
    conditions: list[Obj] = []
    set_condition(conditions, "AbleToScale", "True", "A", "a", "t1")
    set_condition(conditions, "AbleToScale", "True", "B", "b", "t2")
    assert conditions == [{"type": "AbleToScale", "status": "True", "lastTransitionTime": "t1",
                           "reason": "B", "message": "b"}]
    set_condition(conditions, "AbleToScale", "False", "C", "c", "t3")
    assert conditions[0]["lastTransitionTime"] == "t3"


def test_durations_read_as_kubernetes_writes_them() -> None:
    assert [duration(t) for t in ("15s", "5m", "1m30s", "500ms", "2", "0.5")] == \
        [15, 300, 90, 0.5, 2, 0.5]

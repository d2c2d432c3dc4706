"""The HorizontalPodAutoscaler controller (autoscaling/v2): Kubernetes' algorithm,
scaled down to Resource and ContainerResource metrics.

Every HPA is synced once per `--horizontal-pod-autoscaler-sync-period` (and at
once when its spec changes). A sync, as `reconcileAutoscaler` in Kubernetes'
pkg/controller/podautoscaler does it:

1. reads the scale target (a Deployment or ReplicaSet: `spec.replicas` and
   `spec.selector`) fresh from the API; a target at 0 replicas disables scaling;
   one outside [minReplicas, maxReplicas] is brought inside;
2. otherwise asks the metrics API for the target's pods' usage (as the real HPA
   asks metrics.k8s.io) and computes, per metric,
   `desired = ceil(current × currentMetric / target)` over the pods that count
   (the replica calculator below), doing nothing within the 0.1 tolerance;
   the largest proposal of all metrics wins;
3. normalizes it: without `behavior`, the largest recommendation of the last
   `--horizontal-pod-autoscaler-downscale-stabilization` (scale-down
   stabilisation), a scale-up of at most max(2 × current, 4), then min/max;
   with `behavior`, the stabilisation windows and rate policies of each
   direction;
4. patches the target's `spec.replicas` (pinned to the resourceVersion it
   read, as an update of the scale subresource is), records
   `SuccessfulRescale`, and writes status: currentReplicas, desiredReplicas,
   currentMetrics, lastScaleTime and the AbleToScale, ScalingActive and
   ScalingLimited conditions with Kubernetes' reasons.

Pods count as Kubernetes counts them (`groupPods`): a pod being deleted or
Failed is ignored; a Pending pod, and for cpu a pod not yet Ready (or Ready too
recently for its sample to be trusted, within the cpu initialization period),
is *unready*; a pod without metrics is *missing*. When the ready pods alone
say "scale down", missing pods are assumed at 100% of their request (at the
target for averageValue); when they say "scale up", missing pods count as 0%
and so do unready pods; a proposal whose direction flips after that, or that
lands within the tolerance, keeps the current count.

The recommendations and scale events behind stabilisation and rate policies
live in this process only, as in Kubernetes: a new leader starts afresh.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kubelite.client import Client
from kubelite.errors import ApiError, ConflictError, InvalidError, NotFoundError
from kubelite.events import NORMAL, WARNING, EventRecorder
from kubelite.quantity import parse_quantity

from .base import Controller
from .controllerref import selector_of
from .informers import NAMESPACE_INDEX, InformerFactory
from .pods import ready_condition, timestamp

Obj = dict[str, Any]

DEFAULT_SYNC_PERIOD = 15.0
DEFAULT_DOWNSCALE_STABILIZATION = 300.0
DEFAULT_TOLERANCE = 0.1
DEFAULT_CPU_INITIALIZATION_PERIOD = 300.0
DEFAULT_INITIAL_READINESS_DELAY = 30.0

SCALE_UP_LIMIT_FACTOR = 2.0
SCALE_UP_LIMIT_MINIMUM = 4.0

ABLE_TO_SCALE = "AbleToScale"
SCALING_ACTIVE = "ScalingActive"
SCALING_LIMITED = "ScalingLimited"

#: The scale targets this controller can read and write: kind -> (apiVersion group, plural).
SCALABLE = {"Deployment": "deployments", "ReplicaSet": "replicasets",
            "StatefulSet": "statefulsets"}


class MetricError(Exception):
    """A metric could not be computed: the condition reason goes with it."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# -- quantities ----------------------------------------------------------------


def milli(value: Any) -> int:
    """A quantity in milli-units, rounded up (Kubernetes' MilliValue)."""
    return math.ceil(parse_quantity(value) * 1000)


_SI = (("E", 10**18), ("P", 10**15), ("T", 10**12), ("G", 10**9), ("M", 10**6), ("k", 10**3))


def format_milli(value: int) -> str:
    """A milli-value as a canonical decimal quantity: 250m, 1, 2500m, 64M, 52428800."""
    if value % 1000:
        return f"{value}m"
    whole = value // 1000
    for suffix, size in _SI:
        if whole and whole % size == 0:
            return f"{whole // size}{suffix}"
    return str(whole)


def parse_window(text: Any) -> float:
    """The metrics API's window ("1.005s", "30s") in seconds; 0 when unreadable."""
    text = str(text or "").strip()
    try:
        if text.endswith("ms"):
            return float(text[:-2]) / 1000
        if text.endswith("s"):
            return float(text[:-1])
        return float(text) if text else 0.0
    except ValueError:
        return 0.0


def _now_rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- pod metrics -----------------------------------------------------------------


@dataclass(frozen=True)
class PodMetric:
    value: int  # milli-units (millicores, milli-bytes), as Kubernetes' MilliValue
    timestamp: float  # epoch seconds of the sample
    window: float  # seconds the sample is averaged over


def pod_metrics(items: Sequence[Obj], resource: str, container: str = "") -> dict[str, PodMetric]:
    """{pod name: usage of `resource`} from PodMetrics: the sum of the pod's containers, or
    the one named `container`. A pod missing the resource in any container it needs is
    left out (it then counts as a pod without metrics)."""
    out: dict[str, PodMetric] = {}
    for item in items:
        name = (item.get("metadata") or {}).get("name")
        if not name:
            continue
        total, missing, found = 0, False, False
        for c in item.get("containers") or []:
            if container and c.get("name") != container:
                continue
            value = (c.get("usage") or {}).get(resource)
            if value is None:
                missing = True
                break
            try:
                total += milli(value)
            except InvalidError:
                missing = True
                break
            found = True
        if missing or not found:
            continue
        out[name] = PodMetric(total, timestamp(item.get("timestamp")) or time.time(),
                              parse_window(item.get("window")))
    return out


def pod_requests(pods: Sequence[Obj], resource: str, container: str = "") -> dict[str, int]:
    """{pod name: its request of `resource` in milli-units}; a container without one is
    an error, as in Kubernetes' calculatePodRequests."""
    requests: dict[str, int] = {}
    for pod in pods:
        name = pod["metadata"]["name"]
        total = 0
        for c in (pod.get("spec") or {}).get("containers") or []:
            if container and c.get("name") != container:
                continue
            value = ((c.get("resources") or {}).get("requests") or {}).get(resource)
            if value is None:
                raise MetricError("", f"missing request for {resource} in container "
                                      f"{c.get('name')} of Pod {name}")
            total += milli(value)
        requests[name] = total
    return requests


# -- the replica calculator ------------------------------------------------------------


@dataclass
class PodGroups:
    ready: int = 0
    unready: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)
    ignored: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Readiness:
    """When a pod's cpu sample is trusted (Kubernetes' two HPA readiness flags)."""

    cpu_initialization_period: float = DEFAULT_CPU_INITIALIZATION_PERIOD
    initial_readiness_delay: float = DEFAULT_INITIAL_READINESS_DELAY


def group_pods(pods: Sequence[Obj], metrics: dict[str, PodMetric], resource: str, *,
               readiness: Readiness, now: float) -> PodGroups:
    """Kubernetes' groupPods: which pods count, which are unready, missing or ignored."""
    groups = PodGroups()
    for pod in pods:
        name = pod["metadata"]["name"]
        status = pod.get("status") or {}
        if pod["metadata"].get("deletionTimestamp") or status.get("phase") == "Failed":
            groups.ignored.add(name)
            continue
        if status.get("phase") == "Pending":
            groups.unready.add(name)
            continue
        metric = metrics.get(name)
        if metric is None:
            groups.missing.add(name)
            continue
        if resource == "cpu":
            condition = ready_condition(pod)
            started = timestamp(status.get("startTime"))
            if condition is None or started is None:
                unready = True
            else:
                changed = timestamp(condition.get("lastTransitionTime")) or 0.0
                if started + readiness.cpu_initialization_period > now:
                    # Still initializing: only a sample taken wholly after readiness counts.
                    unready = (condition.get("status") == "False"
                               or metric.timestamp < changed + metric.window)
                else:
                    # Ready once: unready only if it never became ready in time.
                    unready = (condition.get("status") == "False"
                               and started + readiness.initial_readiness_delay > changed)
            if unready:
                groups.unready.add(name)
                continue
        groups.ready += 1
    return groups


def utilization_ratio(metrics: dict[str, int], requests: dict[str, int],
                      target: int) -> tuple[float, int, int]:
    """(usage ratio, utilization %, average raw value) over pods with metrics and requests."""
    metrics_total = requests_total = entries = 0
    for name, value in metrics.items():
        request = requests.get(name)
        if request is None:
            continue
        metrics_total += value
        requests_total += request
        entries += 1
    if requests_total == 0:
        raise MetricError("", "no metrics returned matched known pods")
    utilization = int(metrics_total * 100 / requests_total)
    return utilization / target, utilization, metrics_total // entries


def usage_ratio(metrics: dict[str, int], target: int) -> tuple[float, int]:
    """(usage ratio, average value) for an averageValue target."""
    total = sum(metrics.values())
    average = total // len(metrics)
    return total / len(metrics) / target, average


@dataclass(frozen=True)
class Proposal:
    replicas: int
    utilization: int | None  # percent of request (utilization targets only)
    average: int  # milli-units


def _settle(current: int, ratio: float, new_ratio: float, count: int,
            tolerance: float) -> int:
    """The replica count after missing and unready pods were filled in."""
    if (abs(1.0 - new_ratio) <= tolerance or (ratio < 1.0 < new_ratio)
            or (ratio > 1.0 > new_ratio)):
        return current
    replicas = math.ceil(new_ratio * count)
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        return current
    return replicas


def replicas_for_utilization(current: int, target: int, resource: str, pods: Sequence[Obj],
                             metrics: dict[str, PodMetric], *, tolerance: float,
                             readiness: Readiness, now: float,
                             container: str = "") -> Proposal:
    """Kubernetes' GetResourceReplicas: the replicas that bring utilization to `target` %."""
    if not pods:
        raise MetricError("", "no pods returned by selector while calculating replica count")
    groups = group_pods(pods, metrics, resource, readiness=readiness, now=now)
    values = {name: m.value for name, m in metrics.items()
              if name not in groups.ignored and name not in groups.unready}
    if not values:
        raise MetricError("", "did not receive metrics for targeted pods (pods might be "
                              "unready)")
    requests = pod_requests(pods, resource, container)
    ratio, utilization, average = utilization_ratio(values, requests, target)
    scale_up_with_unready = bool(groups.unready) and ratio > 1.0
    if not scale_up_with_unready and not groups.missing:
        if abs(1.0 - ratio) <= tolerance:
            return Proposal(current, utilization, average)
        return Proposal(math.ceil(ratio * groups.ready), utilization, average)
    if groups.missing:
        if ratio < 1.0:
            fallback = max(100, target)
            for name in groups.missing:
                values[name] = requests[name] * fallback // 100
        elif ratio > 1.0:
            for name in groups.missing:
                values[name] = 0
    if scale_up_with_unready:
        for name in groups.unready:
            values[name] = 0
    new_ratio, _, _ = utilization_ratio(values, requests, target)
    return Proposal(_settle(current, ratio, new_ratio, len(values), tolerance),
                    utilization, average)


def replicas_for_average_value(current: int, target: int, resource: str, pods: Sequence[Obj],
                               metrics: dict[str, PodMetric], *, tolerance: float,
                               readiness: Readiness, now: float) -> Proposal:
    """Kubernetes' GetRawResourceReplicas: the replicas that bring the average to `target`."""
    if not pods:
        raise MetricError("", "no pods returned by selector while calculating replica count")
    if target <= 0:
        raise MetricError("", f"invalid target average value for {resource}")
    groups = group_pods(pods, metrics, resource, readiness=readiness, now=now)
    values = {name: m.value for name, m in metrics.items()
              if name not in groups.ignored and name not in groups.unready}
    if not values:
        raise MetricError("", "did not receive metrics for targeted pods (pods might be "
                              "unready)")
    ratio, average = usage_ratio(values, target)
    scale_up_with_unready = bool(groups.unready) and ratio > 1.0
    if not scale_up_with_unready and not groups.missing:
        if abs(1.0 - ratio) <= tolerance:
            return Proposal(current, None, average)
        return Proposal(math.ceil(ratio * groups.ready), None, average)
    if groups.missing:
        if ratio < 1.0:
            for name in groups.missing:
                values[name] = target
        elif ratio > 1.0:
            for name in groups.missing:
                values[name] = 0
    if scale_up_with_unready:
        for name in groups.unready:
            values[name] = 0
    new_ratio, _ = usage_ratio(values, target)
    return Proposal(_settle(current, ratio, new_ratio, len(values), tolerance), None, average)


# -- behavior ------------------------------------------------------------------------------


def default_scale_up(rules: Obj | None) -> Obj:
    """Kubernetes' GenerateHPAScaleUpRules: 0 s window, max of +4 pods or +100% per 15 s."""
    rules = rules or {}
    return {
        "stabilizationWindowSeconds": rules.get("stabilizationWindowSeconds", 0),
        "selectPolicy": rules.get("selectPolicy") or "Max",
        "policies": rules.get("policies") or [
            {"type": "Pods", "value": 4, "periodSeconds": 15},
            {"type": "Percent", "value": 100, "periodSeconds": 15}],
    }


def default_scale_down(rules: Obj | None, window: float) -> Obj:
    """Kubernetes' GenerateHPAScaleDownRules: the controller's window, -100% per 15 s."""
    rules = rules or {}
    stabilization = rules.get("stabilizationWindowSeconds")
    return {
        "stabilizationWindowSeconds": window if stabilization is None else stabilization,
        "selectPolicy": rules.get("selectPolicy") or "Max",
        "policies": rules.get("policies") or [
            {"type": "Percent", "value": 100, "periodSeconds": 15}],
    }


@dataclass(frozen=True)
class ScaleEvent:
    change: int
    at: float


def _changes_in_period(period: float, events: Sequence[ScaleEvent], now: float) -> int:
    cutoff = now - period
    return sum(e.change for e in events if e.at > cutoff)


def _policy_limit(current: int, up: Sequence[ScaleEvent], down: Sequence[ScaleEvent],
                  rules: Obj, now: float, *, scaling_up: bool) -> int:
    """The replica limit the behavior policies allow in one direction, counted from the
    replicas at the start of each policy's period (Kubernetes'
    calculateScaleUpLimitWithScalingRules and calculateScaleDownLimitWithBehaviors)."""
    select = rules.get("selectPolicy") or "Max"
    if select == "Disabled":
        return current
    # "Max" selects the policy allowing the biggest change: the highest limit when
    # scaling up, the lowest when scaling down; "Min" the opposite.
    biggest, smallest = (max, min) if scaling_up else (min, max)
    pick = smallest if select == "Min" else biggest
    result: int | None = None
    for policy in rules.get("policies") or []:
        period = float(policy.get("periodSeconds") or 0)
        start = (current - _changes_in_period(period, up, now)
                 + _changes_in_period(period, down, now))
        value = int(policy.get("value") or 0)
        if policy.get("type") == "Pods":
            proposed = start + value if scaling_up else start - value
        elif scaling_up:
            proposed = math.ceil(start * (1 + value / 100))
        else:
            proposed = int(start * (1 - value / 100))
        result = proposed if result is None else pick(result, proposed)
    return current if result is None else result


def scale_up_limit(current: int, up: Sequence[ScaleEvent], down: Sequence[ScaleEvent],
                   rules: Obj, now: float) -> int:
    return _policy_limit(current, up, down, rules, now, scaling_up=True)


def scale_down_limit(current: int, up: Sequence[ScaleEvent], down: Sequence[ScaleEvent],
                     rules: Obj, now: float) -> int:
    return _policy_limit(current, up, down, rules, now, scaling_up=False)


@dataclass
class Limits:
    """The condition values one normalization produced."""

    able_reason: str = ""
    able_message: str = ""
    limited: bool = False
    limited_reason: str = ""
    limited_message: str = ""


@dataclass
class History:
    """One HPA's recommendations and scale events (this process's memory only)."""

    recommendations: list[tuple[float, int]] = field(default_factory=list)
    up_events: list[ScaleEvent] = field(default_factory=list)
    down_events: list[ScaleEvent] = field(default_factory=list)


def _record(history: History, desired: int, now: float, keep: float) -> None:
    history.recommendations = [r for r in history.recommendations if r[0] >= now - keep]
    history.recommendations.append((now, desired))


def normalize(history: History, *, current: int, desired: int, min_replicas: int,
              max_replicas: int, window: float, now: float) -> tuple[int, Limits]:
    """normalizeDesiredReplicas: stabilize scale-down, cap the scale-up rate, then min/max."""
    cutoff = now - window
    stabilized = max([desired] + [r for t, r in history.recommendations if t >= cutoff])
    _record(history, desired, now, window)
    limits = Limits()
    if stabilized != desired:
        limits.able_reason = "ScaleDownStabilized"
        limits.able_message = ("recent recommendations were higher than current one, applying "
                               "the highest recent recommendation")
    else:
        limits.able_reason = "ReadyForNewScale"
        limits.able_message = "recommended size matches current size"
    up_limit = int(max(SCALE_UP_LIMIT_FACTOR * current, SCALE_UP_LIMIT_MINIMUM))
    if max_replicas > up_limit:
        maximum, reason, message = (up_limit, "ScaleUpLimit", "the desired replica count is "
                                    "increasing faster than the maximum scale rate")
    else:
        maximum, reason, message = (max_replicas, "TooManyReplicas", "the desired replica "
                                    "count is more than the maximum replica count")
    if stabilized < min_replicas:
        result, reason, message = (min_replicas, "TooFewReplicas", "the desired replica count "
                                   "is less than the minimum replica count")
    elif stabilized > maximum:
        result = maximum
    else:
        result, reason, message = (stabilized, "DesiredWithinRange",
                                   "the desired count is within the acceptable range")
    limits.limited = result != stabilized
    limits.limited_reason, limits.limited_message = reason, message
    return result, limits


def normalize_with_behavior(history: History, behavior: Obj, *, current: int, desired: int,
                            min_replicas: int, max_replicas: int, window: float,
                            now: float) -> tuple[int, Limits]:
    """normalizeDesiredReplicasWithBehaviors: both windows, then both rate policies."""
    up_rules = default_scale_up(behavior.get("scaleUp"))
    down_rules = default_scale_down(behavior.get("scaleDown"), window)
    up_cutoff = now - float(up_rules["stabilizationWindowSeconds"])
    down_cutoff = now - float(down_rules["stabilizationWindowSeconds"])
    up_rec = down_rec = desired
    for at, rec in history.recommendations:
        if at > up_cutoff:
            up_rec = min(rec, up_rec)
        if at > down_cutoff:
            down_rec = max(rec, down_rec)
    stabilized = min(max(current, up_rec), down_rec)
    _record(history, desired, now, max(now - up_cutoff, now - down_cutoff))
    limits = Limits()
    if stabilized != desired:
        if desired >= current:
            limits.able_reason = "ScaleUpStabilized"
            limits.able_message = ("recent recommendations were lower than current one, "
                                   "applying the lowest recent recommendation")
        else:
            limits.able_reason = "ScaleDownStabilized"
            limits.able_message = ("recent recommendations were higher than current one, "
                                   "applying the highest recent recommendation")
    else:
        limits.able_reason = "ReadyForNewScale"
        limits.able_message = "recommended size matches current size"
    result, reason, message = (stabilized, "DesiredWithinRange",
                               "the desired count is within the acceptable range")
    if stabilized > current:
        limit = max(scale_up_limit(current, history.up_events, history.down_events, up_rules,
                                   now), current)
        if max_replicas > limit:
            maximum, why, text = (limit, "ScaleUpLimit", "the desired replica count is "
                                  "increasing faster than the maximum scale rate")
        else:
            maximum, why, text = (max_replicas, "TooManyReplicas", "the desired replica count "
                                  "is more than the maximum replica count")
        if stabilized > maximum:
            result, reason, message = maximum, why, text
    elif stabilized < current:
        limit = min(scale_down_limit(current, history.up_events, history.down_events,
                                     down_rules, now), current)
        if min_replicas < limit:
            minimum, why, text = (limit, "ScaleDownLimit", "the desired replica count is "
                                  "decreasing faster than the maximum scale rate")
        else:
            minimum, why, text = (min_replicas, "TooFewReplicas", "the desired replica count "
                                  "is less than the minimum replica count")
        if stabilized < minimum:
            result, reason, message = minimum, why, text
    limits.limited = result != stabilized
    limits.limited_reason, limits.limited_message = reason, message
    return result, limits


def store_scale_event(history: History, behavior: Obj | None, *, before: int, after: int,
                      window: float, now: float) -> None:
    """Remembers a rescale for the rate policies (only HPAs with `behavior` use them)."""
    if behavior is None or before == after:
        return
    if after > before:
        rules = default_scale_up(behavior.get("scaleUp"))
        events = history.up_events
    else:
        rules = default_scale_down(behavior.get("scaleDown"), window)
        events = history.down_events
    longest = max([float(p.get("periodSeconds") or 0) for p in rules["policies"]] or [0.0])
    events[:] = [e for e in events if e.at > now - longest]
    events.append(ScaleEvent(abs(after - before), now))


# -- status helpers ---------------------------------------------------------------------------


def set_condition(conditions: list[Obj], type_: str, status: str, reason: str, message: str,
                  now: str) -> None:
    """Sets one condition, moving lastTransitionTime only when its status changes."""
    for cond in conditions:
        if cond.get("type") == type_:
            if cond.get("status") != status:
                cond["lastTransitionTime"] = now
            cond.update(status=status, reason=reason, message=message)
            return
    conditions.append({"type": type_, "status": status, "lastTransitionTime": now,
                       "reason": reason, "message": message})


def metric_source(metric: Obj) -> tuple[str, Obj]:
    """(source key, source) of a metric spec: ("resource", {...}), ("containerResource", ...)."""
    kind = metric.get("type") or ""
    key = {"Resource": "resource", "ContainerResource": "containerResource",
           "Pods": "pods", "Object": "object", "External": "external"}.get(kind, "")
    return key, (metric.get(key) or {}) if key else {}


def unknown_status(metric: Obj) -> Obj:
    """A currentMetrics entry for a metric that could not be read (shown as <unknown>)."""
    key, source = metric_source(metric)
    if key in ("resource", "containerResource"):
        entry = {"name": source.get("name", ""), "current": {}}
        if key == "containerResource":
            entry["container"] = source.get("container", "")
        return {"type": metric.get("type"), key: entry}
    return {"type": metric.get("type") or "Resource",
            "resource": {"name": "unknown", "current": {}}}


# -- the controller -------------------------------------------------------------------------


class HorizontalPodAutoscalerController(Controller[str]):
    name = "horizontalpodautoscaler"

    def __init__(self, client: Client, factory: InformerFactory, *,
                 sync_period: float = DEFAULT_SYNC_PERIOD,
                 downscale_stabilization: float = DEFAULT_DOWNSCALE_STABILIZATION,
                 tolerance: float = DEFAULT_TOLERANCE,
                 readiness: Readiness | None = None,
                 recorder: EventRecorder | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.hpa_informer = factory.informer("horizontalpodautoscalers")
        self.pod_informer = factory.informer("pods")
        super().__init__(informers=[self.hpa_informer, self.pod_informer])
        self.client = client
        self.sync_period = sync_period
        self.downscale_stabilization = downscale_stabilization
        self.tolerance = tolerance
        self.readiness = readiness or Readiness()
        self.recorder = recorder or EventRecorder(client,
                                                  component="horizontal-pod-autoscaler")
        self.clock = clock
        self.history: dict[str, History] = {}
        self.hpa_informer.add_handler(on_add=self.enqueue, on_update=self._update,
                                      on_delete=self._delete)

    # -- handlers ---------------------------------------------------------------------

    def _update(self, old: Obj, cur: Obj) -> None:
        # Our own status writes come back as updates: only a spec change is news.
        if old.get("spec") != cur.get("spec"):
            self.enqueue(cur)

    def _delete(self, obj: Obj) -> None:
        self.enqueue(obj)

    # -- sync -------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        cached = self.hpa_informer.get(key)
        if cached is None:
            self.history.pop(key, None)
            return
        self.queue.add_after(key, self.sync_period)
        await self.reconcile(key, copy.deepcopy(cached))

    async def reconcile(self, key: str, hpa: Obj) -> None:
        now = self.clock()
        stamp = _now_rfc3339(now)
        namespace = hpa["metadata"].get("namespace") or "default"
        spec = hpa.get("spec") or {}
        original = copy.deepcopy(hpa.get("status") or {})
        status = copy.deepcopy(original)
        conditions: list[Obj] = status.setdefault("conditions", [])
        ref = spec.get("scaleTargetRef") or {}
        reference = f"{ref.get('kind')}/{ref.get('name')}"
        min_replicas = int(spec.get("minReplicas") or 1)
        max_replicas = int(spec.get("maxReplicas") or 0)

        try:
            target, plural = await self._get_target(namespace, ref)
        except (ApiError, MetricError) as err:
            self.recorder.event(hpa, WARNING, "FailedGetScale", str(err))
            set_condition(conditions, ABLE_TO_SCALE, "False", "FailedGetScale",
                          f"the HPA controller was unable to get the target's current scale: "
                          f"{err}", stamp)
            await self._write_status(hpa, original, status)
            return
        current = int((target.get("spec") or {}).get("replicas", 1))
        set_condition(conditions, ABLE_TO_SCALE, "True", "SucceededGetScale",
                      "the HPA controller was able to get the target's current scale", stamp)

        statuses: list[Obj] = []
        reason = ""
        rescale = False
        desired = 0
        if current == 0 and min_replicas != 0:
            set_condition(conditions, SCALING_ACTIVE, "False", "ScalingDisabled",
                          "scaling is disabled since the replica count of the target is zero",
                          stamp)
        elif current > max_replicas:
            reason, desired, rescale = ("Current number of replicas above Spec.MaxReplicas",
                                        max_replicas, True)
        elif current < min_replicas:
            reason, desired, rescale = ("Current number of replicas below Spec.MinReplicas",
                                        min_replicas, True)
        else:
            computed = await self._replicas_for_metrics(hpa, target, current, conditions,
                                                        now, stamp)
            proposal, metric_name, statuses = computed
            if proposal is None:
                status.update(currentReplicas=current, currentMetrics=statuses)
                status.setdefault("desiredReplicas", current)
                await self._write_status(hpa, original, status)
                return
            rescale_metric = ""
            if proposal > desired:
                desired, rescale_metric = proposal, metric_name
            if desired > current:
                reason = f"{rescale_metric} above target"
            if desired < current:
                reason = "All metrics below target"
            history = self.history.setdefault(key, History())
            behavior = spec.get("behavior")
            if behavior is None:
                desired, limits = normalize(
                    history, current=current, desired=desired, min_replicas=min_replicas,
                    max_replicas=max_replicas, window=self.downscale_stabilization, now=now)
            else:
                desired, limits = normalize_with_behavior(
                    history, behavior, current=current, desired=desired,
                    min_replicas=min_replicas, max_replicas=max_replicas,
                    window=self.downscale_stabilization, now=now)
            set_condition(conditions, ABLE_TO_SCALE, "True", limits.able_reason,
                          limits.able_message, stamp)
            set_condition(conditions, SCALING_LIMITED, "True" if limits.limited else "False",
                          limits.limited_reason, limits.limited_message, stamp)
            rescale = desired != current

        if rescale:
            try:
                await self.client.patch(plural, ref.get("name"), {
                    "metadata": {"resourceVersion": target["metadata"]["resourceVersion"]},
                    "spec": {"replicas": desired}}, namespace=namespace)
            except ApiError as err:
                self.recorder.event(hpa, WARNING, "FailedRescale",
                                    f"New size: {desired}; reason: {reason}; error: {err}")
                set_condition(conditions, ABLE_TO_SCALE, "False", "FailedUpdateScale",
                              f"the HPA controller was unable to update the target scale: {err}",
                              stamp)
                status.update(currentReplicas=current, currentMetrics=statuses)
                await self._write_status(hpa, original, status)
                raise
            set_condition(conditions, ABLE_TO_SCALE, "True", "SucceededRescale",
                          f"the HPA controller was able to update the target scale to {desired}",
                          stamp)
            self.recorder.event(hpa, NORMAL, "SuccessfulRescale",
                                f"New size: {desired}; reason: {reason}")
            store_scale_event(self.history.setdefault(key, History()), spec.get("behavior"),
                              before=current, after=desired,
                              window=self.downscale_stabilization, now=now)
            self.log.info("rescaled", extra={"kv": {
                "hpa": key, "target": reference, "from": current, "to": desired,
                "reason": reason}})
            status["lastScaleTime"] = stamp
        else:
            desired = current
        status.update(currentReplicas=current, desiredReplicas=desired, currentMetrics=statuses)
        generation = hpa["metadata"].get("generation")
        if generation is not None:
            status["observedGeneration"] = generation
        await self._write_status(hpa, original, status)

    async def _get_target(self, namespace: str, ref: Obj) -> tuple[Obj, str]:
        kind, name = ref.get("kind") or "", ref.get("name") or ""
        plural = SCALABLE.get(kind)
        if plural is None or not str(ref.get("apiVersion") or "apps/v1").startswith("apps/"):
            raise MetricError("FailedGetScale", f'no scale subresource for kind "{kind}" in '
                              f'version "{ref.get("apiVersion")}" (this controller scales '
                              "Deployments, ReplicaSets and StatefulSets)")
        return await self.client.get(plural, name, namespace=namespace), plural

    async def _replicas_for_metrics(self, hpa: Obj, target: Obj, current: int,
                                    conditions: list[Obj], now: float,
                                    stamp: str) -> tuple[int | None, str, list[Obj]]:
        """computeReplicasForMetrics: the largest proposal of all metrics and each metric's
        status; the proposal is None (and the condition set) when they cannot be trusted."""
        metrics = (hpa.get("spec") or {}).get("metrics") or []
        namespace = hpa["metadata"].get("namespace") or "default"
        statuses: list[Obj] = []
        replicas, metric_name = 0, ""
        invalid = 0
        first: MetricError | None = None
        try:
            selector = selector_of(target)
        except ApiError as err:
            selector, first = None, MetricError("InvalidSelector", str(err))
        if selector is not None and selector.selects_everything:
            selector, first = None, MetricError(
                "InvalidSelector", "selector is required and must select some pods")
        if selector is None:
            assert first is not None
            self.recorder.event(hpa, WARNING, first.reason, str(first))
            set_condition(conditions, SCALING_ACTIVE, "False", first.reason,
                          f"the HPA target's scale is missing a selector: {first}"
                          if first.reason == "InvalidSelector" else str(first), stamp)
            return None, "", [unknown_status(m) for m in metrics]
        pods = [p for p in self.pod_informer.by_index(NAMESPACE_INDEX, namespace)
                if selector.matches_object(p)]
        usage: list[Obj] | None = None
        usage_error: ApiError | None = None
        for metric in metrics:
            try:
                if usage is None and usage_error is None:
                    try:
                        usage = await self.client.metrics("pods", namespace=namespace,
                                                          label_selector=str(selector))
                    except ApiError as err:
                        usage_error = err
                proposal, name, entry = self._replicas_for_metric(
                    metric, current, pods, usage, usage_error, now)
            except MetricError as err:
                statuses.append(unknown_status(metric))
                self.recorder.event(hpa, WARNING, err.reason, str(err))
                if invalid == 0:
                    first = err
                invalid += 1
                continue
            statuses.append(entry)
            if replicas == 0 or proposal > replicas:
                replicas, metric_name = proposal, name
        if not metrics or invalid >= len(metrics) or (invalid > 0 and replicas < current):
            err = first or MetricError("InvalidMetricSourceType", "no metrics to scale on")
            set_condition(conditions, SCALING_ACTIVE, "False", err.reason,
                          f"the HPA was unable to compute the replica count: {err}", stamp)
            self.recorder.event(hpa, WARNING, "FailedComputeMetricsReplicas",
                                f"invalid metrics ({invalid} invalid out of {len(metrics)}), "
                                f"first error is: {err}")
            return None, "", statuses
        set_condition(conditions, SCALING_ACTIVE, "True", "ValidMetricFound",
                      f"the HPA was able to successfully calculate a replica count from "
                      f"{metric_name}", stamp)
        return replicas, metric_name, statuses

    def _replicas_for_metric(self, metric: Obj, current: int, pods: list[Obj],
                             usage: list[Obj] | None, usage_error: ApiError | None,
                             now: float) -> tuple[int, str, Obj]:
        key, source = metric_source(metric)
        if key not in ("resource", "containerResource"):
            raise MetricError("InvalidMetricSourceType",
                              f'unknown metric source type "{metric.get("type")}" (this '
                              "controller reads Resource and ContainerResource metrics)")
        container = source.get("container", "") if key == "containerResource" else ""
        failed = ("FailedGetContainerResourceMetric" if container
                  else "FailedGetResourceMetric")
        resource = source.get("name") or ""
        target = source.get("target") or {}
        what = (f"{resource} container resource" if container else f"{resource} resource")
        utilization = target.get("type") == "Utilization" or "averageUtilization" in target
        try:
            if usage_error is not None:
                raise MetricError("", f"unable to get metrics for resource {resource}: unable "
                                      f"to fetch metrics from resource metrics API: {usage_error}")
            metrics = pod_metrics(usage or [], resource, container)
            if not metrics:
                raise MetricError("", f"unable to get metrics for resource {resource}: no "
                                      "metrics returned from resource metrics API")
            if utilization:
                goal = int(target.get("averageUtilization") or 0)
                if goal <= 0:
                    raise MetricError("", f"invalid target utilization for {resource}")
                proposal = replicas_for_utilization(
                    current, goal, resource, pods, metrics, tolerance=self.tolerance,
                    readiness=self.readiness, now=now, container=container)
                name = f"{what} utilization (percentage of request)"
                current_value = {"averageUtilization": proposal.utilization,
                                 "averageValue": format_milli(proposal.average)}
            else:
                goal = milli(target.get("averageValue") or 0)
                proposal = replicas_for_average_value(
                    current, goal, resource, pods, metrics, tolerance=self.tolerance,
                    readiness=self.readiness, now=now)
                name = what
                current_value = {"averageValue": format_milli(proposal.average)}
        except (MetricError, InvalidError) as err:
            measure = "utilization" if utilization else "usage"
            raise MetricError(failed, f"failed to get {resource} {measure}: {err}") from None
        entry: Obj = {"name": resource, "current": current_value}
        if container:
            entry["container"] = container
        return proposal.replicas, name, {"type": metric.get("type"), key: entry}

    async def _write_status(self, hpa: Obj, original: Obj, status: Obj) -> None:
        if status == original:
            return
        hpa = dict(hpa, status=status)
        try:
            await self.client.update_status("horizontalpodautoscalers", hpa)
        except ConflictError:
            # Someone changed the spec meanwhile: write our view onto theirs once.
            fresh = await self.client.get("horizontalpodautoscalers", hpa["metadata"]["name"],
                                          namespace=hpa["metadata"].get("namespace"))
            fresh["status"] = status
            await self.client.update_status("horizontalpodautoscalers", fresh)
        except NotFoundError:
            pass  # deleted meanwhile: nothing to report on


__all__ = [
    "DEFAULT_DOWNSCALE_STABILIZATION",
    "DEFAULT_SYNC_PERIOD",
    "DEFAULT_TOLERANCE",
    "HorizontalPodAutoscalerController",
    "History",
    "MetricError",
    "PodMetric",
    "Readiness",
    "format_milli",
    "group_pods",
    "normalize",
    "normalize_with_behavior",
    "pod_metrics",
    "replicas_for_average_value",
    "replicas_for_utilization",
]

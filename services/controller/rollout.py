"""The arithmetic of a Deployment rollout, as pure functions over object dicts.

Everything here mirrors Kubernetes' `pkg/controller/deployment/util` and the
decision halves of `rolling.go`, `sync.go` and `progress.go`; the controller
(deployment.py) does the writes. Being pure, it is unit-tested directly:
fenceposts, new-ReplicaSet sizing, old-ReplicaSet scale-down, proportional
scaling, revisions and conditions.

One deliberate difference: when deciding how far old ReplicaSets may shrink,
a ReplicaSet's available replicas are counted as at most its `spec.replicas`.
Its status lags a scale-down that was just written (the pods are still
counted until the ReplicaSet controller deletes them and reports again), and
trusting the stale count could take availability below maxUnavailable.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from .pods import timestamp
from .templatehash import equal_ignore_hash

Obj = dict[str, Any]

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
REVISION_HISTORY_ANNOTATION = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS_ANNOTATION = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS_ANNOTATION = "deployment.kubernetes.io/max-replicas"
_SKIP_COPY_ANNOTATIONS = frozenset({
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION_ANNOTATION,
    REVISION_HISTORY_ANNOTATION,
    DESIRED_REPLICAS_ANNOTATION,
    MAX_REPLICAS_ANNOTATION,
    "deprecated.deployment.rollback.to",
})

# Condition types and reasons (Kubernetes' deployment/util).
PROGRESSING = "Progressing"
AVAILABLE = "Available"
REPLICA_FAILURE = "ReplicaFailure"
NEW_RS_REASON = "NewReplicaSetCreated"
FOUND_NEW_RS_REASON = "FoundNewReplicaSet"
RS_UPDATED_REASON = "ReplicaSetUpdated"
NEW_RS_AVAILABLE_REASON = "NewReplicaSetAvailable"
TIMED_OUT_REASON = "ProgressDeadlineExceeded"
FAILED_RS_CREATE_REASON = "ReplicaSetCreateError"
PAUSED_REASON = "DeploymentPaused"
RESUMED_REASON = "DeploymentResumed"
MIN_AVAILABLE_REASON = "MinimumReplicasAvailable"
MIN_UNAVAILABLE_REASON = "MinimumReplicasUnavailable"

ROLLING_UPDATE = "RollingUpdate"
RECREATE = "Recreate"
_NO_DEADLINE = 2**31 - 1  # math.MaxInt32: "no progress deadline"


# -- small readers ------------------------------------------------------------


def spec_replicas(obj: Obj | None) -> int:
    if obj is None:
        return 0
    value = (obj.get("spec") or {}).get("replicas")
    return 1 if value is None else int(value)


def status_int(obj: Obj | None, name: str) -> int:
    if obj is None:
        return 0
    return int((obj.get("status") or {}).get(name) or 0)


def annotations(obj: Obj) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def generation(obj: Obj) -> int:
    return int((obj.get("metadata") or {}).get("generation") or 0)


def strategy_type(d: Obj) -> str:
    return ((d.get("spec") or {}).get("strategy") or {}).get("type") or ROLLING_UPDATE


def is_rolling_update(d: Obj) -> bool:
    return strategy_type(d) == ROLLING_UPDATE


def _created(obj: Obj) -> float:
    return timestamp((obj.get("metadata") or {}).get("creationTimestamp")) or 0.0


def _name(obj: Obj) -> str:
    return (obj.get("metadata") or {}).get("name") or ""


def by_creation(rss: Iterable[Obj]) -> list[Obj]:
    """Oldest first, ties by name (ReplicaSetsByCreationTimestamp)."""
    return sorted(rss, key=lambda rs: (_created(rs), _name(rs)))


def revision(obj: Obj | None) -> int:
    """The revision annotation as an int (0 when absent or malformed)."""
    if obj is None:
        return 0
    try:
        return int(annotations(obj).get(REVISION_ANNOTATION, "0"))
    except ValueError:
        return 0


def by_revision(rss: Iterable[Obj]) -> list[Obj]:
    """Lowest revision first, ties oldest first (ReplicaSetsByRevision)."""
    return sorted(rss, key=lambda rs: (revision(rs), _created(rs), _name(rs)))


def max_revision(rss: Iterable[Obj]) -> int:
    return max((revision(rs) for rs in rss), default=0)


def replica_count(rss: Iterable[Obj | None]) -> int:
    """The sum of spec.replicas (GetReplicaCountForReplicaSets)."""
    return sum(spec_replicas(rs) for rs in rss if rs is not None)


def actual_replica_count(rss: Iterable[Obj | None]) -> int:
    return sum(status_int(rs, "replicas") for rs in rss if rs is not None)


def ready_replica_count(rss: Iterable[Obj | None]) -> int:
    return sum(status_int(rs, "readyReplicas") for rs in rss if rs is not None)


def available_replica_count(rss: Iterable[Obj | None]) -> int:
    return sum(status_int(rs, "availableReplicas") for rs in rss if rs is not None)


def settled_available_count(rss: Iterable[Obj | None]) -> int:
    """Available replicas, each ReplicaSet's capped at its spec (see the module docstring)."""
    return sum(min(status_int(rs, "availableReplicas"), spec_replicas(rs))
               for rs in rss if rs is not None)


def active(rss: Iterable[Obj | None]) -> list[Obj]:
    """ReplicaSets with spec.replicas > 0 (FilterActiveReplicaSets)."""
    return [rs for rs in rss if rs is not None and spec_replicas(rs) > 0]


# -- surge and unavailability -------------------------------------------------


def scaled_value(value: int | str | None, total: int, round_up: bool) -> int:
    """An int-or-percent against total (GetScaledValueFromIntOrPercent)."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise ValueError(f"invalid value for IntOrString: {value!r}")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if not text.endswith("%"):
        raise ValueError(f"invalid value for IntOrString: invalid type: string is not a "
                         f"percentage: {value!r}")
    try:
        percent = int(text[:-1])
    except ValueError:
        raise ValueError(f"invalid value for IntOrString: {value!r}") from None
    scaled = percent * total / 100
    return math.ceil(scaled) if round_up else math.floor(scaled)


def resolve_fenceposts(max_surge: int | str | None, max_unavailable: int | str | None,
                       desired: int) -> tuple[int, int]:
    """(surge, unavailable): surge rounds up, unavailable down; both 0 means unavailable 1."""
    surge = scaled_value(max_surge if max_surge is not None else 0, desired, True)
    unavailable = scaled_value(max_unavailable if max_unavailable is not None else 0, desired,
                               False)
    if surge == 0 and unavailable == 0:
        # Rounding (or a user) made both zero, and a rollout could never move: Kubernetes
        # then allows one unavailable pod, on the theory that a surge may not fit a quota.
        unavailable = 1
    return surge, unavailable


def _rolling(d: Obj) -> Obj:
    return ((d.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}


def max_surge(d: Obj) -> int:
    if not is_rolling_update(d):
        return 0
    rolling = _rolling(d)
    surge, _ = resolve_fenceposts(rolling.get("maxSurge", "25%"),
                                  rolling.get("maxUnavailable", "25%"), spec_replicas(d))
    return surge


def max_unavailable(d: Obj) -> int:
    if not is_rolling_update(d) or spec_replicas(d) == 0:
        return 0
    rolling = _rolling(d)
    _, unavailable = resolve_fenceposts(rolling.get("maxSurge", "25%"),
                                        rolling.get("maxUnavailable", "25%"), spec_replicas(d))
    return min(unavailable, spec_replicas(d))


# -- finding the new and old ReplicaSets ---------------------------------------


def find_new_replica_set(d: Obj, rss: Sequence[Obj]) -> Obj | None:
    """The oldest ReplicaSet whose template equals the Deployment's, but for the hash label."""
    template = (d.get("spec") or {}).get("template")
    for rs in by_creation(rss):
        if equal_ignore_hash((rs.get("spec") or {}).get("template"), template):
            return rs
    return None


def find_old_replica_sets(rss: Sequence[Obj], new_rs: Obj | None) -> tuple[list[Obj], list[Obj]]:
    """(old ReplicaSets with pods, all old ReplicaSets)."""
    new_uid = (new_rs.get("metadata") or {}).get("uid") if new_rs is not None else None
    all_old = [rs for rs in rss
               if new_rs is None or (rs.get("metadata") or {}).get("uid") != new_uid]
    with_pods = [rs for rs in all_old if spec_replicas(rs) > 0]
    return with_pods, all_old


# -- annotations --------------------------------------------------------------


def copy_deployment_annotations(d: Obj, rs: Obj) -> bool:
    """Copies the Deployment's annotations onto rs (but not the rollout's own ones)."""
    meta = rs.setdefault("metadata", {})
    rs_annotations = meta.setdefault("annotations", {})
    changed = False
    for key, value in annotations(d).items():
        if key in _SKIP_COPY_ANNOTATIONS or rs_annotations.get(key) == value:
            continue
        rs_annotations[key] = value
        changed = True
    return changed


def set_replicas_annotations(rs: Obj, desired: int, max_replicas: int) -> bool:
    rs_annotations = rs.setdefault("metadata", {}).setdefault("annotations", {})
    changed = False
    for key, value in ((DESIRED_REPLICAS_ANNOTATION, str(desired)),
                       (MAX_REPLICAS_ANNOTATION, str(max_replicas))):
        if rs_annotations.get(key) != value:
            rs_annotations[key] = value
            changed = True
    return changed


def replicas_annotations_need_update(rs: Obj, desired: int, max_replicas: int) -> bool:
    rs_annotations = annotations(rs)
    return (rs_annotations.get(DESIRED_REPLICAS_ANNOTATION) != str(desired)
            or rs_annotations.get(MAX_REPLICAS_ANNOTATION) != str(max_replicas))


def set_new_replica_set_annotations(d: Obj, rs: Obj, new_revision: int, exists: bool) -> bool:
    """Brings the new ReplicaSet's annotations up to date; True when any changed.

    A ReplicaSet that becomes new again (a rollback to its template) gets the
    next revision, and its old revisions are kept in revision-history.
    """
    changed = copy_deployment_annotations(d, rs)
    rs_annotations = rs["metadata"]["annotations"]
    old_text = rs_annotations.get(REVISION_ANNOTATION)
    try:
        old = int(old_text) if old_text is not None else 0
    except ValueError:
        return changed  # not ours to fix
    if old < new_revision:
        rs_annotations[REVISION_ANNOTATION] = str(new_revision)
        changed = True
        if old_text is not None:
            history = rs_annotations.get(REVISION_HISTORY_ANNOTATION, "")
            rs_annotations[REVISION_HISTORY_ANNOTATION] = (
                f"{history},{old_text}" if history else old_text)
    if not exists and set_replicas_annotations(rs, spec_replicas(d),
                                               spec_replicas(d) + max_surge(d)):
        changed = True
    return changed


def desired_replicas_annotation(rs: Obj) -> int | None:
    try:
        return int(annotations(rs)[DESIRED_REPLICAS_ANNOTATION])
    except (KeyError, ValueError):
        return None


def max_replicas_annotation(rs: Obj) -> int | None:
    try:
        return int(annotations(rs)[MAX_REPLICAS_ANNOTATION])
    except (KeyError, ValueError):
        return None


# -- scaling decisions ----------------------------------------------------------


def new_rs_new_replicas(d: Obj, all_rss: Sequence[Obj | None], new_rs: Obj) -> int:
    """How big the new ReplicaSet may be now (NewRSNewReplicas)."""
    want = spec_replicas(d)
    if strategy_type(d) == RECREATE:
        return want
    current = replica_count(all_rss)
    max_total = want + max_surge(d)
    if current >= max_total:
        return spec_replicas(new_rs)
    scale_up = min(max_total - current, want - spec_replicas(new_rs))
    return spec_replicas(new_rs) + scale_up


def max_scaled_down(d: Obj, all_rss: Sequence[Obj | None], new_rs: Obj | None) -> int:
    """How many old replicas reconcileOldReplicaSets may remove in total."""
    min_available = spec_replicas(d) - max_unavailable(d)
    new_unavailable = spec_replicas(new_rs) - status_int(new_rs, "availableReplicas")
    return replica_count(all_rss) - min_available - new_unavailable


def cleanup_unhealthy_plan(old_rss: Sequence[Obj], max_cleanup: int) -> list[tuple[Obj, int]]:
    """(ReplicaSet, new size) for old ReplicaSets shrunk by their unavailable replicas first.

    Unhealthy old pods would otherwise block a rollout forever (Kubernetes
    issue 16737), oldest ReplicaSets first.
    """
    plan: list[tuple[Obj, int]] = []
    total = 0
    for rs in by_creation(old_rss):
        if total >= max_cleanup:
            break
        size = spec_replicas(rs)
        available = status_int(rs, "availableReplicas")
        if size == 0 or size <= available:
            continue
        count = min(max_cleanup - total, size - available)
        plan.append((rs, size - count))
        total += count
    return plan


def scale_down_old_plan(d: Obj, all_rss: Sequence[Obj | None],
                        old_rss: Sequence[Obj]) -> list[tuple[Obj, int]]:
    """(ReplicaSet, new size) for old ReplicaSets shrunk while availability allows, oldest first."""
    min_available = spec_replicas(d) - max_unavailable(d)
    available = settled_available_count(all_rss)
    if available <= min_available:
        return []
    budget = available - min_available
    plan: list[tuple[Obj, int]] = []
    total = 0
    for rs in by_creation(old_rss):
        if total >= budget:
            break
        size = spec_replicas(rs)
        if size == 0:
            continue
        count = min(size, budget - total)
        plan.append((rs, size - count))
        total += count
    return plan


def find_active_or_latest(new_rs: Obj | None, old_rss: Sequence[Obj]) -> Obj | None:
    """The only active ReplicaSet, else the newest if none is active, else None."""
    if new_rs is None and not old_rss:
        return None
    olds = list(reversed(by_creation(old_rss)))
    candidates = active([*olds, new_rs])
    if not candidates:
        return new_rs if new_rs is not None else olds[0]
    if len(candidates) == 1:
        return candidates[0]
    return None


def is_saturated(d: Obj, rs: Obj | None) -> bool:
    if rs is None:
        return False
    want = spec_replicas(d)
    return (spec_replicas(rs) == want and desired_replicas_annotation(rs) == want
            and status_int(rs, "availableReplicas") == want)


def is_scaling_event(d: Obj, rss: Sequence[Obj | None]) -> bool:
    """True when an active ReplicaSet was sized for a different spec.replicas."""
    for rs in active(rss):
        desired = desired_replicas_annotation(rs)
        if desired is not None and desired != spec_replicas(d):
            return True
    return False


def _round_half_away(x: float) -> int:
    return int(math.copysign(math.floor(abs(x) + 0.5), x))


def replica_set_fraction(rs: Obj, d: Obj) -> int:
    if spec_replicas(d) == 0:
        return -spec_replicas(rs)
    deployment_replicas = spec_replicas(d) + max_surge(d)
    annotated = max_replicas_annotation(rs)
    if annotated is None or annotated == 0:
        annotated = status_int(d, "replicas")
    if annotated == 0:
        return 0
    return _round_half_away(spec_replicas(rs) * deployment_replicas / annotated) - \
        spec_replicas(rs)


def proportion(rs: Obj, d: Obj, to_add: int, added: int) -> int:
    if spec_replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    fraction = replica_set_fraction(rs, d)
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def proportional_sizes(d: Obj, active_rss: Sequence[Obj]) -> list[tuple[Obj, int]]:
    """New sizes when a Deployment mid-rollout is scaled: every active ReplicaSet in proportion.

    Larger ReplicaSets come first (newer first when scaling up, older when
    down), and the first one takes the rounding leftovers.
    """
    total = replica_count(active_rss)
    allowed = spec_replicas(d) + max_surge(d) if spec_replicas(d) > 0 else 0
    to_add = allowed - total
    if to_add > 0:
        ordered = sorted(active_rss, key=lambda rs: (-spec_replicas(rs), -_created(rs),
                                                     _name(rs)))
    elif to_add < 0:
        ordered = sorted(active_rss, key=lambda rs: (-spec_replicas(rs), _created(rs),
                                                     _name(rs)))
    else:
        ordered = list(active_rss)
    sizes: list[int] = []
    added = 0
    for rs in ordered:
        if to_add != 0:
            share = proportion(rs, d, to_add, added)
            sizes.append(spec_replicas(rs) + share)
            added += share
        else:
            sizes.append(spec_replicas(rs))
    if ordered and to_add != 0:
        sizes[0] = max(0, sizes[0] + to_add - added)
    return list(zip(ordered, sizes, strict=True))


def replica_sets_to_prune(d: Obj, old_rss: Sequence[Obj]) -> list[Obj]:
    """Old ReplicaSets past revisionHistoryLimit, empty and settled, lowest revision first."""
    limit = (d.get("spec") or {}).get("revisionHistoryLimit")
    if limit is None:
        return []
    alive = [rs for rs in old_rss if not (rs.get("metadata") or {}).get("deletionTimestamp")]
    excess = len(alive) - int(limit)
    if excess <= 0:
        return []
    prune = []
    for rs in by_revision(alive)[:excess]:
        if (status_int(rs, "replicas") != 0 or spec_replicas(rs) != 0
                or generation(rs) > status_int(rs, "observedGeneration")):
            continue
        prune.append(rs)
    return prune


# -- conditions and status ------------------------------------------------------


def format_time(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_condition(type_: str, status: str, reason: str, message: str, now: float) -> Obj:
    stamp = format_time(now)
    return {"type": type_, "status": status, "lastUpdateTime": stamp,
            "lastTransitionTime": stamp, "reason": reason, "message": message}


def get_condition(status: Obj, type_: str) -> Obj | None:
    for cond in status.get("conditions") or ():
        if cond.get("type") == type_:
            return cond
    return None


def set_condition(status: Obj, cond: Obj) -> None:
    """Sets cond unless one of the same status and reason is there (SetDeploymentCondition)."""
    current = get_condition(status, cond["type"])
    if (current is not None and current.get("status") == cond["status"]
            and current.get("reason") == cond["reason"]):
        return
    cond = dict(cond)
    if current is not None and current.get("status") == cond["status"]:
        cond["lastTransitionTime"] = current.get("lastTransitionTime", cond["lastTransitionTime"])
    status["conditions"] = [c for c in status.get("conditions") or ()
                            if c.get("type") != cond["type"]] + [cond]


def remove_condition(status: Obj, type_: str) -> None:
    kept = [c for c in status.get("conditions") or () if c.get("type") != type_]
    if kept:
        status["conditions"] = kept
    else:
        status.pop("conditions", None)


def has_progress_deadline(d: Obj) -> bool:
    value = (d.get("spec") or {}).get("progressDeadlineSeconds")
    return value is not None and int(value) != _NO_DEADLINE


def calculate_status(all_rss: Sequence[Obj | None], new_rs: Obj | None, d: Obj,
                     now: float) -> Obj:
    """The Deployment status its ReplicaSets add up to, with the Available condition."""
    rss = [rs for rs in all_rss if rs is not None]
    available = available_replica_count(rss)
    unavailable = max(0, replica_count(rss) - available)
    old = d.get("status") or {}
    status: Obj = {
        "observedGeneration": generation(d),
        "replicas": actual_replica_count(rss),
        "updatedReplicas": actual_replica_count([new_rs]),
        "readyReplicas": ready_replica_count(rss),
        "availableReplicas": available,
        "unavailableReplicas": unavailable,
    }
    if old.get("collisionCount") is not None:
        status["collisionCount"] = old["collisionCount"]
    if old.get("conditions"):
        status["conditions"] = [dict(c) for c in old["conditions"]]
    if available >= spec_replicas(d) - max_unavailable(d):
        set_condition(status, new_condition(AVAILABLE, "True", MIN_AVAILABLE_REASON,
                                            "Deployment has minimum availability.", now))
    else:
        set_condition(status, new_condition(AVAILABLE, "False", MIN_UNAVAILABLE_REASON,
                                            "Deployment does not have minimum availability.",
                                            now))
    return status


def deployment_complete(d: Obj, status: Obj) -> bool:
    want = spec_replicas(d)
    return (int(status.get("updatedReplicas") or 0) == want
            and int(status.get("replicas") or 0) == want
            and int(status.get("availableReplicas") or 0) == want
            and int(status.get("observedGeneration") or 0) >= generation(d))


def deployment_progressing(d: Obj, new_status: Obj) -> bool:
    old = d.get("status") or {}

    def n(s: Obj, key: str) -> int:
        return int(s.get(key) or 0)

    old_old = n(old, "replicas") - n(old, "updatedReplicas")
    new_old = n(new_status, "replicas") - n(new_status, "updatedReplicas")
    return (n(new_status, "updatedReplicas") > n(old, "updatedReplicas")
            or new_old < old_old
            or n(new_status, "readyReplicas") > n(old, "readyReplicas")
            or n(new_status, "availableReplicas") > n(old, "availableReplicas"))


def deployment_timed_out(d: Obj, status: Obj, now: float) -> bool:
    if not has_progress_deadline(d):
        return False
    cond = get_condition(status, PROGRESSING)
    if cond is None or cond.get("reason") == NEW_RS_AVAILABLE_REASON:
        return False
    if cond.get("reason") == TIMED_OUT_REASON:
        return True
    since = timestamp(cond.get("lastUpdateTime"))
    if since is None:
        return False
    return since + int((d.get("spec") or {})["progressDeadlineSeconds"]) < now


def _replica_failure(new_rs: Obj | None, all_rss: Sequence[Obj | None]) -> Obj | None:
    """The new ReplicaSet's ReplicaFailure condition, else any old one's (getReplicaFailures)."""
    for rs in ([new_rs] if new_rs is not None else []) + [rs for rs in all_rss if rs is not None]:
        cond = get_condition(rs.get("status") or {}, REPLICA_FAILURE)
        if cond is not None:
            return cond
    return None


def rollout_status(d: Obj, all_rss: Sequence[Obj | None], new_rs: Obj | None,
                   now: float) -> Obj:
    """calculate_status plus the Progressing condition (syncRolloutStatus's decision)."""
    status = calculate_status(all_rss, new_rs, d, now)
    if not has_progress_deadline(d):
        remove_condition(status, PROGRESSING)
    current = get_condition(d.get("status") or {}, PROGRESSING)
    complete_already = (status["replicas"] == status["updatedReplicas"] and current is not None
                        and current.get("reason") == NEW_RS_AVAILABLE_REASON)
    name = _name(d)
    rs_name = _name(new_rs) if new_rs is not None else ""
    if has_progress_deadline(d) and not complete_already:
        if deployment_complete(d, status):
            msg = (f'ReplicaSet "{rs_name}" has successfully progressed.' if new_rs is not None
                   else f'Deployment "{name}" has successfully progressed.')
            set_condition(status, new_condition(PROGRESSING, "True", NEW_RS_AVAILABLE_REASON,
                                                msg, now))
        elif deployment_progressing(d, status):
            msg = (f'ReplicaSet "{rs_name}" is progressing.' if new_rs is not None
                   else f'Deployment "{name}" is progressing.')
            cond = new_condition(PROGRESSING, "True", RS_UPDATED_REASON, msg, now)
            if current is not None:
                if current.get("status") == "True":
                    cond["lastTransitionTime"] = current.get("lastTransitionTime",
                                                             cond["lastTransitionTime"])
                remove_condition(status, PROGRESSING)
            set_condition(status, cond)
        elif deployment_timed_out(d, status, now):
            msg = (f'ReplicaSet "{rs_name}" has timed out progressing.' if new_rs is not None
                   else f'Deployment "{name}" has timed out progressing.')
            set_condition(status, new_condition(PROGRESSING, "False", TIMED_OUT_REASON, msg,
                                                now))
    failure = _replica_failure(new_rs, all_rss)
    if failure is not None:
        stamp = failure.get("lastTransitionTime") or format_time(now)
        set_condition(status, {"type": REPLICA_FAILURE, "status": failure.get("status", "True"),
                               "lastUpdateTime": stamp, "lastTransitionTime": stamp,
                               "reason": failure.get("reason") or "", "message":
                               failure.get("message") or ""})
    else:
        remove_condition(status, REPLICA_FAILURE)
    return status


def requeue_after_for_deadline(d: Obj, new_status: Obj, now: float) -> float | None:
    """Seconds until a stuck rollout should be looked at again (requeueStuckDeployment).

    None when there is nothing to watch for. Kubernetes requeues at once when
    less than a second is left; condition times have one-second resolution, so
    this waits for the second after the deadline instead of spinning.
    """
    current = get_condition(d.get("status") or {}, PROGRESSING)
    if not has_progress_deadline(d) or current is None:
        return None
    if deployment_complete(d, new_status) or current.get("reason") == TIMED_OUT_REASON:
        return None
    since = timestamp(current.get("lastUpdateTime"))
    if since is None:
        return None
    after = since + int((d.get("spec") or {})["progressDeadlineSeconds"]) - now
    return max(0.0, after) + 1.0

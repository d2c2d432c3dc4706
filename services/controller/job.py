"""The Job controller: run pods until `completions` of them succeed, or give up.

A sync (Kubernetes' `syncJob`) reads the Job and its pods from the caches and
decides from them alone:

1. A Job already Complete or Failed is left alone (the TTL-after-finished
   controller may delete it later).
2. Failure: a failed pod matching a `FailJob` rule of `podFailurePolicy`, more
   failures than `backoffLimit` (pods of `restartPolicy: Never` that failed,
   plus container restarts for `OnFailure`), or `activeDeadlineSeconds` passed.
   The Job gets `FailureTarget`, its running pods are deleted, and once none is
   left it is `Failed` with that reason (BackoffLimitExceeded, DeadlineExceeded,
   PodFailurePolicy).
3. Success: `completions` pods succeeded (one per index for an Indexed Job; any
   one and none running when `completions` is unset): `SuccessCriteriaMet`, the
   rest deleted, then `Complete` with a completionTime.
4. Otherwise, unless suspended, it keeps `min(parallelism, what is left)` pods
   active. A replacement for a failed pod waits out Kubernetes' pod-failure
   backoff (10 s doubling per failure since the last success, capped at 6
   minutes; the base is the controller manager's --job-backoff-base). An Indexed
   Job's pods carry their index (annotation and label
   batch.kubernetes.io/job-completion-index, and JOB_COMPLETION_INDEX through
   the downward API); the lowest pending indexes are created first.

Counts come from the pods themselves (kubelite keeps finished pods until their
Job goes): there is no batch.kubernetes.io/job-tracking finalizer, so a pod
deleted before it finished is replaced but not counted as failed.

The pod-event plumbing (handlers, adoption, expectations) is the ReplicaSet
controller's, over jobs: only the sync is this module's.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from kubelite.client import Client
from kubelite.errors import ApiError, NotFoundError, PreconditionFailedError
from kubelite.events import NORMAL, WARNING, EventRecorder
from kubelite.informer import object_key, split_key

from .controllerref import ControllerRefManager
from .expectations import Expectations
from .informers import NAMESPACE_INDEX, InformerFactory
from .pods import is_active, is_ready, pods_to_delete, timestamp
from .replicaset import BURST_REPLICAS, ReplicaSetController, pod_from_template

Obj = dict[str, Any]

COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
DEFAULT_BACKOFF_BASE = 10.0
DEFAULT_BACKOFF_MAX = 360.0
FINISHED = ("Complete", "Failed")
FINISHED_PHASES = ("Succeeded", "Failed")


# -- pure logic ---------------------------------------------------------------


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def condition(obj: Obj, type_: str) -> Obj | None:
    for cond in (obj.get("status") or {}).get("conditions") or ():
        if cond.get("type") == type_:
            return cond
    return None


def has_condition(obj: Obj, type_: str) -> bool:
    cond = condition(obj, type_)
    return cond is not None and cond.get("status") == "True"


def finished_type(job: Obj) -> str | None:
    """"Complete" or "Failed" once the Job has finished, else None."""
    return next((t for t in FINISHED if has_condition(job, t)), None)


def set_condition(status: Obj, type_: str, value: str, reason: str, message: str,
                  now: float) -> bool:
    """Sets a condition in status, keeping its transition time if only the message changed.

    Returns whether anything changed."""
    conditions = status.setdefault("conditions", [])
    for cond in conditions:
        if cond.get("type") == type_:
            if (cond.get("status"), cond.get("reason"), cond.get("message")) == (
                    value, reason, message):
                return False
            if cond.get("status") != value:
                cond["lastTransitionTime"] = rfc3339(now)
            cond.update(status=value, reason=reason, message=message,
                        lastProbeTime=rfc3339(now))
            return True
    conditions.append({"type": type_, "status": value, "reason": reason, "message": message,
                       "lastProbeTime": rfc3339(now), "lastTransitionTime": rfc3339(now)})
    return True


def backoff_delay(failures: int, base: float = DEFAULT_BACKOFF_BASE,
                  cap: float = DEFAULT_BACKOFF_MAX) -> float:
    """Seconds before a Job replaces a failed pod, after `failures` failures in a row."""
    if failures <= 0:
        return 0.0
    return min(cap, base * 2 ** min(failures - 1, 30))


def parse_indexes(text: str | None) -> set[int]:
    """The set of status.completedIndexes (`1,3-5`)."""
    found: set[int] = set()
    for part in (text or "").split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        found.update(range(int(low), int(high or low) + 1))
    return found


def format_indexes(indexes: Iterable[int]) -> str:
    """Indexes as Kubernetes writes completedIndexes: sorted, runs of three or more as ranges
    (`1,3-5`; two in a row are written `1,2`)."""
    out: list[str] = []
    ordered = sorted(set(indexes))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        if j - i >= 2:
            out.append(f"{ordered[i]}-{ordered[j]}")
        else:
            out.extend(str(n) for n in ordered[i:j + 1])
        i = j + 1
    return ",".join(out)


def pod_index(pod: Obj) -> int | None:
    meta = pod.get("metadata") or {}
    value = (meta.get("annotations") or {}).get(COMPLETION_INDEX) or (
        meta.get("labels") or {}).get(COMPLETION_INDEX)
    if value is None or not re.fullmatch(r"\d+", str(value)):
        return None
    return int(value)


def pending_indexes(completions: int, succeeded: set[int], active: set[int]) -> list[int]:
    """The indexes still to run, lowest first."""
    return [i for i in range(completions) if i not in succeeded and i not in active]


def _phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "")


def _terminated_states(pod: Obj) -> list[tuple[str, int]]:
    status = pod.get("status") or {}
    found = []
    for key in ("initContainerStatuses", "containerStatuses"):
        for cs in status.get(key) or ():
            term = (cs.get("state") or {}).get("terminated")
            if term is not None and term.get("exitCode") is not None:
                found.append((str(cs.get("name", "")), int(term["exitCode"])))
    return found


def match_pod_failure_policy(policy: Obj | None, pod: Obj) -> tuple[str, str] | None:
    """(action, message) of the first podFailurePolicy rule a failed pod matches."""
    meta = pod.get("metadata") or {}
    where = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    for i, rule in enumerate((policy or {}).get("rules") or ()):
        action = str(rule.get("action", ""))
        codes = rule.get("onExitCodes")
        if codes:
            values = set(codes.get("values") or ())
            for name, code in _terminated_states(pod):
                if code == 0 or (codes.get("containerName")
                                 and codes["containerName"] != name):
                    continue
                if (code in values) == (codes.get("operator") == "In"):
                    return action, (f"Container {name} for pod {where} failed with exit code "
                                    f"{code} matching {action} rule at index {i}")
        for want in rule.get("onPodConditions") or ():
            for cond in (pod.get("status") or {}).get("conditions") or ():
                if (cond.get("type") == want.get("type")
                        and cond.get("status") == want.get("status", "True")):
                    return action, (f"Pod {where} has condition {want.get('type')} matching "
                                    f"{action} rule at index {i}")
    return None


def finish_time(pod: Obj) -> float | None:
    """When a terminated pod finished: its last container's finishedAt, else its conditions."""
    status = pod.get("status") or {}
    times = [timestamp(((cs.get("state") or {}).get("terminated") or {}).get("finishedAt"))
             for cs in status.get("containerStatuses") or ()]
    times += [timestamp(c.get("lastTransitionTime")) for c in status.get("conditions") or ()]
    known = [t for t in times if t is not None]
    return max(known) if known else None


def onfailure_restarts(pods: Iterable[Obj]) -> int:
    return sum(int(cs.get("restartCount") or 0) for p in pods
               for key in ("initContainerStatuses", "containerStatuses")
               for cs in (p.get("status") or {}).get(key) or ())


def job_pod(job: Obj, index: int | None) -> Obj:
    """The pod a Job creates; an Indexed Job's carries its index where its containers see it."""
    template = (job.get("spec") or {}).get("template") or {}
    pod = pod_from_template(job, template)
    if index is None:
        return pod
    name = job["metadata"]["name"]
    meta = pod["metadata"]
    meta["generateName"] = f"{name}-{index}-"
    meta.setdefault("annotations", {})[COMPLETION_INDEX] = str(index)
    meta["labels"][COMPLETION_INDEX] = str(index)
    spec = pod["spec"]
    spec.setdefault("hostname", f"{name}-{index}")
    env_var = {"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
        "fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']"}}}
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or ():
            env = c.setdefault("env", [])
            if not any(e.get("name") == "JOB_COMPLETION_INDEX" for e in env):
                env.insert(0, copy.deepcopy(env_var))
    return pod


# -- the controller -----------------------------------------------------------


class JobController(ReplicaSetController):
    name = "job"
    resource = "jobs"
    kind = "Job"
    component = "job-controller"

    def __init__(self, client: Client, factory: InformerFactory, *,
                 recorder: EventRecorder | None = None, burst_replicas: int = BURST_REPLICAS,
                 expectations: Expectations | None = None,
                 backoff_base: float = DEFAULT_BACKOFF_BASE,
                 backoff_max: float = DEFAULT_BACKOFF_MAX,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(client, factory, recorder=recorder, burst_replicas=burst_replicas,
                         expectations=expectations)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.clock = clock

    async def sync(self, key: str) -> None:
        job = self.rs_informer.get(key)
        if job is None:
            self.expectations.delete(key)
            return
        if finished_type(job) is not None:
            return
        namespace, _ = split_key(key)
        spec = job.get("spec") or {}
        needs_sync = self.expectations.satisfied(key)
        try:
            selector = self.selector_for(job)
        except ApiError as err:
            self.log.warning("invalid selector", extra={"kv": {"key": key, "error": str(err)}})
            return
        mine = self.pod_informer.by_index(NAMESPACE_INDEX, namespace)
        refs = ControllerRefManager(self.client, owner=job, owner_resource=self.resource,
                                    selector=selector, resource="pods")
        pods = await refs.claim(mine)
        now = self.clock()
        status = copy.deepcopy(job.get("status") or {})
        suspended = bool(spec.get("suspend"))
        indexed = spec.get("completionMode") == "Indexed"
        completions = spec.get("completions")
        parallelism = int(spec.get("parallelism") if spec.get("parallelism") is not None else 1)

        active = [p for p in pods if is_active(p)]
        running = [p for p in pods if _phase(p) not in FINISHED_PHASES]  # deleting included
        succeeded_pods = [p for p in pods if _phase(p) == "Succeeded"]
        failed_pods = [p for p in pods if _phase(p) == "Failed"]
        succeeded_idx = {i for i in map(pod_index, succeeded_pods)
                         if i is not None and completions is not None and i < completions}

        # -- failures, as podFailurePolicy and backoffLimit judge them -------------
        failure: tuple[str, str] | None = None
        ignored = 0
        for pod in failed_pods:
            matched = match_pod_failure_policy(spec.get("podFailurePolicy"), pod)
            if matched is None:
                continue
            action, message = matched
            if action == "Ignore":
                ignored += 1
            elif action in ("FailJob", "FailIndex") and failure is None:
                failure = ("PodFailurePolicy", message)
        failed = len(failed_pods) - ignored
        backoff_limit = int(spec.get("backoffLimit") if spec.get("backoffLimit") is not None
                            else 6)
        if failure is None:
            if spec.get("template", {}).get("spec", {}).get("restartPolicy") == "OnFailure":
                restarts = onfailure_restarts(active)
                past = restarts > 0 if backoff_limit == 0 else restarts >= backoff_limit
                if past or failed > backoff_limit:
                    failure = ("BackoffLimitExceeded", "Job has reached the specified backoff "
                               "limit")
            elif failed > backoff_limit:
                failure = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
        if status.get("startTime") is None and not suspended:
            status["startTime"] = rfc3339(now)
        start = timestamp(status.get("startTime"))
        deadline = spec.get("activeDeadlineSeconds")
        if (failure is None and deadline is not None and start is not None and not suspended
                and now - start >= float(deadline)):
            failure = ("DeadlineExceeded", "Job was active longer than specified deadline")
        if failure is None and has_condition(job, "FailureTarget"):
            cond = condition(job, "FailureTarget") or {}
            failure = (str(cond.get("reason", "")), str(cond.get("message", "")))

        if indexed:
            complete = completions is not None and len(succeeded_idx) >= int(completions)
        elif completions is None:
            complete = bool(succeeded_pods) and not active
        else:
            complete = len(succeeded_pods) >= int(completions)
        complete = complete or has_condition(job, "SuccessCriteriaMet")

        manage_error: Exception | None = None
        requeue: float | None = None
        try:
            if failure is not None:
                reason, message = failure
                if set_condition(status, "FailureTarget", "True", reason, message, now):
                    self.recorder.event(job, WARNING, reason, message)
                await self._delete_pods(key, job, active, needs_sync)
                if not running:
                    set_condition(status, "Failed", "True", reason, message, now)
            elif complete:
                set_condition(status, "SuccessCriteriaMet", "True", "CompletionsReached",
                              "Reached expected number of succeeded pods", now)
                await self._delete_pods(key, job, active, needs_sync)
                if not running:
                    set_condition(status, "Complete", "True", "CompletionsReached",
                                  "Reached expected number of succeeded pods", now)
                    status["completionTime"] = rfc3339(now)
                    self.recorder.event(job, NORMAL, "Completed", "Job completed")
            elif suspended:
                if set_condition(status, "Suspended", "True", "JobSuspended", "Job suspended",
                                 now):
                    self.recorder.event(job, NORMAL, "Suspended", "Job suspended")
                await self._delete_pods(key, job, active, needs_sync)
            else:
                if has_condition(job, "Suspended"):
                    set_condition(status, "Suspended", "False", "JobResumed", "Job resumed", now)
                    status["startTime"] = rfc3339(now)
                    self.recorder.event(job, NORMAL, "Resumed", "Job resumed")
                if needs_sync and not job["metadata"].get("deletionTimestamp"):
                    requeue = await self._manage(key, job, active, succeeded_pods, failed_pods,
                                                 succeeded_idx, parallelism, completions,
                                                 indexed, now)
                if deadline is not None and start is not None:
                    left = start + float(deadline) - now
                    requeue = left if requeue is None else min(requeue, left)
        except ApiError as err:
            manage_error = err

        status.update({"active": len(active), "ready": sum(1 for p in active if is_ready(p)),
                       "succeeded": len(succeeded_pods), "failed": failed})
        if indexed:
            status["completedIndexes"] = format_indexes(succeeded_idx)
        if not status.get("conditions"):
            status.pop("conditions", None)
        await self.update_status(job, status)
        if manage_error is not None:
            raise manage_error
        if requeue is not None:
            self.queue.add_after(key, max(0.05, requeue))

    async def _manage(self, key: str, job: Obj, active: list[Obj], succeeded: list[Obj],
                      failed: list[Obj], succeeded_idx: set[int], parallelism: int,
                      completions: int | None, indexed: bool, now: float) -> float | None:
        """Creates or deletes pods toward the wanted number; returns a requeue delay or None."""
        if indexed and completions is not None:
            want = max(0, min(parallelism, int(completions) - len(succeeded_idx)))
            by_index: dict[int, list[Obj]] = {}
            extra: list[Obj] = []
            for pod in active:
                i = pod_index(pod)
                if i is None or i >= int(completions) or i in succeeded_idx:
                    extra.append(pod)
                else:
                    by_index.setdefault(i, []).append(pod)
            for pods in by_index.values():
                extra.extend(pods[1:])  # one pod per index
            if extra:
                await self._delete_pods(key, job, extra, True)
                return None
            keep = [pods[0] for pods in by_index.values()]
            if len(keep) > want:
                await self._delete_pods(key, job, pods_to_delete(keep, keep, len(keep) - want),
                                        True)
                return None
            todo = pending_indexes(int(completions), succeeded_idx, set(by_index))
            indexes: list[int | None] = list(todo[:want - len(keep)])
        else:
            if completions is None:
                want = len(active) if succeeded else parallelism
            else:
                want = max(0, min(parallelism, int(completions) - len(succeeded)))
            if len(active) > want:
                await self._delete_pods(key, job, pods_to_delete(active, active,
                                                                 len(active) - want), True)
                return None
            indexes = [None] * (want - len(active))
        if not indexes:
            return None
        # Kubernetes' pod-failure backoff: failures since the last success, from the last one.
        last_success = max((finish_time(p) or 0.0 for p in succeeded), default=0.0)
        recent = [t for t in (finish_time(p) or timestamp(
            p["metadata"].get("creationTimestamp")) or 0.0 for p in failed)
            if t >= last_success]
        if recent:
            wait = max(recent) + backoff_delay(len(recent), self.backoff_base,
                                               self.backoff_max) - now
            if wait > 0:
                return wait
        indexes = indexes[:self.burst_replicas]
        self.expectations.expect_creations(key, len(indexes))
        self.log.info("creating pods", extra={"kv": {"key": key, "count": len(indexes)}})
        first_error: Exception | None = None
        for index in indexes:
            try:
                await self._create_job_pod(job, index)
            except ApiError as err:
                self.expectations.creation_observed(key)
                first_error = first_error or err
        if first_error is not None:
            raise first_error
        return None

    async def _create_job_pod(self, job: Obj, index: int | None) -> None:
        try:
            pod = await self.client.create("pods", job_pod(job, index))
        except ApiError as err:
            self.recorder.event(job, WARNING, "FailedCreate", f"Error creating: {err}")
            raise
        self.recorder.event(job, NORMAL, "SuccessfulCreate",
                            f"Created pod: {pod['metadata']['name']}")

    async def _delete_pods(self, key: str, job: Obj, pods: list[Obj], allowed: bool) -> None:
        if not pods or not allowed:
            return
        self.expectations.expect_deletions(key, [object_key(p) for p in pods])
        for pod in pods:
            meta = pod["metadata"]
            try:
                await self.client.delete("pods", meta["name"], namespace=meta.get("namespace"),
                                         uid=meta.get("uid", ""))
            except (NotFoundError, PreconditionFailedError):
                self.expectations.deletion_observed(key, object_key(pod))
                continue
            except ApiError:
                self.expectations.deletion_observed(key, object_key(pod))
                raise
            self.recorder.event(job, NORMAL, "SuccessfulDelete", f"Deleted pod: {meta['name']}")

__all__ = ["COMPLETION_INDEX", "JobController", "backoff_delay", "finished_type",
           "format_indexes", "job_pod", "match_pod_failure_policy", "parse_indexes",
           "pending_indexes"]

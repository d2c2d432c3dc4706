"""The CronJob controller: a Job for each time the schedule names.

A sync (Kubernetes' `syncCronJob`, the v2 controller) reads the CronJob and the
Jobs it controls from the caches and:

1. reconciles `status.active` with them: finished Jobs leave it (and a
   Complete one moves `lastSuccessfulTime`), running Jobs it lost are added
   back, and Jobs that are gone are dropped;
2. unless suspended or being deleted, finds the most recent start time not yet
   run, between `lastScheduleTime` (or the creation time) and now, no older
   than `startingDeadlineSeconds`; more than 100 missed times is a Warning
   Event, and only the most recent one runs;
3. honours `concurrencyPolicy`: Allow starts it anyway, Forbid waits for the
   active Jobs to finish (the start time stays pending), Replace deletes them;
4. creates the Job `<cronjob>-<minutes since the epoch>` from `jobTemplate`,
   with the `batch.kubernetes.io/cronjob-scheduled-timestamp` annotation, and
   records it as active and as `lastScheduleTime`;
5. deletes the oldest finished Jobs beyond `successfulJobsHistoryLimit` and
   `failedJobsHistoryLimit`, and requeues itself for the next start time.

Time comes from an injectable clock: the controller manager's
--cronjob-clock-offset and --cronjob-clock-rate make a clock that runs ahead or
faster than the wall clock, so tests see minutes pass in seconds.
"""

from __future__ import annotations

import copy
import time
from datetime import datetime
from typing import Any, Protocol

from kubelite import cron
from kubelite.client import Client
from kubelite.errors import AlreadyExistsError, ApiError, ConflictError, NotFoundError
from kubelite.events import NORMAL, WARNING, EventRecorder
from kubelite.informer import split_key

from .base import Controller
from .controllerref import controller_ref, controller_ref_for
from .informers import NAMESPACE_INDEX, InformerFactory
from .job import finished_type, rfc3339
from .pods import timestamp

Obj = dict[str, Any]

SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"


class Clock(Protocol):
    def now(self) -> float:
        """The controller's idea of the time (seconds since the epoch)."""

    def real_delay(self, seconds: float) -> float:
        """How long to really wait for `seconds` of this clock to pass."""


class ScaledClock:
    """The wall clock shifted by `offset` seconds and running `rate` times as fast."""

    def __init__(self, offset: float = 0.0, rate: float = 1.0) -> None:
        if rate <= 0:
            raise ValueError("the clock rate must be positive")
        self.rate = rate
        self._real0 = time.time()
        self._fake0 = self._real0 + offset

    def now(self) -> float:
        return self._fake0 + (time.time() - self._real0) * self.rate

    def real_delay(self, seconds: float) -> float:
        return seconds / self.rate


# -- pure logic ---------------------------------------------------------------


def scheduled_timestamp(t: float, schedule: cron.Schedule) -> str:
    """RFC 3339 in the CronJob's zone, as Kubernetes writes the annotation."""
    text = datetime.fromtimestamp(t, schedule.zone).isoformat()
    return text.replace("+00:00", "Z")


def job_from_template(cj: Obj, scheduled: float, schedule: cron.Schedule) -> Obj:
    """The Job a CronJob starts at `scheduled` (Kubernetes' getJobFromTemplate2)."""
    meta = cj["metadata"]
    template = (cj.get("spec") or {}).get("jobTemplate") or {}
    tmeta = template.get("metadata") or {}
    annotations = dict(tmeta.get("annotations") or {})
    annotations[SCHEDULED_TIMESTAMP] = scheduled_timestamp(scheduled, schedule)
    job_meta: Obj = {"name": cron.job_name(meta["name"], scheduled),
                     "namespace": meta.get("namespace") or "default",
                     "annotations": annotations,
                     "ownerReferences": [controller_ref_for(cj)]}
    if tmeta.get("labels"):
        job_meta["labels"] = dict(tmeta["labels"])
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": job_meta,
            "spec": copy.deepcopy(template.get("spec") or {})}


def object_reference(job: Obj) -> Obj:
    meta = job["metadata"]
    return {"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"],
            "namespace": meta.get("namespace", ""), "uid": meta.get("uid", ""),
            "resourceVersion": meta.get("resourceVersion", "")}


def _started(job: Obj) -> float:
    status = job.get("status") or {}
    return (timestamp(status.get("startTime"))
            or timestamp(job["metadata"].get("creationTimestamp")) or 0.0)


def history_to_delete(jobs: list[Obj], successful_limit: int | None,
                      failed_limit: int | None) -> list[Obj]:
    """The oldest finished Jobs beyond each history limit (None: keep them all)."""
    doomed: list[Obj] = []
    for type_, limit in (("Complete", successful_limit), ("Failed", failed_limit)):
        if limit is None:
            continue
        done = sorted((j for j in jobs if finished_type(j) == type_), key=_started)
        doomed.extend(done[:max(0, len(done) - limit)])
    return doomed


# -- the controller -----------------------------------------------------------


class CronJobController(Controller[str]):
    name = "cronjob"

    def __init__(self, client: Client, factory: InformerFactory, *,
                 clock: Clock | None = None, recorder: EventRecorder | None = None) -> None:
        self.cronjobs = factory.informer("cronjobs")
        self.jobs = factory.informer("jobs")
        super().__init__(informers=[self.cronjobs, self.jobs])
        self.client = client
        self.clock: Clock = clock or ScaledClock()
        self.recorder = recorder or EventRecorder(client, component="cronjob-controller")
        self.cronjobs.add_handler(on_add=self.enqueue,
                                  on_update=lambda old, cur: self.enqueue(cur))
        self.jobs.add_handler(on_add=self._job_changed,
                              on_update=lambda old, cur: self._job_changed(cur),
                              on_delete=self._job_changed)

    def _job_changed(self, job: Obj) -> None:
        ref = controller_ref(job)
        if ref is not None and ref.get("kind") == "CronJob":
            self.queue.add(f"{job['metadata'].get('namespace', '')}/{ref.get('name')}")

    def _requeue_at(self, key: str, when: float) -> None:
        self.queue.add_after(key, max(0.01, self.clock.real_delay(when - self.clock.now())
                                      + 0.01))

    async def sync(self, key: str) -> None:
        cj = self.cronjobs.get(key)
        if cj is None:
            return
        namespace, _ = split_key(key)
        uid = cj["metadata"].get("uid")
        owned = [j for j in self.jobs.by_index(NAMESPACE_INDEX, namespace)
                 if (controller_ref(j) or {}).get("uid") == uid]
        spec = cj.get("spec") or {}
        status = copy.deepcopy(cj.get("status") or {})
        await self._reconcile_active(cj, status, owned)

        next_time: float | None = None
        if not cj["metadata"].get("deletionTimestamp") and not spec.get("suspend"):
            try:
                schedule = cron.parse(spec.get("schedule", ""), spec.get("timeZone"))
            except cron.ScheduleError as err:
                reason = ("UnknownTimeZone" if "time zone" in str(err)
                          else "UnparseableSchedule")
                self.recorder.event(cj, WARNING, reason, str(err))
                schedule = None
            if schedule is not None:
                next_time = await self._maybe_start(key, cj, status, owned, schedule)

        await self._update_status(cj, status)
        await self._clean_history(cj, owned)
        if next_time is not None:
            self._requeue_at(key, next_time)

    async def _reconcile_active(self, cj: Obj, status: Obj, owned: list[Obj]) -> None:
        active = list(status.get("active") or ())
        active_uids = {a.get("uid") for a in active}
        for job in owned:
            juid = job["metadata"].get("uid")
            done = finished_type(job)
            if done is None and juid not in active_uids and not job["metadata"].get(
                    "deletionTimestamp"):
                active.append(object_reference(job))
            elif done is not None and juid in active_uids:
                active = [a for a in active if a.get("uid") != juid]
                self.recorder.event(cj, NORMAL, "SawCompletedJob",
                                    f"Saw completed job: {job['metadata']['name']}, "
                                    f"condition: {done}")
            if done == "Complete":
                finished = (job.get("status") or {}).get("completionTime")
                last = status.get("lastSuccessfulTime")
                if finished and (not last or (timestamp(finished) or 0) > (timestamp(last) or 0)):
                    status["lastSuccessfulTime"] = finished
        owned_uids = {j["metadata"].get("uid") for j in owned}
        kept = []
        for ref in active:
            if ref.get("uid") in owned_uids:
                kept.append(ref)
                continue
            try:  # the cache may just not have it yet: ask the API
                fresh = await self.client.get("jobs", ref.get("name", ""),
                                              namespace=ref.get("namespace"))
            except NotFoundError:
                fresh = None
            if fresh is None or fresh["metadata"].get("uid") != ref.get("uid"):
                self.recorder.event(cj, NORMAL, "MissingJob",
                                    f"Active job went missing: {ref.get('name')}")
            elif finished_type(fresh) is None:
                kept.append(ref)
        if kept:
            status["active"] = kept
        else:
            status.pop("active", None)

    async def _maybe_start(self, key: str, cj: Obj, status: Obj, owned: list[Obj],
                           schedule: cron.Schedule) -> float:
        """Starts the pending run if it is due; returns the next start time."""
        spec = cj.get("spec") or {}
        now = self.clock.now()
        next_time = schedule.next_after(now)
        earliest = (timestamp(status.get("lastScheduleTime"))
                    or timestamp(cj["metadata"].get("creationTimestamp")) or now)
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None:
            earliest = max(earliest, now - float(deadline))
        scheduled, missed = cron.missed_start_times(schedule, earliest, now)
        if missed > cron.MAX_MISSED:
            self.recorder.event(cj, WARNING, "TooManyMissedTimes",
                                f"too many missed start times: {missed}. Set or decrease "
                                ".spec.startingDeadlineSeconds or check clock skew")
        if scheduled is None:
            return next_time
        name = cron.job_name(cj["metadata"]["name"], scheduled)
        active = list(status.get("active") or ())
        if any(a.get("name") == name for a in active) or any(
                j["metadata"]["name"] == name for j in owned):
            return next_time
        policy = spec.get("concurrencyPolicy") or "Allow"
        if policy == "Forbid" and active:
            self.recorder.event(cj, NORMAL, "JobAlreadyActive",
                                "Not starting job because prior execution is running and "
                                "concurrency policy is Forbid")
            return next_time
        if policy == "Replace":
            for ref in active:
                try:
                    await self.client.delete("jobs", ref.get("name", ""),
                                             namespace=ref.get("namespace"),
                                             uid=ref.get("uid", ""),
                                             propagation_policy="Background")
                except NotFoundError:
                    pass
                self.recorder.event(cj, NORMAL, "SuccessfulDelete",
                                    f"Deleted job {ref.get('name')}")
            active = []
        try:
            job = await self.client.create("jobs", job_from_template(cj, scheduled, schedule),
                                           namespace=cj["metadata"].get("namespace"))
        except AlreadyExistsError:
            # Created by an earlier sync whose status write was lost: the run happened.
            status["lastScheduleTime"] = rfc3339(scheduled)
            return next_time
        except ApiError as err:
            self.recorder.event(cj, WARNING, "FailedCreate", f"Error creating job: {err}")
            raise
        self.log.info("created job", extra={"kv": {"key": key, "job": name}})
        self.recorder.event(cj, NORMAL, "SuccessfulCreate", f"Created job {name}")
        active.append(object_reference(job))
        status["active"] = active
        status["lastScheduleTime"] = rfc3339(scheduled)
        return next_time

    async def _update_status(self, cj: Obj, status: Obj) -> None:
        if (cj.get("status") or {}) == status:
            return
        current = cj
        for attempt in range(2):
            try:
                await self.client.update_status("cronjobs", {**current, "status": status})
                return
            except ConflictError:
                if attempt:
                    raise
                meta = cj["metadata"]
                current = await self.client.get("cronjobs", meta["name"],
                                                namespace=meta.get("namespace"))

    async def _clean_history(self, cj: Obj, owned: list[Obj]) -> None:
        spec = cj.get("spec") or {}
        for job in history_to_delete([j for j in owned
                                      if not j["metadata"].get("deletionTimestamp")],
                                     spec.get("successfulJobsHistoryLimit"),
                                     spec.get("failedJobsHistoryLimit")):
            meta = job["metadata"]
            try:
                await self.client.delete("jobs", meta["name"], namespace=meta.get("namespace"),
                                         uid=meta.get("uid", ""),
                                         propagation_policy="Background")
            except NotFoundError:
                continue
            self.recorder.event(cj, NORMAL, "SuccessfulDelete", f"Deleted job {meta['name']}")

    def object_for(self, key: str) -> Obj | None:
        return self.cronjobs.get(key)


__all__ = ["CronJobController", "SCHEDULED_TIMESTAMP", "ScaledClock", "history_to_delete",
           "job_from_template", "scheduled_timestamp"]

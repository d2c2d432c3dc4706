"""Pure logic of Jobs, CronJobs and ReplicationControllers: schedule math, the pod-failure
backoff, completion indexes, podFailurePolicy matching, history limits, columns."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kubelite import cron, printing
from kubelite.resources import lookup
from services.controller.cronjob import (
    ScaledClock,
    history_to_delete,
    job_from_template,
    scheduled_timestamp,
)
from services.controller.job import (
    COMPLETION_INDEX,
    backoff_delay,
    format_indexes,
    job_pod,
    match_pod_failure_policy,
    parse_indexes,
    pending_indexes,
)
from services.controller.replicaset import ReplicationControllerController
from services.controller.ttlafterfinished import expires_at

T0 = datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC).timestamp()  # a Sunday


# -- schedules ------------------------------------------------------------------------


@pytest.mark.parametrize("macro,expected", [
    ("@hourly", datetime(2026, 3, 1, 13, 0, tzinfo=UTC)),
    ("@daily", datetime(2026, 3, 2, 0, 0, tzinfo=UTC)),
    ("@midnight", datetime(2026, 3, 2, 0, 0, tzinfo=UTC)),
    ("@weekly", datetime(2026, 3, 8, 0, 0, tzinfo=UTC)),
    ("@monthly", datetime(2026, 4, 1, 0, 0, tzinfo=UTC)),
    ("@yearly", datetime(2027, 1, 1, 0, 0, tzinfo=UTC)),
    ("@annually", datetime(2027, 1, 1, 0, 0, tzinfo=UTC)),
    ("*/15 * * * *", datetime(2026, 3, 1, 12, 15, tzinfo=UTC)),
    ("0 9 * * mon-fri", datetime(2026, 3, 2, 9, 0, tzinfo=UTC)),
])
def test_macros_and_fields_name_the_next_start(macro, expected) -> None:
    assert cron.parse(macro).next_after(T0) == expected.timestamp()


def test_a_time_zone_moves_the_start_and_the_annotation() -> None:
    schedule = cron.parse("0 9 * * *", "Asia/Tokyo")
    start = schedule.next_after(T0)
    assert start == datetime(2026, 3, 2, 0, 0, tzinfo=UTC).timestamp()  # 09:00 in Tokyo
    assert scheduled_timestamp(start, schedule) == "2026-03-02T09:00:00+09:00"
    assert scheduled_timestamp(start, cron.parse("0 0 * * *")) == "2026-03-02T00:00:00Z"


@pytest.mark.parametrize("bad", ["* * * *", "* * * * * *", "61 * * * *", "@every 5m",
                                 "TZ=UTC 0 * * * *", "CRON_TZ=UTC 0 * * * *", "bogus"])
def test_malformed_schedules_are_refused(bad) -> None:
    with pytest.raises(cron.ScheduleError):
        cron.parse(bad)


def test_unknown_time_zones_are_refused() -> None:
    for zone in ("Mars/Olympus", "../etc/passwd", " UTC"):
        with pytest.raises(cron.ScheduleError, match="unknown time zone"):
            cron.time_zone(zone)


def test_missed_start_times_give_the_latest_and_how_many() -> None:
    every = cron.parse("* * * * *")
    assert cron.missed_start_times(every, T0, T0 + 20) == (None, 0)
    latest, count = cron.missed_start_times(every, T0, T0 + 185)
    assert (latest, count) == (T0 - 30 + 180, 3)
    latest, count = cron.missed_start_times(every, T0, T0 + 500 * 60)
    assert latest == T0 - 30 + 500 * 60 and count == 500 > cron.MAX_MISSED


def test_jobs_are_named_for_their_minute() -> None:
    assert cron.job_name("hello", 1_700_000_040.0) == "hello-28333334"


def test_scaled_clock_runs_fast_and_converts_delays() -> None:
    clock = ScaledClock(offset=3600, rate=60)
    assert abs(clock.now() - (datetime.now(UTC).timestamp() + 3600)) < 5
    assert clock.real_delay(60) == 1.0
    with pytest.raises(ValueError):
        ScaledClock(rate=0)


# -- jobs -----------------------------------------------------------------------------


def test_backoff_doubles_from_ten_seconds_up_to_six_minutes() -> None:
    assert [backoff_delay(n) for n in range(0, 8)] == [0, 10, 20, 40, 80, 160, 320, 360]
    assert backoff_delay(3, base=0.5, cap=1.5) == 1.5
    assert backoff_delay(1000) == 360


def test_completed_indexes_are_written_as_kubernetes_writes_them() -> None:
    assert format_indexes([]) == ""
    assert format_indexes([0, 1, 2, 3]) == "0-3"
    assert format_indexes([5, 1, 2, 7, 8, 9]) == "1,2,5,7-9"
    assert parse_indexes("1,2,5,7-9") == {1, 2, 5, 7, 8, 9}
    assert pending_indexes(5, succeeded={0, 3}, active={1}) == [2, 4]


def _job(**spec) -> dict:
    template = {"metadata": {"labels": {"job-name": "j"}},
                "spec": {"restartPolicy": "Never",
                         "containers": [{"name": "main", "image": "i", "env": [
                             {"name": "X", "value": "1"}]}]}}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "j", "namespace": "ns", "uid": "u1"},
            "spec": {"template": template, **spec}}


def test_an_indexed_pod_carries_its_index_where_its_containers_see_it() -> None:
    pod = job_pod(_job(), 3)
    meta, spec = pod["metadata"], pod["spec"]
    assert meta["generateName"] == "j-3-"
    assert meta["annotations"][COMPLETION_INDEX] == "3" == meta["labels"][COMPLETION_INDEX]
    assert spec["hostname"] == "j-3"
    env = spec["containers"][0]["env"]
    assert env[0] == {"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
        "fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']"}}}
    assert env[1] == {"name": "X", "value": "1"}
    assert meta["ownerReferences"][0]["kind"] == "Job"
    plain = job_pod(_job(), None)
    assert plain["metadata"]["generateName"] == "j-" and "hostname" not in plain["spec"]


def _failed_pod(code: int, conditions: tuple = ()) -> dict:
    return {"metadata": {"name": "p", "namespace": "ns"},
            "status": {"phase": "Failed", "conditions": list(conditions),
                       "containerStatuses": [{"name": "main", "state": {
                           "terminated": {"exitCode": code}}}]}}


def test_pod_failure_policy_rules_match_in_order() -> None:
    policy = {"rules": [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget",
                                                  "status": "True"}]},
        {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In",
                                              "values": [42]}},
        {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [1, 2]}},
    ]}
    assert match_pod_failure_policy(policy, _failed_pod(42)) == (
        "FailJob", "Container main for pod ns/p failed with exit code 42 matching FailJob rule "
        "at index 1")
    assert match_pod_failure_policy(policy, _failed_pod(
        42, ({"type": "DisruptionTarget", "status": "True"},)))[0] == "Ignore"
    assert match_pod_failure_policy(policy, _failed_pod(1)) is None
    assert match_pod_failure_policy(policy, _failed_pod(9))[0] == "Count"
    assert match_pod_failure_policy(None, _failed_pod(42)) is None


def test_a_finished_job_expires_ttl_seconds_after_it_finished() -> None:
    job = _job(ttlSecondsAfterFinished=30)
    assert expires_at(job) is None  # not finished
    job["status"] = {"completionTime": "2026-03-01T12:00:00Z", "conditions": [
        {"type": "Complete", "status": "True", "lastTransitionTime": "2026-03-01T12:00:00Z"}]}
    assert expires_at(job) == datetime(2026, 3, 1, 12, 0, 30, tzinfo=UTC).timestamp()
    job["spec"].pop("ttlSecondsAfterFinished")
    assert expires_at(job) is None


# -- cronjobs -------------------------------------------------------------------------


def test_a_cronjob_job_comes_from_its_template() -> None:
    cj = {"apiVersion": "batch/v1", "kind": "CronJob",
          "metadata": {"name": "hello", "namespace": "ns", "uid": "c1"},
          "spec": {"jobTemplate": {"metadata": {"labels": {"team": "a"},
                                                "annotations": {"note": "x"}},
                                   "spec": {"backoffLimit": 1}}}}
    job = job_from_template(cj, 1_700_000_040.0, cron.parse("* * * * *"))
    assert job["metadata"]["name"] == "hello-28333334"
    assert job["metadata"]["labels"] == {"team": "a"}
    assert job["metadata"]["annotations"] == {
        "note": "x", "batch.kubernetes.io/cronjob-scheduled-timestamp": "2023-11-14T22:14:00Z"}
    assert job["metadata"]["ownerReferences"][0]["uid"] == "c1"
    assert job["spec"] == {"backoffLimit": 1}


def _finished(name: str, type_: str, start: str) -> dict:
    return {"metadata": {"name": name},
            "status": {"startTime": start, "conditions": [{"type": type_, "status": "True"}]}}


def test_history_keeps_the_newest_of_each_outcome() -> None:
    jobs = [_finished("s1", "Complete", "2026-01-01T00:01:00Z"),
            _finished("s3", "Complete", "2026-01-01T00:03:00Z"),
            _finished("s2", "Complete", "2026-01-01T00:02:00Z"),
            _finished("f1", "Failed", "2026-01-01T00:01:30Z"),
            _finished("f2", "Failed", "2026-01-01T00:02:30Z"),
            {"metadata": {"name": "running"}, "status": {}}]
    doomed = [j["metadata"]["name"] for j in history_to_delete(jobs, 2, 1)]
    assert doomed == ["s1", "f1"]
    assert [j["metadata"]["name"] for j in history_to_delete(jobs, 0, 0)] == [
        "s1", "s2", "s3", "f1", "f2"]
    assert history_to_delete(jobs, None, None) == []


# -- replication controllers ----------------------------------------------------------


def test_an_rc_selector_is_a_plain_label_map() -> None:
    rc = {"spec": {"selector": {"app": "kubia"}}}
    selector = ReplicationControllerController.selector_for(None, rc)  # type: ignore[arg-type]
    assert selector.matches({"app": "kubia", "x": "y"})
    assert not selector.matches({"app": "other"})


# -- columns --------------------------------------------------------------------------

NOW = datetime(2026, 3, 1, 12, 10, tzinfo=UTC)


def _row(kind: str, obj: dict, wide: bool = False) -> dict[str, str]:
    headers, row = printing.table(lookup(kind), printing.TableOptions(wide=wide), NOW)
    return dict(zip(headers, row(obj), strict=True))


def test_job_columns_as_kubectl_prints_them() -> None:
    job = {"metadata": {"name": "pi", "creationTimestamp": "2026-03-01T12:00:00Z"},
           "spec": {"completions": 5, "parallelism": 2,
                    "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u"}},
                    "template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}}},
           "status": {"succeeded": 3, "startTime": "2026-03-01T12:00:00Z"}}
    assert _row("Job", job, wide=True) == {
        "NAME": "pi", "STATUS": "Running", "COMPLETIONS": "3/5", "DURATION": "10m",
        "AGE": "10m", "CONTAINERS": "pi", "IMAGES": "perl",
        "SELECTOR": "batch.kubernetes.io/controller-uid=u"}
    job["status"].update(completionTime="2026-03-01T12:01:05Z", succeeded=5, conditions=[
        {"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}])
    assert _row("Job", job)["STATUS"] == "Complete" and _row("Job", job)["DURATION"] == "65s"
    job["spec"].pop("completions")
    assert _row("Job", job)["COMPLETIONS"] == "5/1 of 2"
    job["status"] = {"conditions": [{"type": "Suspended", "status": "True"}]}
    assert _row("Job", job)["STATUS"] == "Suspended" and _row("Job", job)["DURATION"] == ""


def test_cronjob_and_rc_columns() -> None:
    cj = {"metadata": {"name": "hello", "creationTimestamp": "2026-03-01T11:00:00Z"},
          "spec": {"schedule": "*/1 * * * *", "suspend": False, "jobTemplate": {"spec": {
              "template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}},
          "status": {"active": [{"name": "hello-1"}], "lastScheduleTime": "2026-03-01T12:09:00Z"}}
    assert _row("CronJob", cj, wide=True) == {
        "NAME": "hello", "SCHEDULE": "*/1 * * * *", "TIMEZONE": "<none>", "SUSPEND": "False",
        "ACTIVE": "1", "LAST SCHEDULE": "60s", "AGE": "70m", "CONTAINERS": "c",
        "IMAGES": "busybox", "SELECTOR": "<none>"}
    rc = {"metadata": {"name": "kubia", "creationTimestamp": "2026-03-01T12:00:00Z"},
          "spec": {"replicas": 3, "selector": {"app": "kubia"}, "template": {"spec": {
              "containers": [{"name": "kubia", "image": "luksa/kubia"}]}}},
          "status": {"replicas": 3, "readyReplicas": 2}}
    assert _row("ReplicationController", rc, wide=True) == {
        "NAME": "kubia", "DESIRED": "3", "CURRENT": "3", "READY": "2", "AGE": "10m",
        "CONTAINERS": "kubia", "IMAGES": "luksa/kubia", "SELECTOR": "app=kubia"}
    assert lookup("cj").kind == "CronJob" and lookup("rc").kind == "ReplicationController"
    assert lookup("jobs.batch").kind == "Job"

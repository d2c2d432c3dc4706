"""CronJobs. First the controller in this process against a real apiserver, with a clock
the test moves by hand (each sync called directly, so every minute is exact); then a
whole cluster whose controller manager's clock runs 20 times as fast."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from kubelite.client import Client
from kubelite.objects import parse_time
from kubelite.testing import eventually, wait_deleted, wait_for, wait_for_list
from services.controller.cronjob import SCHEDULED_TIMESTAMP, CronJobController
from services.controller.informers import InformerFactory
from services.controller.job import rfc3339

from .e2e import Cluster, start_cluster, wait_nodes_ready

Obj = dict[str, Any]


class ManualClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def now(self) -> float:
        return self.t

    def real_delay(self, seconds: float) -> float:
        return 3600.0  # requeues never fire here: the test syncs by hand


def cronjob(name: str, schedule: str = "* * * * *", script: str = "true", **spec: Any) -> Obj:
    job = {"template": {"spec": {"restartPolicy": "Never", "containers": [
        {"name": "main", "image": "busybox", "command": ["sh", "-c", script]}]}}}
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
            "spec": {"schedule": schedule, "jobTemplate": {"spec": job}, **spec}}


class Harness:
    """A CronJobController on real informers, synced by hand under a ManualClock."""

    def __init__(self, client: Client, ns: str) -> None:
        self.client, self.ns = client, ns
        self.factory = InformerFactory(client)
        self.clock = ManualClock(0.0)
        self.controller = CronJobController(client, self.factory, clock=self.clock)

    async def create(self, obj: Obj) -> Obj:
        cj = await self.client.create("cronjobs", obj, namespace=self.ns)
        # The clock starts at the creation time, on a minute boundary plus one second.
        created = parse_time(cj["metadata"]["creationTimestamp"]).timestamp()
        self.clock.t = created
        return cj

    def minute(self, n: int, cj: Obj) -> float:
        """The n-th schedule minute after the CronJob's creation (n=1: the first)."""
        created = parse_time(cj["metadata"]["creationTimestamp"]).timestamp()
        return (created // 60 + n) * 60

    async def settle(self) -> None:
        """Waits until the caches hold what the API holds for this namespace."""
        async def caught_up() -> bool:
            for resource, informer in (("cronjobs", self.controller.cronjobs),
                                       ("jobs", self.controller.jobs)):
                listed = (await self.client.list(resource, namespace=self.ns)).items
                want = {(o["metadata"]["name"], o["metadata"]["resourceVersion"])
                        for o in listed}
                have = {(o["metadata"]["name"], o["metadata"]["resourceVersion"])
                        for o in informer.by_index("namespace", self.ns)}
                if want != have:
                    return False
            return True
        await eventually(caught_up, timeout=10, interval=0.02)

    async def sync_at(self, t: float, name: str) -> Obj:
        self.clock.t = t
        await self.settle()
        await self.controller.sync(f"{self.ns}/{name}")
        await self.settle()
        return await self.client.get("cronjobs", name, namespace=self.ns)

    async def jobs(self) -> list[Obj]:
        items = (await self.client.list("jobs", namespace=self.ns)).items
        return sorted((j for j in items if not j["metadata"].get("deletionTimestamp")),
                      key=lambda j: j["metadata"]["name"])

    async def finish(self, job: Obj, type_: str, at: float) -> None:
        status = {"startTime": rfc3339(at - 1), "conditions": [
            {"type": type_, "status": "True", "lastTransitionTime": rfc3339(at)}]}
        if type_ == "Complete":
            status["completionTime"] = rfc3339(at)
            status["succeeded"] = 1
        else:
            status["failed"] = 1
        fresh = await self.client.get("jobs", job["metadata"]["name"], namespace=self.ns)
        await self.client.update_status("jobs", {**fresh, "status": status})


@pytest.fixture
async def harness(client: Client, namespace: str) -> AsyncIterator[Harness]:
    h = Harness(client, namespace)
    h.factory.start()
    await asyncio.gather(*(i.wait_synced() for i in h.controller.informers))
    yield h
    h.controller.shut_down()
    await h.factory.stop()
    await h.controller.recorder.stop()


def names(jobs: list[Obj]) -> list[str]:
    return [j["metadata"]["name"] for j in jobs]


async def test_every_minute_creates_one_job_per_minute(harness: Harness) -> None:
    cj = await harness.create(cronjob("tick"))
    assert cj["spec"]["concurrencyPolicy"] == "Allow"
    spec = cj["spec"]
    assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (3, 1)
    status = (await harness.sync_at(harness.clock.t, "tick")).get("status") or {}
    assert await harness.jobs() == [] and "lastScheduleTime" not in status
    m1, m2 = harness.minute(1, cj), harness.minute(2, cj)
    status = (await harness.sync_at(m1 + 1, "tick"))["status"]
    assert names(await harness.jobs()) == [f"tick-{int(m1 // 60)}"]
    assert status["lastScheduleTime"] == rfc3339(m1)
    await harness.sync_at(m1 + 30, "tick")  # same minute: nothing new
    status = (await harness.sync_at(m2, "tick"))["status"]
    jobs = await harness.jobs()
    assert names(jobs) == [f"tick-{int(m1 // 60)}", f"tick-{int(m2 // 60)}"]
    assert [a["name"] for a in status["active"]] == names(jobs)
    job = jobs[1]
    assert job["metadata"]["annotations"][SCHEDULED_TIMESTAMP] == rfc3339(m2)
    ref = job["metadata"]["ownerReferences"][0]
    assert (ref["kind"], ref["name"], ref["controller"]) == ("CronJob", "tick", True)
    assert job["spec"]["template"]["spec"]["containers"][0]["command"][-1] == "true"


async def test_forbid_waits_for_the_active_job(harness: Harness) -> None:
    cj = await harness.create(cronjob("forbid", concurrencyPolicy="Forbid"))
    m1, m2, m3 = (harness.minute(n, cj) for n in (1, 2, 3))
    await harness.sync_at(m1 + 1, "forbid")
    first = await harness.jobs()
    assert len(first) == 1
    await harness.sync_at(m2 + 1, "forbid")
    assert names(await harness.jobs()) == names(first)  # the first still runs
    await harness.finish(first[0], "Complete", m2 + 10)
    status = (await harness.sync_at(m2 + 20, "forbid"))["status"]
    # The pending start (minute 2) runs now that nothing is active.
    assert names(await harness.jobs()) == names(first) + [f"forbid-{int(m2 // 60)}"]
    assert status["lastSuccessfulTime"] == rfc3339(m2 + 10)
    assert [a["name"] for a in status["active"]] == [f"forbid-{int(m2 // 60)}"]
    await harness.sync_at(m3 - 1, "forbid")
    assert len(await harness.jobs()) == 2


async def test_replace_deletes_the_active_job(harness: Harness) -> None:
    cj = await harness.create(cronjob("repl", concurrencyPolicy="Replace"))
    m1, m2 = harness.minute(1, cj), harness.minute(2, cj)
    await harness.sync_at(m1 + 1, "repl")
    status = (await harness.sync_at(m2 + 1, "repl"))["status"]
    assert names(await harness.jobs()) == [f"repl-{int(m2 // 60)}"]
    assert [a["name"] for a in status["active"]] == [f"repl-{int(m2 // 60)}"]


async def test_only_the_history_limits_are_kept(harness: Harness) -> None:
    cj = await harness.create(cronjob("hist", successfulJobsHistoryLimit=2,
                                      failedJobsHistoryLimit=1))
    outcomes = ["Complete", "Failed", "Complete", "Complete", "Failed", "Complete"]
    for n, outcome in enumerate(outcomes, start=1):
        minute = harness.minute(n, cj)
        await harness.sync_at(minute + 1, "hist")
        newest = (await harness.jobs())[-1]
        assert newest["metadata"]["name"] == f"hist-{int(minute // 60)}"
        await harness.finish(newest, outcome, minute + 5)
    status = (await harness.sync_at(harness.minute(6, cj) + 30, "hist"))["status"]
    kept = {j["metadata"]["name"] for j in await harness.jobs()}
    minutes = [int(harness.minute(n, cj) // 60) for n in range(1, 7)]
    assert kept == {f"hist-{minutes[3]}", f"hist-{minutes[5]}", f"hist-{minutes[4]}"}
    assert "active" not in status


async def test_too_many_missed_start_times_warn_and_run_the_latest(harness: Harness) -> None:
    cj = await harness.create(cronjob("late"))
    later = harness.minute(200, cj) + 5
    await harness.sync_at(later, "late")
    assert names(await harness.jobs()) == [f"late-{int(harness.minute(200, cj) // 60)}"]
    events = await wait_for_list(
        harness.client, "events",
        lambda es: [e for e in es if e.get("reason") == "TooManyMissedTimes"],
        namespace=harness.ns, timeout=10)
    assert events[0]["type"] == "Warning"
    assert events[0]["message"].startswith("too many missed start times: 200. ")


async def test_starting_deadline_suspend_and_time_zone(harness: Harness) -> None:
    cj = await harness.create(cronjob("dl", startingDeadlineSeconds=10))
    m1, m2 = harness.minute(1, cj), harness.minute(2, cj)
    await harness.sync_at(m1 + 30, "dl")  # 30 s late, deadline 10 s: skipped
    assert await harness.jobs() == []
    await harness.sync_at(m2 + 5, "dl")
    assert names(await harness.jobs()) == [f"dl-{int(m2 // 60)}"]

    cj = await harness.create(cronjob("sus", suspend=True))
    await harness.sync_at(harness.minute(3, cj), "sus")
    assert not [j for j in await harness.jobs() if j["metadata"]["name"].startswith("sus-")]

    cj = await harness.create(cronjob("tokyo", "0 9 * * *", timeZone="Asia/Tokyo"))
    await harness.sync_at(harness.clock.t + 2 * 86400, "tokyo")
    tokyo = [j for j in await harness.jobs() if j["metadata"]["name"].startswith("tokyo-")]
    assert len(tokyo) == 1
    stamp = tokyo[0]["metadata"]["annotations"][SCHEDULED_TIMESTAMP]
    assert stamp.endswith("T09:00:00+09:00"), stamp


async def test_schedules_and_time_zones_are_validated(client: Client, namespace: str) -> None:
    from kubelite.errors import InvalidError
    for spec, match in ((cronjob("a", "* * * *"), "spec.schedule"),
                        (cronjob("b", "TZ=UTC * * * * *"), "TZ or CRON_TZ"),
                        (cronjob("c", timeZone="Mars/Olympus"), "spec.timeZone"),
                        (cronjob("d", concurrencyPolicy="Sometimes"), "concurrencyPolicy")):
        with pytest.raises(InvalidError, match=match):
            await client.create("cronjobs", spec, namespace=namespace)
    for ok in ("@hourly", "@daily", "@midnight", "@weekly", "@monthly", "@yearly", "@annually",
               "*/5 9-17 * * mon-fri"):
        await client.create("cronjobs", cronjob(f"m{uuid.uuid4().hex[:6]}", ok),
                            namespace=namespace)


# -- a whole cluster, its CronJob clock 20 times as fast ------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start_cluster(tmp_path_factory.mktemp("cronjob"), nodes=1,
                      env={"KUBELITE_CRONJOB_CLOCK_RATE": "20",
                           "KUBELITE_JOB_BACKOFF_BASE": "0.2"})
    yield c
    c.stop()


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[Client]:
    async with Client(cluster.target) as c:
        await wait_nodes_ready(c, 1)
        yield c


@pytest.fixture
async def ns(api: Client) -> str:
    name = f"cj-{uuid.uuid4().hex[:8]}"
    await api.create("namespaces", {"metadata": {"name": name}})
    return name


@pytest.mark.slow
async def test_a_fast_clock_runs_jobs_to_completion_within_the_history_limit(
        api: Client, ns: str) -> None:
    seen: set[str] = set()

    async def watch() -> None:
        async for event in api.watch("jobs", namespace=ns):
            if event.type == "ADDED":
                seen.add(event.object["metadata"]["name"])

    task = asyncio.create_task(watch())
    try:
        await api.create("cronjobs", cronjob("fast", successfulJobsHistoryLimit=2),
                         namespace=ns)
        await eventually(lambda: len(seen) >= 4, timeout=40, what="four jobs")
        await wait_for(api, "cronjobs", "fast",
                       lambda c: (c.get("status") or {}).get("lastSuccessfulTime"),
                       namespace=ns, timeout=20)
        await api.patch("cronjobs", "fast", {"spec": {"suspend": True}}, namespace=ns)

        def done(jobs: list[Obj]) -> bool:
            finished = [j for j in jobs if any(c.get("type") == "Complete"
                                               for c in (j.get("status") or {}).get(
                                                   "conditions") or [])]
            return len(finished) == len(jobs) == 2
        await wait_for_list(api, "jobs", done, namespace=ns, timeout=30)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["Foreground", "Background", "Orphan"])
async def test_deleting_a_cronjob_follows_the_propagation_policy(api: Client, ns: str,
                                                                 policy: str) -> None:
    await api.create("cronjobs", cronjob("gc", script="sleep 600"), namespace=ns)
    jobs = await wait_for_list(api, "jobs", lambda js: len(js) >= 2 and js, namespace=ns,
                               timeout=30)
    await api.patch("cronjobs", "gc", {"spec": {"suspend": True}}, namespace=ns)
    await api.delete("cronjobs", "gc", namespace=ns, propagation_policy=policy)
    await wait_deleted(api, "cronjobs", "gc", namespace=ns, timeout=30)
    if policy == "Orphan":
        async def orphaned() -> bool:
            left = (await api.list("jobs", namespace=ns)).items
            return len(left) >= 2 and all(not j["metadata"].get("ownerReferences")
                                          for j in left)
        await eventually(orphaned, timeout=20)
    else:
        for job in jobs:
            await wait_deleted(api, "jobs", job["metadata"]["name"], namespace=ns, timeout=40)


@pytest.mark.slow
async def test_the_cli_prints_cronjobs_and_runs_one_by_hand(api: Client, ns: str,
                                                            cluster: Cluster) -> None:
    from tests.test_cli import kubelite

    await api.create("cronjobs", cronjob("nightly", "@daily", script="true",
                                         timeZone="Europe/Paris"), namespace=ns)
    got = kubelite("get", "cj", "-n", ns, server=cluster.target)
    assert got.returncode == 0, got.stderr
    header, row = got.stdout.splitlines()
    assert header.split() == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST",
                              "SCHEDULE", "AGE"]
    assert row.split()[:6] == ["nightly", "@daily", "Europe/Paris", "False", "0", "<none>"]
    made = kubelite("create", "job", "manual", "--from=cronjob/nightly", "-n", ns,
                    server=cluster.target)
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == "job.batch/manual created"
    job = await wait_for(api, "jobs", "manual", lambda j: any(
        c.get("type") == "Complete" for c in (j.get("status") or {}).get("conditions") or []),
        namespace=ns, timeout=30)
    assert job["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert job["metadata"]["ownerReferences"][0]["name"] == "nightly"
    got = kubelite("get", "jobs", "-n", ns, "-o", "wide", server=cluster.target)
    header, row = got.stdout.splitlines()
    assert header.split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE", "CONTAINERS",
                              "IMAGES", "SELECTOR"]
    assert row.split()[:3] == ["manual", "Complete", "1/1"]
    described = kubelite("describe", "job", "manual", "-n", ns, server=cluster.target)
    assert "Pods Statuses: 0 Active (0 Ready) / 1 Succeeded / 0 Failed" in " ".join(
        described.stdout.split())
    described = kubelite("describe", "cj", "nightly", "-n", ns, server=cluster.target)
    assert "Concurrency Policy:" in described.stdout and "Europe/Paris" in described.stdout

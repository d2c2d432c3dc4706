"""Jobs on a real cluster (`kubelite up`, process runtime), with a fast pod-failure backoff:
parallelism is a ceiling, backoffLimit ends a Job, Indexed pods see each index once,
podFailurePolicy, suspend, activeDeadlineSeconds, TTL and the garbage collector."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from kubelite.client import Client
from kubelite.errors import InvalidError
from kubelite.testing import wait_deleted, wait_for, wait_for_list

from .e2e import Cluster, eventually, start_cluster, wait_nodes_ready

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start_cluster(tmp_path_factory.mktemp("job"), nodes=1,
                      env={"KUBELITE_JOB_BACKOFF_BASE": "0.2", "KUBELITE_JOB_BACKOFF_MAX": "1"})
    yield c
    c.stop()


@pytest.fixture
async def api(cluster: Cluster) -> AsyncIterator[Client]:
    async with Client(cluster.target) as c:
        await wait_nodes_ready(c, 1)
        yield c


@pytest.fixture
async def ns(api: Client) -> str:
    name = f"job-{uuid.uuid4().hex[:8]}"
    await api.create("namespaces", {"metadata": {"name": name}})
    return name


def job(name: str, script: str, **spec: Any) -> dict[str, Any]:
    pod_spec = {"restartPolicy": spec.pop("restartPolicy", "Never"),
                "containers": [{"name": "main", "image": "busybox",
                                "command": ["sh", "-c", script]}]}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"template": {"spec": pod_spec}, **spec}}


def cond(j: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for c in (j.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_ and c.get("status") == "True":
            return c
    return None


@contextlib.asynccontextmanager
async def most_running(api: Client, ns: str) -> AsyncIterator[list[int]]:
    """Watches the namespace's pods; yields [the most ever non-terminated at once]."""
    peak = [0]
    phases: dict[str, str] = {}

    async def watch() -> None:
        async for event in api.watch("pods", namespace=ns):
            if event.type == "BOOKMARK":
                continue
            obj = event.object
            uid = obj["metadata"]["uid"]
            if event.type == "DELETED":
                phases.pop(uid, None)
            else:
                phases[uid] = (obj.get("status") or {}).get("phase") or "Pending"
            peak[0] = max(peak[0], sum(1 for p in phases.values()
                                       if p not in ("Succeeded", "Failed")))

    task = asyncio.create_task(watch())
    try:
        yield peak
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_job_defaults_and_generated_selector(api: Client, ns: str) -> None:
    created = await api.create("jobs", job("pi", "true"), namespace=ns)
    spec, uid = created["spec"], created["metadata"]["uid"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (1, 1, 6)
    assert (spec["completionMode"], spec["suspend"], spec["manualSelector"]) == (
        "NonIndexed", False, False)
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    labels = spec["template"]["metadata"]["labels"]
    assert labels == {"controller-uid": uid, "batch.kubernetes.io/controller-uid": uid,
                      "job-name": "pi", "batch.kubernetes.io/job-name": "pi"}
    with pytest.raises(InvalidError, match="restartPolicy"):
        bad = job("always", "true")
        bad["spec"]["template"]["spec"].pop("restartPolicy")
        await api.create("jobs", bad, namespace=ns)
    with pytest.raises(InvalidError, match="immutable"):
        await api.patch("jobs", "pi", {"spec": {"completions": 3}}, namespace=ns)
    done = await wait_for(api, "jobs", "pi", lambda j: cond(j, "Complete"), namespace=ns,
                          timeout=30)
    assert done["status"]["succeeded"] == 1 and done["status"]["completionTime"]
    assert cond(done, "SuccessCriteriaMet")


async def test_completions_5_parallelism_2(api: Client, ns: str) -> None:
    async with most_running(api, ns) as peak:
        await asyncio.sleep(0.2)  # the watch is open before the first pod
        await api.create("jobs", job("five", "sleep 0.5", completions=5, parallelism=2),
                         namespace=ns)
        done = await wait_for(api, "jobs", "five", lambda j: cond(j, "Complete"),
                              namespace=ns, timeout=50)
    assert done["status"]["succeeded"] == 5
    assert done["status"].get("failed", 0) == 0
    assert 1 <= peak[0] <= 2, peak
    pods = (await api.list("pods", namespace=ns, label_selector="job-name=five")).items
    assert sorted(p["status"]["phase"] for p in pods) == ["Succeeded"] * 5


async def test_a_job_that_always_fails_ends_backoff_limit_exceeded(api: Client, ns: str) -> None:
    await api.create("jobs", job("fails", "exit 3", backoffLimit=2), namespace=ns)
    failed = await wait_for(api, "jobs", "fails", lambda j: cond(j, "Failed"), namespace=ns,
                            timeout=40)
    assert cond(failed, "Failed")["reason"] == "BackoffLimitExceeded"
    assert failed["status"]["failed"] == 3
    assert not cond(failed, "Complete")


async def test_indexed_pods_see_each_index_once(api: Client, ns: str, tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    script = f'echo "$JOB_COMPLETION_INDEX $HOSTNAME" >> {seen}'
    await api.create("jobs", job("idx", script, completions=4, parallelism=2,
                                 completionMode="Indexed"), namespace=ns)
    done = await wait_for(api, "jobs", "idx", lambda j: cond(j, "Complete"), namespace=ns,
                          timeout=40)
    assert done["status"]["completedIndexes"] == "0-3"
    lines = sorted(seen.read_text().split("\n")[:-1])
    assert lines == [f"{i} idx-{i}" for i in range(4)]
    pods = (await api.list("pods", namespace=ns, label_selector="job-name=idx")).items
    assert sorted(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
                  for p in pods) == ["0", "1", "2", "3"]


async def test_pod_failure_policy_fail_job_and_ignore(api: Client, ns: str,
                                                      tmp_path: Path) -> None:
    rules = [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]
    await api.create("jobs", job("fj", "exit 42", podFailurePolicy={"rules": rules}),
                     namespace=ns)
    failed = await wait_for(api, "jobs", "fj", lambda j: cond(j, "Failed"), namespace=ns,
                            timeout=30)
    assert cond(failed, "Failed")["reason"] == "PodFailurePolicy"
    assert "exit code 42 matching FailJob rule at index 0" in cond(failed, "Failed")["message"]
    # Ignore: the first run fails with 7 (not counted against backoffLimit 0), the second
    # succeeds.
    marker = tmp_path / "ran"
    script = f"if [ -e {marker} ]; then exit 0; fi; touch {marker}; exit 7"
    rules = [{"action": "Ignore", "onExitCodes": {"operator": "In", "values": [7]}}]
    await api.create("jobs", job("ign", script, backoffLimit=0,
                                 podFailurePolicy={"rules": rules}), namespace=ns)
    done = await wait_for(api, "jobs", "ign", lambda j: cond(j, "Complete") or cond(j, "Failed"),
                          namespace=ns, timeout=30)
    assert cond(done, "Complete"), done["status"]
    assert done["status"]["failed"] == 0


async def test_suspend_resume_and_active_deadline(api: Client, ns: str) -> None:
    await api.create("jobs", job("sus", "sleep 0.5", suspend=True), namespace=ns)
    suspended = await wait_for(api, "jobs", "sus", lambda j: cond(j, "Suspended"),
                               namespace=ns, timeout=20)
    assert suspended["status"].get("active", 0) == 0
    pods = (await api.list("pods", namespace=ns, label_selector="job-name=sus")).items
    assert pods == []
    await api.patch("jobs", "sus", {"spec": {"suspend": False}}, namespace=ns)
    await wait_for(api, "jobs", "sus", lambda j: cond(j, "Complete"), namespace=ns, timeout=30)

    await api.create("jobs", job("slow", "sleep 600", activeDeadlineSeconds=2), namespace=ns)
    failed = await wait_for(api, "jobs", "slow", lambda j: cond(j, "Failed"), namespace=ns,
                            timeout=40)
    assert cond(failed, "Failed")["reason"] == "DeadlineExceeded"
    await wait_for_list(api, "pods", lambda ps: all(
        p["status"].get("phase") in ("Succeeded", "Failed") for p in ps),
        namespace=ns, label_selector="job-name=slow", timeout=30)


async def test_ttl_after_finished_deletes_the_job_and_its_pods(api: Client, ns: str) -> None:
    await api.create("jobs", job("ttl", "true", ttlSecondsAfterFinished=1), namespace=ns)
    await wait_for(api, "jobs", "ttl", lambda j: cond(j, "Complete"), namespace=ns, timeout=30)
    await wait_deleted(api, "jobs", "ttl", namespace=ns, timeout=30)
    await wait_for_list(api, "pods", lambda ps: not ps, namespace=ns,
                        label_selector="job-name=ttl", timeout=30)


@pytest.mark.parametrize("policy", ["Foreground", "Background", "Orphan"])
async def test_deleting_a_job_follows_the_propagation_policy(api: Client, ns: str,
                                                             policy: str) -> None:
    await api.create("jobs", job("gc", "sleep 600", parallelism=2, completions=2),
                     namespace=ns)
    pods = await wait_for_list(api, "pods", lambda ps: len(ps) == 2 and ps, namespace=ns,
                               label_selector="job-name=gc", timeout=30)
    await api.delete("jobs", "gc", namespace=ns, propagation_policy=policy)
    await wait_deleted(api, "jobs", "gc", namespace=ns, timeout=30)
    if policy == "Orphan":
        async def orphaned() -> bool:
            left = (await api.list("pods", namespace=ns, label_selector="job-name=gc")).items
            return len(left) == 2 and all(not p["metadata"].get("ownerReferences")
                                          for p in left)
        await eventually(orphaned, timeout=20)
    else:
        for pod in pods:
            await wait_deleted(api, "pods", pod["metadata"]["name"], namespace=ns, timeout=40)

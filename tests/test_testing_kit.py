"""kubelite.testing: the plugin's fixtures in a fresh pytest run, and the waits themselves."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from kubelite.client import Client
from kubelite.testing import (
    ApiServer,
    WaitTimeout,
    eventually,
    eventually_sync,
    wait_deleted,
    wait_for,
    wait_for_list,
)

from .helpers import configmap

Obj = dict[str, Any]


def plugin_args() -> list[str]:
    """Loads the plugin the way a harness gets it: by the entry point when the package is
    installed with it, else (a source checkout) by name, as the entry point would."""
    installed = any(ep.value == "kubelite.testing.plugin"
                    for ep in entry_points(group="pytest11"))
    return [] if installed else ["-p", "kubelite.testing.plugin"]


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def children_of(pid: int) -> list[int]:
    """Every descendant of pid, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rpartition(")")[2].split()[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        kids = [p for p, pp in parents.items() if pp == parent]
        found += kids
        frontier += kids
    return found


def run_fresh(pytester: pytest.Pytester, source: str, timeout: float) -> tuple[Any, list[int]]:
    """Runs `source` as the only test file of a new pytest process (no conftest, strict
    asyncio mode: what a harness starts from) and returns the result and the PIDs its
    tests wrote to pids.json."""
    pytester.makepyfile(test_fresh=source)
    result = pytester.runpytest_subprocess(*plugin_args(), "-p", "no:cacheprovider",
                                           "-q", timeout=timeout)
    path = pytester.path / "pids.json"
    pids = json.loads(path.read_text()) if path.exists() else []
    return result, pids


FRESH_APISERVER = '''
import json, os
from pathlib import Path

import pytest

from kubelite.testing import wait_for

PIDS = Path(__file__).with_name("pids.json")


def record(*pids):
    old = json.loads(PIDS.read_text()) if PIDS.exists() else []
    PIDS.write_text(json.dumps(old + list(pids)))


@pytest.mark.asyncio
async def test_shared_apiserver(kubelite_client, kubelite_namespace, kubelite_shared_apiserver):
    await kubelite_client.create("configmaps", {"metadata": {"name": "hello"},
                                                "data": {"k": "v"}},
                                 namespace=kubelite_namespace)
    got = await wait_for(kubelite_client, "configmaps", "hello",
                         lambda cm: cm["data"]["k"] == "v", namespace=kubelite_namespace)
    assert got["metadata"]["namespace"] == kubelite_namespace
    server = kubelite_shared_apiserver
    record(server.process.pid, server.redis.process.pid)


def test_apiserver_with_flags(kubelite_apiserver_factory, kubelite_redis):
    server = kubelite_apiserver_factory("--watch-cache-size", "7")
    assert server.redis is kubelite_redis
    assert "--watch-cache-size" in " ".join(server.process.argv)
    assert server.process.alive() and kubelite_redis.process.alive()
    record(server.process.pid, kubelite_redis.process.pid)
'''


def test_a_fresh_test_file_gets_a_real_apiserver_and_leaves_no_process(
        pytester: pytest.Pytester) -> None:
    """A test file that uses only the plugin's fixtures passes against real processes,
    and every redis-server and apiserver it started is gone when pytest exits."""
    result, pids = run_fresh(pytester, FRESH_APISERVER, timeout=120)
    result.assert_outcomes(passed=2)
    assert len(pids) == 4
    assert [pid for pid in pids if alive(pid)] == []


FRESH_CLUSTER = '''
import json
from pathlib import Path

import pytest

from kubelite.testing import is_ready


@pytest.mark.asyncio
async def test_cluster(kubelite_cluster):
    async with kubelite_cluster.client() as client:
        nodes = (await client.list("nodes")).items
    assert len(nodes) == 1 and is_ready(nodes[0])
    root = kubelite_cluster.process.pid
    Path(__file__).with_name("root.json").write_text(json.dumps(root))
'''


@pytest.mark.slow
def test_the_cluster_fixture_runs_kubelite_up_with_a_ready_node_and_stops_it_all(
        pytester: pytest.Pytester) -> None:
    """kubelite_cluster is a whole `kubelite up` with its node Ready; after the module,
    neither it nor any process it started (Redis, components, pods) is left."""
    descendants: list[int] = []
    pytester.makepyfile(test_fresh=FRESH_CLUSTER)
    root_file = pytester.path / "root.json"
    proc = pytester.popen([sys.executable, "-m", "pytest", *plugin_args(), "-p",
                           "no:cacheprovider", "-q", "test_fresh.py"],
                          stdout=pytester.path.joinpath("out.txt").open("w"),
                          stderr=-2)  # STDOUT: one log to show on failure
    try:
        # While the cluster runs, note every process under `kubelite up`.
        root = eventually_sync(lambda: root_file.exists() and json.loads(root_file.read_text()),
                               timeout=120, what="the test to start the cluster")
        descendants = children_of(root)
        assert proc.wait(timeout=120) == 0, (pytester.path / "out.txt").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert len(descendants) >= 5  # redis, apiserver, scheduler, controller, kubelet, ...
    assert [pid for pid in [root, *descendants] if alive(pid)] == []


# -- the waits --------------------------------------------------------------------------


async def test_wait_for_returns_on_a_change_made_after_it_started(
        client: Client, namespace: str) -> None:
    """wait_for sees the old state first, then wakes on the update through its watch."""
    await client.create("configmaps", configmap("late", namespace, {"k": "1"}))
    seen: list[str] = []

    def updated(cm: Obj) -> bool:
        seen.append(cm["data"]["k"])
        return cm["data"]["k"] == "2"

    waiter = asyncio.create_task(
        wait_for(client, "configmaps", "late", updated, namespace=namespace, timeout=10))
    await eventually(lambda: seen, timeout=10, what="wait_for to see the first state")
    assert not waiter.done()
    cm = await client.get("configmaps", "late", namespace=namespace)
    await client.update("configmaps", {**cm, "data": {"k": "2"}})
    got = await waiter
    assert got["data"] == {"k": "2"}
    assert seen == ["1", "2"]


async def test_wait_for_an_object_that_is_created_later_and_then_deleted(
        client: Client, namespace: str) -> None:
    """Without a predicate wait_for waits for the object to exist; wait_deleted for it
    to be gone."""
    waiter = asyncio.create_task(wait_for(client, "configmaps", "soon", namespace=namespace))
    await client.create("configmaps", configmap("soon", namespace, {"a": "b"}))
    assert (await waiter)["data"] == {"a": "b"}
    gone = asyncio.create_task(wait_deleted(client, "configmaps", "soon", namespace=namespace))
    await client.delete("configmaps", "soon", namespace=namespace)
    await asyncio.wait_for(gone, 10)


async def test_wait_for_times_out_with_what_it_waited_for_and_last_saw(
        client: Client, namespace: str) -> None:
    """An unmet condition fails after the timeout, as an assertion naming the object, the
    condition and the state last seen."""
    await client.create("configmaps", configmap("never", namespace, {"k": "old"}))

    def is_new(cm: Obj) -> bool:
        return cm["data"]["k"] == "new"

    start = time.monotonic()
    with pytest.raises(WaitTimeout) as caught:
        await wait_for(client, "configmaps", "never", is_new, namespace=namespace, timeout=0.5)
    assert 0.5 <= time.monotonic() - start < 5
    message = str(caught.value)
    assert isinstance(caught.value, AssertionError)
    assert f"timed out after 0.5s waiting for configmaps {namespace}/never to satisfy " \
           f"{is_new.__qualname__}" in message
    assert "'k': 'old'" in message


async def test_wait_for_lists_again_when_the_watch_history_is_trimmed(
        apiserver_factory: Any) -> None:
    """A watch from a revision the apiserver no longer holds (ExpiredError) is replaced by
    a new list, and the wait still sees the change."""
    server: ApiServer = apiserver_factory("--history", "5", "--watch-cache-size", "5")
    async with Client(server.target) as c:
        await c.create("configmaps", configmap("target", "default", {"k": "1"}))
        calls = 0

        async def churn_then_check(objects: list[Obj]) -> bool:
            nonlocal calls
            calls += 1
            if calls == 1:  # between the first list and its watch: trim the history past it
                for i in range(30):
                    await c.create("configmaps", configmap(f"churn-{i}", "default"))
                cm = await c.get("configmaps", "target", namespace="default")
                await c.update("configmaps", {**cm, "data": {"k": "2"}})
                return False
            return any(o["data"]["k"] == "2" for o in objects)

        assert await wait_for_list(c, "configmaps", churn_then_check, namespace="default",
                                   field_selector="metadata.name=target", timeout=10)
        assert calls == 2  # the update came from a second list, not from a watch event


async def test_eventually_returns_the_value_and_counts_ignored_errors_as_not_yet() -> None:
    """eventually takes sync or async conditions, returns the first truthy value, treats
    the `ignore` exceptions as "not yet" and lets any other one through."""
    tries = iter([KeyError("x"), 0, "done"])

    def flaky() -> Any:
        value = next(tries)
        if isinstance(value, Exception):
            raise value
        return value

    assert await eventually(flaky, timeout=5, interval=0.01, ignore=(KeyError,)) == "done"

    async def broken() -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError):
        await eventually(broken, timeout=5)
    with pytest.raises(WaitTimeout, match="timed out after 0.1s waiting for the moon; "
                                          "last seen: 0"):
        await eventually(lambda: 0, timeout=0.1, what="the moon")


def readme_example() -> str:
    """The pytest example of the README's harness section."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    blocks = re.findall(r"^```python\n(.*?)^```", readme, re.S | re.M)
    [example] = [b for b in blocks if "kubelite_client" in b]
    return example


@pytest.mark.slow
def test_the_readme_harness_example_passes(pytester: pytest.Pytester) -> None:
    """The README's plugin example, as written, passes in a fresh pytest run."""
    result, _ = run_fresh(pytester, readme_example(), timeout=180)
    result.assert_outcomes(passed=2)

"""Informers: the indexed store (unit), and list+watch against a real apiserver."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import pytest

from kubelite import testing
from kubelite.client import Client
from kubelite.errors import UnavailableError
from kubelite.informer import Informer, Store, index_by_namespace, object_key, split_key

# The conditions read local caches, so polling them often costs nothing.
eventually = partial(testing.eventually, interval=0.02)

Obj = dict[str, Any]


async def retrying(call: Callable[[], Awaitable[Any]], within: float = 10.0) -> Any:
    """Runs call until the API is reachable again (a restarted server takes a moment)."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await call()
        except UnavailableError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


def configmap(namespace: str, name: str, labels: dict[str, str] | None = None, **data: str) -> Obj:
    meta: Obj = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


class Recorder:
    """Replays handler calls onto a dict, to check that the calls describe the truth."""

    def __init__(self, informer: Informer) -> None:
        self.mirror: dict[str, str] = {}  # key -> resourceVersion
        self.calls: list[tuple[str, str]] = []
        informer.add_handler(on_add=self.on_add, on_update=self.on_update, on_delete=self.on_delete)

    def on_add(self, obj: Obj) -> None:
        key = object_key(obj)
        assert key not in self.mirror, f"add of a known key {key}"
        self.mirror[key] = obj["metadata"]["resourceVersion"]
        self.calls.append(("add", key))

    def on_update(self, old: Obj, new: Obj) -> None:
        key = object_key(new)
        assert object_key(old) == key and key in self.mirror, f"update of unknown key {key}"
        self.mirror[key] = new["metadata"]["resourceVersion"]
        self.calls.append(("update", key))

    def on_delete(self, obj: Obj) -> None:
        key = object_key(obj)
        assert key in self.mirror, f"delete of unknown key {key}"
        del self.mirror[key]
        self.calls.append(("delete", key))


async def truth(client: Client, resource: str, namespace: str | None) -> dict[str, str]:
    """key -> resourceVersion of a fresh list."""
    page = await client.list(resource, namespace=namespace)
    return {object_key(o): o["metadata"]["resourceVersion"] for o in page.items}


def cached(informer: Informer) -> dict[str, str]:
    return {object_key(o): o["metadata"]["resourceVersion"] for o in informer.list()}


@pytest.fixture
async def started() -> Any:
    """Starts informers for a test and stops them afterwards."""
    informers: list[Informer] = []

    def start(informer: Informer) -> Informer:
        informers.append(informer)
        informer.start()
        return informer

    yield start
    for informer in informers:
        await informer.stop()


# ---------------------------------------------------------------- the store (unit)


def test_object_key_is_namespace_slash_name_or_name():
    """Namespaced objects key as ns/name, cluster-scoped ones as name."""
    assert object_key({"metadata": {"namespace": "ns", "name": "a"}}) == "ns/a"
    assert object_key({"metadata": {"name": "node1"}}) == "node1"
    assert split_key("ns/a") == ("ns", "a")
    assert split_key("node1") == ("", "node1")


def test_store_indices_follow_updates_and_deletes():
    """An index reflects the current objects: moved values move, deleted ones vanish."""
    store = Store()
    store.add_index("node", lambda o: [o["spec"]["nodeName"]] if o["spec"].get("nodeName") else [])
    store.upsert("ns/a", {"spec": {"nodeName": "n1"}})
    store.upsert("ns/b", {"spec": {"nodeName": "n1"}})
    store.upsert("ns/c", {"spec": {}})
    assert store.index_keys("node", "n1") == ["ns/a", "ns/b"]
    store.upsert("ns/a", {"spec": {"nodeName": "n2"}})
    assert store.index_keys("node", "n1") == ["ns/b"]
    assert store.by_index("node", "n2") == [{"spec": {"nodeName": "n2"}}]
    store.delete("ns/b")
    assert store.index_keys("node", "n1") == []
    assert store.by_index("node", "missing") == []


def test_index_added_late_covers_existing_objects():
    """add_index indexes what is already in the store; a str result is one value."""
    store = Store()
    store.upsert("x/a", {"metadata": {"namespace": "x", "name": "a"}})
    store.upsert("y/b", {"metadata": {"namespace": "y", "name": "b"}})
    store.add_index("namespace", index_by_namespace)
    store.add_index("name", lambda o: o["metadata"]["name"])
    assert store.index_keys("namespace", "y") == ["y/b"]
    assert store.index_keys("name", "a") == ["x/a"]
    with pytest.raises(KeyError):
        store.by_index("nope", "a")
    with pytest.raises(ValueError):
        store.add_index("name", lambda o: [])


# ---------------------------------------------------------------- against the apiserver


async def test_lists_all_pages_then_follows_changes(client, namespace, started):
    """The cache holds every page of the list, then every later create, update and delete."""
    for i in range(5):
        await client.create("configmaps", configmap(namespace, f"cm{i}", v="0"))
    informer = Informer(client, "configmaps", namespace=namespace, page_size=2)
    rec = Recorder(informer)
    started(informer)
    await asyncio.wait_for(informer.wait_synced(), 10)
    assert informer.has_synced
    assert sorted(informer.keys()) == [f"{namespace}/cm{i}" for i in range(5)]
    assert informer.lists == 1

    await client.create("configmaps", configmap(namespace, "new", v="0"))
    updated = await client.patch("configmaps", "cm1", {"data": {"v": "1"}}, namespace=namespace)
    deleted = await client.delete("configmaps", "cm2", namespace=namespace)
    want = await truth(client, "configmaps", namespace)
    await eventually(lambda: cached(informer) == want, what="cache to match the server")
    assert informer.get(f"{namespace}/cm1")["data"] == {"v": "1"}
    assert informer.get(f"{namespace}/cm2") is None
    assert rec.mirror == want
    assert ("update", f"{namespace}/cm1") in rec.calls
    assert ("delete", f"{namespace}/cm2") in rec.calls
    assert int(informer.last_resource_version) >= int(deleted["metadata"]["resourceVersion"])
    assert int(informer.last_resource_version) > int(updated["metadata"]["resourceVersion"])
    assert informer.relists == 0 and informer.reconnects == 0


async def test_label_selector_keeps_only_matching_objects(client, namespace, started):
    """An object relabelled out of the selector leaves the cache with a delete."""
    await client.create("configmaps", configmap(namespace, "web", {"app": "web"}))
    await client.create("configmaps", configmap(namespace, "db", {"app": "db"}))
    informer = Informer(client, "configmaps", namespace=namespace, label_selector="app=web")
    rec = Recorder(informer)
    started(informer)
    await asyncio.wait_for(informer.wait_synced(), 10)
    assert informer.keys() == [f"{namespace}/web"]

    await client.patch(
        "configmaps", "db", {"metadata": {"labels": {"app": "web"}}}, namespace=namespace
    )
    await eventually(lambda: f"{namespace}/db" in informer.keys(), what="db to join")
    await client.patch(
        "configmaps", "web", {"metadata": {"labels": {"app": "other"}}}, namespace=namespace
    )
    await eventually(lambda: f"{namespace}/web" not in informer.keys(), what="web to leave")
    assert ("delete", f"{namespace}/web") in rec.calls
    assert rec.mirror.keys() == {f"{namespace}/db"}


async def test_namespace_index_and_late_handler(client, namespace, started):
    """by_index finds cached objects; a handler added after sync gets an add for each."""
    other = f"{namespace}-b"
    await client.create(
        "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}}
    )
    await client.create("configmaps", configmap(namespace, "a"))
    await client.create("configmaps", configmap(other, "b"))
    informer = Informer(client, "configmaps", label_selector="")
    informer.add_index("namespace", index_by_namespace)
    started(informer)
    await asyncio.wait_for(informer.wait_synced(), 10)
    assert [object_key(o) for o in informer.by_index("namespace", other)] == [f"{other}/b"]
    assert [object_key(o) for o in informer.by_index("namespace", namespace)] == [f"{namespace}/a"]
    seen: list[str] = []
    informer.add_handler(on_add=lambda o: seen.append(object_key(o)))
    assert {f"{namespace}/a", f"{other}/b"} <= set(seen)


async def test_resync_redelivers_cached_objects_as_updates(client, namespace, started):
    """With resync set, on_update(obj, obj) fires for cached objects without changes."""
    await client.create("configmaps", configmap(namespace, "a"))
    informer = Informer(client, "configmaps", namespace=namespace, resync=0.1)
    resynced: list[str] = []
    informer.add_handler(
        on_update=lambda old, new: resynced.append(object_key(new)) if old is new else None
    )
    started(informer)
    await asyncio.wait_for(informer.wait_synced(), 10)
    await eventually(lambda: resynced.count(f"{namespace}/a") >= 2, what="two resyncs")


async def test_failing_handler_does_not_stop_the_informer(client, namespace, started):
    """An exception in one handler is logged; other handlers and the cache go on."""
    informer = Informer(client, "configmaps", namespace=namespace)

    def boom(obj: Obj) -> None:
        raise RuntimeError("handler bug")

    informer.add_handler(on_add=boom)
    rec = Recorder(informer)
    started(informer)
    await asyncio.wait_for(informer.wait_synced(), 10)
    await client.create("configmaps", configmap(namespace, "a"))
    await eventually(lambda: f"{namespace}/a" in rec.mirror, what="the second handler")
    assert informer.running


async def test_bookmarks_advance_the_resource_version(apiserver_factory, started):
    """An idle informer's last_resource_version follows writes it does not see."""
    server = apiserver_factory("--bookmark-interval", "0.2")
    async with Client(server.target) as client:
        for ns in ("quiet", "busy"):
            await client.create(
                "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
            )
        informer = started(Informer(client, "configmaps", namespace="quiet"))
        await asyncio.wait_for(informer.wait_synced(), 10)
        start_rv = int(informer.last_resource_version)
        written = await client.create("configmaps", configmap("busy", "x"))
        target = int(written["metadata"]["resourceVersion"])
        assert target > start_rv
        await eventually(
            lambda: int(informer.last_resource_version) >= target,
            timeout=5,
            what="a bookmark past the write",
        )
        assert informer.list() == []
        await informer.stop()


async def test_reconnects_after_apiserver_restart_without_relisting(apiserver, started):
    """A killed and restarted apiserver costs a reconnect from the last RV, not a relist."""
    async with Client(apiserver.target) as client:
        await client.create(
            "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}}
        )
        await client.create("configmaps", configmap("ns", "before"))
        informer = Informer(
            client, "configmaps", namespace="ns", backoff_base=0.05, backoff_cap=0.5
        )
        rec = Recorder(informer)
        started(informer)
        await asyncio.wait_for(informer.wait_synced(), 10)

        await asyncio.to_thread(apiserver.restart)
        await retrying(lambda: client.create("configmaps", configmap("ns", "after")))
        await retrying(lambda: client.delete("configmaps", "before", namespace="ns"))
        want = await truth(client, "configmaps", "ns")
        await eventually(
            lambda: cached(informer) == want, timeout=15, what="cache to converge after restart"
        )
        assert rec.mirror == want
        assert informer.reconnects >= 1
        assert informer.relists == 0 and informer.lists == 1
        await informer.stop()


async def test_survives_a_redis_restart(apiserver, redis_server, started):
    """While Redis is down the cache keeps its state; afterwards it catches up."""
    async with Client(apiserver.target) as client:
        await client.create(
            "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}}
        )
        await client.create("configmaps", configmap("ns", "a"))
        informer = Informer(
            client, "configmaps", namespace="ns", backoff_base=0.05, backoff_cap=0.5
        )
        started(informer)
        await asyncio.wait_for(informer.wait_synced(), 10)

        await asyncio.to_thread(redis_server.stop)
        await asyncio.sleep(0.5)
        assert informer.keys() == ["ns/a"]
        await asyncio.to_thread(redis_server.start)
        await retrying(lambda: client.create("configmaps", configmap("ns", "b")))
        want = await truth(client, "configmaps", "ns")
        assert "ns/b" in want
        await eventually(
            lambda: cached(informer) == want,
            timeout=15,
            what="cache to catch up after Redis came back",
        )
        await informer.stop()


async def _write_churn(client: Client, namespace: str, count: int) -> None:
    """count writes: updates of existing objects, deletes of some, creates of new."""
    existing = sorted(
        o["metadata"]["name"] for o in (await client.list("configmaps", namespace=namespace)).items
    )
    for name in existing[:3]:
        await client.delete("configmaps", name, namespace=namespace)
    for name in existing[3:6]:
        await client.patch("configmaps", name, {"data": {"v": "changed"}}, namespace=namespace)
    for i in range(count - 6):
        await client.create("configmaps", configmap(namespace, f"late{i}"))


@pytest.mark.parametrize(
    "flags",
    [
        pytest.param(("--history", "20", "--watch-cache-size", "5"), id="small-watch-cache"),
        pytest.param(("--history", "20"), id="default-watch-cache"),
    ],
)
async def test_relists_when_history_is_trimmed_past_its_revision(apiserver_factory, started, flags):
    """Resuming from a trimmed revision gets OUT_OF_RANGE; the informer relists and its
    cache and handler calls converge to a fresh list."""
    server = apiserver_factory(*flags)
    async with Client(server.target) as client:
        await client.create(
            "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}}
        )
        for i in range(8):
            await client.create("configmaps", configmap("ns", f"cm{i}"))
        informer = Informer(client, "configmaps", namespace="ns", backoff_base=0.05)
        rec = Recorder(informer)
        started(informer)
        await asyncio.wait_for(informer.wait_synced(), 10)
        old_rv = informer.last_resource_version

        await informer.stop()
        await _write_churn(client, "ns", 30)
        informer.start()  # resumes the watch from old_rv, which is gone
        want = await truth(client, "configmaps", "ns")
        await eventually(lambda: informer.relists == 1, timeout=5, what="a relist")
        assert cached(informer) == want
        assert rec.mirror == want
        assert int(informer.last_resource_version) > int(old_rv)
        assert ("delete", "ns/cm0") in rec.calls and ("update", "ns/cm5") in rec.calls
        assert ("update", "ns/cm7") not in rec.calls  # unchanged objects are not updates

        # ... and it watches again from the new list.
        await client.create("configmaps", configmap("ns", "after-relist"))
        await eventually(lambda: "ns/after-relist" in informer.keys(), what="a live event")
        assert informer.relists == 1


async def test_relists_when_its_apiserver_missed_trimmed_history(apiserver_factory, started):
    """An informer whose apiserver was down while another one wrote past the history
    relists after the restart and converges to the truth."""
    first = apiserver_factory("--history", "20")
    second = apiserver_factory("--history", "20")
    async with Client(first.target) as client, Client(second.target) as other:
        await client.create(
            "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}}
        )
        for i in range(8):
            await client.create("configmaps", configmap("ns", f"cm{i}"))
        informer = Informer(
            client, "configmaps", namespace="ns", backoff_base=0.05, backoff_cap=0.5
        )
        rec = Recorder(informer)
        started(informer)
        await asyncio.wait_for(informer.wait_synced(), 10)

        await asyncio.to_thread(first.stop)
        await _write_churn(other, "ns", 30)
        await asyncio.to_thread(first.restart)
        want = await retrying(lambda: truth(other, "configmaps", "ns"))
        await eventually(
            lambda: cached(informer) == want, timeout=15, what="cache to converge after the relist"
        )
        assert informer.relists == 1
        assert rec.mirror == want


async def test_wait_synced_fails_when_not_started(client):
    """wait_synced on an informer that was never started raises instead of hanging."""
    with pytest.raises(RuntimeError):
        await Informer(client, "configmaps").wait_synced()


async def test_relists_when_the_store_is_behind_its_revision(apiserver, redis_server, started):
    """An informer resuming from a revision the store never reached (its data was lost)
    is told ResourceVersionTooLarge and relists, as client-go's reflector does."""
    import redis as redis_sync

    async with Client(apiserver.target) as client:
        await client.create(
            "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}}
        )
        for i in range(10):
            await client.create("configmaps", configmap("ns", f"old{i}"))
        informer = Informer(client, "configmaps", namespace="ns", backoff_base=0.05,
                            backoff_cap=0.5)
        started(informer)
        await asyncio.wait_for(informer.wait_synced(), 10)
        ahead = int(informer.last_resource_version)
        await informer.stop()

        def wipe_and_restart() -> None:
            redis_sync.Redis.from_url(redis_server.url).flushall()
            apiserver.restart()

        await asyncio.to_thread(wipe_and_restart)
        await retrying(lambda: client.create(
            "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}}))
        await client.create("configmaps", configmap("ns", "new"))
        informer.start()  # resumes from `ahead`, which this store has not reached
        want = await truth(client, "configmaps", "ns")
        await eventually(lambda: cached(informer) == want, timeout=15,
                         what="the cache to equal a fresh list")
        assert informer.relists >= 1
        assert int((await client.list("configmaps", namespace="ns")).resource_version) < ahead

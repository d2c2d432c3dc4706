"""Watch semantics and fault tolerance, against real apiserver and redis-server processes."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import pytest
import redis

from kubelite.client import Client
from kubelite.errors import ApiError, ExpiredError, UnavailableError
from kubelite.testing import eventually

from .helpers import configmap, pod


async def _collect(stream, until: Callable[[list], bool], timeout: float = 10.0) -> list:
    events: list = []

    async def run() -> None:
        async for event in stream:
            events.append(event)
            if until(events):
                return

    await asyncio.wait_for(run(), timeout)
    return events


async def test_watch_with_label_selector_sees_objects_enter_and_leave(
    client: Client, namespace: str
) -> None:
    """An object that starts matching is ADDED to a filtered watch; one that stops is DELETED."""
    start = (await client.list("configmaps", namespace=namespace)).resource_version
    stream = client.watch("configmaps", namespace=namespace, label_selector="app=web",
                          resource_version=start)
    await client.create("configmaps", configmap("x", namespace, labels={"app": "db"}))
    await client.patch("configmaps", "x", {"metadata": {"labels": {"app": "web"}}},
                       namespace=namespace)
    await client.patch("configmaps", "x", {"data": {"k": "v"}}, namespace=namespace)
    await client.patch("configmaps", "x", {"metadata": {"labels": {"app": "db"}}},
                       namespace=namespace)
    events = await _collect(stream, lambda ev: len(ev) == 3)
    assert [e.type for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    revisions = [int(e.resource_version) for e in events]
    assert revisions == sorted(revisions)


async def test_watch_without_revision_starts_with_current_state(
    client: Client, namespace: str
) -> None:
    """A watch from no resourceVersion first sends every existing object as ADDED."""
    for i in range(3):
        await client.create("configmaps", configmap(f"s{i}", namespace))
    stream = client.watch("configmaps", namespace=namespace)
    events = await _collect(stream, lambda ev: len(ev) == 3)
    assert sorted(e.object["metadata"]["name"] for e in events) == ["s0", "s1", "s2"]
    assert {e.type for e in events} == {"ADDED"}


async def test_watch_filters_by_namespace_and_field(client: Client, namespace: str) -> None:
    """A watch sees only its namespace and its field selector's objects."""
    start = (await client.list("pods")).resource_version
    stream = client.watch("pods", namespace=namespace, field_selector="spec.nodeName=n1",
                          resource_version=start)
    await client.create("pods", pod("other", namespace, node="n2"))
    await client.create("pods", pod("mine", namespace, node="n1"))
    events = await _collect(stream, lambda ev: len(ev) == 1)
    assert events[0].object["metadata"]["name"] == "mine"


async def test_idle_watch_receives_bookmarks(apiserver_factory) -> None:
    """An idle watcher gets BOOKMARK events carrying a fresh resourceVersion."""
    server = apiserver_factory("--bookmark-interval", "0.3")
    async with Client(server.target) as c:
        start = (await c.list("configmaps")).resource_version
        stream = c.watch("configmaps", resource_version=start)
        await c.create("pods", pod("elsewhere", "default"))  # another resource moves the rev
        events = await _collect(stream, lambda ev: any(
            e.type == "BOOKMARK" and int(e.resource_version) > int(start) for e in ev))
        assert all(e.type == "BOOKMARK" for e in events)
        assert int(events[-1].resource_version) > int(start)


async def test_watch_from_trimmed_revision_is_out_of_range(apiserver_factory) -> None:
    """Once history is trimmed past a revision, Watch from it is OUT_OF_RANGE."""
    server = apiserver_factory("--history", "20", "--watch-cache-size", "5")
    async with Client(server.target) as c:
        old = (await c.list("configmaps")).resource_version
        for i in range(40):
            await c.create("configmaps", configmap(f"t{i}", "default"))
        with pytest.raises(ExpiredError):
            async for _ in c.watch("configmaps", resource_version=old):
                pass
        recent = (await c.list("configmaps")).resource_version
        stream = c.watch("configmaps", resource_version=str(int(recent) - 3))
        events = await _collect(stream, lambda ev: len(ev) == 3)
        assert [e.object["metadata"]["name"] for e in events] == ["t37", "t38", "t39"]


async def test_two_hundred_watchers_share_one_stream_reader(apiserver, redis_server) -> None:
    """200 concurrent watchers on one apiserver are served by a single Redis XREAD loop."""
    async with Client(apiserver.target) as c:
        start = (await c.list("configmaps")).resource_version
        received = [0] * 200

        async def watch(i: int) -> None:
            async for event in c.watch("configmaps", resource_version=start):
                if event.type == "ADDED":
                    received[i] += 1
                    return

        tasks = [asyncio.create_task(watch(i)) for i in range(200)]
        await asyncio.sleep(1.0)
        r = redis.Redis(host="127.0.0.1", port=redis_server.port)
        clients = r.client_list()
        readers = [cl for cl in clients if cl.get("cmd") in ("xread", "xreadgroup")
                   or cl.get("name") == "kubelite-watchcache"]
        await c.create("configmaps", configmap("ping", "default"))
        await asyncio.wait_for(asyncio.gather(*tasks), 20)
        assert received == [1] * 200
        assert len(readers) == 1, clients
        assert len(clients) < 20  # no connection per watcher either
        r.close()


async def test_redis_outage_fails_fast_and_recovers(apiserver, redis_server) -> None:
    """With Redis down calls fail UNAVAILABLE within their deadline; then all recovers."""
    async with Client(apiserver.target, timeout=3.0) as c:
        await c.create("configmaps", configmap("before", "default"))
        start = (await c.list("configmaps")).resource_version
        seen: list[str] = []
        watch_errors: list[Exception] = []

        async def follow() -> None:
            rv = start
            while True:
                try:
                    async for event in c.watch("configmaps", resource_version=rv):
                        rv = event.resource_version or rv
                        if event.type == "ADDED":
                            seen.append(event.object["metadata"]["name"])
                except ApiError as err:
                    watch_errors.append(err)
                    await asyncio.sleep(0.2)

        watcher = asyncio.create_task(follow())
        redis_server.stop()
        for call in (lambda: c.get("configmaps", "before", namespace="default"),
                     lambda: c.create("configmaps", configmap("during", "default")),
                     lambda: c.list("pods")):
            t0 = time.monotonic()
            with pytest.raises(UnavailableError):
                await call()
            assert time.monotonic() - t0 < 3.0
        redis_server.start()
        await eventually(lambda: c.create("configmaps", configmap("after", "default")),
                         timeout=15, interval=0.2, ignore=(UnavailableError,),
                         what="the apiserver to recover")
        assert (await c.get("configmaps", "before", namespace="default"))["metadata"]["name"]
        for _ in range(100):
            if "after" in seen:
                break
            await asyncio.sleep(0.1)
        watcher.cancel()
        assert "after" in seen


async def test_exactly_once_watch_across_apiserver_restart(apiserver, redis_server) -> None:
    """2,000 mixed writes by 4 writers with a mid-way apiserver kill: a resuming watcher sees
    every event exactly once, in order, and rebuilds the final List."""
    ns = "exactly-once"
    total, writers = 2000, 4
    async with Client(apiserver.target, timeout=5.0) as c:
        await c.create("namespaces", {"metadata": {"name": ns}})
        start = int((await c.list("configmaps", namespace=ns)).resource_version)
        received: list = []
        reconnects = 0

        async def follow() -> None:
            nonlocal reconnects
            rv = str(start)
            while True:
                try:
                    async for event in c.watch("configmaps", namespace=ns, resource_version=rv):
                        if event.type != "BOOKMARK":
                            received.append(event)
                        rv = event.resource_version or rv
                except ApiError:
                    reconnects += 1
                    await asyncio.sleep(0.05)

        watcher = asyncio.create_task(follow())
        done = 0
        acked: list[int] = []

        async def writer(w: int) -> None:
            nonlocal done
            rng = random.Random(w)
            live: list[str] = []
            serial = 0
            for _ in range(total // writers):
                while True:
                    try:
                        if not live or rng.random() < 0.4:
                            name = f"w{w}-{serial}"
                            serial += 1
                            try:
                                obj = await c.create("configmaps", configmap(name, ns, {"n": "0"}))
                            except ApiError as err:
                                if err.code.name != "ALREADY_EXISTS":
                                    raise
                                obj = await c.get("configmaps", name, namespace=ns)
                            live.append(name)
                        elif rng.random() < 0.7:
                            name = rng.choice(live)
                            obj = await c.patch("configmaps", name,
                                                {"data": {"n": str(rng.random())}}, namespace=ns)
                        else:
                            name = live.pop(rng.randrange(len(live)))
                            try:
                                obj = await c.delete("configmaps", name, namespace=ns)
                            except ApiError as err:
                                if err.code.name != "NOT_FOUND":
                                    raise
                                obj = None
                        if obj is not None:
                            acked.append(int(obj["metadata"]["resourceVersion"]))
                        break
                    except UnavailableError:
                        await asyncio.sleep(0.05)
                    except ApiError as err:
                        # A call cut by the kill may end in any transport code; never
                        # in INTERNAL, which only a kubelite bug produces.
                        if err.code.name not in ("DEADLINE_EXCEEDED", "UNKNOWN", "CANCELLED"):
                            raise
                        await asyncio.sleep(0.05)
                done += 1

        async def chaos() -> None:
            await eventually(lambda: done >= total // 2, timeout=120, interval=0.01,
                             what="half of the writes")
            await asyncio.to_thread(apiserver.restart, kill=True)

        await asyncio.gather(*(writer(w) for w in range(writers)), chaos())
        final = await c.list("configmaps", namespace=ns)
        final_rv = int(final.resource_version)
        await eventually(lambda: received and int(received[-1].resource_version) >= final_rv,
                         timeout=30, interval=0.05, what="the watcher to catch up")
        watcher.cancel()

    revisions = [int(e.resource_version) for e in received]
    assert revisions == sorted(set(revisions)), "duplicates or out of order"
    # Every committed event for the namespace, straight from the stream.
    r = redis.Redis(host="127.0.0.1", port=redis_server.port)
    truth = []
    for entry_id, fields in r.xrange("kl:events", min=f"{start + 1}-0", max=f"{final_rv}-0"):
        if fields[b"r"] == b"configmaps" and f'"namespace":"{ns}"'.encode() in fields[b"o"]:
            truth.append(int(entry_id.split(b"-")[0]))
    r.close()
    assert revisions == truth
    assert set(acked) <= set(revisions)
    assert reconnects >= 1  # the watch really was cut by the restart
    state: dict[str, str] = {}
    for event in received:
        name = event.object["metadata"]["name"]
        if event.type == "DELETED":
            state.pop(name)
        else:
            state[name] = event.resource_version
    assert state == {o["metadata"]["name"]: o["metadata"]["resourceVersion"]
                     for o in final.items}
